"""Patient-level differential privacy for patient histories (``SequenceSynthesizer(dp=...)``).

The privacy unit is the patient: neighbouring tables differ by one whole patient with all their
visits. Everything that reads the rows goes through a DP release or DP-SGD, composed in one plan
(``synthgen.dp.accounting``):

- the schema (static or per-visit, derived rules, kinds, the sequence index's kind, the model's
  length) comes from the declared metadata and the public ``max_length`` cap, never from the rows;
- contribution bounding: each patient's visits are cut to ``max_length``; the released statistics
  read one row per patient (its static values, one visit chosen at random, its length), so the
  tabular release machinery (``synthgen.dp.release``) applies as it is, sensitivity 1 per patient;
- DP-SGD on the whole-patient critic: one example is one patient (Poisson-sampled, clipped, noised
  by Opacus in secure mode, as ``synthgen.training.private`` does for rows); the generator sees the
  critic's scores, the released survival curve and the released marginals only (post-processing);
- ``--holdout`` holds each patient out by a draw keyed by (seed, its id) alone (:func:`split_held_out`).
"""
from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from synthgen.data.continuous import is_integer_representation
from synthgen.data.missing import MissingIndicator
from synthgen.data.quantile import QuantileTransformer
from synthgen.data.table import MIN_ROWS, TableTransformer, readable_table
from synthgen.dp.accounting import DPSettings, PrivacyPlan, plan_privacy, privacy_record, row_count_noise
from synthgen.dp.entropy import PrivateRandom
from synthgen.dp.release import Release, release_row_count, release_rounds, release_statistics
from synthgen.errors import InvalidArgumentError, InvalidDataError, MetadataError
from synthgen.metadata import Metadata
from synthgen.models.tabular_gan import Discriminator
from synthgen.sequences.frames import (
    GAP_COLUMN, PREVIOUS_INDEX, RULES, START_COLUMN, VISIT_NUMBER, SequenceSchema, check_long_table, split_long_table, split_metadata,
)
from synthgen.sequences.model import (
    STOP_SPAN, SequenceConfig, SequenceGenerator, build_critic, critic_input, encode_real, init_sequence_weights, layouts,
)
from synthgen.training.loop import TrainingSummary, select_device
from synthgen.training.private import (
    make_private_critic, poisson_rows, private_adversarial_loop, private_critic_step, private_generator_update,
)

logger = logging.getLogger(__name__)

#: The patient row's length column (released as a histogram over the public domain 1..max_length).
LENGTH_COLUMN = "__sequence_length__"
#: Weight of the released survival curve in the generator step when the config gives none: the DP
#: critic is too noisy at small ε to teach the lengths alone.
LENGTH_WEIGHT = 1.0
#: Weight of the released marginals (:class:`ReleasedMarginals`) in the generator step.
MARGINAL_WEIGHT = 1.0


@dataclass(frozen=True)
class PrivateHistories:
    """What a DP fit of patient histories learned, for ``SequenceSynthesizer._set_fitted``."""

    schema: SequenceSchema
    static_table: TableTransformer
    visit_table: TableTransformer
    config: SequenceConfig
    generator: SequenceGenerator
    training: dict[str, Any]


