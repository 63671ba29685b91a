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


# ----------------------------------------------------------------------------- per level of a category

def _by_diagnosis(seed: int = 0, rows: int = 2_000) -> pd.DataFrame:
    """size depends on the diagnosis (benign small and narrow, malignant large and skewed); ward is noise."""
    rng = np.random.default_rng(seed)
    diagnosis = rng.choice(["benign", "malignant"], rows, p=[0.6, 0.4])
    size = np.where(diagnosis == "benign", rng.normal(10.0, 1.0, rows), 10.0 + rng.gamma(1.5, 4.0, rows))
    return pd.DataFrame({"diagnosis": diagnosis, "ward": rng.choice(["a", "b", "c"], rows), "size": size.round(2)})


def _level_ks(frame: pd.DataFrame, real: pd.DataFrame) -> float:
    return max(ks_2samp(frame.loc[frame["diagnosis"] == level, "size"], real.loc[real["diagnosis"] == level, "size"]).statistic
               for level in ("benign", "malignant"))


def test_a_column_is_calibrated_per_level_of_the_category_that_explains_it() -> None:
    real = _by_diagnosis()
    # A generator that got the marginal's spread roughly right but each level's shape wrong: the
    # levels overlap, as a GAN's do early on.
    rng = np.random.default_rng(1)
    generated = _by_diagnosis(2, 20_000)
    generated["size"] = np.where(generated["diagnosis"] == "benign", rng.normal(13.0, 3.0, 20_000),
                                 rng.normal(15.0, 6.0, 20_000))
    fresh = generated.sample(5_000, random_state=3).reset_index(drop=True)
    global_only = ValueCalibration.fit(generated, real, ["size"])
    levelled = global_only.with_levels(generated, real, ["ward", "diagnosis"])
    assert levelled.levels["size"].by == "diagnosis" and set(levelled.levels["size"].maps) == {"benign", "malignant"}
    before = _level_ks(global_only.apply(fresh, np.random.default_rng(0)), real)
    after = _level_ks(levelled.apply(fresh, np.random.default_rng(0)), real)
    assert before > 0.15 and after < 0.05
    # Within a level the map is monotone: the generator's ranks stay.
    mapped = levelled.apply(fresh, np.random.default_rng(0))
    benign = fresh["diagnosis"] == "benign"
    assert spearmanr(fresh.loc[benign, "size"], mapped.loc[benign, "size"]).statistic > 0.999
    # A score of a few values (here 10) is not mapped per level: its level quantiles are a few
    # training values, and mapping onto them piles the level's rows onto those values.
    score = {"real": real.assign(size=np.clip((real["size"] - 4) // 2, 1, 10)),
             "generated": generated.assign(size=np.clip((generated["size"] - 4) // 2, 1, 10))}
    assert score["real"]["size"].nunique() == 10
    assert ValueCalibration.fit(score["generated"], score["real"], ["size"]).with_levels(
        score["generated"], score["real"], ["diagnosis"]).levels == {}
    # A category that explains nothing gets no maps; levels too small for a map keep the global one.
    assert global_only.with_levels(generated, real, ["ward"]).levels == {}
    small = real.assign(diagnosis=np.where(np.arange(len(real)) < 50, "rare", real["diagnosis"]))
    assert "rare" not in global_only.with_levels(generated, small, ["diagnosis"]).levels["size"].maps


def test_no_level_emits_a_training_extreme_held_by_fewer_than_k_rows() -> None:
    real = _by_diagnosis()
    real.loc[0, ["diagnosis", "size"]] = ["malignant", 99.0]  # one patient far out, the level's and the table's maximum
    real.loc[1, ["diagnosis", "size"]] = ["benign", 2.0]  # and one at the minimum
    generated = _by_diagnosis(2, 20_000)
    generated["size"] = np.random.default_rng(1).normal(15.0, 30.0, 20_000)  # far beyond both ends
    calibration = ValueCalibration.fit(generated, real, ["size"], min_count=5).with_levels(generated, real, ["diagnosis"], 5)
    assert calibration.levels["size"].by == "diagnosis"
    mapped = calibration.apply(generated, np.random.default_rng(0))
    for level in ("benign", "malignant"):
        ordered = np.sort(real.loc[real["diagnosis"] == level, "size"].to_numpy())
        values = mapped.loc[mapped["diagnosis"] == level, "size"]
        assert values.min() >= ordered[4] and values.max() <= ordered[-5]
    assert not mapped["size"].isin([99.0, 2.0]).any()


def test_a_calibration_per_level_that_would_copy_training_rows_whole_is_not_kept() -> None:
    # Two columns: a group and an integer age that the group confines (20-29 or 60-69). Mapped per
    # level, every generated row of a group lands on a training (group, age) pair: a copy of a
    # training row in every column. The fit measures that on its own draw and keeps the global map.
    rng = np.random.default_rng(0)
    group = rng.choice(["young", "old"], 1_000)
    confined = pd.DataFrame({"group": group, "age": np.where(group == "young", rng.integers(20, 30, 1_000),
                                                            rng.integers(60, 70, 1_000))})
    # Where the ages are not a few shared integers, no pair is forced and the levels are kept.
    spread = confined.assign(age=(rng.uniform(20, 70, 1_000) + np.where(group == "old", 15, 0)).round(3))
    # (a model of the second table: in the first the group is a step function of the age, derived, not learned)
    model = TabularSynthesizer(seed=0, steps=30, progress=False).fit(spread)
    assert model.table_.rule_for("group") is None
    for training, integers, kept_levels in ((confined, True, False), (spread, False, True)):
        drawn, check = (pd.DataFrame({"group": rng.choice(["young", "old"], 10_000),
                                      "age": rng.integers(20, 70, 10_000) if integers else rng.uniform(20, 70, 10_000)})
                        for _ in range(2))
        calibration = ValueCalibration.fit(drawn, training, ["age"])
        assert calibration.with_levels(drawn, training, ["group"]).levels["age"].by == "group"  # it would apply ...
        kept = model._by_level(calibration, drawn, lambda names, training=training: training[names],
                               np.random.default_rng(1), check=check)
        assert bool(kept.levels) == kept_levels  # ... unless it copies more rows whole


def test_levels_round_trip_and_crafted_levels_are_refused() -> None:
    real = _by_diagnosis()
    generated = _by_diagnosis(2, 20_000)
    calibration = ValueCalibration.fit(generated, real, ["size"]).with_levels(generated, real, ["diagnosis"])
    state = calibration.get_state()
    again = ValueCalibration.from_state(state, ["diagnosis", "ward", "size"])
    pd.testing.assert_frame_equal(again.apply(generated.head(500), np.random.default_rng(0)),
                                  calibration.apply(generated.head(500), np.random.default_rng(0)))
    for crafted in ({**state["size"], "by": "no_such_column"},
                    {**state["size"], "levels": {"benign": {"generated": [1.0, 2.0], "target": [1.0]}}},
                    {**state["size"], "levels": {"benign": {"generated": [3.0, 2.0, 1.0], "target": [1.0, 2.0, 3.0]}}},
                    {**state["size"], "levels": "benign"}):
        with pytest.raises(ValueError):
            ValueCalibration.from_state({"size": crafted}, ["diagnosis", "ward", "size"])


def test_a_fitted_model_calibrates_a_column_per_level_and_says_so(patients: pd.DataFrame, fitted) -> None:
    # bilirubin is lognormal around 1 for women and around 4.5 for men (make_patients).
    assert fitted.describe()["calibrated_by_level"] == {"bilirubin": "sex"}
    sample = fitted.sample(4_000, seed=1)
    global_only = ValueCalibration(fitted.value_calibration_.maps)
    raw = TabularSynthesizer.__new__(TabularSynthesizer)
    raw.__dict__.update(fitted.__dict__, value_calibration_=global_only)
    flat = raw.sample(4_000, seed=1)

    def worst_level(frame: pd.DataFrame) -> float:
        return max(ks_2samp(frame.loc[frame["sex"] == s, "bilirubin"].dropna(),
                            patients.loc[patients["sex"] == s, "bilirubin"].dropna()).statistic for s in ("F", "M"))

    assert worst_level(sample) < 0.06 and worst_level(sample) < worst_level(flat)


def test_a_file_fit_calibrates_per_level_as_an_in_memory_fit_does(tmp_path) -> None:
    # The file route reads the training rows again, a few columns at a time, with the holdout left
    # out by position: the same maps, so the same model bytes.
    table = _by_diagnosis(0, 1_500)
    path = tmp_path / "t.parquet"
    table.to_parquet(path, index=False, row_group_size=200)
    models = []
    for data, name in ((table, "whole.sgz"), (path, "file.sgz")):
        model = TabularSynthesizer(seed=3, steps=40, progress=False).fit(data, holdout=0.2, **(
            {"chunk_rows": 300} if isinstance(data, type(path)) else {}))
        assert model.describe()["calibrated_by_level"] == {"size": "diagnosis"}
        models.append(model.save(tmp_path / name).read_bytes())
    assert models[0] == models[1]
    from click.testing import CliRunner

    from synthgen.cli.main import main

    assert "calibrated per level of a category: size by diagnosis" in CliRunner().invoke(main, ["info", str(tmp_path / "file.sgz")]).output


# ----------------------------------------------------------------------------- per pair of levels

def _censored(seed: int = 0, rows: int = 4_000, spread: float = 40.0) -> pd.DataFrame:
    """Follow-up ends at death or at the study's end: a survivor's follow-up is its entry year's
    distance to the end (a sharp edge per year), a death's anything below it. ``ward`` is noise; the
    year 1999 is too rare for maps of its own."""
    rng = np.random.default_rng(seed)
    year = rng.choice([1995, 1996, 1997, 1998, 1999], rows, p=[0.3, 0.3, 0.2, 0.18, 0.02]).astype(str)
    status = rng.choice(["alive", "dead"], rows, p=[0.7, 0.3])
    edge = (2005 - year.astype(int)) * 365.0
    followup = np.where(status == "alive", edge - rng.gamma(1.0, spread, rows), rng.uniform(0.05, 1.0, rows) * edge)
    return pd.DataFrame({"year": year, "status": status, "ward": rng.choice(["a", "b"], rows),
                         "followup": followup.round(1)})


def _ignoring_year(real: pd.DataFrame, seed: int, rows: int = 20_000) -> pd.DataFrame:
    """A generator that learned follow-up by status but not the year's edge."""
    generated = _censored(seed, rows)
    rng = np.random.default_rng(seed + 100)
    alive = generated["status"] == "alive"
    generated["followup"] = np.where(alive, rng.choice(real.loc[real["status"] == "alive", "followup"], rows),
                                     rng.choice(real.loc[real["status"] == "dead", "followup"], rows))
    return generated


def _cell_ks(frame: pd.DataFrame, real: pd.DataFrame, years=("1995", "1996", "1997", "1998")) -> float:
    return max(ks_2samp(frame.loc[(frame["status"] == s) & (frame["year"] == y), "followup"],
                        real.loc[(real["status"] == s) & (real["year"] == y), "followup"]).statistic
               for s in ("alive", "dead") for y in years)


def test_a_second_category_refines_the_levels_where_it_explains_much_more() -> None:
    import dataclasses

    real = _censored()
    generated = _ignoring_year(real, 1)
    fresh = _ignoring_year(real, 2, 8_000)
    calibration = ValueCalibration.fit(generated, real, ["followup"]).with_levels(generated, real, ["ward", "status", "year"])
    level = calibration.levels["followup"]
    assert (level.by, level.then) == ("status", "year")
    # Every survivors' pair gets a map (the status map leaves the year's edge wrong); the deaths' pairs
    # only where the status map still leaves them off (a KS test at 1%).
    assert {k for k in level.pair_maps if k.startswith("alive")} == {f"alive\x1f{y}" for y in ("1995", "1996", "1997", "1998")}
    single = ValueCalibration(calibration.maps, {"followup": dataclasses.replace(level, then=None, pair_maps={})})
    paired, by_status = (c.apply(fresh, np.random.default_rng(0)) for c in (calibration, single))
    # (cells of 200-900 rows: a KS statistic under 0.12 is within sampling noise)
    assert _cell_ks(by_status, real) > 0.3 and _cell_ks(paired, real) < 0.12
    # Each survivor of a mapped year stays below its year's edge, as every real one does; by status
    # alone they do not.
    edge = (2005 - fresh["year"].astype(int)) * 365.0
    alive = (fresh["status"] == "alive") & (fresh["year"] != "1999")
    assert (paired.loc[alive, "followup"] <= edge[alive] + 1).all()
    assert (by_status.loc[alive, "followup"] <= edge[alive] + 1).mean() < 0.8
    # The rare year has no pair maps: its rows take their status's map, not the global one.
    rare = fresh["year"] == "1999"
    pd.testing.assert_series_equal(paired.loc[rare, "followup"], by_status.loc[rare, "followup"])
    # A second category that adds nothing (the ward) refines nothing.
    assert ValueCalibration.fit(generated, real, ["followup"]).with_levels(
        generated, real, ["ward", "status"]).levels["followup"].then is None


def test_pairs_the_generator_already_gets_right_get_no_maps() -> None:
    """The year explains the ranks as before, but a generator that learned it (fresh draws of the same
    process, survivors spread over a year before the edge) is not pulled onto the pairs' training
    values: no pair map, the status map alone."""
    real = _censored(spread=300.0)
    right = _censored(7, 20_000, spread=300.0)
    level = ValueCalibration.fit(right, real, ["followup"]).with_levels(right, real, ["status", "year"]).levels["followup"]
    assert level.by == "status" and level.then is None and level.pair_maps == {}
    # ... where a generator that ignores the year gets them on the same table.
    wrong = _ignoring_year(real, 1)
    assert ValueCalibration.fit(wrong, real, ["followup"]).with_levels(
        wrong, real, ["status", "year"]).levels["followup"].then == "year"


def test_pair_levels_round_trip_and_crafted_pairs_are_refused() -> None:
    real = _censored()
    generated = _ignoring_year(real, 1)
    calibration = ValueCalibration.fit(generated, real, ["followup"]).with_levels(generated, real, ["status", "year"])
    state = calibration.get_state()
    columns = ["year", "status", "ward", "followup"]
    again = ValueCalibration.from_state(state, columns)
    pd.testing.assert_frame_equal(again.apply(generated.head(500), np.random.default_rng(0)),
                                  calibration.apply(generated.head(500), np.random.default_rng(0)))
    followup = state["followup"]
    without_then = {key: value for key, value in followup.items() if key != "then"}
    for crafted in ({**followup, "then": "status"}, {**followup, "then": "no_such_column"}, without_then,
                    {**followup, "pair_levels": {"x": {"generated": [2.0, 1.0], "target": [1.0, 2.0]}}},
                    {**followup, "pair_levels": []}):
        with pytest.raises(ValueError):
            ValueCalibration.from_state({"followup": crafted}, columns)


def test_a_fitted_model_calibrates_per_pair_of_levels_and_says_so() -> None:
    # With an age beside them, calibrated rows do not complete training rows (the fit's copy check).
    real = _censored(0, 3_000).assign(age=lambda t: np.random.default_rng(5).uniform(40, 90, len(t)).round(1))
    model = TabularSynthesizer(seed=0, steps=60, progress=False).fit(real)
    assert model.describe()["calibrated_by_level"] == {"followup": "status and year"}
    sample = model.sample(6_000, seed=1)
    edge = (2005 - sample["year"].astype(int)) * 365.0
    # Survivors of the years with maps of their own (not the rare 1999) all end before the edge.
    alive = (sample["status"] == "alive") & (sample["year"] != "1999")
    assert alive.sum() > 1_000 and (sample.loc[alive, "followup"] <= edge[alive] + 1).all()


# ----------------------------------------------------------------------------- per band of a numeric column

def _light_chains(seed: int = 0, rows: int = 3_000, spread: float = 0.15) -> pd.DataFrame:
    """Two lab values that rise together (flchain's kappa and lambda), heavy-tailed; age is unrelated."""
    rng = np.random.default_rng(seed)
    kappa = rng.lognormal(0.2, 0.5, rows)
    return pd.DataFrame({"kappa": kappa.round(3), "lambda": (1.3 * kappa * rng.lognormal(0.0, spread, rows)).round(3),
                         "age": rng.uniform(40, 90, rows).round(1)})


def _band_ks(frame: pd.DataFrame, real: pd.DataFrame, column: str, by: str, bands: int = 5) -> float:
    """The worst KS statistic of ``column`` within the training quantile bands of ``by``."""
    cuts = np.quantile(real[by], np.arange(1, bands) / bands)
    return max(ks_2samp(frame.loc[np.searchsorted(cuts, frame[by]) == b, column],
                        real.loc[np.searchsorted(cuts, real[by]) == b, column]).statistic for b in range(bands))


def test_a_column_is_calibrated_per_band_of_the_numeric_column_that_explains_it() -> None:
    real = _light_chains()
    # A generator that learned that the two rise together, but loosely (3 times the real spread).
    generated, fresh = _light_chains(1, 20_000, spread=0.45), _light_chains(2, 6_000, spread=0.45)
    global_only = ValueCalibration.fit(generated, real, ["kappa", "lambda", "age"])
    banded = global_only.with_levels(generated, real, [])
    # One of the pair is mapped within the other's bands, never both ways (each pair matched once);
    # the unrelated age explains nothing and gets no maps.
    assert set(banded.levels) == {"kappa"} and banded.levels["kappa"].by == "lambda"
    assert set(banded.levels["kappa"].cuts) == {"lambda"} and len(banded.levels["kappa"].maps) == 10
    before, after = (c.apply(fresh, np.random.default_rng(0)) for c in (global_only, banded))
    # The bands are read from the generated values before any map moves them: lambda (the source)
    # is mapped globally only, kappa within lambda's bands.
    pd.testing.assert_series_equal(before["lambda"], after["lambda"])
    assert _band_ks(before, real, "kappa", "lambda") > 0.15 and _band_ks(after, real, "kappa", "lambda") < 0.06
    assert (spearmanr(after["kappa"], after["lambda"]).statistic
            > spearmanr(before["kappa"], before["lambda"]).statistic + 0.05)
    # Column Shapes of the mapped column stay right.
    assert ks_2samp(after["kappa"], real["kappa"]).statistic < 0.04
    # No band emits a training extreme held by fewer than k rows.
    assert after["kappa"].max() <= np.sort(real["kappa"])[-5] and after["kappa"].min() >= np.sort(real["kappa"])[4]
    # A column with one value in many rows (here 30% at the lab's floor) is no source of bands: an
    # edge on that value would split its rows one way in the training rows and another in the draw.
    floored = {name: frame.assign(**{"lambda": np.where(frame["kappa"] < frame["kappa"].quantile(0.3), 0.5, frame["lambda"])})
               for name, frame in (("real", real), ("generated", generated))}
    levels = ValueCalibration.fit(floored["generated"], floored["real"], ["kappa", "lambda"]).with_levels(
        floored["generated"], floored["real"], []).levels
    assert {name: level.describe() for name, level in levels.items()} == {"lambda": "bands of kappa"}
    # A weak dependence (rank correlation near 0.3) gets no bands: the generator gets it about right.
    loose, looser = _light_chains(spread=1.5), _light_chains(1, 20_000, spread=2.5)
    assert ValueCalibration.fit(looser, loose, ["kappa", "lambda"]).with_levels(looser, loose, []).levels == {}
    # A generator that already got the dependence right (fresh draws of the same process) gets no band maps.
    right = _light_chains(3, 20_000)
    assert ValueCalibration.fit(right, real, ["kappa", "lambda"]).with_levels(right, real, []).levels == {}
    # Bands need MIN_LEVEL_ROWS training rows each: 200 rows make one band, so no maps.
    assert ValueCalibration.fit(generated, real.head(200), ["kappa", "lambda"]).with_levels(generated, real.head(200), []).levels == {}


def test_band_cuts_round_trip_and_crafted_cuts_are_refused() -> None:
    real = _light_chains()
    generated = _light_chains(1, 20_000, spread=0.45)
    calibration = ValueCalibration.fit(generated, real, ["kappa", "lambda"]).with_levels(generated, real, [])
    state = calibration.get_state()
    columns = ["kappa", "lambda", "age"]
    again = ValueCalibration.from_state(state, columns)
    pd.testing.assert_frame_equal(again.apply(generated.head(500), np.random.default_rng(0)),
                                  calibration.apply(generated.head(500), np.random.default_rng(0)))
    kappa = state["kappa"]
    for crafted in ({**kappa, "cuts": {"lambda": [2.0, 1.0]}}, {**kappa, "cuts": {"lambda": [1.0, float("nan")]}},
                    {**kappa, "cuts": {"age": [1.0, 2.0]}}, {**kappa, "cuts": {"kappa": [1.0, 2.0]}},
                    {**kappa, "cuts": {"lambda": "1,2"}}, {**kappa, "cuts": {"lambda": {"a": 1}}}, {**kappa, "cuts": [1.0]}):
        with pytest.raises(ValueError):
            ValueCalibration.from_state({"kappa": crafted}, columns)


def test_a_fitted_model_calibrates_per_band_and_says_so() -> None:
    real = _light_chains(0, 2_000)
    # Without the copula correction, which moves the joint ranks of kappa and lambda itself
    # (tests/data/test_copula.py): here the bands alone are under test.
    model = TabularSynthesizer(seed=0, steps=60, progress=False, copula=False).fit(real)
    assert model.describe()["calibrated_by_level"] == {"kappa": "bands of lambda"}
    global_only = TabularSynthesizer.__new__(TabularSynthesizer)
    global_only.__dict__.update(model.__dict__, value_calibration_=ValueCalibration(model.value_calibration_.maps))
    banded, flat = model.sample(6_000, seed=1), global_only.sample(6_000, seed=1)
    assert _band_ks(banded, real, "kappa", "lambda") < 0.1 < _band_ks(flat, real, "kappa", "lambda")
