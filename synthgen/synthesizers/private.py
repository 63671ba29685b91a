"""Differentially private fitting of the tabular GAN (``TabularSynthesizer(dp=...)``).

Transformers come from DP-released column statistics (``synthgen.dp.release``), dependencies from
released two-way tables (``synthgen.dp.pairs``), then DP-SGD trains the critic
(``synthgen.training.private``) when asked for; by default no critic trains and the generator is
fitted to the released tables alone. The generator's marginals are then calibrated onto the released
statistics. ``TabularSynthesizer.fit`` calls ``fit_private`` and stores what it returns.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from synthgen._mixing import mix64
from synthgen.data.missing import MissingIndicator
from synthgen.data.quantile import QuantileTransformer
from synthgen.data.table import MIN_ROWS, TableTransformer, readable_table
from synthgen.dp.accounting import DPSettings, plan_privacy, privacy_record, row_count_noise
from synthgen.dp.entropy import PrivateRandom
from synthgen.dp.pairs import PairRelease, column_cells, pair_bins, pair_rounds, release_pairs
from synthgen.dp.release import (
    Release, outside_public_values_as_gaps, release_row_count, release_rounds, release_statistics, unbounded_columns,
)
from synthgen.errors import InvalidArgumentError, InvalidDataError
from synthgen.metadata import Metadata
from synthgen.models.tabular_gan import (
    ConditionSampler, Discriminator, GANConfig, Generator, MarginalCalibration, MarginalLoss, SpanLayout, init_weights,
    networks,
)
from synthgen.training.loop import select_device
from synthgen.training.private import default_private_steps, fit_generator_to_releases, train_gan_private
from synthgen.training.tabular import LARGE_BATCH, LARGE_BATCH_LEARNING_RATE, effective_batch_size

logger = logging.getLogger(__name__)

#: Weight of the released tables' loss beside the DP critic's in the generator step. At ε = 3, 1,000
#: steps, seed 0, 100 against 10: gap closed -0.35 against -0.39 on pbc, -0.04 against -0.08 on flchain.
MARGINAL_WEIGHT = 100.0
#: Learning rate of a generator fitted to the released tables without a critic.
TABLES_LEARNING_RATE = 1e-3


@dataclass(frozen=True)
class PrivateFit:
    """What a DP fit learned, for ``TabularSynthesizer._set_fitted`` (no holdout rows: see ``holdout_draws``)."""

    metadata: Metadata
    config: GANConfig
    table: TableTransformer
    layout: SpanLayout
    generator: Generator
    sampler: ConditionSampler
    training: dict[str, Any]
    calibration: MarginalCalibration


def fit_private(data: pd.DataFrame, metadata: Metadata, config: GANConfig, seed: int, rng: np.random.Generator,
                holdout: float, settings: DPSettings, *, device: str | None, progress: bool) -> PrivateFit:
    """Fit under (ε, δ)-DP: transformers and two-way tables from released statistics, then the generator
    fitted to the tables alone, or (``DPSettings.resolved_critic``) DP-SGD on a critic beside them.

    Nothing below reads the rows except through a DP release, and every privacy-protecting draw
    comes from ``private`` (OS entropy), as does every per-row draw made before a release (gap fills,
    encoding jitter); ``rng`` and ``seed`` drive only the public randomness.
    """
    private = PrivateRandom()
    unit = "one row = one patient (assumed; declare a patient column if a patient can have several rows)"
    if settings.unit_column is not None:
        if settings.unit_column not in data.columns:
            raise InvalidArgumentError(f"the DP unit column {settings.unit_column!r} is not in the table")
        data = one_row_per_unit(data, settings.unit_column, seed)
        unit = f"one patient = one value of {settings.unit_column!r}; one row per patient kept"
    # The plan (batch rate, length, bins) is sized by a coarse released count, never by n itself.
    rows_hint = release_row_count(len(data), row_count_noise(settings), private)
    config_steps = config.steps
    pairs_rounds = pair_rounds(metadata) if settings.pairs else 0
    # Without released pairs there is nothing but a critic to learn the table's structure from.
    settings = replace(settings, critic=settings.resolved_critic() or not pairs_rounds)
    # DP-SGD's defaults: large batches (a higher sample rate buys less noise per step) at 2e-4. A
    # generator fitted to the tables alone has no noisy critic to follow and converges 5 times
    # faster at 1e-3 (measured on a 600-row table: 300 steps at 1e-3 as far as 1,500 at 2e-4).
    learning_rate = LARGE_BATCH_LEARNING_RATE if settings.critic else TABLES_LEARNING_RATE
    config = replace(config, pac=1, batch_size=config.batch_size or LARGE_BATCH,
                     learning_rate=config.learning_rate or learning_rate)
    batch = effective_batch_size(config, round(rows_hint))
    steps = config.steps or default_private_steps(round(rows_hint), batch)
    config = replace(config, batch_size=batch, steps=steps)
    plan = plan_privacy(settings, rows_hint, batch, steps, release_rounds(metadata) + pairs_rounds,
                        shorten=config_steps is None, selection_rounds=1 if pairs_rounds else 0)
    config = replace(config, steps=plan.steps if settings.critic else steps)
    if len(data) < MIN_ROWS:
        raise InvalidDataError(f"the table has {len(data)} row(s) to train on; synthgen needs at least {MIN_ROWS}")
    unbounded = unbounded_columns(metadata)
    if unbounded:
        # The costliest thing a user can avoid at small ε (pbc: gap closed −0.23 -> 0.00 at ε = 1, 0.26 -> 0.46 at ε = 3).
        logger.info("%d numeric/date column(s) without public_bounds in the metadata (e.g. %r): one of the %d "
                    "release rounds finds their ranges; bounds from a data dictionary would cost nothing",
                    len(unbounded), unbounded[0], plan.release_rounds)
    # Stray cells (text in a number column, unparsable dates) become gaps, as in a plain fit.
    data = readable_table(metadata, data)
    data, outside = outside_public_values_as_gaps(data, metadata)
    if outside:
        # Names the columns, never the values: see outside_public_values_as_gaps.
        logger.warning("column(s) %s hold values outside their declared public_values: they are treated as gaps. "
                       "Extend public_values only from a data dictionary, never from values found in the data: "
                       "a public value is published without noise", ", ".join(repr(name) for name in outside))
    release = release_statistics(data, metadata, plan.release_noise, plan.release_rounds, plan.threshold_delta,
                                 rows_hint=rows_hint, private=private)
    table = TableTransformer.from_fitted(metadata, {"min_category_count": 1}, release.transformers)
    rows_rng = private.generator()  # per-row draws before the releases: see PrivateRandom.generator
    data = release.fill_unreleased_gaps(data, rows_rng)
    if table.width_ == 0:
        raise InvalidDataError("every column is an identifier: there is nothing to learn")
    encoded = release.fill_encoded_gaps(data, table.transform(data, rows_rng), table.slices_, rows_rng)
    marginal_loss, pairs = None, None
    if settings.pairs and pair_rounds(metadata):
        columns = column_cells(table, release.category_counts, pair_bins(round(rows_hint)),
                               marginal_sd=release.record["noise_std_per_count"] / release.rows)
        pairs = release_pairs(encoded, columns, plan.release_noise, rows=release.rows, private=private)
        release.record["pairs"] = pairs.record
        targets, tables = pairs.implied_tables()
        missing_cells = [(i, columns[i].missing) for i in pairs.pattern_columns]
        marginal_loss = MarginalLoss([c.to_dict() for c in columns],
                                     [torch.as_tensor(pairs.one_way(i)) for i in range(len(columns))],
                                     targets, [torch.as_tensor(t) for t in tables], missing_cells=missing_cells,
                                     patterns=torch.as_tensor(pairs.patterns), pattern_shares=torch.as_tensor(pairs.pattern_shares))
    device = select_device(device)
    layout, generator_net = networks(table, config)
    critic = Discriminator(layout.data_dim + layout.cond_dim, config.discriminator_dims, 1, config.dropout)
    init_rng = torch.Generator().manual_seed(seed)
    init_weights(generator_net, init_rng)
    init_weights(critic, init_rng)  # drawn even when unused, so the seed's other draws do not move
    counts = [torch.as_tensor(release.category_counts[c.name], dtype=torch.float32) for c in table.conditional_columns_]
    sampler = ConditionSampler(layout, torch.cat(counts) if counts else torch.zeros(0))
    layout, generator_net, critic, sampler = layout.to(device), generator_net.to(device), critic.to(device), sampler.to(device)
    train_rng = torch.Generator(device).manual_seed(seed)
    if settings.critic:
        summary = train_gan_private(
            generator_net, critic, layout, torch.from_numpy(encoded).to(device), config, train_rng, sampler, plan,
            progress=progress,
            marginal_loss=marginal_loss.to(device) if marginal_loss is not None else None, marginal_weight=MARGINAL_WEIGHT,
        )
    else:
        assert marginal_loss is not None  # guaranteed above: no pairs, a critic
        summary = fit_generator_to_releases(generator_net, layout, config, train_rng, sampler, marginal_loss.to(device),
                                            progress=progress)
    calibration = calibrate(generator_net, layout, sampler, table, release, config, train_rng, pairs)
    privacy = privacy_record(plan, summary.steps if settings.critic else 0, settings, release.record, unit)
    logger.info("trained with (%.3g, %.2g)-DP (%s accountant)", privacy["epsilon"], privacy["delta"], privacy["accountant"])
    # Only released counts go into the record: the true row count is private.
    training = {**summary.to_dict(), "rows": round(release.rows), "columns": data.shape[1],
                "holdout_fraction": holdout, "privacy": privacy}
    return PrivateFit(metadata, config, table, layout, generator_net, sampler, training, calibration)


def calibrate(generator_net: Generator, layout: SpanLayout, sampler: ConditionSampler, table: TableTransformer,
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
            probabilities[tanh_rows[column.positions[0]]] = within_cells(grid, cells / cells.sum())
    tanh_targets = torch.as_tensor(QuantileTransformer.encoded_quantiles(probabilities), dtype=torch.float32)
    device = layout.tanh_index.device
    tanh_targets = tanh_targets.contiguous().to(device)
    noise = torch.randn(draws, config.embedding_dim, generator=rng, device=device)
    with torch.inference_mode():
        cond = sampler.for_sampling(draws, rng)
    return MarginalCalibration.fit(generator_net, layout, cond, noise, config.gumbel_tau, rng, tanh_targets,
                                   softmax_targets.to(device))


def holdout_draws(seed: int, data: pd.DataFrame) -> np.ndarray:
    """One uniform draw per row, keyed by (seed, the row's values) alone.

    Adding a row anywhere in the table moves no other row in or out of training, so the tables the
    releases read differ by that one row (draws keyed by row position moved every row after an
    insertion, and the guarantee is stated for any table plus one patient); equal rows share a fate.
    """
    return _row_draws(seed, data, _HOLDOUT_STREAM)


def one_row_per_unit(data: pd.DataFrame, unit_column: str, seed: int) -> pd.DataFrame:
    """Contribution bounding: each patient's row with the smallest draw keyed by (seed, the row's
    values), so one row is one patient and which row a patient keeps depends on that patient's rows
    alone (a permutation of all rows changed every patient's row when one patient was added)."""
    order = np.argsort(_row_draws(seed, data, _UNIT_STREAM), kind="stable")
    shuffled = data.iloc[order]
    return shuffled[~shuffled[unit_column].duplicated()].sort_index()


_HOLDOUT_STREAM, _UNIT_STREAM = 0x401D, 0x0917


def _row_draws(seed: int, data: pd.DataFrame, stream: int) -> np.ndarray:
    """Uniform [0, 1) draws, one per row, each a function of (seed, stream, that row's values) only."""
    rows = pd.util.hash_pandas_object(data, index=False).to_numpy(dtype=np.uint64)
    key = mix64(np.array([int(seed) & (2**64 - 1)], dtype=np.uint64) ^ np.uint64(stream))
    return (mix64(rows ^ key) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def within_cells(levels: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """Released-CDF probabilities at quantile ``levels`` of a distribution whose k-th of B equal-probability
    cells holds ``shares[k]``: a piecewise-linear map from cumulative shares to k/B."""
    bins = len(shares)
    return np.interp(levels, np.concatenate([[0.0], np.cumsum(shares)]), np.arange(bins + 1) / bins)
