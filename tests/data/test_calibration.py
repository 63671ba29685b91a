"""Marginal calibration of decoded numeric columns (non-DP models)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp, spearmanr

from synthgen import TabularSynthesizer
from synthgen.data.calibration import ValueCalibration


def _frames(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    real = pd.DataFrame({"x": rng.gamma(2.0, 3.0, 2_000), "n": rng.integers(0, 50, 2_000)})
    # A generator whose marginals are off: shifted, too narrow, and integers on the wrong scale.
    generated = pd.DataFrame({"x": rng.normal(4.0, 1.0, 20_000), "n": rng.integers(10, 20, 20_000)})
    return real, generated


def test_mapped_columns_follow_the_real_marginal_and_keep_their_ranks() -> None:
    real, generated = _frames()
    calibration = ValueCalibration.fit(generated, real, ["x", "n"])
    fresh = pd.DataFrame({"x": np.random.default_rng(1).normal(4.0, 1.0, 3_000),
                          "n": np.random.default_rng(2).integers(10, 20, 3_000)})
    mapped = calibration.apply(fresh, np.random.default_rng(3))
    assert ks_2samp(fresh["x"], real["x"]).statistic > 0.3  # far apart before
    assert ks_2samp(mapped["x"], real["x"]).statistic < 0.05
    assert spearmanr(fresh["x"], mapped["x"]).statistic > 0.999  # a monotone map: ranks kept
    assert mapped["n"].dtype == fresh["n"].dtype and (mapped["n"] == np.rint(mapped["n"])).all()
    assert mapped["n"].min() >= 0 and mapped["n"].max() <= 49 and mapped["n"].nunique() > 8


def test_missing_values_stay_missing_and_nullable_integers_stay_nullable() -> None:
    real, generated = _frames()
    calibration = ValueCalibration.fit(generated, real, ["n"])
    column = pd.array([12, None, 15, 18], dtype="Int64")
    mapped = calibration.apply(pd.DataFrame({"n": column, "x": [1.0, np.nan, 2.0, 3.0]}), np.random.default_rng(0))
    assert str(mapped["n"].dtype) == "Int64" and mapped["n"].isna().tolist() == [False, True, False, False]
    assert mapped["x"].isna().tolist() == [False, True, False, False]  # not calibrated: untouched
    assert mapped["x"].iloc[2] == 2.0


def test_state_round_trips() -> None:
    real, generated = _frames()
    calibration = ValueCalibration.fit(generated, real, ["x", "n"])
    again = ValueCalibration.from_state(calibration.get_state())
    pd.testing.assert_frame_equal(again.apply(generated.head(500), np.random.default_rng(0)),
                                  calibration.apply(generated.head(500), np.random.default_rng(0)))


def test_fit_calibrates_numeric_columns_and_can_be_turned_off(patients: pd.DataFrame, fitted) -> None:
    assert set(fitted.value_calibration_.maps) == {"age", "bilirubin", "cholesterol"}
    raw = TabularSynthesizer(seed=7, steps=200, progress=False, calibrate=False).fit(patients)
    assert raw.value_calibration_ is None and raw.describe()["calibrated_columns"] == []
    calibrated = TabularSynthesizer(seed=7, steps=200, progress=False).fit(patients)
    # Same training (same seed and steps): calibration changes the numbers, not the learned model.
    gap = {name: ks_2samp(model.sample(3_000, seed=1)["bilirubin"].dropna(), patients["bilirubin"].dropna()).statistic
           for name, model in (("raw", raw), ("calibrated", calibrated))}
    assert gap["calibrated"] < 0.06 and gap["calibrated"] < gap["raw"]


def test_no_training_extreme_held_by_fewer_than_k_rows_is_emitted() -> None:
    """An attacker reading the sample's minimum and maximum must not recover one patient's exact value."""
    rng = np.random.default_rng(4)
    real = pd.DataFrame({"x": np.r_[rng.gamma(2.0, 3.0, 1_000), 250.0],  # one patient far out
                         "n": np.r_[np.zeros(6, dtype=np.int64), rng.integers(1, 60, 995)]})  # 0 held by 6 rows
    generated = pd.DataFrame({"x": rng.normal(6.0, 30.0, 20_000), "n": rng.integers(-40, 100, 20_000)})
    k = 5
    calibration = ValueCalibration.fit(generated, real, ["x", "n"], min_count=k)
    mapped = calibration.apply(generated, np.random.default_rng(5))
    for name in ("x", "n"):
        counts = real[name].value_counts()
        for extreme in (real[name].min(), real[name].max()):
            emitted = int((mapped[name] == extreme).sum())
            assert emitted == 0 or counts[extreme] >= k, (name, extreme, emitted)
        ordered = np.sort(real[name].to_numpy())
        assert mapped[name].min() >= ordered[k - 1] and mapped[name].max() <= ordered[-k]
    assert (mapped["n"] == 0).sum() > 0  # the shared minimum (6 >= k rows) is still reachable
    assert mapped["x"].max() < 250.0 and mapped["x"].min() > real["x"].min()


def test_a_fitted_model_does_not_reproduce_unique_training_extremes(patients: pd.DataFrame) -> None:
    model = TabularSynthesizer(seed=3, steps=100, progress=False).fit(patients)
    sample = model.sample(5_000, seed=2)
    for name in model.value_calibration_.maps:
        counts = patients[name].value_counts()
        for extreme in (patients[name].min(), patients[name].max()):
            if counts[extreme] < model.min_category_count:
                assert not (sample[name] == extreme).any(), (name, extreme)


@pytest.mark.parametrize("calibrate", [True, False])
def test_an_extreme_held_by_one_patient_is_never_sampled(calibrate):
    """With or without the calibration, no output equals a training minimum or maximum that fewer
    than min_category_count rows hold (here one patient is 94, another 18)."""
    rng = np.random.default_rng(0)
    ages = np.concatenate([rng.integers(30, 80, 398), [18, 94]])
    table = pd.DataFrame({"age": ages, "sex": rng.choice(["F", "M"], 400)})
    model = TabularSynthesizer(seed=0, steps=60, progress=False, calibrate=calibrate).fit(table)
    sampled = model.sample(5_000, seed=1)["age"]
    assert not sampled.isin([18, 94]).any()
    assert sampled.min() >= np.sort(ages)[4] and sampled.max() <= np.sort(ages)[-5]


def test_the_quantile_transformer_keeps_rare_extremes_out_too():
    from synthgen.data.quantile import QuantileTransformer

    values = pd.Series(np.concatenate([np.arange(100.0), [1_000.0]]))
    transformer = QuantileTransformer(bins=20).fit(values, np.random.default_rng(0))
    decoded = transformer.inverse(np.linspace(-1, 1, 2_001)[:, None].astype(np.float32), np.random.default_rng(0))
    assert decoded.max() <= np.sort(values)[-5] < 1_000.0