def declared_schema(frame: pd.DataFrame, metadata: Metadata | None, entity_column: str, sequence_index: str | None,
                    max_length: int) -> SequenceSchema:
    """The schema from the declared metadata alone: every value column says ``"static": true/false``;
    derived columns declare their rule and first value; the model is ``max_length`` visits long.

    Nothing here reads a value of the table (only its column names): a static column is the first
    visit's value by construction and a derived column is filled from its rule by construction, so
    no check against the rows can fail, which would itself reveal something about one patient.
    """
    if metadata is None:
        raise MetadataError(
            "differentially private training takes its schema only from metadata you declare: which columns are "
            "static, their kinds and the sequence index's would otherwise be read from the rows outside the budget. "
            "Write a draft with `synthgen metadata DATA -o metadata.json`, mark every column \"static\": true or "
            "false, review it and pass it with --metadata")
    if LENGTH_COLUMN in frame.columns:
        raise InvalidDataError(f"column name {LENGTH_COLUMN!r} is reserved for the sequence model; rename that column")
    metadata.validate(frame)
    specs = metadata.columns
    statics: list[str] = []
    visits: list[str] = []
    derived: dict[str, dict[str, Any]] = {}
    for name in frame.columns:
        if name in (entity_column, sequence_index):
            continue
        spec = specs[name]
        static = spec.get("static")
        if not isinstance(static, bool):
            raise MetadataError(
                f"column {name!r}: a differentially private fit needs \"static\": true or false declared on every "
                f"column (got {static!r}); detecting it would read the rows")
        if spec.get("derived") is True:
            if static:
                raise MetadataError(f"column {name!r} is declared both static and derived; a derived column is per visit")
            derived[name] = _declared_rule(name, spec, sequence_index, _index_kind(specs, sequence_index))
        elif spec.get("derived") not in (None, False):
            raise MetadataError(f"column {name!r}: \"derived\" must be true or false, got {spec.get('derived')!r}")
        else:
            (statics if static else visits).append(name)
    entity = specs[entity_column]
    integral = entity.get("sdtype") == "numerical" or is_integer_representation(entity.get("computer_representation"))
    return SequenceSchema(
        entity_column=entity_column, sequence_index=sequence_index, index_kind=_index_kind(specs, sequence_index),
        static_columns=statics, visit_columns=visits, derived=derived, column_order=[str(c) for c in frame.columns],
        entity_kind="integer" if integral else "string", max_length=max_length,
    )


def _index_kind(specs: dict[str, dict[str, Any]], sequence_index: str | None) -> str:
    """The sequence index's kind as declared: a datetime, or numbers of the declared representation."""
    if sequence_index is None:
        return "none"
    spec = specs[sequence_index]
    if spec.get("sdtype") == "datetime":
        return "datetime"
    if spec.get("sdtype") != "numerical":
        raise MetadataError(f"sequence index {sequence_index!r} must be declared numerical or datetime, "
                            f"got sdtype {spec.get('sdtype')!r}")
    return "integer" if is_integer_representation(spec.get("computer_representation")) else "float"


def _declared_rule(name: str, spec: dict[str, Any], sequence_index: str | None, index_kind: str) -> dict[str, Any]:
    """A derived column's rule from its spec: ``"rule"`` (visit_number or previous_index) and ``"first"``
    (the first visit's value, as a number; days since 1970 for dates)."""
    rule, first = spec.get("rule"), spec.get("first")
    if rule not in RULES or isinstance(first, bool) or not isinstance(first, (int, float)) or not math.isfinite(first):
        raise MetadataError(
            f"column {name!r} is declared derived: under DP its rule is declared, not read from the rows; add "
            f"\"rule\": one of {', '.join(RULES)}, and \"first\": the first visit's value (a number)")
    dtype = ("datetime" if spec.get("sdtype") == "datetime"
             else "integer" if is_integer_representation(spec.get("computer_representation")) else "float")
    if rule == VISIT_NUMBER and dtype == "datetime":
        raise MetadataError(f"column {name!r}: a visit number cannot be a date")
    if rule == PREVIOUS_INDEX and (sequence_index is None or (dtype == "datetime") != (index_kind == "datetime")):
        raise MetadataError(f"column {name!r}: a previous index needs a sequence index of the same kind (number or date)")
    return {"rule": rule, "first": float(first), "dtype": dtype}


