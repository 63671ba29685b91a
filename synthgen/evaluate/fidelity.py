"""Fidelity scores computed by sdmetrics (pinned in pyproject), not re-implemented here."""
from __future__ import annotations

import math

import pandas as pd
from sdmetrics.reports.single_table import QualityReport

from synthgen.metadata import Metadata


def quality_scores(real: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata, all_pairs: bool = True) -> dict[str, float]:
    """sdmetrics QualityReport's Column Shapes and Column Pair Trends.

    sdmetrics 0.32 scores only pairs whose real data are strongly related (|Pearson| > 0.5 or
    Cramér's V > 0.3); with ``all_pairs`` the score over every pair is added as well.
    """
    scores = _properties(real, synthetic, metadata, thresholds=None)
    if all_pairs:
        scores["Column Pair Trends (all pairs)"] = _properties(real, synthetic, metadata, thresholds=0.0)["Column Pair Trends"]
    return scores


def _properties(real: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata, thresholds: float | None) -> dict[str, float]:
    report = QualityReport()
    if thresholds is not None:
        report.real_correlation_threshold = thresholds
        report.real_association_threshold = thresholds
    report.generate(real, synthetic, metadata.to_dict(), verbose=False)
    properties = report.get_properties()
    return {row.Property: (float(row.Score) if not math.isnan(row.Score) else float("nan")) for row in properties.itertuples()}
