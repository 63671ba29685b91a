"""Sequence fidelity of a synthetic long table against real patients held out by patient.

Every measure is computed on patients, never on rows taken apart: the length of each patient's
sequence, the time between its consecutive visits, whether its static columns stay constant, how
a per-visit value follows its previous one (lag-1 autocorrelation of consecutive visits, pooled
over patients, and the transition table of (previous, current) values scored by sdmetrics'
ContingencySimilarity), and per-patient aggregates (first, last, mean, slope over the sequence
index) scored like sdmetrics' Column Shapes (KSComplement for numbers, TVComplement for
categories). ``reference`` (the training patients) gives each score's real-data value beside the
synthetic one. The report (``synthgen.sequences.report``) also runs the tabular fidelity section
(Column Shapes, Pair Trends, detection) on one summary row per patient (``patient_summaries``).

Privacy is judged on patients too (``patient_privacy``): each patient becomes one summary row
(static columns, number of visits, per-visit aggregates) and the tabular privacy section
(DCR, membership inference, anonymeter-style risks) runs on those rows, so a patient copied
whole is one close record, not many rows each diluted among the others.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from synthgen.errors import InvalidArgumentError, InvalidDataError
from synthgen.evaluation.fidelity import fidelity_section
from synthgen.evaluation.privacy import privacy_section
from synthgen.evaluation.scores import SectionResult
from synthgen.metadata import Metadata


def split_patients(frame: pd.DataFrame, entity_column: str, holdout: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows, holdout rows): a ``holdout`` share of *patients* kept out with all their rows."""
    if not 0.0 < holdout < 1.0:
        raise InvalidArgumentError(f"holdout must be a fraction between 0 and 1, got {holdout}")
    if entity_column not in frame.columns:
        raise InvalidDataError(f"the entity column {entity_column!r} is not a column of the table")
    entities = frame[entity_column].drop_duplicates().to_numpy()
    chosen = np.random.default_rng(seed).permutation(len(entities))[: round(holdout * len(entities))]
    held_out = frame[entity_column].isin(entities[chosen]).to_numpy()
    return frame[~held_out].reset_index(drop=True), frame[held_out].reset_index(drop=True)


def sequence_lengths(frame: pd.DataFrame, entity_column: str) -> np.ndarray:
    return frame.groupby(entity_column, sort=False).size().to_numpy()


def length_ks(real: pd.DataFrame, synthetic: pd.DataFrame, entity_column: str) -> float:
    """Kolmogorov-Smirnov statistic between the two sequence-length distributions (0 = identical)."""
    return float(ks_2samp(sequence_lengths(real, entity_column), sequence_lengths(synthetic, entity_column)).statistic)


def inter_visit_gaps(frame: pd.DataFrame, entity_column: str, sequence_index: str | None) -> np.ndarray:
    """The time from each visit to the patient's next one, pooled over patients, in the index's
    units (days for dates); empty without a sequence index."""
    if sequence_index is None:
        return np.zeros(0)
    ordered = _ordered(frame, entity_column, sequence_index)
    gaps = _as_numbers(ordered[sequence_index]).groupby(ordered[entity_column].to_numpy(), sort=False).diff()
    return gaps.dropna().to_numpy(dtype=float)


def gap_ks(real: pd.DataFrame, synthetic: pd.DataFrame, entity_column: str, sequence_index: str | None) -> float:
    """Kolmogorov-Smirnov statistic between the inter-visit gaps (NaN when the real patients have none;
    1, the worst, when only the synthetic ones have none)."""
    real_gaps = inter_visit_gaps(real, entity_column, sequence_index)
    synthetic_gaps = inter_visit_gaps(synthetic, entity_column, sequence_index)
    if not len(real_gaps):
        return float("nan")
    return float(ks_2samp(real_gaps, synthetic_gaps).statistic) if len(synthetic_gaps) else 1.0


def visit_transitions(frame: pd.DataFrame, entity_column: str, sequence_index: str | None, column: str) -> pd.DataFrame:
    """One row per pair of consecutive visits of a patient: the ``previous`` and the ``current`` value
    of ``column`` (missing values kept: a gap that follows a value is a transition too)."""
    ordered = _ordered(frame, entity_column, sequence_index)
    values = ordered[column]
    previous = values.groupby(ordered[entity_column].to_numpy(), sort=False).shift(1)
    later = ordered.groupby(entity_column, sort=False).cumcount().to_numpy() > 0
    return pd.DataFrame({"previous": previous.to_numpy()[later], "current": values.to_numpy()[later]})


