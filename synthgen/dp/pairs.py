"""Differentially private two-way structure: which column pairs depend on each other, and how.

Under DP at a few units of ε, DP-SGD on a small table teaches the generator no usable dependency
(benchmarks/README.md: the DP models' pair scores sat below an independent sampler's). So the
dependencies are released directly, after the column statistics, in two more Gaussian rounds:

3. a noisy dependence score for every pair of columns: the L1 distance between the pair's counts
   over its cells and the counts independent columns with the released marginals and the released
   row count would give, less that distance's expected size under independence. Sensitivity: the
   expected counts are released values, so one added (or removed) row moves one count of each pair
   by one and each score by at most one; the round's L2 sensitivity is √(pairs). (Expected counts
   from the true n would move too, by one in total over the cells: sensitivity 2 per score.)
4. noisy counts over the cells of the pairs on a maximum spanning forest of those scores, among
   the pairs whose score clears twice its spread (DP noise and sampling spread under independence).
   Before that, an additive effect per column is removed from the noisy scores: a column whose
   real cells misfit its released marginal would otherwise look dependent on every other column.
   Both are post-processing. Sensitivity √(pairs kept).

A column's cells come from its released statistics alone: equal-probability bins of a numeric
column's released CDF (which its quantile encoding maps to fixed thresholds) plus a missing cell,
or a categorical column's released levels. The generator is then trained toward the released one-
and two-way tables (``MarginalLoss``), which is post-processing of DP outputs (the idea of GEM:
Liu, Vietri and Wu, 2021, "Iterative methods for private synthetic data").
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from synthgen.data.missing import MissingIndicator
from synthgen.data.quantile import QuantileTransformer
from synthgen.data.table import TableTransformer
from synthgen.dp.entropy import PrivateRandom
from synthgen.dp.release import RELEASED_SDTYPES
from synthgen.metadata import Metadata

#: A pair is kept only when its noisy score clears this many standard deviations of its spread.
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


def column_cells(table: TableTransformer, category_counts: dict[str, np.ndarray], bins: int) -> list[ColumnCells]:
    """Cells of every column whose encoding is a quantile score (± missing) or a one-hot over categories.

    Under DP these are all numeric, date, categorical and boolean columns; identifiers have none.
    """
    columns = []
    thresholds = tuple(float(t) for t in QuantileTransformer.encoded_quantiles(np.arange(1, bins) / bins))
    for name, transformer in table.column_transformers_.items():
        start = table.slices_[name].start
        layout = [(span.width, span.activation, span.conditional) for span in transformer.spans]
        if layout and layout[0][2] and len(layout) == 1:
            counts = np.asarray(category_counts[name], dtype=float)
            columns.append(ColumnCells(name, "categories", tuple(range(start, start + layout[0][0])), (),
                                       counts / counts.sum()))
        elif layout == [(1, "tanh", False)]:
            columns.append(ColumnCells(name, "bins", (start,), thresholds, np.full(bins, 1.0 / bins)))
        elif layout == [(1, "tanh", False), (2, "softmax", False)] and isinstance(transformer, MissingIndicator):
            missing = float(transformer.missing_rate_)
            marginal = np.append(np.full(bins, (1.0 - missing) / bins), missing)
            columns.append(ColumnCells(name, "bins", (start, start + 1, start + 2), thresholds, marginal))
    return columns


@dataclass
class PairRelease:
    """The released two-way tables (probabilities) of the kept pairs, and what was done, for the record."""

    columns: list[ColumnCells]
    pairs: list[tuple[int, int]]
    tables: list[np.ndarray]
    #: Round 3's output: the noisy dependence score of every candidate pair (kept out of the model file).
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    record: dict[str, Any] = field(default_factory=dict)

    def one_way(self, index: int) -> np.ndarray:
        """Column ``index``'s cell probabilities: the mean margin of its released tables, else its released marginal.

        A table's margin measures the real cell shares, which for a numeric column can differ from
        the 1/bins its released CDF implies (point masses of discrete values, noise); training toward
        both at once would ask for the impossible.
        """
        margins = [table.sum(axis=1 if a == index else 0) for (a, b), table in zip(self.pairs, self.tables) if index in (a, b)]
        return np.mean(margins, axis=0) if margins else self.columns[index].marginal

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
        steps: dict[int, list[tuple[int, np.ndarray]]] = {i: [] for i in range(size)}
        for (a, b), table in zip(self.pairs, self.tables):
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
        released = dict(zip(self.pairs, self.tables))
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


def release_pairs(encoded: np.ndarray, columns: list[ColumnCells], noise: float, *, rows: float,
                  private: PrivateRandom | None = None) -> PairRelease:
    """Rounds 3 and 4 with Gaussian noise multiplier ``noise``; ``rows`` is the released row count."""
    rng = private or PrivateRandom()
    n_rows = rows
    codes = [column.codes(encoded) for column in columns]
    candidates = list(itertools.combinations(range(len(columns)), 2))
    record: dict[str, Any] = {"noise_multiplier": noise, "pairs scored": len(candidates)}
    if not candidates:
        return PairRelease(columns, [], [], record=record | {"pairs released": []})
    counts = {pair: _counts(codes, columns, pair) for pair in candidates}
    sigma_score = noise * np.sqrt(len(candidates))
    scores = np.array([_excess(counts[pair], columns, pair, n_rows) for pair in candidates])
    noisy = scores + rng.normal(0.0, sigma_score, len(candidates))
    dependence = _without_column_effects(noisy, candidates, len(columns))
    # A pair is kept when its dependence clears both the DP noise and the score's own spread under independence.
    spread = np.sqrt(sigma_score**2 + np.array([_null_variance(columns, pair, n_rows) for pair in candidates]))
    kept = _spanning_forest(dependence, dependence > _KEEP_SIGMAS * spread, candidates, len(columns))
    # Round 4: a row adds one to one cell of every kept pair's table: sensitivity √(pairs kept).
    sigma_table = noise * np.sqrt(max(len(kept), 1))
    tables = []
    for pair in kept:
        table = np.clip(counts[pair] + rng.normal(0.0, sigma_table, counts[pair].shape), 0.0, None)
        tables.append(table / table.sum() if table.sum() > 0 else np.outer(columns[pair[0]].marginal, columns[pair[1]].marginal))
    record |= {"noise_std_per_score": float(sigma_score), "noise_std_per_count": float(sigma_table),
               "pairs released": [[columns[a].name, columns[b].name] for a, b in kept]}
    return PairRelease(columns, kept, tables, noisy, record=record)


def _conditional(table: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Rows of ``table`` scaled to sum to one (P(column | row)); an empty row takes ``fallback``."""
    totals = table.sum(axis=1, keepdims=True)
    return np.where(totals > 0, table / np.where(totals > 0, totals, 1.0), fallback[None, :])


