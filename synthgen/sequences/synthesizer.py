"""SequenceSynthesizer: whole patients from a long table (many rows per patient).

fit:    long table → static frame (one row per patient) + visit frame → two TableTransformers →
        static encoding, padded visits and mask on the device → train_sequence_gan
sample: noise (⊕ condition vector) → SequenceGenerator (static, visits, stop) → TableTransformer.inverse → long table

The static generator is conditioned on the static categorical and boolean columns (as the tabular
model is on its discrete columns): sampling draws the condition at the training frequencies, or
sets it to a requested value, so a patient with a rare static value costs one generation.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
import torch

from synthgen._mixing import mix64
from synthgen.bundle import MAX_HIDDEN_LAYERS, build_checked, check_fields
from synthgen.choices import MIN_CATEGORY_COUNT
from synthgen.data.continuous import ContinuousTransformer
from synthgen.data.identifier import MAX_INT_ID, uuid_strings
from synthgen.data.missing import MissingIndicator
from synthgen.data.table import TableTransformer
from synthgen.errors import ConditionError, InvalidArgumentError, InvalidDataError, ModelFileError, UnknownCategoryError
from synthgen.metadata import Metadata
from synthgen.models.tabular_gan import ConditionSampler, SpanLayout
from synthgen.sequences.frames import (
    GAP_COLUMN, SequenceSchema, check_long_table, derived_columns, entity_kind, index_kind, join_long_table, split_long_table, split_metadata,
    static_columns,
)
from synthgen.sequences.tables import TwoTables, join_tables, split_tables
from synthgen.synthesizers.conditions import DiscreteCondition, exact_match, exact_target, plan_conditions
from synthgen.sequences.model import (
    STOP_SPAN, SequenceConfig, SequenceGenerator, build_critic, encode_real, init_sequence_weights, layouts,
    markov_gains,
)
from synthgen.sequences.training import train_sequence_gan
from synthgen.synthesizers.base import (
    BUNDLE_ERRORS, Synthesizer, block_streams, check_holdout, config_from, draw_seed, generator_weights, inconsistent,
)
from synthgen.training.loop import select_device

if TYPE_CHECKING:
    from synthgen.dp.accounting import DPSettings

logger = logging.getLogger(__name__)

DEFAULT_MAX_LENGTH = 32
#: Patients per generator pass when sampling.
NETWORK_PATIENTS = 1_024
#: Feistel rounds of the id permutation (:func:`patient_ids`): enough to scatter neighbouring numbers.
_ID_ROUNDS = 6
_ID_STREAM = 0x1D5


class SequenceSynthesizer(Synthesizer):
    """Learn a long table (an entity column, an optional sequence index) and sample whole entities.

    ``metadata`` describes the long table's columns (SDV single-table specs); a column spec may say
    ``"static": true`` (constant within every entity, checked) or ``"static": false``; otherwise
    columns constant within every entity are detected as static. Entities with more than
    ``max_length`` visits are cut to their first ``max_length`` (with a warning); the model is as long
    as the longest entity, up to that cap.

    ``dp``: train under (ε, δ)-DP with one patient (all rows of one entity) as the unit
    (``synthgen.sequences.private``); the metadata must then declare ``"static"`` on every column,
    and the model is ``max_length`` visits long.
    """

    kind = "sequence"
    generator_: SequenceGenerator
    sampler_: ConditionSampler

    def __init__(
        self,
        metadata: Metadata | None = None,
        *,
        max_length: int = DEFAULT_MAX_LENGTH,
        seed: int | None = None,
        steps: int | None = None,
        batch_size: int | None = None,
        min_category_count: int = MIN_CATEGORY_COUNT,
        device: str | None = None,
        config: SequenceConfig | None = None,
        progress: bool = True,
        dp: DPSettings | None = None,
    ) -> None:
        self.metadata = metadata
        self.max_length = max_length
        self.seed = seed
        self.steps = steps
        self.batch_size = batch_size
        self.min_category_count = min_category_count
        self.device = device
        self.config = config
        self.progress = progress
        self.dp = dp

    # ------------------------------------------------------------------ fit
    def fit(self, frame: pd.DataFrame, entity_column: str, sequence_index: str | None = None, *,
            holdout: float = 0.0) -> "SequenceSynthesizer":
        """Learn the entities of ``frame``; returns ``self``.

        ``holdout`` (a fraction in [0, 0.5]) keeps that share of *patients*, with all their rows, out
        of training; which ones follows from the seed and the patients' order, so :meth:`split` can
        hand the same patients to the evaluation.
        """
        check_holdout(holdout)
        if isinstance(self.max_length, bool) or not isinstance(self.max_length, int) or self.max_length < 1:
            raise InvalidArgumentError(f"max_length must be an integer >= 1, got {self.max_length!r}")
        if self.min_category_count < 1:
            raise InvalidArgumentError(f"min_category_count must be >= 1, got {self.min_category_count}")
        config = self._resolved_config()
        _check_seed(self.seed)
        check_long_table(frame, entity_column, sequence_index)
        seed = draw_seed(self.seed)
        if self.dp is not None:
            from synthgen.sequences.private import fit_private_histories
            fitted = fit_private_histories(frame, entity_column, sequence_index, self.metadata, self.dp, config, seed,
                                           holdout, self.max_length, device=self.device, progress=self.progress)
            self._set_fitted(fitted.schema, fitted.static_table, fitted.visit_table, fitted.config, seed, fitted.generator,
                             fitted.training, datetime.now(timezone.utc).isoformat(timespec="seconds"))
            return self
        table_entities = int(frame[entity_column].nunique())
        if holdout:
            from synthgen.sequences.evaluate import split_patients  # the evaluation's split, by patient
            frame = split_patients(frame, entity_column, holdout, seed)[0]
        statics = static_columns(frame, entity_column, sequence_index, self.metadata)
        # max_length is a cap: a model as long as the longest patient unrolls no visit that no patient
        # has (cgd's 8 visits under a cap of 16 halved the work per step) and cannot sample one.
        longest = int(frame.groupby(entity_column, sort=False).size().max())
        kind = "none" if sequence_index is None else index_kind(frame[sequence_index], sequence_index)
        per_visit = [c for c in frame.columns if c not in (entity_column, sequence_index, *statics)]
        derived = derived_columns(frame, entity_column, sequence_index, kind, per_visit, self.metadata)
        schema = SequenceSchema(
            entity_column=entity_column,
            sequence_index=sequence_index,
            index_kind=kind,
            static_columns=statics,
            visit_columns=[c for c in per_visit if c not in derived],
            derived=derived,
            column_order=[str(c) for c in frame.columns],
            entity_kind=entity_kind(frame[entity_column]),
            max_length=min(self.max_length, longest),
        )
        split = split_long_table(frame, schema)
        if len(split.lengths) < 2:
            raise InvalidDataError(f"the table has {len(split.lengths)} entity in {entity_column!r}; "
                                   "at least 2 are needed (a model of one patient could only copy it)")
        if sequence_index is not None:
            positive = split.visits[GAP_COLUMN][split.visits[GAP_COLUMN] > 0]
            schema.min_gap = float(positive.min()) if len(positive) else None
        config = config.scaled(len(split.lengths))
        rng = np.random.default_rng(seed)
        static_metadata, visit_metadata = split_metadata(self.metadata, split, schema)
        options = {"min_category_count": self.min_category_count}
        static_table = TableTransformer(static_metadata, options).fit(split.static, rng)
        visit_table = TableTransformer(visit_metadata, options).fit(split.visits, rng)
        for table in (static_table, visit_table):  # histories are sampled at full precision (not measured there yet)
            table.drop_precisions()
        static_encoded = torch.from_numpy(_encode(static_table, split.static, rng))
        visit_encoded = torch.from_numpy(_encode(visit_table, split.visits, rng))
        if config.fill_gaps_forward:
            visit_encoded = torch.from_numpy(_fill_gaps_forward(visit_table, split.visits, visit_encoded.numpy(), split.lengths))
        visits, alive = encode_real(static_encoded, visit_encoded, torch.from_numpy(split.lengths), schema.max_length)

        device = select_device(self.device)
        conditional = config.conditional_statics and bool(static_table.conditional_columns_)
        generator_net = _generator_builder(static_table, visit_table, schema.max_length, config, conditional=conditional)()
        critic = build_critic(generator_net.static_dim, generator_net.visit_dim, schema.max_length, config,
                              cond_dim=generator_net.cond_dim)
        init_rng = torch.Generator().manual_seed(seed)
        init_sequence_weights(generator_net, init_rng)
        init_sequence_weights(critic, init_rng)
        if generator_net.stickiness is not None and config.gains_from_data:
            modes = torch.from_numpy(_mode_positions(visit_table))
            drawn = generator_net.categorical & ~modes
            gains = torch.where(drawn, markov_gains(visits, alive, drawn), generator_net.stickiness)
            if config.mode_gains_from_data:
                likely = torch.from_numpy(_likely_modes(visit_table, split.visits, visit_encoded.numpy()))
                likely_visits, _ = encode_real(static_encoded, likely, torch.from_numpy(split.lengths), schema.max_length)
                gains = torch.where(modes, markov_gains(likely_visits, alive, modes), gains)
            with torch.no_grad():
                generator_net.stickiness.copy_(gains)
        generator_net, critic = generator_net.to(device), critic.to(device)
        train_rng = torch.Generator(device).manual_seed(seed)
        sampler = ConditionSampler.from_data(generator_net.static_layout, static_encoded.to(device))
        summary = train_sequence_gan(generator_net, critic, static_encoded.to(device), visits.to(device),
                                     alive.to(device), config, train_rng, progress=self.progress, sampler=sampler)
        training = {**summary.to_dict(), "entities": int(len(split.lengths)), "rows": int(split.lengths.sum()),
                    "table_rows": int(len(frame)),
                    **({"holdout_fraction": holdout, "table_entities": table_entities} if holdout else {})}
        self._set_fitted(schema, static_table, visit_table, config, seed, generator_net, training,
                         datetime.now(timezone.utc).isoformat(timespec="seconds"), sampler=sampler)
        return self

    def split(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
        """(training patients' rows, held-out patients' rows) of the table ``fit`` was given; no holdout: (frame, None)."""
        self._check_fitted()
        fraction = self.training_.get("holdout_fraction")
        if not fraction:
            return frame, None
        entity = self.schema_.entity_column
        if entity not in frame.columns:
            raise InvalidDataError(f"the table has no entity column {entity!r}: it is not the table this model was fitted on")
        found, expected = int(frame[entity].nunique()), self.training_.get("table_entities")  # a DP fit keeps no count
        if expected is not None and found != expected:
            raise InvalidDataError(f"the table has {found} patients in {entity!r}, the model was fitted on {expected}: "
                                   "give the same table to find the held-out patients, or pass --holdout")
        if "privacy" in self.training_:  # a DP fit's own split, one keyed draw per patient
            from synthgen.sequences.private import split_held_out
            return split_held_out(frame, entity, fraction, self.seed_)
        from synthgen.sequences.evaluate import split_patients
        return split_patients(frame, entity, fraction, self.seed_)

    def _resolved_config(self) -> SequenceConfig:
        config = self.config or SequenceConfig()
        if self.steps is not None:
            if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
                raise InvalidArgumentError(f"steps must be an integer >= 1, got {self.steps!r}")
            config = replace(config, steps=self.steps)
        if self.batch_size is not None:
            if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 2:
                raise InvalidArgumentError(f"batch_size must be an integer >= 2, got {self.batch_size!r}")
            config = replace(config, batch_size=self.batch_size)
        return config

    def _set_fitted(self, schema: SequenceSchema, static_table: TableTransformer, visit_table: TableTransformer,
                    config: SequenceConfig, seed: int, generator_net: SequenceGenerator, training: dict[str, Any],
                    created: str | None, *, sampler: ConditionSampler | None = None) -> None:
        """Store what fit learned (or what a model file holds); the one place fitted state is set.
        ``sampler`` holds the static conditions' training counts (None: an unconditioned generator)."""
        if sampler is None:
            if generator_net.cond_dim:
                raise ValueError("a conditioned generator needs its condition sampler")
            device = next(generator_net.parameters()).device
            sampler = ConditionSampler(generator_net.static_layout, torch.zeros(0, device=device))
        #: The static columns the generator is conditioned on (in condition-vector order).
        self.conditional_columns_ = [c.name for c in static_table.conditional_columns_] if generator_net.cond_dim else []
        self.sampler_ = sampler
        self.schema_ = schema
        self.static_table_ = static_table
        self.visit_table_ = visit_table
        self.config_ = config
        self.seed_ = seed
        self.generator_ = generator_net.eval()
        self.training_ = training
        self.created_ = created
        self.tables_: TwoTables | None = None

    def fit_tables(self, parents: pd.DataFrame, children: pd.DataFrame, layout: TwoTables, specs: dict[str, Any], *,
                   holdout: float = 0.0) -> "SequenceSynthesizer":
        """Learn a parent table (one row per patient) and its child table (many rows per patient), as
        SDV multi-table metadata links them (``synthgen.sequences.tables``); returns ``self``.

        Under ``dp`` the unit is one parent row with all its child rows, and the layout declares the
        schema: the parent's columns static, the child's per visit (unless its spec says otherwise)."""
        long, metadata = join_tables(parents, children, layout, specs, declared=self.dp is not None)
        self.metadata = metadata
        self.fit(long, layout.child_key, layout.sequence_index, holdout=holdout)
        self.tables_ = layout
        return self

    # ------------------------------------------------------------------ sample
    def sample_tables(self, n_patients: int, *, seed: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(parent table, child table) of ``n_patients`` synthetic patients with fresh keys; for a
        model fitted by :meth:`fit_tables`."""
        self._check_fitted()
        if self.tables_ is None:
            raise InvalidArgumentError("this model learned one long table, not a parent and a child table; use sample")
        return split_tables(self.sample(n_patients, seed=seed), self.tables_)

    def sample(self, n_patients: int, conditions: Mapping[str, Any] | None = None, *,
               seed: int | None = None) -> pd.DataFrame:
        """``n_patients`` synthetic entities with fresh ids, as a long table like the training one;
        every one with the static values of ``conditions`` (``{static column: value}``)."""
        return pd.concat(list(self.sample_chunks(n_patients, conditions, seed=seed)), ignore_index=True)

    def sample_chunks(self, n_patients: int, conditions: Mapping[str, Any] | None = None, *,
                      seed: int | None = None, ids_seed: int | None = None,
                      first_patient: int = 0) -> Iterator[pd.DataFrame]:
        """The patients of :meth:`sample` in blocks of at most ``NETWORK_PATIENTS`` whole patients, in
        bounded memory. Each block draws from its own streams, children of (seed, block), so the rows
        do not depend on how they are consumed. Arguments and conditions are checked here, first.

        A condition on a static categorical or boolean column is met natively: the static generator
        is given it as its condition vector and the column is set to it, so about ``n_patients`` are
        generated for ``n_patients`` requested, however rare the value. Rejection (whole patients
        generated, those whose static values match kept, up to 100 times the request plus ten
        blocks; then an error says so) remains only where native conditioning cannot apply: numeric
        or date static columns, and models without a conditioned generator (``conditional_statics``
        off, or a model file written before it). Either way every output patient is checked to
        match, so a patient that does not is never output. An unknown category is refused first.

        Ids are :func:`patient_ids` of the patients' numbers, ``first_patient`` onwards, keyed by
        ``ids_seed`` (default: the seed). A shard of a larger request (``synthgen.shards``) passes
        the request's key and its first patient's number, so no two shards share an id.
        """
        self._check_fitted()
        if isinstance(n_patients, bool) or not isinstance(n_patients, (int, np.integer)) or n_patients < 1:
            raise InvalidArgumentError(f"the number of patients must be a positive integer, got {n_patients!r}")
        if isinstance(first_patient, bool) or not isinstance(first_patient, (int, np.integer)) or first_patient < 0:
            raise InvalidArgumentError(f"first_patient must be a non-negative integer, got {first_patient!r}")
        _check_seed(seed)
        _check_seed(ids_seed)
        seed = draw_seed(seed)
        discrete, exact, check = self._plan_conditions(dict(conditions or {}))
        return self._generate(int(n_patients), discrete, exact, check, seed, seed if ids_seed is None else int(ids_seed),
                              int(first_patient))

    def _plan_conditions(self, conditions: dict[str, Any]) -> tuple[list[DiscreteCondition], dict[str, Any], dict[str, Any]]:
        """(conditions met through the condition vector, conditions met by rejection, every condition as
        the value decoded static columns hold: the final check), all checked before any generation."""
        statics = self.schema_.static_columns
        table = self.static_table_
        for name, value in conditions.items():
            if name not in statics:
                kind = "a per-visit column" if name in self.schema_.column_order else "not a column"
                raise ConditionError(f"condition {name}=...: {name!r} is {kind}; patients can be conditioned on "
                                     f"their static columns only ({', '.join(statics) or 'none'})")
            if table.conditional_column(name) is not None:  # a categorical or boolean static column
                try:
                    table.transformer(name).condition_index(value)
                except UnknownCategoryError as exc:
                    raise ConditionError(f"condition {name}={value!r}: {exc}") from exc
        if self.conditional_columns_:
            layout = cast(SpanLayout, self.generator_.static_layout)
            discrete, exact = plan_conditions(conditions, table.metadata, table, layout)
        else:  # a generator without a condition vector: every condition by rejection
            discrete, exact = [], {name: exact_target(table.metadata, name, value) for name, value in conditions.items()}
        def level(name: str, category: int) -> _Level:
            return _Level(table.transformer(name).categories[category])

        check = {name: level(name, table.transformer(name).condition_index(conditions[name]))
                 if table.conditional_column(name) is not None else target for name, target in exact.items()}
        check |= {c.column: level(c.column, c.category) for c in discrete}
        return discrete, exact, check

    def _generate(self, n_patients: int, discrete: list[DiscreteCondition], exact: dict[str, Any],
                  check: dict[str, Any], seed: int, ids_seed: int, first_patient: int) -> Iterator[pd.DataFrame]:
        device = next(self.generator_.parameters()).device
        budget = 100 * n_patients + 10 * NETWORK_PATIENTS
        slots = [c.slot for c in discrete]
        done = tried = block = 0
        rejecting = bool(exact)
        while done < n_patients:
            if tried >= budget:
                wanted = ", ".join(f"{name}={getattr(value, 'label', value)!r}" for name, value in check.items())
                raise ConditionError(f"condition {wanted}: only {done} of {n_patients} patients met it in {tried} "
                                     "generated; the model rarely or never produces it")
            torch_rng, numpy_rng = block_streams(seed, block, device)
            # Rejection needs whole blocks; conditions met natively (or none) only what is still wanted,
            # unless the final check dropped patients before (then whole blocks, not one patient a block).
            size = NETWORK_PATIENTS if rejecting else min(NETWORK_PATIENTS, n_patients - done)
            with torch.inference_mode():
                static_noise, visit_noise = self.generator_.noise(size, torch_rng, device)
                cond = self.sampler_.fixed(size, slots) if slots else self.sampler_.for_sampling(size, torch_rng)
                static = self.generator_.static_part(static_noise, torch_rng, True, cond)[1]
                for condition in discrete:  # the requested level itself, so the visits are generated given it
                    span = condition.data_index.to(device)
                    static[:, span] = 0.0
                    static[:, span[condition.category]] = 1.0
                visit, alive = self.generator_.visit_part(static, static_noise, visit_noise, torch_rng, True)
                kept_visits = alive.bool()
                lengths = kept_visits.sum(1).cpu().numpy().astype(np.int64)
                visit_rows = visit[kept_visits][:, : -STOP_SPAN.width].float().cpu().numpy()
            static_frame = _decode(self.static_table_, static.float().cpu().numpy(), numpy_rng,
                                   deciding=[c.column for c in discrete])
            visit_frame = _decode(self.visit_table_, visit_rows, numpy_rng)
            # The safety net: whatever met the condition, a patient whose decoded values differ is never output.
            keep = _matching(static_frame, check) if check else np.ones(size, dtype=bool)
            keep[np.flatnonzero(keep)[n_patients - done:]] = False  # no more than requested
            owner = np.repeat(np.arange(size), lengths)
            taken = int(keep.sum())
            rejecting = rejecting or taken < size
            if taken:
                yield join_long_table(static_frame[keep].reset_index(drop=True),
                                      visit_frame[keep[owner]].reset_index(drop=True), lengths[keep],
                                      patient_ids(self.schema_.entity_kind, ids_seed, first_patient + done, taken),
                                      self.schema_)
            done, tried, block = done + taken, tried + size, block + 1

    # ------------------------------------------------------------------ persistence
    def describe(self) -> dict[str, Any]:
        """What ``synthgen info`` shows: schema, training summary, versions and seed."""
        return {
            **self._description(),
            # The long table's columns with their roles, in the form ``synthgen info`` lists for any model.
            "metadata": self._long_metadata(),
            "conditional_columns": self.conditional_columns_,
            "sequence": self.schema_.to_dict(),
            **({"tables": self.tables_.to_dict()} if self.tables_ is not None else {}),
            "static_metadata": self.static_table_.metadata.to_dict(),
            "visit_metadata": self.visit_table_.metadata.to_dict(),
        }

    def _long_metadata(self) -> dict[str, Any]:
        schema = self.schema_
        columns: dict[str, dict[str, Any]] = {schema.entity_column: {"sdtype": "id", "entity": True}}
        if schema.sequence_index is not None:
            kind = "datetime" if schema.index_kind == "datetime" else "numerical"
            columns[schema.sequence_index] = {"sdtype": kind, "sequence_index": True}
        for table, static in ((self.static_table_, True), (self.visit_table_, False)):
            for name, spec in table.metadata.columns.items():
                if name in schema.column_order:
                    columns[name] = {**spec, "static": static}
        for name, rule in schema.derived.items():
            columns[name] = {"sdtype": "datetime" if rule["dtype"] == "datetime" else "numerical", "static": False,
                             "derived": rule["rule"]}
        return {"columns": {name: columns[name] for name in schema.column_order}}

    def save(self, path: str | Path) -> Path:
        """Write the fitted model to ``path`` (weights + JSON; no pickle); no clock reading is stored,
        so the same seed gives the same bytes."""
        manifest = {**self.describe(), "static_transformer": self.static_table_.get_state(),
                    "visit_transformer": self.visit_table_.get_state(), "min_category_count": self.min_category_count}
        # The static conditions' training counts: what sampling draws unrequested conditions from.
        tensors = {"condition_counts": cast(torch.Tensor, self.sampler_.counts)} if self.conditional_columns_ else {}
        return self._write(path, manifest, tensors)

    @classmethod
    def from_bundle(cls, manifest: dict[str, Any], tensors: dict[str, torch.Tensor],
                    device: str | None = None) -> "SequenceSynthesizer":
        """Rebuild a fitted synthesizer from :func:`synthgen.bundle.read_bundle` output."""
        check_fields(manifest, {"sequence": (dict,), "static_metadata": (dict,), "visit_metadata": (dict,),
                                "static_transformer": (dict,), "visit_transformer": (dict,),
                                "min_category_count": (int,), "config": (dict,), "seed": (int,), "training": (dict,)},
                     optional={"conditional_columns": (list,)})
        try:
            # A file written before conditioning has no such setting, and an unconditioned generator.
            config = config_from(SequenceConfig, {"conditional_statics": False, **manifest["config"]})
            if max(len(config.static_dims), len(config.critic_dims)) > MAX_HIDDEN_LAYERS:
                raise ValueError("too many hidden layers")
            schema = SequenceSchema.from_dict(manifest["sequence"])
            if not isinstance(schema.max_length, int) or not 1 <= schema.max_length <= 100_000:
                raise ValueError(f"max_length {schema.max_length!r}")
            static_table = TableTransformer.from_state(Metadata.from_dict(manifest["static_metadata"]),
                                                       manifest["static_transformer"])
            visit_table = TableTransformer.from_state(Metadata.from_dict(manifest["visit_metadata"]),
                                                      manifest["visit_transformer"])
            conditional = manifest.get("conditional_columns", [])
            if conditional and conditional != [c.name for c in static_table.conditional_columns_]:
                raise ValueError(f"conditional columns {conditional} are not the static categorical and boolean columns")
            generator_net = build_checked(_generator_builder(static_table, visit_table, schema.max_length, config,
                                                             conditional=bool(conditional)),
                                          generator_weights(tensors))
            sampler = None
            if conditional:
                sampler = ConditionSampler(generator_net.static_layout, _condition_counts(tensors, generator_net))
        except ModelFileError:
            raise
        except BUNDLE_ERRORS as exc:
            raise inconsistent(exc) from exc
        synthesizer = cls(max_length=schema.max_length, seed=manifest["seed"],
                          min_category_count=manifest["min_category_count"], config=config, device=device)
        target = select_device(device)
        synthesizer._set_fitted(schema, static_table, visit_table, config, manifest["seed"], generator_net.to(target),
                                manifest["training"], manifest.get("created"),
                                sampler=sampler.to(target) if sampler is not None else None)
        if "tables" in manifest:
            try:
                synthesizer.tables_ = TwoTables.from_dict(manifest["tables"])
            except BUNDLE_ERRORS as exc:
                raise inconsistent(exc) from exc
        return synthesizer


def _condition_counts(tensors: dict[str, torch.Tensor], generator_net: SequenceGenerator) -> torch.Tensor:
    """The model file's training counts of the static conditions, checked: one non-negative count
    per condition-vector position, and a patient in every column (sampling draws from them)."""
    counts = tensors["condition_counts"]
    layout = generator_net.static_layout
    if counts.shape != (layout.cond_dim,) or not counts.dtype.is_floating_point or not bool(torch.isfinite(counts).all()):
        raise ValueError(f"condition_counts of shape {tuple(counts.shape)}, expected ({layout.cond_dim},) finite numbers")
    totals = [float(part.sum()) for part in counts.split(layout.cond_widths)]
    if bool((counts < 0).any()) or min(totals) <= 0:
        raise ValueError("condition_counts must be non-negative with a patient in every column")
    return counts


def _check_seed(seed: Any) -> None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise InvalidArgumentError(f"seed must be a non-negative integer, got {seed!r}")


def patient_ids(kind: str, key: int, first: int, count: int) -> pd.Series:
    """The ids of patients number ``first`` to ``first + count - 1`` of a request keyed by ``key``.

    Each id is a keyed permutation of the patient's number, so the ids of one request are distinct
    by construction (not by chance, as independent draws per shard would be) and a patient's id
    does not depend on which block, shard or worker generates it. ``kind`` "integer": values in
    [1, 2**53); else UUID4 strings, 62 of whose random bits are the permutation (60 more another).
    """
    if first + count > MAX_INT_ID - 1:
        raise InvalidArgumentError(f"at most {MAX_INT_ID - 1} patients can have distinct ids in one request")
    numbers = np.arange(first, first + count, dtype=np.uint64)
    if kind == "integer":
        return pd.Series((_permute(numbers, key, MAX_INT_ID - 1) + np.uint64(1)).astype(np.int64))
    distinct = _permute(numbers, key, 2**62) | np.uint64(0b10 << 62)  # RFC 4122 variant on top
    other = _permute(numbers, key, 2**60, tweak=1)
    versioned = (other >> np.uint64(12) << np.uint64(16)) | np.uint64(0x4 << 12) | (other & np.uint64(0xFFF))  # version 4
    raw = np.stack([versioned, distinct], axis=1).astype(">u8").view(np.uint8).reshape(count, 16)
    return pd.Series(uuid_strings(raw), dtype=object)


def _permute(numbers: np.ndarray, key: int, size: int, tweak: int = 0) -> np.ndarray:
    """A bijection of [0, size) keyed by (``key``, ``tweak``), applied to ``numbers`` (uint64, each below
    ``size``): a balanced Feistel network on the fewest even bits that hold ``size``, applied again to
    any value that lands at or above ``size`` (cycle walking keeps a permutation of the smaller set)."""
    half = np.uint64(max(1, ((size - 1).bit_length() + 1) // 2))
    mask = (np.uint64(1) << half) - np.uint64(1)
    round_keys = np.random.SeedSequence([key, _ID_STREAM, tweak]).generate_state(_ID_ROUNDS, dtype=np.uint64)

    def feistel(values: np.ndarray) -> np.ndarray:
        left, right = values >> half, values & mask
        for round_key in round_keys:
            left, right = right, left ^ (mix64(right ^ round_key) & mask)
        return (left << half) | right

    out = feistel(numbers)
    outside = np.flatnonzero(out >= np.uint64(size))
    while len(outside):
        out[outside] = feistel(out[outside])
        outside = outside[out[outside] >= np.uint64(size)]
    return out


def _generator_builder(static_table: TableTransformer, visit_table: TableTransformer, max_length: int,
                       config: SequenceConfig, *, conditional: bool = False) -> Callable[[], SequenceGenerator]:
    """A function building an untrained generator for these encodings (layouts made once, here);
    ``conditional``: conditioned on every static categorical and boolean column."""
    offsets = [c.data_offset for c in static_table.conditional_columns_] if conditional else []
    static_layout, visit_layout = layouts(static_table.spans_, [*visit_table.spans_, STOP_SPAN], offsets)
    return lambda: SequenceGenerator(static_layout, visit_layout, max_length, config)


def _mode_positions(table: TableTransformer) -> np.ndarray:
    """True on the encoded positions of mixture modes (numeric columns' softmax spans)."""
    positions = []
    for name in table.metadata.columns:
        transformer = table.transformer(name)
        inner = transformer.inner if isinstance(transformer, MissingIndicator) else transformer
        modes = isinstance(inner, ContinuousTransformer)
        for number, span in enumerate(transformer.spans):
            positions.append(np.full(span.width, modes and number == 1))
    return np.concatenate(positions) if positions else np.zeros(0, dtype=bool)


def _likely_modes(table: TableTransformer, frame: pd.DataFrame, encoded: np.ndarray) -> np.ndarray:
    """``encoded`` with each mixture-mode span one-hot on the value's most likely mode (zero where
    the value is missing), in place of the encoder's draw from the posterior."""
    out = encoded.copy()
    start = 0
    for name in table.metadata.columns:
        transformer = table.transformer(name)
        inner = transformer.inner if isinstance(transformer, MissingIndicator) else transformer
        spans = transformer.spans
        if isinstance(inner, ContinuousTransformer):
            values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
            z = (values[:, None] - inner.means_) / inner.stds_
            likely = np.argmax(-0.5 * z**2 - np.log(inner.stds_) + np.log(inner.weights_), axis=1)
            block = np.zeros((len(values), spans[1].width), dtype=out.dtype)
            present = ~np.isnan(values)
            block[np.flatnonzero(present), likely[present]] = 1.0
            out[:, start + spans[0].width:start + spans[0].width + spans[1].width] = block
        start += sum(span.width for span in spans)
    return out


def _fill_gaps_forward(table: TableTransformer, frame: pd.DataFrame, encoded: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``encoded`` (visits in patient order, ``lengths`` each) with the value encoding of every missing
    cell copied from the same patient's previous present visit (the next one's before the first; left
    as encoded where the patient has no present value); missing indicators unchanged."""
    out = encoded.copy()
    patient = np.repeat(np.arange(len(lengths)), lengths)
    rows = pd.Series(np.arange(len(frame)), dtype="float64")
    for name in table.metadata.columns:
        if not isinstance(table.transformer(name), MissingIndicator):
            continue
        missing = frame[name].isna().to_numpy()
        if not missing.any():
            continue
        present = rows.where(~missing).groupby(patient)
        source = present.ffill().fillna(present.bfill()).to_numpy()
        fill = missing & ~np.isnan(source)
        inner = slice(table.slices_[name].start, table.slices_[name].stop - 2)
        out[np.flatnonzero(fill), inner] = encoded[source[fill].astype(np.int64), inner]
    return out


def _encode(table: TableTransformer, frame: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """The table's encoding of ``frame``; zero columns when it has no columns (nothing static, say)."""
    if not table.metadata.columns:
        return np.zeros((len(frame), 0), dtype=np.float32)
    return table.transform(frame, rng)


def _decode(table: TableTransformer, encoded: np.ndarray, rng: np.random.Generator, *,
            deciding: list[str] | None = None) -> pd.DataFrame:
    if not table.metadata.columns:
        return pd.DataFrame(index=pd.RangeIndex(encoded.shape[0]))
    return table.inverse(encoded, rng, deciding=deciding or ())


@dataclass(frozen=True)
class _Level:
    """A requested category of a discrete static column, as decoding labels it (a gap: missing)."""

    label: Any


def _matching(frame: pd.DataFrame, check: dict[str, Any]) -> np.ndarray:
    """Patients whose decoded static values are the requested ones: categories compared by label
    (so ``"yes"`` asked of a boolean matches ``True``), other values as ``exact_match`` does."""
    keep = exact_match(frame, {name: target for name, target in check.items() if not isinstance(target, _Level)})
    for name, target in check.items():
        if isinstance(target, _Level):
            column = frame[name]
            same = column.isna() if pd.isna(target.label) else column.astype(str) == str(target.label)
            keep &= same.fillna(False).to_numpy(dtype=bool)
    return keep
