"""Rules that hold on every training row, kept exact when decoding: categories that are step
functions of numbers (:class:`CategoryRule`), and gaps that a category decides (:class:`GapRule`).

A grouped score (medicaldata-style "age group" from age, survival::flchain's ``flc.grp``, the decile
of ``kappa + lambda``) is a deterministic function of other columns. Sampled by the generator as a
column of its own it disagrees with its sources on most rows (70% of flchain's synthetic rows), and
a real-vs-synthetic detector reads that first. So when, on every training row where both are known,
a category column is a monotone step function of one numeric column or of the sum of two, the fit
records the cut points and decoding derives the category from the generated numbers.

Likewise a column that is missing exactly for some levels of a category ("not applicable": the
cause of death of patients alive at the end of follow-up, the diabetes type of patients without
diabetes, the anaesthetic of the control arm) is decoded missing exactly there.
"""
from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

#: Rows read when looking for rules (evenly spaced over a bigger table): bounded memory and time.
RULE_ROWS = 100_000
#: Sums of two numeric columns are tried only up to this many numeric columns (pairs grow as the square).
MAX_PAIR_SOURCES = 20
#: Category columns with more levels than this are not tried (a step function needs a level per interval).
MAX_RULE_LEVELS = 64
#: At most this many (source, category column) checks, each a pass over the rows: a table wider than
#: that (hundreds of numeric and category columns) is not searched, and the fit says so.
MAX_RULE_CHECKS = 100_000


