"""Differentially private two-way structure: which column pairs depend on each other, and how.

Under DP at a few units of ε, DP-SGD on a small table teaches the generator no usable dependency
(benchmarks/README.md: the DP models' pair scores sat below an independent sampler's). So the
dependencies are released directly, after the column statistics, in two more rounds:

3. the pairs, chosen one at a time by the exponential mechanism as MST does (McKenna, Miklau and
   Sheldon 2021): each choice is among the pairs that join two parts of the forest built so far,
   or "stop", with a utility of how far the pair's counts are from independence less what chance
   gives (:func:`_dependence`, sensitivity 2). At most columns − 1 choices at ε₀ each, accounted as
   their zCDP bound, which equals one Gaussian round's Rényi curve (:func:`selection_epsilon`).
   Only the choices are released, never a score. (Before, a Gaussian score of every pair was
   released at once: sensitivity √(pairs), noise of sd 44.5 rows per score on pbc at ε = 3,
   against a Gumbel spread of sd about 37 rows per choice now.)
4. noisy counts over the cells of the chosen pairs: a row adds one to one cell of each chosen
   pair's table, and one to one missingness pattern (below): sensitivity √(pairs chosen + 1).

Columns with gaps often miss together (pbc: nine columns are missing for the same 106 patients,
who were not in the trial). A tree of two-way tables carries that only along its paths, weakened
at every step by noise (released at ε = 3, a pair of those columns read "missing together" 0.67
of the time instead of 1), so round 4 also releases the histogram of the rows' missingness
patterns over the (up to 12) columns with the most gaps, every pattern of the public domain,
and keeps the patterns whose noisy count clears a threshold that noise alone reaches with
probability 5% over all of them (post-processing); the generator is trained toward their shares.

Pairs nothing was released about are given the tables the released forest implies
(:meth:`PairRelease.implied_tables`): post-processing.

A column's cells come from its released statistics alone: equal-probability bins of a numeric
column's released CDF (which its quantile encoding maps to fixed thresholds) plus a missing cell,
or a categorical column's released levels. The generator is then trained toward the released one-
and two-way tables (``MarginalLoss``), which is post-processing of DP outputs (the idea of GEM:
Liu, Vietri and Wu, 2021, "Iterative methods for private synthetic data").
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import ndtri

from synthgen.data.missing import MissingIndicator
from synthgen.data.quantile import QuantileTransformer
from synthgen.data.table import TableTransformer
from synthgen.dp.entropy import PrivateRandom
from synthgen.dp.release import RELEASED_SDTYPES
from synthgen.metadata import Metadata

#: A pair's utility is its distance from independence less this many standard deviations of that
#: distance's spread under independence: a pair that does not clear it loses to "stop" on average.
_KEEP_SIGMAS = 2.0


@dataclass(frozen=True)
class ColumnCells:
    """How one column's encoded block maps to cells, and the released probability of each cell.

    ``kind`` "categories": ``positions`` are the one-hot positions, one cell each. ``kind`` "bins":
    ``positions`` are (tanh,) or (tanh, present, missing); ``thresholds`` split the tanh output into
    equal-probability bins, and a missing cell follows when there is one.
    """

    name: str
    kind: str
    positions: tuple[int, ...]
    thresholds: tuple[float, ...]
    marginal: np.ndarray
    #: The cell of a missing value, if the column has one.
    missing: int | None = None
    #: The noise standard deviation of each released share in ``marginal`` that measures the rows
    #: (categories, and the missing cell); infinite where nothing is known of it.
    marginal_sd: float = math.inf

    @property
    def size(self) -> int:
        return len(self.marginal)

    def codes(self, encoded: np.ndarray) -> np.ndarray:
        """The cell of every encoded row (hard: arg-max of one-hots, bin of the tanh output)."""
        if self.kind == "categories":
            return np.argmax(encoded[:, list(self.positions)], axis=1)
        codes = np.searchsorted(np.asarray(self.thresholds), encoded[:, self.positions[0]], side="right")
        if len(self.positions) == 3:
            codes = np.where(encoded[:, self.positions[2]] > encoded[:, self.positions[1]], len(self.thresholds) + 1, codes)
        return codes

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "positions": list(self.positions), "thresholds": list(self.thresholds)}


def column_cells(table: TableTransformer, category_counts: dict[str, np.ndarray], bins: int,
                 marginal_sd: float = math.inf) -> list[ColumnCells]:
    """Cells of every column whose encoding is a quantile score (± missing) or a one-hot over categories.

    Under DP these are all numeric, date, categorical and boolean columns; identifiers have none.
    Numeric cells are equal-probability bins of the released CDF. Their real shares can be far from
    equal (pbc at ε = 3: albumin's bounds are 8 times its range and its data sits in 2 of 5
    histogram bins), and the released tables measure those shares: that is finer information on
    where the values lie than the histogram's knots give (cells cut on the knots instead lowered
    Column Shapes on pbc at ε = 3 from 0.877 to 0.853, seeds 0-2), so the cells stay equal.
    ``marginal_sd`` is the noise of the released shares (the statistics round's σ over its rows).
    """
    columns = []
    thresholds = tuple(float(t) for t in QuantileTransformer.encoded_quantiles(np.arange(1, bins) / bins))
    for name, transformer in table.column_transformers_.items():
        start = table.slices_[name].start
        layout = [(span.width, span.activation, span.conditional) for span in transformer.spans]
        if layout and layout[0][2] and len(layout) == 1:
            counts = np.asarray(category_counts[name], dtype=float)
            missing = len(transformer.levels_) if getattr(transformer, "has_missing_", False) else None
            columns.append(ColumnCells(name, "categories", tuple(range(start, start + layout[0][0])), (),
                                       counts / counts.sum(), missing, marginal_sd))
        elif layout == [(1, "tanh", False)]:
            columns.append(ColumnCells(name, "bins", (start,), thresholds, np.full(bins, 1.0 / bins)))
        elif layout == [(1, "tanh", False), (2, "softmax", False)] and isinstance(transformer, MissingIndicator):
            missing = float(transformer.missing_rate_)
            marginal = np.append(np.full(bins, (1.0 - missing) / bins), missing)
            columns.append(ColumnCells(name, "bins", (start, start + 1, start + 2), thresholds, marginal, bins, marginal_sd))
    return columns


@dataclass
class PairRelease:
    """The released two-way tables (probabilities) of the kept pairs, and what was done, for the record."""

    columns: list[ColumnCells]
    pairs: list[tuple[int, int]]
    tables: list[np.ndarray]
    record: dict[str, Any] = field(default_factory=dict)
    #: The columns of the missingness patterns (indices into ``columns``), the kept patterns
    #: (one row of 0/1 per pattern, 1 = missing) and their released shares (summing to 1 at most:
    #: the rest belongs to the patterns not kept).
    pattern_columns: list[int] = field(default_factory=list)
    patterns: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    pattern_shares: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: The noise standard deviation of each released table cell, as a share of the rows.
    cell_sd: float = 0.0

    def one_way(self, index: int) -> np.ndarray:
        """Column ``index``'s cell probabilities: its released tables' margins and its released
        marginal, each weighted by the inverse of its noise variance; the marginal alone without tables.

        A table's margin sums as many noisy cells as the other column has, so at pbc's sizes the
        released marginal measures a category's share twice as precisely as one table does; using
        the tables alone threw that away. A numeric column's marginal is only its missing share: its
        bins hold 1/bins of the released CDF by construction, while the tables measure the real
        shares in them (point masses, noise); training toward both would ask for the impossible.
        """
        column = self.columns[index]
        margins, sizes = [], []
        for (a, b), table in zip(self.pairs, self.tables):
            if index in (a, b):
                margins.append(table.sum(axis=1 if a == index else 0))
                sizes.append(self.columns[b if a == index else a].size)
        if not margins:
            return column.marginal
        weights = 1.0 / np.asarray(sizes, dtype=float)  # a margin's variance: other column's cells × cell_sd²
        tables = np.average(margins, axis=0, weights=weights)
        if not (self.cell_sd > 0 and math.isfinite(column.marginal_sd)):
            return tables
        precision_tables = weights.sum() / self.cell_sd**2
        precision_marginal = 1.0 / max(column.marginal_sd, 1e-12) ** 2
        share = precision_marginal / (precision_marginal + precision_tables)
        if column.kind == "categories":
            return (1.0 - share) * tables + share * column.marginal
        if column.missing is None:
            return tables
        missing = (1.0 - share) * tables[column.missing] + share * column.marginal[column.missing]
        present = np.delete(tables, column.missing)
        present = present / present.sum() * (1.0 - missing) if present.sum() > 0 else np.delete(column.marginal, column.missing)
        return np.insert(present, column.missing, missing)

    def implied_tables(self) -> tuple[list[tuple[int, int]], list[np.ndarray]]:
        """Every pair's two-way table under the forest model the released tables define.

        A released pair keeps its table. Any other pair gets what the forest implies: the product
        of conditional tables along the path between the two columns, or the product of their
        margins when no path joins them (the maximum-entropy answer, as Chow-Liu and MST's model
        give). Without these targets the generator is free to invent dependence between pairs
        nothing was released about, and did: at ε = 3 its Pair Trends fell below an independent
        sampler's. Post-processing of released tables: costs no ε.
        """
        size = len(self.columns)
        margins = [self.one_way(i) / max(self.one_way(i).sum(), 1e-12) for i in range(size)]
        # Each released table raked onto its columns' one-way shares, which pool more measurements
        # than its own margins: the targets then agree with each other (what the generator is
        # trained toward at once), and the table keeps its odds ratios, the dependence it measured.
        raked = [_rake(table, margins[a], margins[b]) for (a, b), table in zip(self.pairs, self.tables)]
        steps: dict[int, list[tuple[int, np.ndarray]]] = {i: [] for i in range(size)}
        for (a, b), table in zip(self.pairs, raked):
            steps[a].append((b, _conditional(table, margins[b])))
            steps[b].append((a, _conditional(table.T, margins[a])))
        # joint[s][v]: the forest's table of (s, v), by walking out from s.
        joint: list[dict[int, np.ndarray]] = []
        for source in range(size):
            reached = {source: np.diag(margins[source])}
            frontier = [source]
            while frontier:
                node = frontier.pop()
                for neighbour, conditional in steps[node]:
                    if neighbour not in reached:
                        reached[neighbour] = reached[node] @ conditional
                        frontier.append(neighbour)
            joint.append(reached)
        released = dict(zip(self.pairs, raked))
        pairs, tables = [], []
        for a, b in itertools.combinations(range(size), 2):
            if (a, b) in released:
                table = released[(a, b)]
            elif b in joint[a]:
                # Walking from either end gives slightly different tables where noisy margins disagree.
                table = (joint[a][b] + joint[b][a].T) / 2
            else:
                table = np.outer(margins[a], margins[b])
            pairs.append((a, b))
            tables.append(table)
        return pairs, tables


def pair_rounds(metadata: Metadata) -> int:
    """Gaussian rounds the pair release takes: 2 when two or more columns can have cells, else 0."""
    return 2 if sum(spec.get("sdtype") in RELEASED_SDTYPES for spec in metadata.columns.values()) >= 2 else 0


def pair_bins(n_rows: int) -> int:
    """Bins per numeric column: 4 for a few hundred rows, up to 8 for tens of thousands."""
    return int(np.clip(round(np.sqrt(n_rows) / 10), 4, 8))


def selection_epsilon(noise: float, selections: int) -> float:
    """ε of each of ``selections`` exponential-mechanism choices that together cost one Gaussian round.

    An ε₀ exponential mechanism is ε₀²/8-zCDP (bounded range; Cesar & Rogers 2021), a Gaussian round
    with noise multiplier σ is 1/(2σ²)-zCDP, so ``selections`` choices at ε₀ = 2 / (σ √selections)
    have exactly that round's Rényi curve: the RDP accountant composes them as the round.
    """
    return 2.0 / (noise * np.sqrt(max(selections, 1)))


def release_pairs(encoded: np.ndarray, columns: list[ColumnCells], noise: float, *, rows: float,
                  private: PrivateRandom | None = None) -> PairRelease:
    """Rounds 3 and 4 at Gaussian noise multiplier ``noise``; ``rows`` is the released row count."""
    rng = private or PrivateRandom()
    codes = [column.codes(encoded) for column in columns]
    candidates = list(itertools.combinations(range(len(columns)), 2))
    record: dict[str, Any] = {"noise_multiplier": noise, "pairs scored": len(candidates),
                              "selection": "exponential mechanism, one pair at a time over a spanning tree"}
    if not candidates:
        return PairRelease(columns, [], [], record=record | {"pairs released": []})
    counts = {pair: _counts(codes, columns, pair) for pair in candidates}
    epsilon = selection_epsilon(noise, len(columns) - 1)
    utility = np.array([_dependence(counts[pair], columns, pair, rows) for pair in candidates])
    kept = _select_tree(utility, candidates, len(columns), epsilon, rng)
    # Round 4: a row adds one to one cell of every kept pair's table and to one missingness
    # pattern: sensitivity √(pairs kept + 1).
    gaps = _pattern_columns(columns)
    sigma_table = noise * np.sqrt(max(len(kept) + (1 if gaps else 0), 1))
    tables = []
    for pair in kept:
        table = np.clip(counts[pair] + rng.normal(0.0, sigma_table, counts[pair].shape), 0.0, None)
        tables.append(table / table.sum() if table.sum() > 0 else np.outer(columns[pair[0]].marginal, columns[pair[1]].marginal))
    patterns, shares = _release_patterns(codes, columns, gaps, sigma_table, rows, rng)
    record |= {"epsilon_per_selection": float(epsilon), "noise_std_per_count": float(sigma_table),
               "pairs released": [[columns[a].name, columns[b].name] for a, b in kept],
               "missingness patterns": {"columns": [columns[i].name for i in gaps], "patterns kept": len(shares)}}
    return PairRelease(columns, kept, tables, record=record, pattern_columns=gaps if len(shares) else [],
                       patterns=patterns, pattern_shares=shares, cell_sd=float(sigma_table / max(rows, 1.0)))


#: Missingness patterns are released over at most this many columns (4,096 patterns).
_MAX_PATTERN_COLUMNS = 12
#: Chance that noise alone lifts any unoccupied pattern over the keeping threshold.
_PATTERN_FALSE_KEEP = 0.05


def _pattern_columns(columns: list[ColumnCells]) -> list[int]:
    """The columns with a missing cell, most gaps first (by released share: public), at most 12; none if only one."""
    gaps = sorted((i for i, c in enumerate(columns) if c.missing is not None), key=lambda i: -columns[i].marginal[columns[i].missing])
    return gaps[:_MAX_PATTERN_COLUMNS] if len(gaps) >= 2 else []


def _release_patterns(codes: list[np.ndarray], columns: list[ColumnCells], gaps: list[int], sigma: float,
                      rows: float, rng: PrivateRandom) -> tuple[np.ndarray, np.ndarray]:
    """Noisy counts of every missingness pattern over ``gaps`` (a row adds one to its own pattern); the
    patterns that clear the threshold, as 0/1 rows, and their shares of the released row count
    ``rows`` (what they leave is the share of all other patterns together: a pattern below the
    threshold is not absent, only not measured)."""
    if not gaps:
        return np.zeros((0, 0)), np.zeros(0)
    bits = np.stack([codes[i] == columns[i].missing for i in gaps], axis=1).astype(np.int64)
    every = 2 ** len(gaps)
    noisy = np.bincount(bits @ (2 ** np.arange(len(gaps))), minlength=every) + rng.normal(0.0, sigma, every)
    threshold = sigma * float(ndtri(1.0 - _PATTERN_FALSE_KEEP / every))
    kept = np.flatnonzero(noisy > threshold)
    if kept.size == 0:
        return np.zeros((0, len(gaps))), np.zeros(0)
    patterns = (kept[:, None] >> np.arange(len(gaps))[None, :]) & 1
    return patterns.astype(np.float64), noisy[kept] / max(rows, float(noisy[kept].sum()))


def _dependence(counts: np.ndarray, columns: list[ColumnCells], pair: tuple[int, int], n_rows: float) -> float:
    """How far a pair's counts are from independence, in rows, less what chance alone gives: the utility of round 3.

    Each side is the L1 distance between the counts and independence built from that column's real
    margin (the row or column sums of ``counts``) and the other column's released marginal; the
    smaller side is kept. A column whose real cells misfit its released marginal (pbc at ε = 3:
    albumin's four cells off by 0.77 in L1, 246 rows) would otherwise look dependent on every other
    column; its own real margin absorbs the misfit. Sensitivity 2: one added row moves one count by
    one and the expectations of one row (or column) of cells by one in L1 in all. From that distance
    the expected size under independence and ``_KEEP_SIGMAS`` of its spread are subtracted (released
    values only), so a utility below 0 loses to the "stop" choice.
    """
    a, b = pair
    by_rows = np.abs(counts - np.outer(counts.sum(axis=1), columns[b].marginal)).sum()
    by_columns = np.abs(counts - np.outer(columns[a].marginal, counts.sum(axis=0))).sum()
    share = np.outer(columns[a].marginal, columns[b].marginal)
    null = np.sum(np.sqrt(2.0 * n_rows * share * (1.0 - share) / np.pi))
    return float(min(by_rows, by_columns) - null - _KEEP_SIGMAS * np.sqrt(_null_variance(columns, pair, n_rows)))


#: Sensitivity of :func:`_dependence`.
_DEPENDENCE_SENSITIVITY = 2.0


def _select_tree(utility: np.ndarray, pairs: list[tuple[int, int]], n_columns: int, epsilon: float,
                 rng: PrivateRandom) -> list[tuple[int, int]]:
    """Up to ``n_columns - 1`` pairs, each chosen by the exponential mechanism among the pairs that join
    two parts of the forest built so far, or "stop" (utility 0), as MST does (McKenna et al. 2021)."""
    parent = list(range(n_columns))

    def root(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    kept: list[tuple[int, int]] = []
    for _ in range(n_columns - 1):
        joining = [index for index, (a, b) in enumerate(pairs) if root(a) != root(b)]
        choice = rng.exponential(np.append(utility[joining], 0.0), epsilon, _DEPENDENCE_SENSITIVITY)
        if choice == len(joining):
            break
        a, b = pairs[joining[choice]]
        parent[root(a)] = root(b)
        kept.append((a, b))
    return kept


def _rake(table: np.ndarray, rows: np.ndarray, columns: np.ndarray, sweeps: int = 50) -> np.ndarray:
    """``table`` scaled row- and column-wise (iterative proportional fitting) toward margins ``rows``
    and ``columns``; a row or column of zeros stays zero."""
    raked = table / max(table.sum(), 1e-12)
    for _ in range(sweeps):
        totals = raked.sum(axis=1)
        raked = raked * np.divide(rows, totals, out=np.zeros_like(rows), where=totals > 0)[:, None]
        totals = raked.sum(axis=0)
        raked = raked * np.divide(columns, totals, out=np.zeros_like(columns), where=totals > 0)[None, :]
    return raked / max(raked.sum(), 1e-12)


def _conditional(table: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Rows of ``table`` scaled to sum to one (P(column | row)); an empty row takes ``fallback``."""
    totals = table.sum(axis=1, keepdims=True)
    return np.where(totals > 0, table / np.where(totals > 0, totals, 1.0), fallback[None, :])


def _counts(codes: list[np.ndarray], columns: list[ColumnCells], pair: tuple[int, int]) -> np.ndarray:
    a, b = pair
    flat = codes[a] * columns[b].size + codes[b]
    return np.bincount(flat, minlength=columns[a].size * columns[b].size).reshape(columns[a].size, columns[b].size).astype(float)


def _null_variance(columns: list[ColumnCells], pair: tuple[int, int], n_rows: float) -> float:
    """Variance of the L1 distance when the pair is independent (each cell a |normal|: σ²(1 - 2/π))."""
    share = np.outer(columns[pair[0]].marginal, columns[pair[1]].marginal)
    return float(np.sum(n_rows * share * (1.0 - share) * (1.0 - 2.0 / np.pi)))


