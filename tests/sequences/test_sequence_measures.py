"""The sequence measures added for issue 15's evaluation list: inter-visit gaps, transition tables,
and the tabular fidelity section (Column Shapes, Pair Trends, detection) on patient summaries.

Each test builds patients whose defect the measure must catch (a model that lost the rhythm of
visits, one that redraws a state at every visit, one that deals visits across patients) next to
real patients from the same process, and asserts the measure tells them apart by a margin.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synthgen.sequences.evaluate import (
    gap_ks, inter_visit_gaps, patient_fidelity, sequence_fidelity, split_patients, transition_similarity,
    visit_transitions,
)
from synthgen.sequences.report import evaluate_histories


def histories(n_patients: int, seed: int, *, sticky: bool = True, rhythm: bool = True) -> pd.DataFrame:
    """2-7 visits per patient; ``state`` (a category) and ``stage`` (a coded number) persist from visit
    to visit when ``sticky``, else are redrawn at every visit from the same marginal; visits come
    every 90 days (± 10) when ``rhythm``, else every 1-400 days; ``level`` is a patient's own lab level."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 8, n_patients)
    patient = np.repeat(np.arange(n_patients), lengths)
    first = np.concatenate([[True], patient[1:] != patient[:-1]])
    gaps = rng.integers(80, 101, len(patient)) if rhythm else rng.integers(1, 401, len(patient))
    day = pd.Series(np.where(first, 0, gaps)).groupby(patient).cumsum().to_numpy()
    state = rng.choice(["well", "ill", "icu"], len(patient), p=[0.6, 0.3, 0.1])
    stage = rng.integers(1, 5, len(patient)).astype(float)
    if sticky:  # each patient keeps its first visit's state and stage
        starts = np.flatnonzero(first)
        owner = np.cumsum(first) - 1
        state, stage = state[starts][owner], stage[starts][owner]
    level = np.repeat(rng.normal(0, 3, n_patients), lengths) + rng.normal(0, 0.3, len(patient))
    return pd.DataFrame({"id": patient, "day": day, "sex": np.repeat(rng.choice(["F", "M"], n_patients), lengths),
                         "state": state, "stage": stage, "level": level})


def test_gaps_and_transitions_on_known_sequences() -> None:
    frame = pd.DataFrame({"id": [1, 1, 1, 2, 2], "t": [10, 0, 4, 5, 7],
                          "c": ["b", "a", None, "a", "a"], "x": [3.0, 1.0, 2.0, 6.0, 4.0]})
    # In index order patient 1 is t 0, 4, 10 (c a, gap, b) and patient 2 is t 5, 7 (c a, a).
    assert sorted(inter_visit_gaps(frame, "id", "t")) == [2.0, 4.0, 6.0]
    pairs = visit_transitions(frame, "id", "t", "c")
    assert pairs.astype("string").fillna("gap").values.tolist() == [["a", "gap"], ["gap", "b"], ["a", "a"]]
    assert transition_similarity(frame, frame, "id", "t", "c") == pytest.approx(1.0)
    assert transition_similarity(frame, frame, "id", "t", "x") == pytest.approx(1.0)
    # The same transitions with patient 2's visits swapped: a->a is unchanged, so only patient 1's
    # order matters; reversing it gives b->gap and gap->a, neither of which is real: 1 - 2/3.
    reversed_one = frame.assign(t=[0, 10, 4, 5, 7])
    assert transition_similarity(frame, reversed_one, "id", "t", "c") == pytest.approx(1 / 3)
    # Dates: gaps in days.
    dated = frame.assign(t=pd.Timestamp("2020-01-01") + pd.to_timedelta(frame["t"], unit="D"))
    assert sorted(inter_visit_gaps(dated, "id", "t")) == [2.0, 4.0, 6.0]
    # No index: no gaps to score; no second visit: nothing to score, and a model without one scores worst.
    assert inter_visit_gaps(frame, "id", None).size == 0
    singles = frame.drop_duplicates("id")
    assert np.isnan(gap_ks(singles, frame, "id", "t")) and gap_ks(frame, singles, "id", "t") == 1.0
    assert np.isnan(transition_similarity(singles, frame, "id", "t", "c"))
    assert transition_similarity(frame, singles, "id", "t", "c") == 0.0


