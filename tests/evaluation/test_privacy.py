"""Privacy section: known answers for copied, fresh and perturbed synthetic data, built here."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cdist

from synthgen import Metadata
from synthgen.evaluation.privacy import _embed, _encode, privacy_section
from synthgen.evaluation.scores import SectionResult

N_REAL = 3_000
HOLDOUT_METRICS = {
    "DCR share", "DCR 5th percentile", "NNDR median", "MIA AUC (distance)", "MIA TPR@1%FPR (distance)",
    "MIA AUC (DOMIAS)", "MIA TPR@1%FPR (DOMIAS)", "Singling-out risk", "Linkability risk", "Attribute inference risk",
}
NO_HOLDOUT_METRICS = {"Exact copies", "Rare categories exposed", "Rare-category rows"}


def make_table(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Patients with numbers, whole numbers, a text date, categories, a flag and missing cells."""
    sex = rng.choice(["F", "M"], n)
    bmi = rng.normal(np.where(sex == "F", 24.0, 27.0), 4.0)
    bmi[rng.random(n) < 0.1] = np.nan
    diagnosis = rng.choice(["asthma", "copd", "fibrosis", "sarcoidosis"], n, p=[0.4, 0.3, 0.2, 0.1]).astype(object)
    diagnosis[rng.random(n) < 0.05] = None
    visit = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D")
    return pd.DataFrame({
        "patient_id": [f"P{i:06d}" for i in rng.choice(10**6, n, replace=False)],
        "age": np.clip(rng.normal(60, 12, n).round(), 18, 95).astype(int),
        "bmi": bmi,
        "sodium": rng.normal(140, 3, n),
        "visit": visit.strftime("%Y-%m-%d"),
        "sex": sex,
        "diagnosis": diagnosis,
        "stage": rng.choice([1, 2, 3, 4], n, p=[0.4, 0.3, 0.2, 0.1]),
        "smoker": rng.random(n) < 0.3,
    })