def fit_private_histories(frame: pd.DataFrame, entity_column: str, sequence_index: str | None, metadata: Metadata | None,
                          settings: DPSettings, config: SequenceConfig, seed: int, holdout: float, max_length: int, *,
                          device: str | None, progress: bool) -> PrivateHistories:
    """Fit patient histories under (ε, δ)-DP with one patient (all rows of one entity) as the unit.

    ``seed`` drives only the public randomness (holdout, initialisation, fakes); every draw that
    protects a patient comes from :class:`PrivateRandom` (OS entropy).
    """
    if settings.critic is False:
        raise InvalidArgumentError("patient histories under DP learn through a DP-SGD critic: critic=False has no "
                                   "released tables to fit the generator to")
    if settings.unit_column not in (None, entity_column):
        raise InvalidArgumentError(f"the DP unit of patient histories is the entity column {entity_column!r}, "
                                   f"not {settings.unit_column!r}")
    settings = replace(settings, critic=True, pairs=False)
    check_long_table(frame, entity_column, sequence_index)
    schema = declared_schema(frame, metadata, entity_column, sequence_index, max_length)
    assert metadata is not None  # declared_schema refuses without
    private = PrivateRandom()
    if holdout:
        frame = split_held_out(frame, entity_column, holdout, seed)[0]
    parts = HistoryParts.of(frame, schema, metadata)
    static, visits, lengths = parts.static, parts.visits, parts.lengths
    static_metadata, visit_metadata = parts.static_metadata, parts.visit_metadata

    # The plan (sample rate, length, bins) is sized by a coarse released patient count, never by n.
    patients_hint = release_row_count(len(lengths), row_count_noise(settings), private)
    shorten = config.steps is None  # a default length may be halved to fit the budget; steps asked for may not
    # What the model file's config says is what ran: no gains or moments from the rows, the length
    # loss at its DP weight, an unconditioned static generator (training by sampling would draw the
    # conditions at the rows' own frequencies).
    config = replace(config.scaled(max(2, round(patients_hint))), gains_from_data=False, mode_gains_from_data=False,
                     moment_loss=0.0, length_loss=config.length_loss or LENGTH_WEIGHT, conditional_statics=False)
    batch = min(config.batch_size, max(2, round(patients_hint)))
    assert config.steps is not None  # set by scaled
    plan = plan_privacy(settings, patients_hint, batch, config.steps, release_rounds(parts.patient_metadata),
                        shorten=shorten)
    if len(lengths) < MIN_ROWS:
        raise InvalidDataError(f"the table has {len(lengths)} patients in {entity_column!r} to train on; "
                               f"a DP fit needs at least {MIN_ROWS}")
    release = parts.release(plan.release_noise, plan.release_rounds, plan.threshold_delta, rows_hint=patients_hint,
                            private=private)
    survival = released_survival(release, max_length)

    static_table, static_release = _part(static_metadata, release)
    visit_table, visit_release = _part(visit_metadata, release)
    rows_rng = private.generator()  # per-row draws before DP-SGD: see PrivateRandom.generator
    static_encoded = _encoded(static_table, static_release, static, rows_rng)
    visit_encoded = _encoded(visit_table, visit_release, visits, rows_rng)
    padded, alive = encode_real(torch.from_numpy(static_encoded), torch.from_numpy(visit_encoded),
                                torch.from_numpy(lengths), max_length)

    run_device = select_device(device)
    static_layout, visit_layout = layouts(static_table.spans_, [*visit_table.spans_, STOP_SPAN])
    generator_net = SequenceGenerator(static_layout, visit_layout, max_length, config)
    critic = build_critic(generator_net.static_dim, generator_net.visit_dim, max_length, config)
    init_rng = torch.Generator().manual_seed(seed)
    init_sequence_weights(generator_net, init_rng)
    init_sequence_weights(critic, init_rng)
    generator_net, critic = generator_net.to(run_device), critic.to(run_device)
    real_rows = critic_input(torch.from_numpy(static_encoded), padded, alive, config.difference_channel).to(run_device)
    summary = train_private_histories(generator_net, critic, real_rows, survival.to(run_device), config, plan,
                                      torch.Generator(run_device).manual_seed(seed), progress=progress,
                                      static_marginals=ReleasedMarginals(static_table, static_release, run_device),
                                      visit_marginals=ReleasedMarginals(visit_table, visit_release, run_device))
    unit = (f"one patient = all rows of one value of {entity_column!r} (at most {max_length} visits each; "
            "later visits are not learned)")
    privacy = privacy_record(plan, summary.steps, settings, release.record, unit)
    logger.info("trained with (%.3g, %.2g)-DP, one patient as the unit (%s accountant)", privacy["epsilon"],
                privacy["delta"], privacy["accountant"])
    # Only released counts go into the record: the numbers of patients and rows are private.
    shares = survival.numpy()
    training = {**summary.to_dict(), "entities": round(release.rows), "rows": round(release.rows * float(shares.sum())),
                "privacy": privacy, **({"holdout_fraction": holdout} if holdout else {})}
    return PrivateHistories(schema, static_table, visit_table, config, generator_net, training)