def test_gap_ks_catches_a_model_that_lost_the_rhythm_of_visits() -> None:
    holdout = histories(80, seed=1)
    fresh, arrhythmic = histories(300, seed=2), histories(300, seed=2, rhythm=False)
    assert gap_ks(holdout, fresh, "id", "day") < 0.1
    assert gap_ks(holdout, arrhythmic, "id", "day") > 0.5


def test_transition_tables_catch_states_redrawn_at_every_visit() -> None:
    """Redrawn states keep every marginal (Column Shapes cannot see it) and lose every transition."""
    holdout = histories(80, seed=1)
    fresh, redrawn = histories(300, seed=2), histories(300, seed=2, sticky=False)
    for column in ("state", "stage"):
        real = transition_similarity(holdout, fresh, "id", "day", column)
        broken = transition_similarity(holdout, redrawn, "id", "day", column)
        assert real > 0.85 and broken < real - 0.25, (column, real, broken)
    measured = sequence_fidelity(redrawn, holdout, "id", "day", ["sex"], reference=fresh)
    assert measured["synthetic"]["transition_similarity"] < measured["reference"]["transition_similarity"] - 0.25
    assert set(measured["synthetic"]["transitions"]) == {"state", "stage", "level"}


def deal_across_patients(frame: pd.DataFrame, columns: list[str], seed: int) -> pd.DataFrame:
    """What an i.i.d.-row model produces: each per-visit value dealt to a random visit of any patient."""
    rng = np.random.default_rng(seed)
    dealt = frame.copy()
    for column in columns:
        dealt[column] = rng.permutation(dealt[column].to_numpy())
    return dealt


def test_patient_summaries_detect_visits_dealt_across_patients() -> None:
    """Each patient's level is its own (sd 3 between patients, 0.3 within): dealt across patients, the
    per-patient mean regresses to the grand mean, which Column Shapes of the summaries and a detector
    see although every per-visit marginal is intact."""
    train, holdout = split_patients(histories(500, seed=3), "id", 0.3, seed=0)
    fresh = histories(350, seed=4)
    dealt = deal_across_patients(fresh, ["level", "state", "stage"], seed=5)
    real = patient_fidelity(train, fresh, holdout, "id", "day", ["sex"], rng=np.random.default_rng(0))
    broken = patient_fidelity(train, dealt, holdout, "id", "day", ["sex"], rng=np.random.default_rng(0))
    real_scores, broken_scores = ({s.metric: s for s in section.scores} for section in (real, broken))
    assert real_scores["Detection ROC AUC"].value < 0.65
    assert broken_scores["Detection ROC AUC"].value > 0.85
    assert broken_scores["Column Shapes"].value < real_scores["Column Shapes"].value - 0.1
    assert broken_scores["Column Pair Trends"].value < real_scores["Column Pair Trends"].value
    # The holdout patients are the reference: fresh patients score like them.
    assert real_scores["Detection ROC AUC"].reference < 0.65


def test_the_report_carries_the_new_measures() -> None:
    train, holdout = split_patients(histories(200, seed=3), "id", 0.3, seed=0)
    report = evaluate_histories(train, histories(140, seed=2, sticky=False), holdout, entity_column="id",
                                sequence_index="day", static_columns=["sex"])
    scores = report.scores.set_index("metric")
    transition = scores.loc["Transition tables (lag-1 contingency similarity)"]
    assert transition["section"] == "sequences" and transition["value"] < transition["reference"] - 0.2
    assert scores.loc["Inter-visit gap KS statistic", "value"] < 0.2
    assert scores.loc["Detection ROC AUC", "section"] == "fidelity"
    assert set(report.sections["sequences"].tables["transition tables"]["column"]) == {"state", "stage", "level"}
    assert report.passed  # the privacy gates judge the privacy section only: fresh patients pass