def transition_similarity(real: pd.DataFrame, synthetic: pd.DataFrame, entity_column: str, sequence_index: str | None,
                          column: str) -> float:
    """sdmetrics' ContingencySimilarity (1 − total variation distance) between the real and the synthetic
    transition tables of ``column`` (:func:`visit_transitions`); numbers and dates are cut into
    sdmetrics' 10 equal-width bins over the real range, a gap is a value of its own. NaN when the
    real patients have no second visit; 0 when only the synthetic ones have none."""
    from sdmetrics.column_pairs import ContingencySimilarity

    real_pairs = visit_transitions(real, entity_column, sequence_index, column)
    synthetic_pairs = visit_transitions(synthetic, entity_column, sequence_index, column)
    if not len(real_pairs):
        return float("nan")
    if not len(synthetic_pairs):
        return 0.0
    numeric = _is_numeric(real[column]) or pd.api.types.is_datetime64_any_dtype(real[column].dtype)
    if numeric:
        real_pairs, synthetic_pairs = (pairs.apply(_as_numbers) for pairs in (real_pairs, synthetic_pairs))
    else:  # compared as text, a gap as a level of its own
        real_pairs, synthetic_pairs = (pairs.astype("string").fillna(_GAP) for pairs in (real_pairs, synthetic_pairs))
    return float(ContingencySimilarity.compute(real_pairs, synthetic_pairs,
                                               continuous_column_names=["previous", "current"] if numeric else None))


#: A categorical gap in a transition table (not a value any column can hold: it has a NUL).
_GAP = "\x00missing"


def _as_numbers(values: pd.Series) -> pd.Series:
    """Numbers as floats, dates as days since 1970 (gaps as NaN)."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        days = values.astype("datetime64[ns]").astype("int64") / 86_400e9
        return days.where(values.notna())
    return pd.to_numeric(values, errors="coerce").astype(float)


def static_consistency(frame: pd.DataFrame, entity_column: str, static_columns: list[str]) -> float:
    """Share of patients whose every static column holds one value (missing counts as a value)."""
    if not static_columns:
        return 1.0
    varies = frame.groupby(entity_column, sort=False)[static_columns].nunique(dropna=False).gt(1).any(axis=1)
    return float(1.0 - varies.mean())


def _ordered(frame: pd.DataFrame, entity_column: str, sequence_index: str | None) -> pd.DataFrame:
    keys = [entity_column] if sequence_index is None else [entity_column, sequence_index]
    return frame.sort_values(keys, kind="stable")


def lag1_autocorrelation(frame: pd.DataFrame, entity_column: str, sequence_index: str | None, column: str) -> float:
    """Pearson correlation of each visit's value with the previous visit's, over all consecutive pairs
    within patients (NaN when fewer than 3 pairs or no variation)."""
    ordered = _ordered(frame, entity_column, sequence_index)
    values = pd.to_numeric(ordered[column], errors="coerce")
    previous = values.groupby(ordered[entity_column], sort=False).shift(1)
    pairs = pd.DataFrame({"x": previous, "y": values}).dropna()
    if len(pairs) < 3 or pairs["x"].std() == 0 or pairs["y"].std() == 0:
        return float("nan")
    return float(np.corrcoef(pairs["x"], pairs["y"])[0, 1])


def patient_aggregates(frame: pd.DataFrame, entity_column: str, sequence_index: str | None,
                       columns: list[str]) -> pd.DataFrame:
    """One row per patient: first and last value of each per-visit column, and for numeric ones the mean
    and the least-squares slope over the sequence index (over the visit number without one)."""
    ordered = _ordered(frame, entity_column, sequence_index)
    groups = ordered.groupby(entity_column, sort=False)
    out: dict[str, Any] = {}
    if sequence_index is not None:
        time = _as_numbers(ordered[sequence_index])
    else:
        time = groups.cumcount().astype(float)
    for name in columns:
        out[f"{name}.first"] = groups[name].first()
        out[f"{name}.last"] = groups[name].last()
        if not _is_numeric(ordered[name]):
            continue
        values = pd.to_numeric(ordered[name], errors="coerce").astype(float)
        out[f"{name}.mean"] = values.groupby(ordered[entity_column], sort=False).mean()
        both = pd.DataFrame({"t": time.to_numpy(), "y": values.to_numpy(), "e": ordered[entity_column].to_numpy()}).dropna()
        t_mean = both.groupby("e")["t"].transform("mean")
        y_mean = both.groupby("e")["y"].transform("mean")
        both["txy"] = (both["t"] - t_mean) * (both["y"] - y_mean)
        both["txx"] = (both["t"] - t_mean) ** 2
        sums = both.groupby("e")[["txy", "txx"]].sum()
        out[f"{name}.slope"] = (sums["txy"] / sums["txx"].where(sums["txx"] > 0)).reindex(out[f"{name}.first"].index)
    return pd.DataFrame(out)


def _is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype)


def aggregate_shapes(real: pd.DataFrame, synthetic: pd.DataFrame) -> dict[str, float]:
    """Per aggregate column, sdmetrics' KSComplement (numbers) or TVComplement (categories), NaNs dropped."""
    from sdmetrics.single_column import KSComplement, TVComplement

    scores = {}
    for name in real.columns:
        a, b = real[name].dropna(), synthetic[name].dropna() if name in synthetic else pd.Series(dtype=float)
        if len(a) == 0 or len(b) == 0:
            scores[name] = float("nan") if len(a) == 0 else 0.0
            continue
        if _is_numeric(a):
            scores[name] = float(KSComplement.compute(a.astype(float), pd.to_numeric(b, errors="coerce").dropna().astype(float)))
        else:
            scores[name] = float(TVComplement.compute(a.astype(str), b.astype(str)))
    return scores