def _counts(codes: list[np.ndarray], columns: list[ColumnCells], pair: tuple[int, int]) -> np.ndarray:
    a, b = pair
    flat = codes[a] * columns[b].size + codes[b]
    return np.bincount(flat, minlength=columns[a].size * columns[b].size).reshape(columns[a].size, columns[b].size).astype(float)


def _excess(counts: np.ndarray, columns: list[ColumnCells], pair: tuple[int, int], n_rows: float) -> float:
    """L1 distance from independence (released marginals, public n), less its expectation under independence."""
    expected = n_rows * np.outer(columns[pair[0]].marginal, columns[pair[1]].marginal)
    share = expected / max(n_rows, 1)
    null = np.sum(np.sqrt(2.0 * n_rows * share * (1.0 - share) / np.pi))
    return float(np.abs(counts - expected).sum() - null)


def _null_variance(columns: list[ColumnCells], pair: tuple[int, int], n_rows: float) -> float:
    """Variance of the L1 distance when the pair is independent (each cell a |normal|: σ²(1 - 2/π))."""
    share = np.outer(columns[pair[0]].marginal, columns[pair[1]].marginal)
    return float(np.sum(n_rows * share * (1.0 - share) * (1.0 - 2.0 / np.pi)))


def _without_column_effects(scores: np.ndarray, pairs: list[tuple[int, int]], n_columns: int, rounds: int = 20) -> np.ndarray:
    """Scores less an additive effect per column, fitted robustly (median polish) to the noisy scores.

    A column whose real cell shares differ from its released marginal (noise in its histogram,
    values clipped onto its bounds) adds that misfit to the score of every pair it is in, which
    would look like dependence on everything. Post-processing of the noisy scores: costs no ε.
    """
    if n_columns < 3:
        return scores
    matrix = np.full((n_columns, n_columns), np.nan)
    for (a, b), score in zip(pairs, scores):
        matrix[a, b] = matrix[b, a] = score
    effect = np.zeros(n_columns)
    for _ in range(rounds):
        for column in range(n_columns):
            effect[column] = np.nanmedian(matrix[column] - effect)
    return np.array([score - effect[a] - effect[b] for (a, b), score in zip(pairs, scores)])


def _spanning_forest(scores: np.ndarray, eligible: np.ndarray, pairs: list[tuple[int, int]],
                     n_columns: int) -> list[tuple[int, int]]:
    """Kruskal's maximum spanning forest over the ``eligible`` pairs, by score."""
    parent = list(range(n_columns))

    def root(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    kept = []
    for index in np.argsort(-scores):
        if not eligible[index]:
            continue
        a, b = pairs[index]
        if root(a) != root(b):
            parent[root(a)] = root(b)
            kept.append((a, b))
    return kept