def split_held_out(frame: pd.DataFrame, entity_column: str, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows, held-out rows) of a DP fit: each patient held out with probability ``fraction``
    by a draw keyed by (seed, its id) alone.

    The evaluation's split (a permutation of all the patients) would move other patients in or out
    of training when one patient is added, so the tables DP-SGD and the releases read would differ
    by many patients, not one; and it holds out exactly round(fraction × n), which tells n.
    """
    ids = frame[entity_column]
    key = int(seed).to_bytes(8, "little")
    draws = {value: int.from_bytes(hashlib.blake2b(repr(_native_id(value)).encode(), key=key, digest_size=8).digest(), "little")
             for value in ids.unique()}
    threshold = fraction * 2.0**64
    held_out = ids.map(lambda value: draws[value] < threshold).to_numpy(dtype=bool)
    return frame[~held_out].reset_index(drop=True), frame[held_out].reset_index(drop=True)


def _native_id(value: Any) -> Any:
    """An id as Python writes it (5, 'P7'), so the draw does not depend on numpy's scalar type."""
    return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True)
class HistoryParts:
    """A long table as the DP fit reads it: each patient's first ``max_length`` visits, split into one
    static row per patient, the visits and the lengths, with the metadata of each part."""

    static: pd.DataFrame
    visits: pd.DataFrame
    lengths: np.ndarray
    static_metadata: Metadata
    visit_metadata: Metadata
    #: The released patient row's columns: static, per-visit and the length over the public 1..max_length.
    patient_metadata: Metadata

    @classmethod
    def of(cls, frame: pd.DataFrame, schema: SequenceSchema, metadata: Metadata) -> "HistoryParts":
        split = split_long_table(_first_visits(frame, schema.entity_column, schema.sequence_index, schema.max_length),
                                 schema)
        static_metadata, visit_metadata = split_metadata(metadata, split, schema)
        length = {"sdtype": "categorical", "public_values": list(range(1, schema.max_length + 1))}
        patient_metadata = Metadata({**static_metadata.columns, **visit_metadata.columns, LENGTH_COLUMN: length})
        return cls(readable_table(static_metadata, split.static), readable_table(visit_metadata, split.visits),
                   split.lengths, static_metadata, visit_metadata, patient_metadata)

    def release(self, noise: float, rounds: int, threshold_delta: float, *, rows_hint: float,
                private: PrivateRandom) -> Release:
        """Every column's transformer and the length histogram, from one row per patient (:func:`patient_rows`)
        through the tabular release (``synthgen.dp.release``): ``rounds`` Gaussian rounds of ``noise``."""
        release = release_statistics(patient_rows(self.static, self.visits, self.lengths, private), self.patient_metadata,
                                     noise, rounds, threshold_delta, rows_hint=rows_hint, private=private)
        release.record["unit"] = ("one row per patient: its static values, one of its visits chosen at random "
                                  "(OS entropy) and its length, so one patient moves each histogram by one")
        for name in (START_COLUMN, GAP_COLUMN):
            # The index never has gaps (check_long_table refuses them): a public fact, so a missing
            # level that noise alone put there is dropped (post-processing), or the generator could
            # draw a patient without a start, whose index decodes to garbage.
            transformer = release.transformers.get(name)
            if isinstance(transformer, MissingIndicator):
                release.transformers[name] = transformer.inner
        return release


def _first_visits(frame: pd.DataFrame, entity_column: str, sequence_index: str | None, max_length: int) -> pd.DataFrame:
    """Each patient's first ``max_length`` visits (contribution bounding), cut here so that nothing
    about how many patients were cut is logged."""
    keys = [entity_column] if sequence_index is None else [entity_column, sequence_index]
    ordered = frame.sort_values(keys, kind="stable")
    return ordered[ordered.groupby(entity_column, sort=False).cumcount().to_numpy() < max_length]


def patient_rows(static: pd.DataFrame, visits: pd.DataFrame, lengths: np.ndarray, private: PrivateRandom) -> pd.DataFrame:
    """One row per patient for the release: its static values, one of its visits and its length.

    Sensitivity: a patient added or removed adds or removes exactly this one row, so every released
    histogram moves by one in one bin, as for a one-row-per-patient table (``synthgen.dp.release``).
    The visit is drawn per patient from OS entropy, independently of the other patients: a draw from
    one seeded stream would shift every later patient's choice when one patient is added, and the
    neighbouring tables would then differ in many rows. Releasing all visits instead would move a
    bin by up to ``max_length`` and need noise ``max_length`` times larger.
    """
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    chosen = starts + np.minimum((private.uniform(len(lengths)) * lengths).astype(np.int64), lengths - 1)
    rows = pd.concat([static.reset_index(drop=True), visits.iloc[chosen].reset_index(drop=True)], axis=1)
    rows[LENGTH_COLUMN] = lengths.astype(np.int64)
    return rows