@dataclass(frozen=True)
class CategoryRule:
    """``column`` = ``levels[i]`` where the sum of ``sources`` lies in the i-th interval cut by ``thresholds``."""

    column: str
    sources: tuple[str, ...]
    thresholds: tuple[float, ...]
    levels: tuple[Any, ...]

    def level_index(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Rows of ``frame`` where every source is known, and the level index the rule gives each."""
        total = sum(pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
                    for name in self.sources)
        known = np.isfinite(total)
        return known, np.searchsorted(np.asarray(self.thresholds), total[known], side="right")

    def apply(self, frame: pd.DataFrame) -> None:
        """Set ``column`` from its sources, in place, wherever the sources are known and the column is not missing."""
        known, index = self.level_index(frame)
        rows = known & frame[self.column].notna().to_numpy()
        if rows.any():
            levels = np.empty(len(self.levels), dtype=object)
            levels[:] = self.levels
            column = frame[self.column]
            values = column.to_numpy(dtype=object, copy=True)
            values[rows] = levels[index[rows[known]]]
            frame[self.column] = pd.Series(values, index=frame.index).astype(column.dtype)  # the decoded dtype stays

    def to_state(self) -> dict[str, Any]:
        return {"column": self.column, "sources": list(self.sources), "thresholds": list(self.thresholds),
                "levels": list(self.levels)}

    @classmethod
    def from_state(cls, state: Any, numeric: set[str], levels_of: dict[str, list[Any]]) -> CategoryRule:
        """A rule read from a model file; ``ValueError`` unless it names known columns and valid cut points."""
        if not isinstance(state, dict) or set(state) != {"column", "sources", "thresholds", "levels"}:
            raise ValueError("a derived-category rule is malformed")
        column, sources, thresholds, levels = state["column"], state["sources"], state["thresholds"], state["levels"]
        if (column not in levels_of or not isinstance(sources, list) or not 1 <= len(sources) <= 2
                or not all(isinstance(name, str) and name in numeric for name in sources)
                or not isinstance(thresholds, list) or not isinstance(levels, list)
                or len(levels) != len(thresholds) + 1 or len(levels) < 2
                or not all(isinstance(t, (int, float)) and not isinstance(t, bool) and np.isfinite(t) for t in thresholds)
                or any(b <= a for a, b in itertools.pairwise(thresholds))
                or not all(level in levels_of[column] for level in levels)):
            raise ValueError(f"the derived-category rule for {column!r} is malformed")
        return cls(column, tuple(sources), tuple(float(t) for t in thresholds), tuple(levels))


@dataclass(frozen=True)
class GapRule:
    """``missing`` (with its set of columns missing together) is missing exactly where ``when`` is one of ``levels``."""

    missing: str
    when: str
    levels: tuple[Any, ...]

    def to_state(self) -> dict[str, Any]:
        return {"missing": self.missing, "when": self.when, "levels": list(self.levels)}

    @classmethod
    def from_state(cls, state: Any, can_miss: set[str], levels_of: dict[str, list[Any]]) -> GapRule:
        """A rule read from a model file; ``ValueError`` unless its columns can take it and its levels exist."""
        if not isinstance(state, dict) or set(state) != {"missing", "when", "levels"}:
            raise ValueError("a rule for gaps is malformed")
        missing, when, levels = state["missing"], state["when"], state["levels"]
        if (missing not in can_miss or when not in levels_of or when == missing or not isinstance(levels, list)
                or not levels or not all(level in levels_of[when] for level in levels)
                or len(levels) >= len(levels_of[when])):
            raise ValueError(f"the rule for the gaps of {missing!r} is malformed")
        return cls(missing, when, tuple(levels))


class RuleFinder:
    """Collects the columns of a fit (a bounded, evenly spaced set of rows) and finds the rules among them."""

    def __init__(self, n_rows: int) -> None:
        self.rows = None if n_rows <= RULE_ROWS else np.linspace(0, n_rows - 1, RULE_ROWS).round().astype(np.int64)
        self.numeric: dict[str, np.ndarray] = {}
        self.discrete: dict[str, pd.Series] = {}

    def _rows(self, column: pd.Series) -> pd.Series:
        return column if self.rows is None else column.iloc[self.rows]

    def subset(self, values: np.ndarray) -> np.ndarray:
        """``values`` (one per row of the table) at the rows this finder reads."""
        return values if self.rows is None else values[self.rows]

    def add_numeric(self, name: str, column: pd.Series) -> None:
        values = pd.to_numeric(self._rows(column), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        if np.isfinite(values).any():
            self.numeric[name] = values

    def add_discrete(self, name: str, column: pd.Series) -> None:
        self.discrete[name] = self._rows(column).reset_index(drop=True)

    def find(self, least: int, generatable: dict[str, list[Any]]) -> list[CategoryRule]:
        """Rules holding on every collected row where both sides are known.

        ``least``: each level needs that many such rows (a step seen in a few patients is a
        coincidence, and its cut points would sit next to their values). ``generatable``: the levels
        each category column can decode to; a rule may only give those. A column gets at most one
        rule: a single source before a sum, in metadata order.
        """
        singles = [(name,) for name in self.numeric]
        pairs = list(itertools.combinations(self.numeric, 2)) if len(self.numeric) <= MAX_PAIR_SOURCES else []
        rules: list[CategoryRule] = []
        codes = {}
        for name, column in self.discrete.items():
            code, uniques = pd.factorize(column, use_na_sentinel=True)
            if 2 <= len(uniques) <= MAX_RULE_LEVELS and name in generatable:
                codes[name] = (code, list(uniques))
        found: set[str] = set()
        if len(singles) * len(codes) > MAX_RULE_CHECKS:
            logger.info("%d numeric and %d category columns: too many to look for derived categories", len(singles), len(codes))
            return []
        if (len(singles) + len(pairs)) * len(codes) > MAX_RULE_CHECKS:
            pairs = []
        for sources in [*singles, *pairs]:
            total = sum(self.numeric[name] for name in sources)
            order = np.argsort(total, kind="stable")
            order = order[np.isfinite(total[order])]
            sorted_total = total[order]
            for name, (code, uniques) in codes.items():
                if name in found:
                    continue
                rule = _step_rule(name, sources, code[order], sorted_total, uniques, least, generatable[name])
                if rule is not None:
                    rules.append(rule)
                    found.add(name)
        for rule in rules:
            logger.info("column %r is a step function of %s on every training row: it is derived from %s when sampling",
                        rule.column, " + ".join(rule.sources), "it" if len(rule.sources) == 1 else "them")
        return rules

    def find_gap_rules(self, gapped: list[tuple[str, np.ndarray]], complete: dict[str, list[Any]]) -> list[GapRule]:
        """For each column with gaps (``gapped``: the first column of each set missing together, with
        its gaps at the rows read, see :meth:`subset`), the first category column without gaps
        (``complete``: its decodable levels) whose levels on the missing rows never occur on the
        other rows; the caller has checked that enough rows miss the column and enough do not."""
        rules = []
        for name, missing in gapped:
            for when, levels in complete.items():
                values = self.discrete[when].to_numpy(dtype=object)
                absent = pd.unique(values[missing])
                if pd.Series(values[~missing]).isin(absent).any():
                    continue
                chosen = [value.item() if isinstance(value, np.generic) else value for value in absent]
                if all(level in levels for level in chosen):
                    rules.append(GapRule(name, when, tuple(chosen)))
                    break
        for rule in rules:
            logger.info("column %r is missing exactly for some levels of %r in training: sampled so", rule.missing, rule.when)
        return rules


def _step_rule(name: str, sources: tuple[str, ...], code: np.ndarray, total: np.ndarray, uniques: list[Any],
               least: int, generatable: list[Any]) -> CategoryRule | None:
    known = code >= 0
    code, total = code[known], total[known]
    if len(code) < 2 * least:
        return None
    change = np.flatnonzero(code[1:] != code[:-1])
    levels = code[np.r_[0, change + 1]]
    # one run per level, strictly increasing across each step (a tie between two levels is no function)
    if len(levels) != len(np.unique(code)) or len(levels) < 2 or not (total[change + 1] > total[change]).all():
        return None
    if (np.bincount(code)[levels] < least).any():
        return None
    values = [uniques[i] for i in levels]
    values = [value.item() if isinstance(value, np.generic) else value for value in values]
    if not all(value in generatable for value in values):
        return None
    thresholds = tuple(float((total[i] + total[i + 1]) / 2) for i in change)
    return CategoryRule(name, tuple(sources), thresholds, tuple(values))
