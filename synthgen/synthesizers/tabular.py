"""TabularSynthesizer: the scikit-learn-style front of the tabular pipeline.

fit:    DataFrame → metadata → TableTransformer → encoded tensor on the device → train_gan
sample: noise + condition vectors → generator → span activations → TableTransformer.inverse
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, replace
from functools import partial
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from synthgen.bundle import MAX_HIDDEN_LAYERS, build_checked, check_fields
from synthgen.choices import DEFAULT_CHUNK_ROWS, MIN_CATEGORY_COUNT, TRANSFORMER_SAMPLE_ROWS
from synthgen.data.calibration import ValueCalibration
from synthgen.data.copula import CopulaCorrection, pair_error
from synthgen.data.compact import CompactRows
from synthgen.data.rules import RULE_ROWS
from synthgen.data.table import TableTransformer
from synthgen.dp.accounting import DPSettings
from synthgen.errors import ConditionError, InvalidArgumentError, InvalidDataError, MetadataError, ModelFileError
from synthgen.io import TableFile, read_table
from synthgen.metadata import Metadata
from synthgen.models.tabular_gan import (
    ConditionSampler, Discriminator, GANConfig, Generator, MarginalCalibration, SpanLayout, init_weights, networks,
)
from synthgen.synthesizers.base import (
    BUNDLE_ERRORS, Synthesizer, block_streams, check_holdout, config_from, draw_seed, generator_weights, inconsistent,
)
from synthgen.synthesizers.conditions import (
    DiscreteCondition, describe_conditions, exact_match, plan_conditions,
)
from synthgen.synthesizers.private import fit_private, holdout_draws
from synthgen.training.checkpoint import Checkpointing, fingerprint
from synthgen.training.distributed import join, launched, leave
from synthgen.training.loop import select_device, use_bfloat16
from synthgen.training.tabular import resolve_config, train_gan

logger = logging.getLogger(__name__)

#: Rows per generator pass when sampling. Its activations set fit's peak memory (the calibration
#: draw): on flchain 4,096 rows added 31 MB, 1,024 add 9 MB, at about the same speed (2 threads:
#: flchain 194-203k rows/s against 184-188k; breast-cancer 113-157k against 147-154k).
NETWORK_ROWS = 1_024
#: Rows per sampling block: each block draws from its own random streams, derived from (seed, block
#: index), so a sample does not depend on how it is chunked (and blocks could be drawn apart).
SAMPLE_BLOCK_ROWS = 8 * NETWORK_ROWS
#: Rows drawn after training to measure the generator's marginals for the calibration.
CALIBRATION_ROWS = 10_000
#: Rows encoded at a time into the compact table. A file's chunks are re-cut to these edges (after
#: the holdout is dropped), so the transformers draw what they draw for a DataFrame.
ENCODE_ROWS = DEFAULT_CHUNK_ROWS


def _kept_rows(chunks: Iterable[pd.DataFrame], dropped: np.ndarray, size: int) -> Iterator[pd.DataFrame]:
    """The rows of ``chunks`` (indexed by row position) less those at the sorted positions ``dropped``,
    cut again into chunks of ``size`` rows."""
    pending: list[pd.DataFrame] = []
    held = 0
    for chunk in chunks:
        low, high = np.searchsorted(dropped, [chunk.index[0], chunk.index[-1] + 1])
        if high > low:
            chunk = chunk.drop(index=dropped[low:high])
        if len(chunk):
            pending.append(chunk)
            held += len(chunk)
        while held >= size:
            joined = pd.concat(pending) if len(pending) > 1 else pending[0]
            yield joined.iloc[:size]
            rest = joined.iloc[size:]
            pending, held = ([rest] if len(rest) else []), len(rest)
    if held:
        yield pd.concat(pending) if len(pending) > 1 else pending[0]


class TabularSynthesizer(Synthesizer):
    """Learn a table with a conditional GAN and sample synthetic rows like it.

    Parameters are stored as given; everything learned ends with ``_``. ``seed`` makes ``fit``
    reproducible (the same seed on the same CPU gives byte-identical samples); ``None`` draws one
    and records it, so ``info`` can always tell how to repeat a run. ``calibrate`` maps each decoded
    numeric column onto the training column's quantiles, per level of the category that explains
    its ranks where one does (see ``synthgen.data.calibration``); with ``copula`` the calibrated
    columns' joint ranks are first moved onto the training rows' rank correlation (see
    ``synthgen.data.copula``). With ``round_values`` a float column's sampled values are rounded
    to the decimals and significant digits its training values were recorded with
    (``ContinuousTransformer.round``), unless that makes more sampled rows equal a training row;
    not in DP fits.
    A table of more than ``transformer_sample_rows`` rows fits its numerical and datetime
    transformers on a seeded sample of that many rows (recorded in ``training_``).
    ``derive_categories``: a category column that is a step function of one numeric column or of
    the sum of two on every training row (an age band, a score group) is derived from them when
    sampling (see ``synthgen.data.rules``); not in DP fits, whose schema reads nothing of the rows.
    """

    kind = "tabular"

    def __init__(
        self,
        metadata: Metadata | None = None,
        *,
        seed: int | None = None,
        steps: int | None = None,
        batch_size: int | None = None,
        min_category_count: int = MIN_CATEGORY_COUNT,
        device: str | None = None,
        config: GANConfig | None = None,
        progress: bool = True,
        dp: DPSettings | None = None,
        calibrate: bool = True,
        copula: bool = True,
        transformer_sample_rows: int = TRANSFORMER_SAMPLE_ROWS,
        checkpoint_every: int | None = None,
        checkpoint_path: str | Path | None = None,
        derive_categories: bool = True,
        round_values: bool = True,
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
        self.copula = copula
        self.transformer_sample_rows = transformer_sample_rows
        self.checkpoint_every = checkpoint_every
        self.checkpoint_path = checkpoint_path
        self.derive_categories = derive_categories
        self.round_values = round_values

    # ------------------------------------------------------------------ fit
    def fit(self, data: pd.DataFrame | str | Path, *, holdout: float = 0.0, resume: str | Path | None = None,
            chunk_rows: int = DEFAULT_CHUNK_ROWS) -> "TabularSynthesizer":
        """Learn ``data`` (a DataFrame, or the path of a CSV, TSV or Parquet file); returns ``self``.

        A file is never held whole (see :class:`synthgen.io.TableFile`): its columns are read a few
        at a time to detect kinds and fit the transformers, then its rows ``chunk_rows`` at a time
        into the compact training table. The model is the one ``fit(read_table(path))`` gives, to
        the byte for the same seed. A DP fit reads the file whole.
        ``holdout`` (a fraction in [0, 0.5]) keeps that share of rows out of training and records
        which ones, so :meth:`split` can hand the same real holdout to ``synthgen.evaluate``.
        With ``checkpoint_every`` the training state is written to ``checkpoint_path`` every that
        many steps; ``resume`` (such a file) continues a fit of the same data, settings and seed from
        its step, ending in the same model as a fit that never stopped.
        """
        if not isinstance(data, (str, Path)):
            return self._fit(data, None, holdout, resume)
        if self.dp is not None:  # the DP release reads columns in ways not written for chunks yet
            return self._fit(read_table(data), None, holdout, resume)
        # Closed here, not when a traceback holding the fit's frames is dropped: a CSV's spill is a
        # temporary file as large as a compressed copy of the table.
        with TableFile(data, chunk_rows) as source:
            return self._fit(data, source, holdout, resume)

    def _fit(self, data: pd.DataFrame | str | Path, source: TableFile | None, holdout: float,
             resume: str | Path | None) -> "TabularSynthesizer":
        if source is None:
            if not isinstance(data, pd.DataFrame):
                raise InvalidDataError(f"fit expects a pandas DataFrame or a file path, got {type(data).__name__}")
            if data.empty:
                raise InvalidDataError("the table is empty: it needs at least one row and one column")
        if self.min_category_count < 1:
            raise InvalidArgumentError(f"min_category_count must be >= 1, got {self.min_category_count}")
        check_holdout(holdout)
        launch = launched()
        checkpointed = self.checkpoint_every is not None or resume is not None
        if checkpointed and (self.dp is not None or launch.distributed):
            raise InvalidArgumentError(
                "checkpoints are written for a one-process fit without DP: a DP fit's noise is never stored (so it "
                "could not be replayed), and under torchrun each rank's random stream would need a file of its own"
            )
        if self.checkpoint_every is not None and (self.checkpoint_every < 1 or self.checkpoint_path is None):
            raise InvalidArgumentError(f"checkpoint_every must be a positive number of steps with a checkpoint_path, "
                                       f"got {self.checkpoint_every!r} and {self.checkpoint_path!r}")
        if self.dp is not None and self.metadata is None:
            raise MetadataError(
                "differentially private training takes its schema only from metadata you declare: detecting "
                "kinds, integer/float types, identifiers and date formats would read the rows outside the budget. "
                "Write a draft with `synthgen metadata DATA -o metadata.json`, review it (sdtype, "
                "computer_representation, datetime_format, public_values/public_bounds where the domain is public) "
                "and pass it with --metadata"
            )
        if source is not None:
            metadata = self.metadata if self.metadata is not None else Metadata()  # detected column by column below
            if self.metadata is not None:
                self.metadata.validate(pd.DataFrame(columns=source.names))
        else:
            assert isinstance(data, pd.DataFrame)
            metadata = self.metadata if self.metadata is not None else Metadata.detect(data)
        config = self._resolved_config()
        if launch.distributed and self.seed is None:
            raise InvalidArgumentError(f"a fit on {launch.world_size} processes (torchrun) needs --seed: every rank must "
                                       "draw the same holdout and fit the same transformers")
        seed = draw_seed(self.seed)
        rng = np.random.default_rng(seed)
        if self.dp is not None:
            assert isinstance(data, pd.DataFrame)
            if launch.distributed:
                raise InvalidArgumentError(
                    "differentially private training runs in one process: under torchrun each rank would need its "
                    "own Poisson sample and the accountant one global sample rate (Opacus' DPDDP), which synthgen "
                    "does not do yet; run the DP fit without torchrun"
                )
            # Each row's membership follows from (seed, its values) alone, so the model file need not
            # store the row count or the held-out positions (which would reveal n), and adding a row
            # moves no other row in or out of training.
            held_out = holdout_draws(seed, data) < holdout
            fit = fit_private(data[~held_out], metadata, config, seed, rng, holdout, self.dp,
                              device=self.device, progress=self.progress)
            created = datetime.now(timezone.utc).isoformat(timespec="seconds")
            fit.table.drop_precisions()  # nothing about the rows outside the budget
            self._set_fitted(fit.metadata, fit.config, seed, fit.table, fit.layout, fit.generator, fit.sampler,
                             fit.training, np.zeros(0, dtype=np.int64), created)
            self.calibration_ = fit.calibration
            return self
        table_rows = source.rows if source is not None else len(data)
        holdout_rows = np.sort(rng.permutation(table_rows)[: round(holdout * table_rows)])
        rows = table_rows - len(holdout_rows)
        if source is None and len(holdout_rows):
            data = data.drop(index=data.index[holdout_rows])
        if self.transformer_sample_rows < 1:
            raise InvalidArgumentError(f"transformer_sample_rows must be >= 1, got {self.transformer_sample_rows}")
        # A big table's distribution transformers learn from a seeded sample (drawn only then, so
        # smaller tables draw exactly as before); every row is still encoded.
        sample_rows = (np.sort(rng.choice(rows, self.transformer_sample_rows, replace=False))
                       if rows > self.transformer_sample_rows else None)
        options: dict[str, Any] = {"min_category_count": self.min_category_count}
        if not self.derive_categories:
            options["category_rules"] = False
        table = TableTransformer(metadata, options)
        if source is None:
            table.fit(data, rng, sample_rows=sample_rows)
            if table.width_ == 0:
                raise InvalidDataError("every column is an identifier: there is nothing to learn")
            # Compact (category and mode codes, float32 values), built chunk by chunk: no dense full matrix.
            encoded = table.encode_chunks((data.iloc[start: start + ENCODE_ROWS] for start in range(0, rows, ENCODE_ROWS)),
                                          rows, rng, share=launch.share)
            columns = data.shape[1]
        else:
            table.fit_columns(self._file_columns(source, metadata, holdout_rows), rows, rng, sample_rows=sample_rows)
            if self.metadata is None:
                metadata.primary_key = next((n for n, spec in metadata.columns.items() if spec["sdtype"] == "id"), None)
            if table.width_ == 0:
                raise InvalidDataError("every column is an identifier: there is nothing to learn")
            chunks = _kept_rows(source.chunks(), holdout_rows, ENCODE_ROWS)
            with tqdm(total=rows, desc="encoding rows", unit="row", unit_scale=True, leave=False,
                      disable=not self.progress or launch.rank != 0) as bar:
                encoded = table.encode_chunks((bar.update(len(c)) or c for c in chunks), rows, rng, share=launch.share,
                                              where=repr(str(source.path)))
            columns = len(source.names)

        device = launch.device(select_device(self.device))
        join(launch, device)
        config = resolve_config(config, rows)  # sized by the whole table: each rank's batch is this batch
        layout, generator_net = networks(table, config)
        critic = Discriminator(layout.data_dim + layout.cond_dim, config.discriminator_dims, config.pac, config.dropout)
        init_rng = torch.Generator().manual_seed(seed)
        init_weights(generator_net, init_rng)
        init_weights(critic, init_rng)
        layout, generator_net, critic = layout.to(device), generator_net.to(device), critic.to(device)
        train_rng = torch.Generator(device).manual_seed(launch.stream_seed(seed))
        # The encoded table (this rank's share of it) moves to the device once, compact; batches are
        # gathered and expanded to the dense layout there.
        sampler, summary = train_gan(
            generator_net, critic, layout, CompactRows.from_table(encoded, device=device), config,
            train_rng, progress=self.progress and launch.rank == 0, distributed=launch.distributed,
            checkpointing=Checkpointing(
                Path(self.checkpoint_path or resume), self.checkpoint_every, Path(resume) if resume else None,
                fingerprint(encoded.raw_bytes(), asdict(config), seed),
            ) if checkpointed else None,
        )
        leave(launch)
        training = {**summary.to_dict(), "rows": rows, "columns": columns, "table_rows": table_rows,
                    "world_size": launch.world_size,
                    **({"transformer_sample_rows": len(sample_rows)} if sample_rows is not None else {})}
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._set_fitted(metadata, config, seed, table, layout, generator_net, sampler, training, holdout_rows, created)
        numeric = [name for name, spec in metadata.columns.items() if spec.get("sdtype") == "numerical"]
        training_rows = partial(self._training_rows, data, source, holdout_rows, rows)
        if self.calibrate and numeric:
            # Drawn before the calibration exists, so these are the generator's own marginals.
            drawn = self.sample(CALIBRATION_ROWS, seed=int(rng.integers(2**63)))
            if source is None:
                calibration = ValueCalibration.fit(drawn, data, numeric, min_count=self.min_category_count)
            else:  # the training columns read again, a few at a time: the same maps, in the same order
                maps: dict[str, tuple[np.ndarray, np.ndarray]] = {}
                for frame in source.columns(numeric):
                    kept = frame.drop(index=frame.index[holdout_rows]) if len(holdout_rows) else frame
                    maps.update(ValueCalibration.fit(drawn, kept, list(frame.columns), min_count=self.min_category_count).maps)
                calibration = ValueCalibration(maps)
            if self.copula:
                # A correction not kept leaves the random stream as it found it: what follows (the
                # per-level maps' own copy check) then decides as in a fit without the correction.
                unused = rng.bit_generator.state
                corrected, corrected_draw = calibration.with_copula(drawn, training_rows(list(calibration.maps)), rng)
                # The check runs on a stream of its own (spawning does not advance ``rng``).
                if (corrected.copula is not None and self._copula_generalises(calibration, drawn, training_rows, rng.spawn(1)[0])
                        and self._copies_no_more(calibration, corrected, training_rows, rng, "copula correction")):
                    calibration, drawn = corrected, corrected_draw
                else:
                    rng.bit_generator.state = unused
            self.value_calibration_ = self._by_level(calibration, drawn, training_rows, rng)
        # Last, so every draw above is of unrounded numbers (and their decisions as before).
        if not self.round_values or not self.table_.recorded_precisions() or not self._rounding_copies_no_more(training_rows, rng):
            self.table_.drop_precisions()
        self.rounding_ = bool(self.table_.recorded_precisions())
        return self

    def _rounding_copies_no_more(self, training_rows: Callable[[list[str]], pd.DataFrame], rng: np.random.Generator) -> bool:
        """Whether a draw (calibrated as sampling will) has no more rows equal to a training row
        with its numbers rounded as the training values were recorded than without: rounding onto
        the training grid must not complete training rows (a table of a few coarse numbers and
        categories can)."""
        check = self.sample(CALIBRATION_ROWS, seed=int(rng.integers(2**63)))
        rounded = check.copy()
        self.table_.round_numbers(rounded)
        self.table_.apply_rules(rounded)  # as sampling does: the rounded numbers decide the derived categories
        return self._copies_no_more_in(check, rounded, training_rows, "rounding to the recorded precision")

    def _copies_no_more_in(self, before: pd.DataFrame, after: pd.DataFrame,
                           training_rows: Callable[[list[str]], pd.DataFrame], what: str) -> bool:
        """Whether ``after`` (a draw with ``what`` applied) has no more rows equal to a training row than
        ``before`` (the same draw without it); says so in the log when it has."""
        from synthgen.evaluation.privacy import exact_copy_mask

        training = training_rows(list(self.metadata_.columns))
        copies = [int(exact_copy_mask(training, frame, self.metadata_).sum()) for frame in (before, after)]
        if copies[1] > copies[0]:
            logger.info("%s not kept: %d rows of a %d-row draw equal a training row, against %d without it",
                        what, copies[1], len(after), copies[0])
            return False
        return True

    def _training_rows(self, data: pd.DataFrame | str | Path, source: TableFile | None, holdout_rows: np.ndarray,
                       rows: int, names: list[str]) -> pd.DataFrame:
        """Columns ``names`` of at most ``RULE_ROWS`` evenly spaced training rows (a file is read
        again a few columns at a time)."""
        positions = np.arange(rows) if rows <= RULE_ROWS else np.linspace(0, rows - 1, RULE_ROWS).round().astype(np.int64)
        if source is None:
            assert isinstance(data, pd.DataFrame)
            return data[names].iloc[positions].reset_index(drop=True)
        positions = np.delete(np.arange(source.rows), holdout_rows)[positions]
        return pd.concat([frame.iloc[positions].reset_index(drop=True) for frame in source.columns(names)], axis=1)

    def _by_level(self, calibration: ValueCalibration, drawn: pd.DataFrame,
                  training_rows: Callable[[list[str]], pd.DataFrame], rng: np.random.Generator, *,
                  check: pd.DataFrame | None = None) -> ValueCalibration:
        """``calibration`` with maps per level of a category, or per band of another numeric column,
        where one explains a column's ranks (``synthgen.data.calibration``), learned from ``drawn``
        (the generator's draw) and at most ``RULE_ROWS`` evenly spaced training rows. Kept only if
        ``check`` (another draw of the generator; by default one is drawn: the first one's own rows
        sit on the maps' knots), calibrated so, copies no more training rows whole than with the
        global maps alone: pulling a column onto its level's training values must not complete
        training rows (on a table of few columns, or mostly categories, it can). ``training_rows``
        reads columns of the training rows (:meth:`_training_rows`)."""
        categories = [name for name, spec in self.metadata_.columns.items()
                      if spec.get("sdtype") in ("categorical", "boolean") and self.table_.rule_for(name) is None]
        if not calibration.maps or (not categories and len(calibration.maps) < 2):  # levels need a category or another number's bands
            return calibration
        levelled = calibration.with_levels(drawn, training_rows([*calibration.maps, *categories]), categories,
                                           min_count=self.min_category_count)
        if not levelled.levels:
            return calibration
        return levelled if self._copies_no_more(calibration, levelled, training_rows, rng, "calibration per level",
                                                check=check) else calibration

    def _copula_generalises(self, calibration: ValueCalibration, drawn: pd.DataFrame,
                            training_rows: Callable[[list[str]], pd.DataFrame], rng: np.random.Generator) -> bool:
        """Whether a copula correction fitted on each random half of the training rows in turn brings a
        draw of the raw generator closer to the other half's pairwise dependence, summed over both
        (:func:`synthgen.data.copula.pair_error`, every pair with a corrected column), than
        ``calibration`` alone does. Where the generator already
        has the dependence, the training rows' rank correlations differ from its own by sampling noise,
        and moving onto them fits that noise (colon: the training rows' pairs came closer, the held-out
        rows' went further, gap closed 1.01 → 0.93); a split of the training rows tells the two apart
        without a holdout."""
        numeric = list(calibration.maps)
        categorical = [name for name, spec in self.metadata_.columns.items()
                       if spec.get("sdtype") in ("categorical", "boolean")]
        real = training_rows([*numeric, *categorical])
        first_half = rng.permutation(len(real)) < len(real) // 2
        check = self.sample(CALIBRATION_ROWS, seed=int(rng.integers(2**63)))
        seed = int(rng.integers(2**63))
        errors = np.zeros(2)
        for fitting in (first_half, ~first_half):  # each half fits, the other judges: twice the evidence
            candidate, _ = calibration.with_copula(drawn, real[fitting].reset_index(drop=True), rng)
            if candidate.copula is None:
                return False
            judge = real[~fitting].reset_index(drop=True)
            for index, option in enumerate((calibration, candidate)):
                calibrated = option.apply(check, np.random.default_rng(seed))
                self.table_.apply_rules(calibrated)  # as sampling does: a moved number moves the categories derived from it
                errors[index] += pair_error(calibrated, judge, numeric, categorical, candidate.copula.columns)
        if errors[1] >= errors[0]:
            logger.info("copula correction not kept: fitted on one half of the training rows, it took the other "
                        "half's pairs to a distance of %.4f, against %.4f without it (both ways)", errors[1] / 2, errors[0] / 2)
            return False
        return True

    def _copies_no_more(self, before: ValueCalibration, after: ValueCalibration,
                        training_rows: Callable[[list[str]], pd.DataFrame], rng: np.random.Generator, what: str, *,
                        check: pd.DataFrame | None = None) -> bool:
        """Whether ``check`` (a draw of the raw generator; by default one is drawn), calibrated by
        ``after``, has no more rows equal to a training row than calibrated by ``before``."""
        if check is None:
            check = self.sample(CALIBRATION_ROWS, seed=int(rng.integers(2**63)))
        seed = int(rng.integers(2**63))
        before_draw, after_draw = (candidate.apply(check, np.random.default_rng(seed)) for candidate in (before, after))
        return self._copies_no_more_in(before_draw, after_draw, training_rows, what)

    def _file_columns(self, source: TableFile, metadata: Metadata, holdout_rows: np.ndarray) -> Iterator[pd.Series]:
        """The file's training columns in metadata order (the holdout dropped), each whole, read a few at a
        time; without declared metadata each group's kinds are detected as it is read (as detect would)."""
        names = list(metadata.columns) if self.metadata is not None else list(source.names)
        with tqdm(total=len(names), desc="reading columns", unit="column", leave=False,
                  disable=not self.progress or launched().rank != 0) as bar:
            for frame in source.columns(names):
                if self.metadata is None:
                    metadata.columns.update(Metadata.detect(frame).columns)
                if len(holdout_rows):
                    frame = frame.drop(index=frame.index[holdout_rows])
                for name in frame.columns:
                    yield frame[name]
                bar.update(frame.shape[1])

    @property
    def privacy_(self) -> dict[str, Any] | None:
        """The differential-privacy record of the fit (ε spent, δ, noise, ...), or None without DP."""
        self._check_fitted()
        return self.training_.get("privacy")

    def _set_fitted(self, metadata: Metadata, config: GANConfig, seed: int, table: TableTransformer, layout: SpanLayout,
                    generator_net: Generator, sampler: ConditionSampler, training: dict[str, Any],
                    holdout_rows: np.ndarray, created: str | None) -> "TabularSynthesizer":
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
        self.rounding_ = False  # set by fit once its draws are done, or by a loaded model's transformers
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

    def split(self, data: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
        """(training rows, holdout rows) of the table this model was fitted on, as fit split it.

        The holdout is None when ``fit`` kept none. The table must be the same one, in the same
        row order; a different row count is refused rather than silently mis-split.
        """
        self._check_fitted()
        if "holdout_fraction" in self.training_:  # a DP fit: membership from (seed, row values), see fit
            if not self.training_["holdout_fraction"]:
                return data, None
            held_out = holdout_draws(self.seed_, data) < self.training_["holdout_fraction"]
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
        discrete, exact = plan_conditions(dict(conditions or {}), self.metadata_, self.table_, self.layout_)
        return self._generate(int(num_rows), discrete, exact, seed, chunk_rows)

    def _generate(
        self, num_rows: int, discrete: list[DiscreteCondition], exact: dict[str, Any], seed: int | None, chunk_rows: int
    ) -> Iterator[pd.DataFrame]:
        """Rows in blocks of ``SAMPLE_BLOCK_ROWS``, each from its own random streams derived from (seed,
        block index), cut into chunks afterwards: the rows do not depend on ``chunk_rows``."""
        seed = draw_seed(seed)
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
        # A condition on a column whose gaps a category decides decides them itself; rows where that
        # category disagrees (a cause of death for a patient alive) are rejected like an exact mismatch.
        gap_rules = self.table_.overridden_gap_rules(c.column for c in discrete)
        rejecting = bool(exact or gap_rules)
        budget = 100 * num_rows + 10 * SAMPLE_BLOCK_ROWS  # rows we are willing to generate for rare exact values
        remaining, generated, block = num_rows, 0, 0
        pending: list[pd.DataFrame] = []
        while remaining > 0:
            # Without exact conditions every row is kept; with them, rejection needs whole blocks.
            size = SAMPLE_BLOCK_ROWS if rejecting else min(SAMPLE_BLOCK_ROWS, remaining)
            torch_rng, numpy_rng = block_streams(seed, block, self.layout_.tanh_index.device)
            with torch.inference_mode():
                encoded = self._encoded(size, discrete, calibration_bias, torch_rng)
            calibrated = self.value_calibration_ is not None
            frame = self.table_.inverse(encoded.float().cpu().numpy(), numpy_rng, deciding=[c.column for c in discrete],
                                        rules=not (calibrated or self.rounding_))
            if calibrated:
                frame = self.value_calibration_.apply(frame, numpy_rng)
            if self.rounding_:
                self.table_.round_numbers(frame)
            if calibrated or self.rounding_:
                self.table_.apply_rules(frame)  # the final numbers decide the derived categories
            if rejecting:
                frame = frame[exact_match(frame, exact) & self.table_.gaps_agree(frame, gap_rules)].reset_index(drop=True)
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
                    f"could not meet the conditions {describe_conditions(discrete, exact, self.table_, self.layout_)}: {met} of {num_rows} rows after "
                    f"generating {generated}; the combination may be too rare in the training data"
                )

    def _encoded(self, rows: int, discrete: list[DiscreteCondition], calibration_bias: torch.Tensor | None,
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

    # ------------------------------------------------------------------ persistence
    def describe(self) -> dict[str, Any]:
        """What ``synthgen info`` shows: schema, training summary, versions and seed."""
        return {
            **self._description(),
            "metadata": self.metadata_.to_dict(),
            "conditional_columns": [c.name for c in self.table_.conditional_columns_],
            "calibrated_columns": sorted(self.value_calibration_.maps) if self.value_calibration_ is not None else [],
            # "death", "bands of lambda" or, refined per pair of levels, "death and sample.yr".
            "calibrated_by_level": ({name: level.describe() for name, level in sorted(self.value_calibration_.levels.items())}
                                    if self.value_calibration_ is not None else {}),
            "copula_columns": (list(self.value_calibration_.copula.columns)
                               if self.value_calibration_ is not None and self.value_calibration_.copula is not None else []),
            "rounded_columns": {name: transformer.describe_precision()
                                for name, transformer in self.table_.recorded_precisions().items()},
        }

    def save(self, path: str | Path) -> Path:
        """Write the fitted model to ``path`` (weights + JSON; no pickle).

        No clock reading is stored (when it was made, how long training took), so the same seed
        gives the same bytes.
        """
        manifest = {**self.describe(), "transformer": self.table_.get_state(), "min_category_count": self.min_category_count}
        if self.value_calibration_ is not None:
            manifest["value_calibration"] = self.value_calibration_.get_state()
            if self.value_calibration_.copula is not None:
                manifest["value_copula"] = self.value_calibration_.copula.get_state()
        tensors = {"condition_counts": self.sampler_.counts,
                   "holdout_rows": torch.from_numpy(self.holdout_rows_.astype(np.int64))}
        if self.calibration_ is not None:
            tensors |= {f"calibration.{k}": v for k, v in self.calibration_.state_dict().items()}
        return self._write(path, manifest, tensors)

    @classmethod
    def from_bundle(cls, manifest: dict[str, Any], tensors: dict[str, torch.Tensor], device: str | None = None) -> "TabularSynthesizer":
        """Rebuild a fitted synthesizer from :func:`synthgen.bundle.read_bundle` output."""
        check_fields(manifest, {"metadata": (dict,), "transformer": (dict,), "min_category_count": (int,)},
                     optional={"value_calibration": (dict,), "value_copula": (dict,), "created": (str, type(None))})
        check_fields(manifest["training"], {"rows": (int,), "columns": (int,)}, "the training summary",
                     {"privacy": (dict, type(None))})
        try:
            if manifest["training"].get("privacy"):
                # The DP record is shown by info and the report: a crafted one must fail here, in one line.
                from synthgen.dp.accounting import statement
                statement(manifest["training"]["privacy"])
            config = config_from(GANConfig, manifest["config"])
            if len(config.generator_dims) > MAX_HIDDEN_LAYERS:
                raise ValueError(f"{len(config.generator_dims)} generator layers")
            metadata = Metadata.from_dict(manifest["metadata"])
            table = TableTransformer.from_state(metadata, manifest["transformer"])
            synthesizer = cls(metadata, seed=manifest["seed"], min_category_count=manifest["min_category_count"], config=config, device=device)
            layout = SpanLayout(table.spans_, [c.data_offset for c in table.conditional_columns_])
            weights = generator_weights(tensors)
            # The network ``networks`` builds, checked against the weights before it is allocated.
            generator_net = build_checked(
                lambda: Generator(config.embedding_dim, layout.cond_dim, config.generator_dims, layout.data_dim), weights,
            )
            sampler = ConditionSampler(layout, tensors["condition_counts"])
            holdout_rows = tensors["holdout_rows"].numpy()
            seed, training, created = manifest["seed"], manifest["training"], manifest.get("created")
            value_calibration = (ValueCalibration.from_state(manifest["value_calibration"], list(metadata.columns))
                                 if "value_calibration" in manifest else None)
            if "value_copula" in manifest:
                if value_calibration is None:
                    raise ValueError("a copula correction without a calibration")
                value_calibration.copula = CopulaCorrection.from_state(manifest["value_copula"], list(value_calibration.maps))
        except ModelFileError:
            raise
        except BUNDLE_ERRORS as exc:
            raise inconsistent(exc) from exc
        target = select_device(device)
        synthesizer._set_fitted(
            metadata, config, seed, table, layout.to(target), generator_net.to(target), sampler.to(target),
            training, holdout_rows, created,
        )
        synthesizer.value_calibration_ = value_calibration
        synthesizer.rounding_ = bool(table.recorded_precisions())
        if "calibration.softmax_bias" in tensors:
            synthesizer.calibration_ = MarginalCalibration(
                tensors["calibration.tanh_quantiles"], tensors["calibration.tanh_targets"], tensors["calibration.softmax_bias"]
            ).to(target)
        return synthesizer