def sequence_fidelity(synthetic: pd.DataFrame, holdout: pd.DataFrame, entity_column: str,
                      sequence_index: str | None, static_columns: list[str],
                      reference: pd.DataFrame | None = None) -> dict[str, Any]:
    """The sequence-fidelity measures of ``synthetic`` against the ``holdout`` patients.

    Returns ``{"synthetic": {...}, "reference": {...} or None}``, each with ``length_ks``,
    ``gap_ks`` (inter-visit gaps), ``static_consistency``, ``lag1`` (column → autocorrelation; the
    holdout's own values under ``"holdout"``), ``lag1_max_gap`` (largest |synthetic − holdout| over
    the numeric per-visit columns), ``transitions`` (column → transition-table similarity) and
    ``transition_similarity`` (their mean), ``aggregate_shapes`` (mean score) and
    ``aggregate_scores`` (per aggregate column).
    """
    for role, frame in (("synthetic", synthetic), ("holdout", holdout)):
        if entity_column not in frame.columns:
            raise InvalidDataError(f"the {role} table has no entity column {entity_column!r}")
    visit_columns = [c for c in holdout.columns if c not in (entity_column, sequence_index, *static_columns)]
    numeric = [c for c in visit_columns if _is_numeric(holdout[c])]
    holdout_lag = {c: lag1_autocorrelation(holdout, entity_column, sequence_index, c) for c in numeric}
    holdout_aggregates = patient_aggregates(holdout, entity_column, sequence_index, visit_columns)

    def measures(frame: pd.DataFrame) -> dict[str, Any]:
        lag = {c: lag1_autocorrelation(frame, entity_column, sequence_index, c) for c in numeric}
        gaps = [abs(lag[c] - holdout_lag[c]) for c in numeric if not np.isnan(holdout_lag[c])]
        scores = aggregate_shapes(holdout_aggregates, patient_aggregates(frame, entity_column, sequence_index, visit_columns))
        finite = [s for s in scores.values() if not np.isnan(s)]
        transitions = {c: transition_similarity(holdout, frame, entity_column, sequence_index, c) for c in visit_columns}
        defined = [s for s in transitions.values() if not np.isnan(s)]
        return {
            "patients": int(frame[entity_column].nunique()),
            "length_ks": length_ks(holdout, frame, entity_column),
            "gap_ks": gap_ks(holdout, frame, entity_column, sequence_index),
            "static_consistency": static_consistency(frame, entity_column, static_columns),
            "lag1": lag,
            # A column whose lag-1 the synthetic data cannot define (NaN) counts as the worst gap.
            "lag1_max_gap": float(max((1.0 if np.isnan(g) else g for g in gaps), default=float("nan"))),
            "transitions": transitions,
            "transition_similarity": float(np.mean(defined)) if defined else float("nan"),
            "aggregate_shapes": float(np.mean(finite)) if finite else float("nan"),
            "aggregate_scores": scores,
        }

    return {"holdout": {"lag1": holdout_lag, "patients": int(holdout[entity_column].nunique())},
            "synthetic": measures(synthetic),
            "reference": measures(reference) if reference is not None else None}