@pytest.fixture(scope="module")
def real() -> tuple[pd.DataFrame, pd.DataFrame, Metadata]:
    table = make_table(N_REAL, np.random.default_rng(0))
    metadata = Metadata.detect(table)
    assert {name: spec["sdtype"] for name, spec in metadata.columns.items()} == {
        "patient_id": "id", "age": "numerical", "bmi": "numerical", "sodium": "numerical", "visit": "datetime",
        "sex": "categorical", "diagnosis": "categorical", "stage": "categorical", "smoker": "boolean",
    }
    return table.iloc[: N_REAL // 2].reset_index(drop=True), table.iloc[N_REAL // 2 :].reset_index(drop=True), metadata


def evaluate(real: tuple[pd.DataFrame, pd.DataFrame, Metadata], synthetic: pd.DataFrame, seed: int = 1, **options) -> SectionResult:
    train, holdout, metadata = real
    return privacy_section(train, synthetic, holdout, metadata, rng=np.random.default_rng(seed), **options)


def scores(result: SectionResult) -> dict:
    return {score.metric: score for score in result.scores}


def perturbed(train: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Training rows with Gaussian noise of 8% of the range on numbers and 20% of categories redrawn."""
    noisy = train.copy()
    for name in ("age", "bmi", "sodium"):
        values = noisy[name].to_numpy(dtype=float)
        noisy[name] = values + rng.normal(0, 0.08 * (np.nanmax(values) - np.nanmin(values)), len(values))
    for name in ("sex", "diagnosis", "stage", "smoker"):
        redraw = rng.random(len(noisy)) < 0.2
        noisy.loc[redraw, name] = rng.choice(train[name].to_numpy(), redraw.sum())
    return noisy


@pytest.fixture(scope="module")
def copied(real) -> SectionResult:
    return evaluate(real, real[0].copy())


@pytest.fixture(scope="module")
def fresh(real) -> SectionResult:
    return evaluate(real, make_table(N_REAL // 2, np.random.default_rng(99)))


def test_a_copy_of_the_training_data_is_flagged(copied: SectionResult) -> None:
    s = scores(copied)
    assert set(s) == NO_HOLDOUT_METRICS | HOLDOUT_METRICS
    assert s["Exact copies"].value == 1.0
    assert s["Exact copies"].reference < 0.01  # fresh patients are not copies
    assert s["DCR share"].value > 0.95
    assert s["DCR 5th percentile"].value == 0.0 < s["DCR 5th percentile"].reference
    assert s["NNDR median"].value == 0.0 < s["NNDR median"].reference
    assert s["MIA AUC (distance)"].value > 0.9
    assert s["MIA TPR@1%FPR (distance)"].value > 0.5
    assert s["Singling-out risk"].value > 0.3
    assert s["Linkability risk"].value > 0.3
    assert s["Attribute inference risk"].value > 0.3
    assert all(score.section == "privacy" and score.method.startswith("synthgen ") for score in copied.scores)


def test_fresh_rows_from_the_same_population_look_like_the_holdout(fresh: SectionResult) -> None:
    s = scores(fresh)
    assert s["Exact copies"].value < 0.01
    assert abs(s["DCR share"].value - 0.5) < 0.06
    assert s["DCR share"].low < s["DCR share"].value < s["DCR share"].high
    for attack in ("distance", "DOMIAS"):
        auc = s[f"MIA AUC ({attack})"]
        assert abs(auc.value - 0.5) < 0.08
        assert auc.low <= auc.value <= auc.high and auc.high - auc.low < 0.2
        assert 0.0 <= s[f"MIA TPR@1%FPR ({attack})"].value < 0.1
    for risk in ("Singling-out risk", "Linkability risk", "Attribute inference risk"):
        assert s[risk].value < 0.1
        assert 0.0 <= s[risk].low <= s[risk].value <= s[risk].high <= 1.0
    table = fresh.tables["attribute_inference"]
    assert list(table["secret"]) == ["age", "bmi", "sodium", "visit", "sex", "diagnosis", "stage", "smoker"]
    assert s["Attribute inference risk"].value in set(table["risk"])
    assert (table["p_holm"] >= table["p_value"]).all() and table["p_holm"].max() <= 1.0
    assert set(fresh.figures) == {"dcr_synthetic_to_train", "dcr_synthetic_to_holdout", "dcr_holdout_to_train"}
    assert all(len(values) == N_REAL // 2 and np.all((values >= 0) & (values <= 1)) for values in fresh.figures.values())


def test_a_perturbed_copy_sits_between_a_copy_and_fresh_rows(real, copied: SectionResult, fresh: SectionResult) -> None:
    noisy = scores(evaluate(real, perturbed(real[0], np.random.default_rng(5))))
    assert noisy["Exact copies"].value < 0.05
    assert scores(fresh)["DCR share"].high < noisy["DCR share"].low
    assert noisy["DCR share"].high < scores(copied)["DCR share"].low


def test_the_distance_is_the_hand_computed_gower_distance() -> None:
    rows = pd.DataFrame({"x": [0.0, 2.5, 10.0], "y": [1.0, np.nan, 3.0], "c": ["a", "a", "b"]})
    metadata = Metadata({"x": {"sdtype": "numerical"}, "y": {"sdtype": "numerical"}, "c": {"sdtype": "categorical"}})
    values, columns = _encode([rows], metadata, n_real=1)
    (embedded,), _, _ = _embed(values, columns)
    # x: |dx| / 10; y: |dy| / 2, or 1 when one side is missing; c: 0 or 1; mean over the 3 columns
    expected = np.array([
        [0.0, (0.25 + 1 + 0) / 3, (1.0 + 1.0 + 1) / 3],
        [(0.25 + 1 + 0) / 3, 0.0, (0.75 + 1 + 1) / 3],
        [(1.0 + 1.0 + 1) / 3, (0.75 + 1 + 1) / 3, 0.0],
    ])
    np.testing.assert_allclose(cdist(embedded, embedded, "cityblock"), expected, rtol=1e-12, atol=1e-15)


def test_rare_training_categories_in_the_synthetic_data_are_counted_not_named(real) -> None:
    train, _, metadata = real
    train = train.copy()
    train.loc[:1, "diagnosis"] = "erdheim-chester"  # two training patients
    synthetic = make_table(300, np.random.default_rng(7))
    synthetic.loc[0, "diagnosis"] = "erdheim-chester"
    result = privacy_section(train, synthetic, None, metadata, rng=np.random.default_rng(0))
    s = scores(result)
    assert s["Rare categories exposed"].value == 1
    assert s["Rare-category rows"].value == pytest.approx(1 / 300)
    table = result.tables["rare_categories"]
    assert list(table.columns) == ["column", "count"]
    assert dict(zip(table["column"], table["count"])) == {"sex": 0, "diagnosis": 1, "stage": 0, "smoker": 0}
    assert "erdheim" not in repr(result)


def test_without_a_holdout_only_the_holdout_free_scores_are_computed(real) -> None:
    train, _, metadata = real
    result = privacy_section(train, train.copy(), None, metadata, rng=np.random.default_rng(0))
    assert {score.metric for score in result.scores} == NO_HOLDOUT_METRICS
    assert scores(result)["Exact copies"].value == 1.0
    assert all(score.reference is None for score in result.scores)
    assert not result.figures and "attribute_inference" not in result.tables
    assert any("No holdout" in note and "DCR share" in note and "membership inference" in note for note in result.notes)


def test_a_small_holdout_and_capped_rows_are_noted(real) -> None:
    train, holdout, metadata = real
    result = privacy_section(train, train.copy(), holdout.iloc[:300], metadata, rng=np.random.default_rng(0),
                             max_rows=200, n_attacks=50)
    assert any("less than half the size" in note for note in result.notes)
    assert any("200 training and 200 holdout rows" in note for note in result.notes)
    assert any("200 of the 1500 synthetic rows" in note for note in result.notes)
    assert len(result.figures["dcr_synthetic_to_train"]) == len(result.figures["dcr_holdout_to_train"]) == 200
    assert "50 training and 50 holdout targets" in scores(result)["Linkability risk"].note


def test_sensitive_columns_can_be_named(real) -> None:
    result = evaluate(real, real[0].copy(), sensitive=["diagnosis", "bmi"], n_attacks=100)
    assert list(result.tables["attribute_inference"]["secret"]) == ["diagnosis", "bmi"]
    with pytest.raises(ValueError, match="patient_id"):
        evaluate(real, real[0].copy(), sensitive=["patient_id"])


def test_the_same_seed_gives_the_same_scores(real) -> None:
    synthetic = perturbed(real[0], np.random.default_rng(3))
    first, second = (evaluate(real, synthetic, seed=11, n_attacks=300) for _ in range(2))
    as_tuples = [[dataclasses.astuple(score) for score in result.scores] for result in (first, second)]
    assert as_tuples[0] == as_tuples[1]
    assert not any(isinstance(v, float) and math.isnan(v) for row in as_tuples[0] for v in row)
    pd.testing.assert_frame_equal(first.tables["attribute_inference"], second.tables["attribute_inference"])
    other = evaluate(real, synthetic, seed=12, n_attacks=300)
    assert [s.value for s in other.scores] != [s.value for s in first.scores]


def test_a_holdout_of_later_patients_is_scaled_like_the_training_rows() -> None:
    """Synthetic rows copying training and holdout patients alike carry no excess risk, even when
    the holdout's visit dates all lie past the training ones (they are not clipped onto its range)."""
    n = 300
    rng = np.random.default_rng(4)
    table = pd.DataFrame({"visit": pd.date_range("2020-01-01", periods=n, freq="D"), "sex": rng.choice(["F", "M"], n), "bmi": rng.normal(25, 4, n)})
    result = privacy_section(table.iloc[:150], table, table.iloc[150:], Metadata.detect(table), rng=np.random.default_rng(0), n_attacks=60)
    s = scores(result)
    assert s["Exact copies"].value == 0.5
    assert s["DCR share"].value == 0.5
    assert s["Linkability risk"].value == s["Attribute inference risk"].value == 0.0
