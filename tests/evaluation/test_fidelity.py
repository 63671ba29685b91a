"""Fidelity section: each score must separate good synthetic data from bad, next to the holdout."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from synthgen import Metadata
from synthgen.errors import MetadataError
from synthgen.evaluation.fidelity import fidelity_section, quality_scores
from synthgen.evaluation.scores import SectionResult

N_TRAIN, N_HOLDOUT = 600, 600


def make_table(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Mixed columns with three strong dependencies: sbp ~ age, lab ~ group, outcome ~ age + lab."""
    age = np.clip(rng.normal(60, 12, n), 30, 90)  # bounded, as recorded ages and labs are
    group = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    lab = np.clip(np.select([group == "a", group == "b"], [0.0, 5.0], 10.0) + rng.normal(0, 1.5, n), -2, 12)
    smoker = pd.Series(rng.random(n) < 0.3, dtype=object)
    smoker[rng.random(n) < 0.05] = None
    bmi = rng.normal(27, 4, n)
    bmi[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({
        "patient_id": [f"P{i:05d}" for i in rng.permutation(n)],
        "age": age.round(1),
        "sbp": np.clip(90 + 0.8 * age + rng.normal(0, 4, n), 110, 170).round(),
        "group": group,
        "lab": lab,
        "sex": rng.choice(["F", "M"], n),
        "smoker": smoker,
        "bmi": bmi,
        "visit": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D"),
        "diagnosis": rng.choice(["asthma", "copd", "fibrosis"], n).astype(object),
        "outcome": rng.random(n) < 1 / (1 + np.exp(-((age - 60) / 6 + (lab - 5) / 2.5))),
    })


def independent_columns(frame: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Each column resampled on its own: right marginals, no dependencies."""
    return pd.DataFrame({
        name: frame[name].iloc[rng.integers(0, len(frame), n)].reset_index(drop=True) for name in frame
    })


@pytest.fixture(scope="module")
def real() -> tuple[pd.DataFrame, pd.DataFrame, Metadata]:
    data = make_table(N_TRAIN + N_HOLDOUT, np.random.default_rng(0))
    data.loc[:1, "diagnosis"] = "zebra"  # two training patients only: must never be shown
    train, holdout = data.iloc[:N_TRAIN].reset_index(drop=True), data.iloc[N_TRAIN:].reset_index(drop=True)
    return train, holdout, Metadata.detect(data)


def section(real, synthetic: pd.DataFrame, *, holdout: bool = True, target: str | None = "outcome") -> SectionResult:
    train, real_holdout, metadata = real
    return fidelity_section(
        train, synthetic, real_holdout if holdout else None, metadata, rng=np.random.default_rng(1), target=target
    )


@pytest.fixture(scope="module")
def independent(real) -> SectionResult:
    return section(real, independent_columns(real[0], N_TRAIN, np.random.default_rng(2)))


@pytest.fixture(scope="module")
def fresh(real) -> SectionResult:
    return section(real, make_table(N_TRAIN, np.random.default_rng(3)))


@pytest.fixture(scope="module")
def copied(real) -> SectionResult:
    return section(real, real[0].copy(), target="sbp")


def score(result: SectionResult, metric: str):
    (found,) = [s for s in result.scores if s.metric == metric]
    return found


def test_independent_columns_lose_pair_trends_but_keep_shapes(independent):
    pairs = score(independent, "Column Pair Trends")
    assert pairs.value < pairs.reference - 0.1
    assert score(independent, "Column Shapes").value >= 0.9
    assert score(independent, "Detection ROC AUC").value > 0.6


def test_fresh_rows_score_like_the_holdout(fresh):
    for metric in ("Column Pair Trends", "Column Pair Trends (all pairs)"):
        pairs = score(fresh, metric)
        assert abs(pairs.value - pairs.reference) < 0.05
    detection = score(fresh, "Detection ROC AUC")
    assert detection.value < 0.6
    assert detection.low < detection.value < detection.high
    assert detection.ideal == "0.5" and detection.reference < 0.6


def test_copied_training_rows_are_flagged_and_undetectable(copied):
    assert "above the holdout" in score(copied, "Column Shapes").note
    assert abs(score(copied, "Detection ROC AUC").value - 0.5) < 0.05
    r2 = score(copied, "TSTR R2")  # the same rows train both models
    assert r2.value == pytest.approx(r2.reference) and r2.reference > 0.5


def test_ml_utility_needs_the_dependencies(fresh, independent):
    auc = score(independent, "TSTR ROC AUC")
    assert auc.reference > 0.75
    assert auc.value < auc.reference - 0.1
    assert score(fresh, "TSTR ROC AUC").value > 0.75
    assert 0 <= score(fresh, "TSTR accuracy").value <= 1


def test_thresholds_and_sdmetrics_are_stated(fresh):
    assert "0.5" in score(fresh, "Column Pair Trends").note and "0.3" in score(fresh, "Column Pair Trends").note
    assert all(s.section == "fidelity" for s in fresh.scores)
    assert score(fresh, "Column Shapes").method.startswith("sdmetrics 0.32.0")
    assert score(fresh, "Data Validity").value > 0.9 and score(fresh, "Data Validity").reference is None
    assert score(fresh, "Data Structure").value == 1.0
    assert any(f"one size, {N_HOLDOUT:,} rows" in note for note in fresh.notes)


def test_tables_are_per_column_and_per_pair_without_ids(fresh):
    shapes, pairs = fresh.tables["column_shapes"], fresh.tables["column_pair_trends"]
    assert list(shapes.columns) == ["Column", "Metric", "Score", "HoldoutScore"]
    assert {"Column 1", "Column 2", "Metric", "Score", "Real Correlation", "Synthetic Correlation",
            "HoldoutScore"} <= set(pairs.columns)
    assert "patient_id" not in set(shapes["Column"]) | set(pairs["Column 1"]) | set(pairs["Column 2"])
    assert len(pairs) == 10 * 9 // 2 and pairs["HoldoutScore"].notna().all()
    for name in ("correlation_real", "correlation_synthetic"):
        assert "patient_id" not in fresh.figures[name].columns
    assert fresh.figures["correlation_real"].loc["age", "sbp"] > 0.8
    assert fresh.figures["correlation_real"].loc["group", "lab"] > 0.5


def test_marginals_pool_rare_categories(independent):
    diagnosis = independent.figures["marginals"]["diagnosis"]
    assert diagnosis["kind"] == "categorical"
    assert "zebra" not in diagnosis["categories"] and "(rare)" in diagnosis["categories"]
    assert "zebra" not in repr(independent.figures) + repr(independent.tables)
    assert sum(diagnosis["real"]) == pytest.approx(1)
    age = independent.figures["marginals"]["age"]
    assert age["kind"] == "numeric" and len(age["bins"]) <= 31
    assert np.sum(np.array(age["real"]) * np.diff(age["bins"])) == pytest.approx(1)
    assert isinstance(independent.figures["marginals"]["visit"]["bins"][0], str)


def test_without_holdout_nothing_has_a_reference(real):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = section(real, make_table(N_TRAIN, np.random.default_rng(4)), holdout=False)
    assert all(s.reference is None for s in result.scores)
    assert any("no holdout" in note for note in result.notes)
    assert any("ML utility" in note and "holdout" in note for note in result.notes)
    assert not [w for w in caught if issubclass(w.category, (FutureWarning, DeprecationWarning))]


def test_unknown_target_is_named(real):
    with pytest.raises(MetadataError, match="'no_such_column'"):
        section(real, real[0], target="no_such_column")


def test_same_seed_same_scores(real, fresh):
    again = section(real, make_table(N_TRAIN, np.random.default_rng(3)))
    fields = [(s.metric, s.value, s.low, s.high, s.reference, s.note) for s in fresh.scores]
    assert [(s.metric, s.value, s.low, s.high, s.reference, s.note) for s in again.scores] == fields
    pd.testing.assert_frame_equal(again.tables["column_pair_trends"], fresh.tables["column_pair_trends"])


def test_quality_scores_keeps_its_keys(real):
    train, holdout, metadata = real
    assert set(quality_scores(train, holdout, metadata)) == {
        "Column Shapes", "Column Pair Trends", "Column Pair Trends (all pairs)"
    }
    assert set(quality_scores(train, holdout, metadata, all_pairs=False)) == {"Column Shapes", "Column Pair Trends"}
