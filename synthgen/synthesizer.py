"""TabularSynthesizer: the scikit-learn-style front of the tabular pipeline.

fit:    DataFrame → metadata → TableTransformer → encoded tensor on the device → train_gan
sample: noise + condition vectors → generator → span activations → TableTransformer.inverse
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from synthgen._version import __version__
from synthgen.choices import DEFAULT_CHUNK_ROWS
from synthgen.bundle import MAX_HIDDEN_LAYERS, build_checked, check_fields, write_bundle
from synthgen.data.calibration import ValueCalibration
from synthgen.data.table import MIN_ROWS, TableTransformer, readable_table
from synthgen.errors import (
    ConditionError, InvalidArgumentError, InvalidDataError, MetadataError, ModelFileError, NotFittedError,
)
from synthgen.metadata import Metadata
from synthgen.models.tabular_gan import (
    ConditionSampler, Discriminator, GANConfig, Generator, MarginalCalibration, MarginalLoss, SpanLayout, init_weights,
)
from synthgen.dp.accounting import DPSettings, plan_privacy, privacy_record, row_count_noise
from synthgen.dp.entropy import PrivateRandom
from synthgen.dp.pairs import PairRelease, column_cells, pair_bins, pair_rounds, release_pairs
from synthgen.dp.release import Release, release_row_count, release_rounds, release_statistics
from synthgen.data.missing import MissingIndicator
from synthgen.data.quantile import QuantileTransformer
from synthgen.train import (
    LARGE_BATCH, LARGE_BATCH_LEARNING_RATE, default_private_steps, effective_batch_size, resolve_config, select_device,
    train_gan, train_gan_private, use_bfloat16,
)

logger = logging.getLogger(__name__)

#: Weight of the released tables' loss beside the DP critic's in the generator step. At ε = 3, 1,000
#: steps, seed 0, 100 against 10: gap closed -0.35 against -0.39 on pbc, -0.04 against -0.08 on flchain.
MARGINAL_WEIGHT = 100.0
#: Rows per generator pass when sampling. Its activations set fit's peak memory (the calibration
#: draw): on flchain 4,096 rows added 31 MB, 1,024 add 9 MB, at about the same speed (2 threads:
#: flchain 194-203k rows/s against 184-188k; breast-cancer 113-157k against 147-154k).
NETWORK_ROWS = 1_024
#: Rows per sampling block: each block draws from its own random streams, derived from (seed, block
#: index), so a sample does not depend on how it is chunked (and blocks could be drawn apart).
SAMPLE_BLOCK_ROWS = 8 * NETWORK_ROWS
#: Rows drawn after training to measure the generator's marginals for the calibration.
CALIBRATION_ROWS = 10_000


@dataclass(frozen=True)
class _DiscreteCondition:
    """A condition met through the condition vector: its slot there and its one-hot span in the output."""

    slot: int
    data_index: torch.Tensor
    category: int


class TabularSynthesizer:
    """Learn a table with a conditional GAN and sample synthetic rows like it.

    Parameters are stored as given; everything learned ends with ``_``. ``seed`` makes ``fit``
    reproducible (the same seed on the same CPU gives byte-identical samples); ``None`` draws one
    and records it, so ``info`` can always tell how to repeat a run. ``calibrate`` maps each decoded
    numeric column onto the training column's quantiles (see ``synthgen.data.calibration``).
    """

    kind = "tabular"

    def __init__(
        self,
        metadata: Metadata | None = None,
        *,
        seed: int | None = None,
        steps: int | None = None,
        batch_size: int | None = None,
        min_category_count: int = 5,
        device: str | None = None,
        config: GANConfig | None = None,
        progress: bool = True,
        dp: DPSettings | None = None,
        calibrate: bool = True,
    ) -> None:
        self.metadata = metadata
        self.seed = seed
        self.steps = steps
        self.batch_size = batch_size
        self.min_category_count = min_category_count
        self.device = device
        self.config = config
        self.progress = progress
        self.dp = dp
        self.calibrate = calibrate

    # ------------------------------------------------------------------ fit
    def fit(self, data: pd.DataFrame, *, holdout: float = 0.0) -> "TabularSynthesizer":
        """Learn ``data``; returns ``self``.

        ``holdout`` (a fraction in [0, 0.5]) keeps that share of rows out of training and records
        which ones, so :meth:`split` can hand the same real holdout to ``synthgen.evaluate``.
        """
        if not isinstance(data, pd.DataFrame):
            raise InvalidDataError(f"fit expects a pandas DataFrame, got {type(data).__name__}")
        if data.empty:
            raise InvalidDataError("the table is empty: it needs at least one row and one column")
        if self.min_category_count < 1:
            raise InvalidArgumentError(f"min_category_count must be >= 1, got {self.min_category_count}")
        if not 0.0 <= holdout <= 0.5:
            raise InvalidArgumentError(f"holdout must be a fraction between 0 and 0.5, got {holdout}")
        if self.dp is not None and self.metadata is None:
            raise MetadataError(
                "differentially private training takes its schema only from metadata you declare: detecting "
                "kinds, integer/float types, identifiers and date formats would read the rows outside the budget. "
                "Write a draft with `synthgen metadata DATA -o metadata.json`, review it (sdtype, "
                "computer_representation, datetime_format, public_values/public_bounds where the domain is public) "
                "and pass it with --metadata"
            )
        metadata = self.metadata if self.metadata is not None else Metadata.detect(data)
        config = self._resolved_config()
        seed = self.seed if self.seed is not None else int(np.random.SeedSequence().entropy % 2**63)
        rng = np.random.default_rng(seed)
        if self.dp is not None:
            # Each row's membership follows from (seed, its position) alone, so the model file need
            # not store the row count or the held-out positions, which would reveal n.
            held_out = _holdout_draws(seed, len(data)) < holdout
            return self._fit_private(data[~held_out], metadata, config, seed, rng, holdout)
        holdout_rows = np.sort(rng.permutation(len(data))[: round(holdout * len(data))])
        table_rows = len(data)
        if len(holdout_rows):
            data = data.drop(index=data.index[holdout_rows])
        table = TableTransformer(metadata, {"min_category_count": self.min_category_count}).fit(data, rng)
        if table.width_ == 0:
            raise InvalidDataError("every column is an identifier: there is nothing to learn")
        encoded = table.transform(data, rng)

        device = select_device(self.device)
        config = resolve_config(config, len(data))
        layout, generator_net = _networks(table, config)
        critic = Discriminator(layout.data_dim + layout.cond_dim, config.discriminator_dims, config.pac, config.dropout)
        init_rng = torch.Generator().manual_seed(seed)
        init_weights(generator_net, init_rng)
        init_weights(critic, init_rng)
        layout, generator_net, critic = layout.to(device), generator_net.to(device), critic.to(device)
        train_rng = torch.Generator(device).manual_seed(seed)
        # The encoded table moves to the device once; batches are gathered there.
        sampler, summary = train_gan(
            generator_net, critic, layout, torch.from_numpy(encoded).to(device), config, train_rng, progress=self.progress
        )
        training = {**summary.to_dict(), "rows": len(data), "columns": data.shape[1], "table_rows": table_rows}
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._set_fitted(metadata, config, seed, table, layout, generator_net, sampler, training, holdout_rows, created)
        numeric = [name for name, spec in metadata.columns.items() if spec.get("sdtype") == "numerical"]
        if self.calibrate and numeric:
            # Drawn before the calibration exists, so these are the generator's own marginals.
            drawn = self.sample(CALIBRATION_ROWS, seed=int(rng.integers(2**63)))
            self.value_calibration_ = ValueCalibration.fit(drawn, data, numeric, min_count=self.min_category_count)
        return self

    def _fit_private(self, data: pd.DataFrame, metadata: Metadata, config: GANConfig, seed: int,
                     rng: np.random.Generator, holdout: float) -> "TabularSynthesizer":
        """Fit under (ε, δ)-DP: transformers from released statistics, then DP-SGD on the critic.

        Nothing below reads the rows except through a DP release, and every privacy-protecting draw
        comes from ``private`` (OS entropy); ``rng`` and ``seed`` drive only the public randomness.
        """
        settings = self.dp
        private = PrivateRandom()
        unit = "one row = one patient (assumed; declare a patient column if a patient can have several rows)"
        if settings.unit_column is not None:
            if settings.unit_column not in data.columns:
                raise InvalidArgumentError(f"the DP unit column {settings.unit_column!r} is not in the table")
            # Contribution bounding: one random row per patient, so one row is one patient.
            shuffled = data.iloc[rng.permutation(len(data))]
            data = shuffled[~shuffled[settings.unit_column].duplicated()].sort_index()
            unit = f"one patient = one value of {settings.unit_column!r}; one row per patient kept"
        # The plan (batch rate, length, bins) is sized by a coarse released count, never by n itself.
        rows_hint = release_row_count(len(data), row_count_noise(settings), private)
        config_steps = config.steps
        # DP-SGD's defaults: large batches (a higher sample rate buys less noise per step) at 2e-4.
        config = replace(config, pac=1, batch_size=config.batch_size or LARGE_BATCH,
                         learning_rate=config.learning_rate or LARGE_BATCH_LEARNING_RATE)
        batch = effective_batch_size(config, round(rows_hint))
        steps = config.steps or default_private_steps(round(rows_hint), batch)
        config = replace(config, batch_size=batch, steps=steps)
        rounds = release_rounds(metadata) + (pair_rounds(metadata) if settings.pairs else 0)
        plan = plan_privacy(settings, rows_hint, batch, steps, rounds, shorten=config_steps is None)
        config = replace(config, steps=plan.steps)
        if len(data) < MIN_ROWS:
            raise InvalidDataError(f"the table has {len(data)} row(s) to train on; synthgen needs at least {MIN_ROWS}")
        # Stray cells (text in a number column, unparsable dates) become gaps, as in a plain fit.
        data = readable_table(metadata, data)
        release = release_statistics(data, metadata, plan.release_noise, plan.release_rounds, plan.threshold_delta,
                                     rows_hint=rows_hint, private=private)
        table = TableTransformer.from_fitted(metadata, {"min_category_count": 1}, release.transformers)
        data = release.fill_unreleased_gaps(data, rng)
        if table.width_ == 0:
            raise InvalidDataError("every column is an identifier: there is nothing to learn")
        encoded = release.fill_encoded_gaps(data, table.transform(data, rng), table.slices_, rng)
        marginal_loss, pairs = None, None
        if settings.pairs and pair_rounds(metadata):
            columns = column_cells(table, release.category_counts, pair_bins(round(rows_hint)))
            pairs = release_pairs(encoded, columns, plan.release_noise, rows=release.rows, private=private)
            release.record["pairs"] = pairs.record
            marginal_loss = MarginalLoss([c.to_dict() for c in columns],
                                         [torch.as_tensor(pairs.one_way(i)) for i in range(len(columns))],
                                         pairs.pairs, [torch.as_tensor(t) for t in pairs.tables])
        device = select_device(self.device)
        layout, generator_net = _networks(table, config)
        critic = Discriminator(layout.data_dim + layout.cond_dim, config.discriminator_dims, 1, config.dropout)
        init_rng = torch.Generator().manual_seed(seed)
        init_weights(generator_net, init_rng)
        init_weights(critic, init_rng)
        counts = [torch.as_tensor(release.category_counts[c.name], dtype=torch.float32) for c in table.conditional_columns_]
        sampler = ConditionSampler(layout, torch.cat(counts) if counts else torch.zeros(0))
        layout, generator_net, critic, sampler = layout.to(device), generator_net.to(device), critic.to(device), sampler.to(device)
        train_rng = torch.Generator(device).manual_seed(seed)
        summary = train_gan_private(
            generator_net, critic, layout, torch.from_numpy(encoded).to(device), config, train_rng, sampler, plan,
            progress=self.progress,
            marginal_loss=marginal_loss.to(device) if marginal_loss is not None else None, marginal_weight=MARGINAL_WEIGHT,
        )
        calibration = _calibrate(generator_net, layout, sampler, table, release, config, train_rng, pairs)
        privacy = privacy_record(plan, summary.steps, settings, release.record, unit)
        logger.info("trained with (%.3g, %.2g)-DP (%s accountant)", privacy["epsilon"], privacy["delta"], privacy["accountant"])
        # Only released counts go into the record: the true row count is private.
        training = {**summary.to_dict(), "rows": round(release.rows), "columns": data.shape[1],
                    "holdout_fraction": holdout, "privacy": privacy}
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._set_fitted(metadata, config, seed, table, layout, generator_net, sampler, training,
                         np.zeros(0, dtype=np.int64), created)
        self.calibration_ = calibration
        return self

    @property
    def privacy_(self) -> dict[str, Any] | None:
        """The differential-privacy record of the fit (ε spent, δ, noise, ...), or None without DP."""
        self._check_fitted()
        return self.training_.get("privacy")

    def _set_fitted(self, metadata: Metadata, config: GANConfig, seed: int, table: TableTransformer, layout: SpanLayout,
                    generator_net: Generator, sampler: ConditionSampler, training: dict[str, Any],
                    holdout_rows: np.ndarray, created: str) -> "TabularSynthesizer":
        """Store what fit learned (or what a model file holds); the one place fitted state is set."""
        self.metadata_ = metadata
        self.config_ = config
        self.seed_ = seed
        self.table_ = table
        self.layout_ = layout
        self.generator_ = generator_net.eval()
        self.sampler_ = sampler
        self.training_ = training
        self.holdout_rows_ = holdout_rows
        self.created_ = created
        self.calibration_: MarginalCalibration | None = None
        self.value_calibration_: ValueCalibration | None = None
        return self

    def _resolved_config(self) -> GANConfig:
        config = self.config or GANConfig()
        if self.steps is not None:
            if self.steps < 1:
                raise InvalidArgumentError(f"steps must be >= 1, got {self.steps}")
            config = replace(config, steps=self.steps)
        if self.batch_size is not None:
            if self.batch_size < max(2, config.pac):
                raise InvalidArgumentError(
                    f"batch_size must be >= {max(2, config.pac)} (the generator normalises over the batch; "
                    f"pac is {config.pac}), got {self.batch_size}"
                )
            config = replace(config, batch_size=self.batch_size)
        return config

    def _check_fitted(self) -> None:
        if not hasattr(self, "generator_"):
            raise NotFittedError("this TabularSynthesizer is not fitted yet; call fit() or synthgen.load() first")

    def split(self, data: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
        """(training rows, holdout rows) of the table this model was fitted on, as fit split it.

        The holdout is None when ``fit`` kept none. The table must be the same one, in the same
        row order; a different row count is refused rather than silently mis-split.
        """
        self._check_fitted()
        if "holdout_fraction" in self.training_:  # a DP fit: membership from (seed, position), see fit
            if not self.training_["holdout_fraction"]:
                return data, None
            held_out = _holdout_draws(self.seed_, len(data)) < self.training_["holdout_fraction"]
            return data[~held_out].reset_index(drop=True), data[held_out].reset_index(drop=True)
        expected = self.training_.get("table_rows", self.training_["rows"])
        if len(data) != expected:
            raise InvalidDataError(
                f"this model was fitted on a table of {expected} rows, but the given table has {len(data)}; "
                "pass the same file used for fit"
            )
        if not len(self.holdout_rows_):
            return data, None
        is_holdout = np.zeros(len(data), dtype=bool)
        is_holdout[self.holdout_rows_] = True
        return data[~is_holdout].reset_index(drop=True), data[is_holdout].reset_index(drop=True)

    # ------------------------------------------------------------------ sample
    def sample(
        self,
        num_rows: int,
        conditions: Mapping[str, Any] | None = None,
        *,
        seed: int | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> pd.DataFrame:
        """``num_rows`` synthetic rows, all meeting ``conditions`` (``{column: value}``)."""
        chunks = list(self.sample_chunks(num_rows, conditions, seed=seed, chunk_rows=chunk_rows))
        return pd.concat(chunks, ignore_index=True)

    def sample_chunks(
        self,
        num_rows: int,
        conditions: Mapping[str, Any] | None = None,
        *,
        seed: int | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> Iterator[pd.DataFrame]:
        """Yield the rows of :meth:`sample` in chunks of at most ``chunk_rows``, in bounded memory.

        Arguments and conditions are checked here, before the first row is generated.
        """
        self._check_fitted()
        if isinstance(num_rows, bool) or not isinstance(num_rows, (int, np.integer)) or num_rows < 1:
            raise InvalidArgumentError(f"the number of rows must be a positive integer, got {num_rows!r}")
        if chunk_rows < 1:
            raise InvalidArgumentError(f"chunk_rows must be >= 1, got {chunk_rows}")
        discrete, exact = self._plan_conditions(dict(conditions or {}))
        return self._generate(int(num_rows), discrete, exact, seed, chunk_rows)

    def _plan_conditions(self, conditions: dict[str, Any]) -> tuple[list[_DiscreteCondition], dict[str, Any]]:
        """Split conditions into those the condition vector meets and those checked after decoding."""
        discrete: list[_DiscreteCondition] = []
        exact: dict[str, Any] = {}
        columns = list(self.metadata_.columns)
        offsets = np.cumsum([0, *self.layout_.cond_widths])
        for name, value in conditions.items():
            if name not in self.metadata_.columns:
                raise ConditionError(f"cannot condition on {name!r}: no such column (columns: {', '.join(columns)})")
            conditional = self.table_.conditional_column(name)
            if conditional is not None:
                category = self.table_.transformer(name).condition_index(value)
                position = self.table_.conditional_columns_.index(conditional)
                discrete.append(
                    _DiscreteCondition(
                        slot=int(offsets[position]) + category,
                        data_index=torch.arange(conditional.data_offset, conditional.data_offset + conditional.width),
                        category=category,
                    )
                )
            elif self.metadata_.columns[name].get("sdtype") == "id":
                raise ConditionError(f"cannot condition on identifier column {name!r}: identifiers are generated fresh")
            else:
                exact[name] = self._exact_target(name, value)
        return discrete, exact

    def _exact_target(self, name: str, value: Any) -> Any:
        """The requested value in the form decoded columns take, checked before any generation."""
        spec = self.metadata_.columns[name]
        if spec.get("sdtype") == "numerical":
            try:
                return float(value)
            except (TypeError, ValueError) as exc:
                raise ConditionError(f"condition {name}={value!r}: column {name!r} is numerical and {value!r} is not a number") from exc
        if spec.get("sdtype") == "datetime" and not spec.get("datetime_format"):
            try:
                return pd.Timestamp(value)
            except (TypeError, ValueError) as exc:
                raise ConditionError(f"condition {name}={value!r}: {value!r} is not a date/time") from exc
        return str(value)

    @staticmethod
    def _exact_match(frame: pd.DataFrame, exact: dict[str, Any]) -> np.ndarray:
        """Rows whose decoded values equal the requested ones (the rejection-sampling fallback)."""
        keep = np.ones(len(frame), dtype=bool)
        for name, target in exact.items():
            column = frame[name]
            if isinstance(target, float):
                column = column.astype("float64")
            elif isinstance(target, str):
                column = column.astype(str)
            keep &= (column == target).fillna(False).to_numpy(dtype=bool)
        return keep

    def _generate(
        self, num_rows: int, discrete: list[_DiscreteCondition], exact: dict[str, Any], seed: int | None, chunk_rows: int
    ) -> Iterator[pd.DataFrame]:
        """Rows in blocks of ``SAMPLE_BLOCK_ROWS``, each from its own random streams derived from (seed,
        block index), cut into chunks afterwards: the rows do not depend on ``chunk_rows``."""
        seed = seed if seed is not None else int(np.random.SeedSequence().entropy % 2**63)
        if seed < 0:
            raise InvalidArgumentError(f"the sampling seed must be a non-negative integer, got {seed}")
        calibration_bias = None
        if self.calibration_ is not None:
            # A requested category is met through the condition; pulling its column back toward
            # the marginal would only fight it.
            calibration_bias = self.calibration_.softmax_bias.clone()
            starts = self.layout_.softmax_index[:, 0]
            for condition in discrete:
                calibration_bias[starts == int(condition.data_index[0])] = 0.0
        budget = 100 * num_rows + 10 * SAMPLE_BLOCK_ROWS  # rows we are willing to generate for rare exact values
        remaining, generated, block = num_rows, 0, 0
        pending: list[pd.DataFrame] = []
        while remaining > 0:
            # Without exact conditions every row is kept; with them, rejection needs whole blocks.
            size = SAMPLE_BLOCK_ROWS if exact else min(SAMPLE_BLOCK_ROWS, remaining)
            torch_rng, numpy_rng = _block_streams(seed, block, self.layout_.tanh_index.device)
            with torch.inference_mode():
                encoded = self._encoded(size, discrete, calibration_bias, torch_rng)
            frame = self.table_.inverse(encoded.float().cpu().numpy(), numpy_rng)
            if self.value_calibration_ is not None:
                frame = self.value_calibration_.apply(frame, numpy_rng)
            if exact:
                frame = frame[self._exact_match(frame, exact)].reset_index(drop=True)
            frame = frame.iloc[:remaining]
            remaining -= len(frame)
            generated += size
            block += 1
            if len(frame):
                pending.append(frame)
            ready = sum(len(f) for f in pending)
            if ready >= chunk_rows or (remaining == 0 and ready):
                joined = pd.concat(pending, ignore_index=True) if len(pending) > 1 else pending[0]
                start = 0
                while len(joined) - start >= chunk_rows or (remaining == 0 and start < len(joined)):
                    yield joined.iloc[start : start + chunk_rows].reset_index(drop=True)
                    start += chunk_rows
                pending = [joined.iloc[start:]] if start < len(joined) else []
            if remaining > 0 and generated >= budget:
                met = num_rows - remaining
                raise ConditionError(
                    f"could not meet the conditions {self._describe(discrete, exact)}: {met} of {num_rows} rows after "
                    f"generating {generated}; the combination may be too rare in the training data"
                )

    def _encoded(self, rows: int, discrete: list[_DiscreteCondition], calibration_bias: torch.Tensor | None,
                 rng: torch.Generator) -> torch.Tensor:
        """``rows`` generated rows, encoded (one-hot draws on softmax spans), in network-sized pieces.

        A discrete condition is met through the condition vector: the rows are generated given the
        requested level, and that column's span is set to it (never rejection: a rare level of a wide
        column would otherwise cost thousands of rows per row kept).
        """
        device = self.layout_.tanh_index.device
        autocast = torch.autocast(device.type, dtype=torch.bfloat16,
                                  enabled=use_bfloat16(device, self.config_.mixed_precision))
        slots = [c.slot for c in discrete]
        pieces = []
        for start in range(0, rows, NETWORK_ROWS):
            size = min(NETWORK_ROWS, rows - start)
            noise = torch.randn(size, self.config_.embedding_dim, generator=rng, device=device)
            cond = self.sampler_.fixed(size, slots) if slots else self.sampler_.for_sampling(size, rng)
            with autocast:
                raw = self.generator_(noise, cond)
            encoded = self.layout_.activate(raw, self.config_.gumbel_tau, rng, hard=True, softmax_bias=calibration_bias)
            if self.calibration_ is not None:
                encoded[:, self.layout_.tanh_index] = self.calibration_.map_tanh(encoded[:, self.layout_.tanh_index])
            for condition in discrete:
                span = condition.data_index.to(device)
                encoded[:, span] = 0.0
                encoded[:, span[condition.category]] = 1.0
            pieces.append(encoded)
        return torch.cat(pieces)

    def _describe(self, discrete: list[_DiscreteCondition], exact: dict[str, Any]) -> str:
        names = [c.name for c in self.table_.conditional_columns_]
        parts = []
        offsets = np.cumsum([0, *self.layout_.cond_widths])
        for condition in discrete:
            position = int(np.searchsorted(offsets, condition.slot, side="right") - 1)
            label = self.table_.transformer(names[position]).categories[condition.category]
            parts.append(f"{names[position]}={label}")
        parts += [f"{name}={value}" for name, value in exact.items()]
        return ", ".join(parts)

    # ------------------------------------------------------------------ persistence
    def describe(self) -> dict[str, Any]:
        """What ``synthgen info`` shows: schema, training summary, versions and seed."""
        self._check_fitted()
        return {
            "kind": self.kind,
            "synthgen_version": __version__,
            "torch_version": torch.__version__,
            "created": self.created_,
            "seed": self.seed_,
            "metadata": self.metadata_.to_dict(),
            "config": asdict(self.config_),
            "training": self.training_,
            "conditional_columns": [c.name for c in self.table_.conditional_columns_],
            "calibrated_columns": sorted(self.value_calibration_.maps) if self.value_calibration_ is not None else [],
        }

    def save(self, path: str | Path) -> Path:
        """Write the fitted model to ``path`` (weights + JSON; no pickle).

        No clock reading is stored (when it was made, how long training took), so the same seed
        gives the same bytes.
        """
        self._check_fitted()
        manifest = {**self.describe(), "transformer": self.table_.get_state(), "min_category_count": self.min_category_count}
        del manifest["created"]
        manifest["training"] = {k: v for k, v in self.training_.items() if k != "seconds"}
        if self.value_calibration_ is not None:
            manifest["value_calibration"] = self.value_calibration_.get_state()
        tensors = {f"generator.{k}": v for k, v in self.generator_.state_dict().items()}
        tensors["condition_counts"] = self.sampler_.counts
        tensors["holdout_rows"] = torch.from_numpy(self.holdout_rows_.astype(np.int64))
        if self.calibration_ is not None:
            tensors |= {f"calibration.{k}": v for k, v in self.calibration_.state_dict().items()}
        return write_bundle(path, manifest, tensors)

    @classmethod
    def from_bundle(cls, manifest: dict[str, Any], tensors: dict[str, torch.Tensor], device: str | None = None) -> "TabularSynthesizer":
        """Rebuild a fitted synthesizer from :func:`synthgen.bundle.read_bundle` output."""
        check_fields(manifest, {"metadata": (dict,), "transformer": (dict,), "min_category_count": (int,)},
                     optional={"value_calibration": (dict,), "created": (str, type(None))})
        check_fields(manifest["training"], {"rows": (int,), "columns": (int,)}, "the training summary",
                     {"privacy": (dict, type(None))})
        try:
            if manifest["training"].get("privacy"):
                # The DP record is shown by info and the report: a crafted one must fail here, in one line.
                from synthgen.dp.accounting import statement
                statement(manifest["training"]["privacy"])
            config_fields = manifest["config"]
            config = GANConfig(
                **{k: tuple(v) if isinstance(v, list) else v for k, v in config_fields.items()}
            )
            if len(config.generator_dims) > MAX_HIDDEN_LAYERS:
                raise ValueError(f"{len(config.generator_dims)} generator layers")
            metadata = Metadata.from_dict(manifest["metadata"])
            table = TableTransformer.from_state(metadata, manifest["transformer"])
            synthesizer = cls(metadata, seed=manifest["seed"], min_category_count=manifest["min_category_count"], config=config, device=device)
            layout = SpanLayout(table.spans_, [c.data_offset for c in table.conditional_columns_])
            weights = {k.removeprefix("generator."): v for k, v in tensors.items() if k.startswith("generator.")}
            # The network _networks builds, checked against the weights before it is allocated.
            generator_net = build_checked(
                lambda: Generator(config.embedding_dim, layout.cond_dim, config.generator_dims, layout.data_dim), weights,
            )
            sampler = ConditionSampler(layout, tensors["condition_counts"])
            holdout_rows = tensors["holdout_rows"].numpy()
            seed, training, created = manifest["seed"], manifest["training"], manifest.get("created")
            value_calibration = ValueCalibration.from_state(manifest["value_calibration"]) if "value_calibration" in manifest else None
        except ModelFileError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
            raise ModelFileError(f"the model file is inconsistent or from an incompatible synthgen ({exc})") from exc
        target = select_device(device)
        synthesizer._set_fitted(
            metadata, config, seed, table, layout.to(target), generator_net.to(target), sampler.to(target),
            training, holdout_rows, created,
        )
        synthesizer.value_calibration_ = value_calibration
        if "calibration.softmax_bias" in tensors:
            synthesizer.calibration_ = MarginalCalibration(
                tensors["calibration.tanh_quantiles"], tensors["calibration.tanh_targets"], tensors["calibration.softmax_bias"]
            ).to(target)
        return synthesizer


def _calibrate(generator_net: Generator, layout: SpanLayout, sampler: ConditionSampler, table: TableTransformer,
               release: Release, config: GANConfig, rng: torch.Generator, pairs: PairRelease | None = None,
               draws: int = 20_000, levels: int = 256) -> MarginalCalibration:
    """Marginal calibration of a DP generator onto the released statistics (post-processing only).

    Under DP every tanh output is a quantile transformer's score, whose target distribution is
    known; softmax spans of categories and missing indicators have released frequencies. Where
    two-way tables were released, a column's cell shares come from their margins (what the
    generator was trained toward): a tanh output then follows the released CDF inside each cell,
    with each cell's mass as the tables measured it.
    """
    shares = {c.name: pairs.one_way(i) for i, c in enumerate(pairs.columns)} if pairs is not None else {}
    softmax_targets = torch.full(layout.softmax_mask.shape, float("nan"))
    row = 0
    for name, transformer in table.column_transformers_.items():
        for position, span in enumerate(transformer.spans):
            if span.activation != "softmax":
                continue
            if span.conditional:
                counts = shares.get(name, release.category_counts[name])
                counts = torch.as_tensor(counts, dtype=torch.float32)
                softmax_targets[row, : span.width] = counts / counts.sum()
            elif isinstance(transformer, MissingIndicator) and position == len(transformer.spans) - 1:
                rate = float(shares[name][-1]) if name in shares else float(transformer.missing_rate_)
                softmax_targets[row, :2] = torch.tensor([1.0 - rate, rate])
            row += 1
    grid = (np.arange(levels) + 0.5) / levels
    probabilities = np.tile(grid, (len(layout.tanh_index), 1))
    tanh_rows = {int(position): index for index, position in enumerate(layout.tanh_index.tolist())}
    for column in (pairs.columns if pairs is not None else []):
        cells = shares[column.name][: len(column.thresholds) + 1] if column.kind == "bins" else None
        if cells is not None and cells.sum() > 0:  # all-zero cells (noise drowned them): keep the released CDF
            probabilities[tanh_rows[column.positions[0]]] = _within_cells(grid, cells / cells.sum())
    tanh_targets = torch.as_tensor(QuantileTransformer.encoded_quantiles(probabilities), dtype=torch.float32)
    device = layout.tanh_index.device
    tanh_targets = tanh_targets.contiguous().to(device)
    noise = torch.randn(draws, config.embedding_dim, generator=rng, device=device)
    with torch.inference_mode():
        cond = sampler.for_sampling(draws, rng)
    return MarginalCalibration.fit(generator_net, layout, cond, noise, config.gumbel_tau, rng, tanh_targets,
                                   softmax_targets.to(device))


def _holdout_draws(seed: int, n_rows: int) -> np.ndarray:
    """One uniform draw per row position; row i's draw does not depend on how many rows follow it."""
    return np.random.default_rng([seed, 0x401D]).random(n_rows)


def _block_streams(seed: int, block: int, device: torch.device) -> tuple[torch.Generator, np.random.Generator]:
    """The torch and numpy random streams of sampling block ``block``: children of (seed, block)."""
    torch_sequence, numpy_sequence = np.random.SeedSequence(seed, spawn_key=(block,)).spawn(2)
    torch_seed = int(torch_sequence.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
    return torch.Generator(device).manual_seed(torch_seed), np.random.default_rng(numpy_sequence)


def _within_cells(levels: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """Released-CDF probabilities at quantile ``levels`` of a distribution whose k-th of B equal-probability
    cells holds ``shares[k]``: a piecewise-linear map from cumulative shares to k/B."""
    bins = len(shares)
    return np.interp(levels, np.concatenate([[0.0], np.cumsum(shares)]), np.arange(bins + 1) / bins)


def _networks(table: TableTransformer, config: GANConfig) -> tuple[SpanLayout, Generator]:
    """The span layout and an untrained generator for ``table``'s encoding."""
    layout = SpanLayout(table.spans_, [c.data_offset for c in table.conditional_columns_])
    return layout, Generator(config.embedding_dim, layout.cond_dim, config.generator_dims, layout.data_dim)
