"""Gaussian-copula correction of the generated numeric columns' joint ranks.

A GAN trained for 1,500 steps on a few hundred rows gets each numeric column's dependencies
roughly, not exactly: on breast-cancer and diabetes a gradient-boosted detector told its rows from
real ones by the joint of the measurements (AUC 0.85 and 0.63), and SDV's GaussianCopula kept more
of their pairwise correlation than the GAN (issue 19). The marginal calibration
(:mod:`synthgen.data.calibration`) cannot fix that: its maps are monotone per column and leave
every rank where it was.

So before those maps run, each calibrated column's generated value is read as a normal score
(``z = Φ⁻¹(F(x))``, ``F`` the generator's own CDF from its quantiles after training) and the
scores of a row are moved by one linear map ``z → z T`` whose ``T`` takes the generator's score
correlation ``E`` onto the training rows' ``C``. Of all such maps, ``T`` is the optimal transport
map between ``N(0, E)`` and ``N(0, C)`` (``T = E^-1/2 (E^1/2 C E^1/2)^1/2 E^-1/2``): it moves rows
the least, is the identity where the generator already has the training correlation, and keeps
whatever non-linear shape the generator gave a row as far as a linear map can. The moved score is
read back on the generator's scale (``x' = F⁻¹(Φ(z'))``) and the calibration's maps, fitted on
draws corrected so, take it from there. A row is corrected on its own (no other row of the sample
is read), so a sample does not depend on how it is chunked or sharded.

Missing values stay missing. Both correlations are taken pairwise, each over the rows where both
columns are present (gap rates differ between the generator and the training rows); when a row is
moved, a gap counts as a score of 0, the score's mean. Ties (counts, scores) are
spread uniformly over the probability they hold, as the calibration spreads them. The stored
knots are the generator's quantiles (no training value) and ``T`` is a k × k summary of the
training rows' rank correlations, which SDV's GaussianCopula stores too. Differentially private
models do not use it: their statistics come from released tables only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from synthgen.data.categorical import category_keys
from synthgen.data.quantile import column_numbers, piecewise_cdf

#: Normal scores are cut at this probability from 0 and 1 (|z| ≤ 3.7): a value past the generator's
#: extreme knot would otherwise get an infinite score.
_EDGE = 1e-4
#: Added to the diagonals before matrix roots: a column nearly a function of others (a sum, a
#: ratio) makes a correlation matrix nearly singular.
_RIDGE = 1e-6


@dataclass
class CopulaCorrection:
    """Per ``columns`` (in order), the generator's quantiles ``knots`` (one row per column) and the
    score map ``transport`` (k × k, applied as ``z @ transport``)."""

    columns: list[str]
    knots: np.ndarray
    transport: np.ndarray

    @classmethod
    def fit(cls, generated: pd.DataFrame, real: pd.DataFrame, columns: list[str], levels: int,
            rng: np.random.Generator) -> "CopulaCorrection | None":
        """The correction for those of ``columns`` with at least two distinct values in both the
        generator's draw ``generated`` and the training rows ``real``; ``None`` for fewer than two."""
        grid = np.linspace(0.0, 1.0, levels + 1)
        kept, knots, generated_scores, real_scores = [], [], [], []
        for name in columns:
            drawn, observed = column_numbers(generated[name]), column_numbers(real[name])
            if len(np.unique(drawn[~np.isnan(drawn)])) < 2 or len(np.unique(observed[~np.isnan(observed)])) < 2:
                continue
            column_knots = np.quantile(drawn[~np.isnan(drawn)], grid)
            kept.append(name)
            knots.append(column_knots)
            generated_scores.append(_scores(drawn, lambda v, k=column_knots: piecewise_cdf(v, k, grid, rng)))
            real_scores.append(_scores(observed, lambda v: _ranks(v, rng)))
        if len(kept) < 2:
            return None
        generated_correlation = _correlation(np.column_stack(generated_scores))
        real_correlation = _correlation(np.column_stack(real_scores))
        return cls(kept, np.vstack(knots), _transport(generated_correlation, real_correlation))

    def arrays(self, values: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``values`` (float arrays of equal length, NaN where missing) with the corrected columns moved."""
        grid = np.linspace(0.0, 1.0, self.knots.shape[1])
        scores = np.column_stack([
            _scores(values[name], lambda v, k=knots: piecewise_cdf(v, k, grid, rng), missing=0.0)
            for name, knots in zip(self.columns, self.knots)
        ])
        moved = ndtr(scores @ self.transport)
        out = dict(values)
        for j, (name, knots) in enumerate(zip(self.columns, self.knots)):
            column = values[name]
            out[name] = np.where(np.isnan(column), np.nan, np.interp(moved[:, j], grid, _spread(knots)))
        return out

    def frame(self, frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        """``frame`` with the corrected columns moved, as floats (the generator's scale, not calibrated)."""
        moved = self.arrays({name: column_numbers(frame[name]) for name in self.columns}, rng)
        out = frame.copy()
        for name in self.columns:
            out[name] = moved[name]
        return out

    def get_state(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "knots": self.knots.tolist(), "transport": self.transport.tolist()}

    @classmethod
    def from_state(cls, state: Any, columns: list[str]) -> "CopulaCorrection":
        """The correction a model file stores; ``ValueError`` when it is malformed (a crafted file):
        a column not among ``columns`` or repeated, unsorted or non-finite knots, a map of the wrong shape."""
        if not isinstance(state, dict) or not isinstance(state.get("columns"), list):
            raise ValueError("the copula correction is malformed")
        names = state["columns"]
        if (len(names) < 2 or len(set(names)) != len(names)
                or not all(isinstance(name, str) and name in columns for name in names)):
            raise ValueError("the copula correction is malformed: its columns must be distinct columns of the model")
        try:
            knots = np.asarray(state.get("knots"), dtype=np.float64)
            transport = np.asarray(state.get("transport"), dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError("the copula correction is malformed: knots and map must be numbers") from None
        if (knots.ndim != 2 or knots.shape[0] != len(names) or knots.shape[1] < 2 or not np.isfinite(knots).all()
                or (np.diff(knots, axis=1) < 0).any()):
            raise ValueError("the copula correction is malformed: knots must be finite and sorted, a row per column")
        if transport.shape != (len(names), len(names)) or not np.isfinite(transport).all():
            raise ValueError("the copula correction is malformed: its map must be a finite square matrix, a row per column")
        return cls(list(names), knots, transport)


def pair_error(frame: pd.DataFrame, real: pd.DataFrame, numeric: list[str], categorical: list[str],
               involving: list[str]) -> float:
    """How far ``frame``'s pairwise dependence is from ``real``'s, as sdmetrics' Column Pair Trends
    scores it (one minus it), over the pairs of columns that involve one of ``involving``: half the
    difference of the rank correlations of two numbers (over the rows where both are present), the
    total variation distance between the tables of a pair with a category (numbers cut at the real
    deciles; gaps and unseen categories a cell of their own). The correction moves numbers past the
    categories: this is what it must not make worse between a number and a category, nor between numbers."""
    ranks = {name: [pd.Series(column_numbers(table[name])).rank().to_numpy() for table in (real, frame)] for name in numeric}
    codes: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}
    for name in numeric:
        observed = column_numbers(real[name])
        edges = np.unique(np.quantile(observed[~np.isnan(observed)], np.linspace(0.0, 1.0, 11)[1:-1]))
        coded = [np.where(np.isnan(v), len(edges) + 1, np.searchsorted(edges, v, side="right"))
                 for v in (observed, column_numbers(frame[name]))]
        codes[name] = (coded[0], coded[1], len(edges) + 2)
    for name in categorical:
        real_codes, labels = pd.factorize(category_keys(real[name]), use_na_sentinel=True)
        drawn_codes = pd.Index(labels).get_indexer(category_keys(frame[name]))
        size = len(labels) + 1  # the last cell: missing, or a level the training rows lack
        codes[name] = (np.where(real_codes < 0, size - 1, real_codes), np.where(drawn_codes < 0, size - 1, drawn_codes), size)
    names = list(codes)
    errors = []
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            if first not in involving and second not in involving:
                continue
            if first in ranks and second in ranks:
                correlations = [_rank_correlation(a, b) for a, b in zip(ranks[first], ranks[second])]
                errors.append(0.5 * abs(correlations[0] - correlations[1]))
                continue
            (real_a, drawn_a, size_a), (real_b, drawn_b, size_b) = codes[first], codes[second]
            tables = [np.bincount(a * size_b + b, minlength=size_a * size_b) / len(a)
                      for a, b in ((real_a, real_b), (drawn_a, drawn_b))]
            errors.append(0.5 * np.abs(tables[0] - tables[1]).sum())
    return float(np.mean(errors)) if errors else 0.0


def _rank_correlation(first: np.ndarray, second: np.ndarray) -> float:
    """The correlation of two columns' ranks over the rows where both are present (0 where undefined)."""
    both = ~np.isnan(first) & ~np.isnan(second)
    if both.sum() < 3:
        return 0.0
    a, b = first[both] - first[both].mean(), second[both] - second[both].mean()
    spread = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / spread) if spread > 0 else 0.0


def _transport(generated: np.ndarray, real: np.ndarray) -> np.ndarray:
    """The optimal transport map from ``N(0, generated)`` onto ``N(0, real)`` (symmetric)."""
    size = len(generated)
    generated = np.nan_to_num(generated) + _RIDGE * np.eye(size)
    real = np.nan_to_num(real) + _RIDGE * np.eye(size)
    root, inverse_root = _roots(generated)
    middle, _ = _roots(root @ real @ root)
    return inverse_root @ middle @ inverse_root


def _spread(knots: np.ndarray) -> np.ndarray:
    """``knots`` made strictly rising by a negligible step within each run of equal knots. A point
    mass (values clipped onto a range end, a two-valued column) read back on its own knots would
    collapse every moved score in it onto one value, and the calibration that follows would draw
    their order again at random, undoing the correction; spread, the order survives."""
    step = 1e-9 * max(float(np.abs(knots).max()), 1.0)
    runs = np.r_[0, np.cumsum(np.diff(knots) > 0)]  # which run of equal knots each knot is in
    within = np.arange(len(knots)) - np.searchsorted(runs, runs, side="left")
    return knots + within * step


def _correlation(scores: np.ndarray) -> np.ndarray:
    """Correlations of the score columns, each pair over the rows where both are present (NaN
    elsewhere): a gap carries no information about a pair, and gap rates differ between the training
    rows and the generator. Pairs never present together count as uncorrelated."""
    present = ~np.isnan(scores)
    filled = np.where(present, scores, 0.0)
    mask = present.astype(np.float64)
    pairs = mask.T @ mask  # rows where both are present
    sums = filled.T @ mask  # [i, j]: sum of column i's scores where j is present too
    squares = (filled**2).T @ mask
    products = filled.T @ filled
    with np.errstate(invalid="ignore", divide="ignore"):
        covariance = pairs * products - sums * sums.T
        spread = (pairs * squares - sums**2) * (pairs * squares - sums**2).T
        correlation = covariance / np.sqrt(spread)
    correlation = np.where(np.isfinite(correlation) & (pairs >= 2), correlation, 0.0)
    np.fill_diagonal(correlation, 1.0)
    return _nearest_correlation(correlation)


def _nearest_correlation(matrix: np.ndarray) -> np.ndarray:
    """Pairwise estimates need not form a correlation matrix: a near one, by clipped eigenvalues."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    clipped = (vectors * np.clip(values, _RIDGE, None)) @ vectors.T
    scale = np.sqrt(np.diag(clipped))
    return clipped / np.outer(scale, scale)


def _roots(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A symmetric positive semi-definite matrix's square root and inverse square root."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    values = np.clip(values, _RIDGE, None)
    return (vectors * np.sqrt(values)) @ vectors.T, (vectors / np.sqrt(values)) @ vectors.T


def _scores(values: np.ndarray, cdf: Any, missing: float = np.nan) -> np.ndarray:
    """Normal scores of ``values`` under ``cdf`` (``missing`` where a value is)."""
    scores = np.full(values.size, missing)
    present = ~np.isnan(values)
    scores[present] = ndtri(np.clip(cdf(values[present]), _EDGE, 1.0 - _EDGE))
    return scores


def _ranks(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each value's probability among ``values``: its rank, ties broken at random, minus a half, over n."""
    order = np.lexsort((rng.random(values.size), values))
    ranks = np.empty(values.size)
    ranks[order] = np.arange(values.size)
    return (ranks + 0.5) / values.size