def patient_summaries(frame: pd.DataFrame, entity_column: str, sequence_index: str | None,
                      static_columns: list[str], visit_columns: list[str]) -> pd.DataFrame:
    """One row per patient (entity order of first appearance): its static columns, its number of
    visits (``<entity column>.visits``) and the first, last, mean and slope of each per-visit column."""
    missing = [c for c in [entity_column, *static_columns, *visit_columns] if c not in frame.columns]
    if missing:
        raise InvalidDataError(f"the table has no column {missing[0]!r}")
    groups = frame.groupby(entity_column, sort=False)
    summary = groups[static_columns].first()
    # Named after the entity column, so it cannot collide with a per-visit column's aggregates.
    summary[f"{entity_column}.visits"] = groups.size()
    aggregates = patient_aggregates(frame, entity_column, sequence_index, visit_columns)
    return summary.join(aggregates).reset_index(drop=True)


def _summary_metadata(summary: pd.DataFrame) -> Metadata:
    # Declared from the dtype, not detected: a per-patient mean is unique to each patient and
    # detection would take it for an identifier, which the distances leave out.
    def spec(column: pd.Series) -> dict[str, str]:
        if pd.api.types.is_datetime64_any_dtype(column.dtype):
            return {"sdtype": "datetime"}
        return {"sdtype": "numerical" if _is_numeric(column) else "categorical"}

    return Metadata({name: spec(summary[name]) for name in summary.columns})


def patient_privacy(train: pd.DataFrame, synthetic: pd.DataFrame, holdout: pd.DataFrame, entity_column: str,
                    sequence_index: str | None, static_columns: list[str], *, rng: np.random.Generator,
                    n_attacks: int = 1_000, sensitive: list[str] | None = None) -> SectionResult:
    """``synthgen.evaluation.privacy.privacy_section`` on patient summaries (``patient_summaries``):
    DCR share, membership inference and the risks count patients, and ``holdout`` must hold other
    patients than ``train`` (``split_patients``). ``sensitive`` names summary columns (e.g.
    ``"bili.last"``) tried as the secret of attribute inference (default: every one)."""
    shared = set(train[entity_column]) & set(holdout[entity_column]) if entity_column in holdout else set()
    if shared:
        raise InvalidDataError(f"{len(shared)} patient(s) of {entity_column!r} are both in the training and the holdout "
                               "table; split by patient (split_patients)")
    (train_rows, synthetic_rows, holdout_rows), metadata = _summary_rows(train, synthetic, holdout, entity_column,
                                                                         sequence_index, static_columns)
    return privacy_section(train_rows, synthetic_rows, holdout_rows, metadata,
                           rng=rng, n_attacks=n_attacks, sensitive=sensitive)


def patient_fidelity(train: pd.DataFrame, synthetic: pd.DataFrame, holdout: pd.DataFrame, entity_column: str,
                     sequence_index: str | None, static_columns: list[str], *, rng: np.random.Generator) -> SectionResult:
    """``synthgen.evaluation.fidelity.fidelity_section`` on patient summaries (``patient_summaries``):
    Column Shapes and Pair Trends of the static columns, the number of visits and the per-visit
    aggregates, and a detector telling synthetic from training patients, each next to what the
    holdout patients score."""
    (train_rows, synthetic_rows, holdout_rows), metadata = _summary_rows(train, synthetic, holdout, entity_column,
                                                                         sequence_index, static_columns)
    section = fidelity_section(train_rows, synthetic_rows, holdout_rows, metadata, rng=rng)
    section.notes.insert(0, "scored on one summary row per patient: its static columns, its number of visits and the "
                            "first, last, mean and slope of each per-visit column")
    return section


def _summary_rows(train: pd.DataFrame, synthetic: pd.DataFrame, holdout: pd.DataFrame, entity_column: str,
                  sequence_index: str | None, static_columns: list[str]) -> tuple[list[pd.DataFrame], Metadata]:
    """The three tables' patient summaries on the columns the training patients define, and their metadata."""
    visit_columns = [c for c in train.columns if c not in (entity_column, sequence_index, *static_columns)]
    summaries = [patient_summaries(frame, entity_column, sequence_index, static_columns, visit_columns)
                 for frame in (train, synthetic, holdout)]
    # An aggregate missing for every training patient (a slope when all have one visit) has no
    # distance scale or distribution; it says nothing about them, so it is left out.
    kept = [c for c in summaries[0].columns if summaries[0][c].notna().any()]
    rows = [summary[kept] for summary in summaries]
    return rows, _summary_metadata(rows[0])
