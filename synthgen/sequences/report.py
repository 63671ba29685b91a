"""The evaluation report of patient histories: sequence fidelity and patient-level privacy, gated.

The same :class:`synthgen.evaluation.report.Report` as for tables (HTML, JSON, summary, gates and
exit codes), with two sections: "sequences" (``sequence_fidelity``: lengths, static consistency,
lag-1 autocorrelation, per-patient aggregates, each next to what the training patients score
against the same holdout) and "privacy" (``patient_privacy``: DCR, membership inference and the
risks on one summary row per patient). The default privacy gates judge the second.
"""
from __future__ import annotations

from importlib.metadata import version
from typing import Any

import numpy as np
import pandas as pd

from synthgen.errors import InvalidDataError
from synthgen.evaluation.gates import DEFAULT_GATES, Gate
from synthgen.evaluation.report import Report
from synthgen.evaluation.scores import Score, SectionResult
from synthgen.sequences.evaluate import patient_privacy, sequence_fidelity

#: (measure key, metric name, ideal value) of the sequence section's headline scores.
_MEASURES = (
    ("length_ks", "Sequence length KS statistic", "0"),
    ("static_consistency", "Static consistency", "1"),
    ("lag1_max_gap", "Lag-1 autocorrelation, largest gap", "0"),
    ("aggregate_shapes", "Per-patient aggregates (Column Shapes)", "1"),
)


def evaluate_histories(train: pd.DataFrame, synthetic: pd.DataFrame, holdout: pd.DataFrame, *, entity_column: str,
                       sequence_index: str | None, static_columns: list[str], gates: list[Gate] | None = None,
                       seed: int = 0, sensitive: list[str] | None = None,
                       context: dict[str, Any] | None = None) -> Report:
    """Score ``synthetic`` patients against the ``holdout`` patients, with ``train`` as the reference."""
    for name, frame in (("training", train), ("synthetic", synthetic), ("holdout", holdout)):
        if not isinstance(frame, pd.DataFrame) or frame.empty:
            raise InvalidDataError(f"the {name} table is empty or not a DataFrame")
    measured = sequence_fidelity(synthetic, holdout, entity_column, sequence_index, static_columns, reference=train)
    scores = [Score("sequences", metric, float(measured["synthetic"][key]),
                    reference=float(measured["reference"][key]), ideal=ideal, method="synthgen.sequences.evaluate")
              for key, metric, ideal in _MEASURES]
    lag = pd.DataFrame({"holdout": measured["holdout"]["lag1"], "synthetic": measured["synthetic"]["lag1"],
                        "training patients": measured["reference"]["lag1"]})
    aggregates = pd.DataFrame({"synthetic": measured["synthetic"]["aggregate_scores"],
                               "training patients": measured["reference"]["aggregate_scores"]})
    sections = {
        "sequences": SectionResult(scores, tables={"lag-1 autocorrelation": lag.rename_axis("column").reset_index(),
                                                   "per-patient aggregates": aggregates.rename_axis("aggregate").reset_index()}),
        "privacy": patient_privacy(train, synthetic, holdout, entity_column, sequence_index, static_columns,
                                   rng=np.random.default_rng(seed), sensitive=sensitive),
    }
    about = {
        "patients": {"real (training)": int(train[entity_column].nunique()), "holdout": int(holdout[entity_column].nunique()),
                     "synthetic": int(synthetic[entity_column].nunique())},
        "privacy unit": f"one patient = one value of {entity_column!r} (all of a patient's rows, summarised in one row)",
        "evaluation seed": seed,
        "versions": {name: version(name) for name in ("synthgen", "sdmetrics", "scikit-learn", "pandas")},
        **(context or {}),
    }
    return Report(sections=sections, context=about, gates=list(DEFAULT_GATES if gates is None else gates))