def released_survival(release: Release, max_length: int) -> torch.Tensor:
    """P(length > t) for t = 0 .. max_length - 1 from the released length histogram (post-processing).

    The noisy counts are made consistent with the released patient count by subtracting one
    constant from every count and clipping at zero (Norm-Sub, Wang et al. 2020): clipping alone
    turns the noise of every empty length into positive mass, which at ε = 1 on cgd's ~100 patients
    gave the many lengths nobody has a share that stretched the survival curve.
    """
    transformer = release.transformers[LENGTH_COLUMN]
    counts = dict(zip(transformer.get_state()["levels"], release.category_counts[LENGTH_COLUMN]))
    noisy = np.array([counts.get(length, 0.0) for length in range(1, max_length + 1)], dtype=np.float64)
    shares = _norm_sub(noisy, release.rows)
    shares = shares / shares.sum() if shares.sum() > 0 else np.full(max_length, 1.0 / max_length)
    return torch.tensor(np.concatenate([[1.0], 1.0 - np.cumsum(shares)[:-1]]).clip(0.0, 1.0), dtype=torch.float32)


def _norm_sub(noisy: np.ndarray, total: float) -> np.ndarray:
    """max(noisy - c, 0) with the constant c (found by bisection) that makes the sum ``total``; where
    even c = 0 falls short, the counts clipped at zero."""
    if np.clip(noisy, 0, None).sum() <= total:
        return np.clip(noisy, 0, None)
    low, high = 0.0, float(noisy.max())
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if np.clip(noisy - middle, 0, None).sum() > total else (low, middle)
    return np.clip(noisy - high, 0, None)


def _part(metadata: Metadata, release: Release) -> tuple[TableTransformer, Release]:
    """The released transformers of ``metadata``'s columns, as a table and as a release of their own."""
    names = list(metadata.columns)
    part = Release({n: release.transformers[n] for n in names},
                   {n: c for n, c in release.category_counts.items() if n in names}, release.rows)
    return TableTransformer.from_fitted(metadata, {"min_category_count": 1}, part.transformers), part


