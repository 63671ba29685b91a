"""The shapes every evaluation section returns, so the report can render any of them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Score:
    """One number of the report, with what it should be compared against.

    ``reference`` is the same metric computed for the real holdout against the training data
    (what fresh real patients score), when that comparison makes sense. ``low``/``high`` bound a
    confidence interval when the metric has one. ``ideal`` says which value is best (e.g. "1",
    "0.5", "0"); ``method`` names the implementation and version (e.g. "sdmetrics 0.32.0
    QualityReport").

    A score that carries a statistical test against a null (what fresh real rows, never trained
    on, would score) also holds ``observed`` (the tested statistic on the synthetic rows),
    ``null`` (its value under the null), ``p_value`` (one-sided: the synthetic rows reveal more
    than the null) and ``test`` (how the null and p-value were computed). ``evidence`` is empty
    when the test had enough data, else the reason it did not (the gate is then inconclusive).
    """

    section: str
    metric: str
    value: float
    low: float | None = None
    high: float | None = None
    reference: float | None = None
    ideal: str = ""
    method: str = ""
    note: str = ""
    observed: float | None = None
    null: float | None = None
    p_value: float | None = None
    test: str = ""
    evidence: str = ""


@dataclass
class SectionResult:
    """A section of the report: headline scores, drill-down tables and plot-ready data.

    ``tables`` hold aggregates only (per column, per pair); never real records. ``figures`` hold
    plot-ready arrays or frames (e.g. distances) keyed by a short name.
    """

    scores: list[Score]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
