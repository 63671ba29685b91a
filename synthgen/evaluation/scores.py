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