def _encoded(table: TableTransformer, release: Release, frame: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """The encoding DP-SGD reads: gaps in columns released without gaps drawn from the released
    distribution, gaps under a missing indicator given a released-distribution encoding (never
    another patient's value)."""
    if not table.metadata.columns:
        return np.zeros((len(frame), 0), dtype=np.float32)
    frame = release.fill_unreleased_gaps(frame, rng)
    return release.fill_encoded_gaps(frame, table.transform(frame, rng), table.slices_, rng)


class ReleasedMarginals:
    """How far a batch's encoded columns are from their released one-way distributions (post-processing).

    Every numeric column's encoding under DP is a released quantile transformer's normal score, so
    whatever the column, values that follow the released CDF have the same known distribution in
    encoded space (``QuantileTransformer.encoded_quantiles``): each tanh channel is pulled towards
    it by matching sorted values to its quantiles (a 1-D Wasserstein distance). Categories, booleans
    and missing indicators have released shares, matched by the batch's mean one-hot (L1). Visits
    are weighted 1/length per patient, since the release read one visit per patient.
    """

    def __init__(self, table: TableTransformer, release: Release, device: torch.device) -> None:
        tanh: list[int] = []
        groups: list[tuple[int, int, np.ndarray]] = []
        offset = 0
        for name, transformer in table.column_transformers_.items():
            for position, span in enumerate(transformer.spans):
                if span.activation == "tanh":
                    tanh.extend(range(offset, offset + span.width))
                elif span.conditional and name in release.category_counts:
                    counts = np.clip(release.category_counts[name], 0.0, None)
                    groups.append((offset, span.width, counts / max(counts.sum(), 1e-12)))
                elif isinstance(transformer, MissingIndicator) and position == len(transformer.spans) - 1:
                    groups.append((offset, 2, np.array([1.0 - transformer.missing_rate_, transformer.missing_rate_])))
                offset += span.width
        self.tanh = torch.tensor(tanh, dtype=torch.long, device=device)
        self.groups = [(start, width, torch.tensor(share, dtype=torch.float32, device=device))
                       for start, width, share in groups]

    def __call__(self, encoded: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """The distance for ``encoded`` rows (N, width) with ``weights`` (N,) summing to 1."""
        loss = encoded.new_zeros(())
        if len(self.tanh):
            values, order = torch.sort(encoded.index_select(1, self.tanh), dim=0)
            sorted_weights = weights[order]
            levels = torch.cumsum(sorted_weights, 0) - sorted_weights / 2
            targets = torch.from_numpy(QuantileTransformer.encoded_quantiles(levels.detach().cpu().double().numpy()))
            loss = loss + (sorted_weights * (values - targets.to(values)).abs()).sum(0).mean()
        for start, width, share in self.groups:
            loss = loss + ((weights[:, None] * encoded[:, start:start + width]).sum(0) - share).abs().sum() / len(self.groups)
        return loss


def train_private_histories(generator_net: SequenceGenerator, critic: Discriminator, real_rows: torch.Tensor,
                            survival: torch.Tensor, config: SequenceConfig, plan: PrivacyPlan, rng: torch.Generator, *,
                            progress: bool = True, static_marginals: ReleasedMarginals | None = None,
                            visit_marginals: ReleasedMarginals | None = None) -> TrainingSummary:
    """DP-SGD on the whole-patient critic for ``plan.steps`` steps; ``real_rows`` holds one row per patient.

    As ``synthgen.training.private.train_gan_private`` does for rows: patients are Poisson-sampled at
    ``plan.sample_rate`` and the sample and the noise come from a generator re-keyed from OS entropy
    every step; each patient's gradient is clipped (Opacus ghost clipping) and noised in secure
    mode; the loss is the logistic GAN loss (no gradient penalty: its second backward pass escapes
    clipping). The generator is trained on the critic's scores, the released survival curve
    (``length_loss``) and the released marginals, nothing else: no moment of the real visits (those
    would read the rows).
    """
    if config.learning_rate is None:
        raise ValueError("the learning rate must be set: train with SequenceConfig.scaled(patients)")
    device = real_rows.device
    patients = real_rows.shape[0]
    batch = plan.expected_batch_size
    g_optimiser = torch.optim.Adam(generator_net.parameters(), lr=config.learning_rate, betas=(0.5, 0.9), weight_decay=1e-6)
    private_rng = torch.Generator(device)
    private_critic, d_optimiser, criterion = make_private_critic(critic, plan, config.learning_rate, private_rng)
    decay = lambda step: 1 - 0.9 * step / max(1, plan.steps)  # noqa: E731 - linear to 10%, as the other loops
    schedulers = [torch.optim.lr_scheduler.LambdaLR(o, decay) for o in (g_optimiser, d_optimiser.original_optimizer)]

    def fakes() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        static_noise, visit_noise = generator_net.noise(batch, rng, device)
        return generator_net(static_noise, visit_noise, rng)

    def private_step() -> torch.Tensor:
        real = real_rows.index_select(0, poisson_rows(patients, plan.sample_rate, private_rng))
        with torch.no_grad():
            fake = critic_input(*fakes(), config.difference_channel)
        return private_critic_step(private_critic, criterion, d_optimiser, real, fake, rng)

    def public_step() -> torch.Tensor:
        private_critic.disable_hooks()
        static, visits, alive = fakes()
        loss = F.softplus(-private_critic(critic_input(static, visits, alive, config.difference_channel), rng)).mean()
        # alive is differentiable in the stop probabilities: the released curve pulls the lengths directly.
        loss = loss + config.length_loss * (alive.mean(0) - survival).abs().sum()
        if static_marginals is not None and static.shape[1]:
            loss = loss + MARGINAL_WEIGHT * static_marginals(static, torch.full_like(static[:, 0], 1.0 / batch))
        if visit_marginals is not None:
            # Each patient's visits weigh 1/length in all, as its one released visit did.
            weights = alive.detach() / alive.detach().sum(1, keepdim=True).clamp_min(1e-6) / batch
            loss = loss + MARGINAL_WEIGHT * visit_marginals(visits[:, :, :-STOP_SPAN.width].flatten(0, 1), weights.flatten())
        return private_generator_update(loss, g_optimiser, d_optimiser, private_critic)

    generator_net.train()
    private_critic.train()
    result = private_adversarial_loop(plan.steps, private_step, public_step, schedulers, progress=progress,
                                      description="training (sequences, DP)")
    generator_net.eval()
    critic.eval()
    logger.info("trained %d DP steps in %.1f s on %s", result.steps, result.seconds, device)
    return TrainingSummary.of(result, batch, device)
