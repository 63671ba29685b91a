"""Sampled numbers are written as the training values were recorded (decimals, significant digits),
unless that would complete training rows; crafted precisions in a model file are refused."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from synthgen import TabularSynthesizer, load
from synthgen.cli.main import main
from synthgen.data.continuous import ContinuousTransformer, recorded_precision, round_to_precision


def _written(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Each present value's decimals and significant digits as the shortest decimal that reads back as it."""
    decimals, significant = [], []
    for value in values.dropna().to_numpy(dtype=np.float64):
        whole, _, fraction = np.format_float_positional(abs(value), unique=True, trim="-").partition(".")
        digits = (whole + fraction).lstrip("0")
        decimals.append(len(fraction))
        significant.append(len(digits if fraction else digits.rstrip("0")) or 1)
    return np.array(decimals), np.array(significant)


def _lab_table(n: int = 800, seed: int = 0) -> pd.DataFrame:
    """Lab values as a hospital records them: an assay to 3 significant digits (2 decimals above 1,
    3 below), a BMI to 1 decimal, an area to 1 decimal in the thousands; a computed score unrounded."""
    rng = np.random.default_rng(seed)
    kappa = rng.lognormal(0.2, 0.5, n)
    kappa = np.where(kappa < 1, np.round(kappa, 3), np.round(kappa, 2))
    bmi = np.round(rng.normal(27, 4, n), 1)
    bmi[rng.random(n) < 0.1] = np.nan  # gaps stay gaps
    return pd.DataFrame({
        "kappa": kappa,
        "bmi": bmi,
        "area": np.round(np.exp(rng.normal(6.5, 0.5, n)), 1),
        "sex": rng.choice(["F", "M"], n),
        "stage": rng.choice(["I", "II", "III"], n),
        "score": rng.normal(0, 1, n) + 0.3 * kappa,  # full float precision: nothing to round to
    })


def test_the_recorded_precision_is_read_from_the_values_as_written() -> None:
    kappa = _lab_table()["kappa"].to_numpy()
    assert recorded_precision(kappa) == (3, 3)
    assert recorded_precision(np.array([143.5, 1001.0, 2501.0, 386.1, 12.0])) == (1, 4)
    assert recorded_precision(np.random.default_rng(0).normal(size=2_000)) == (None, None)
    # One value in 200 written finer does not make the column unrounded; one in 20 does.
    coarse = np.round(np.random.default_rng(1).uniform(1, 9, 2_000), 1)
    fine = coarse.copy()
    fine[::200] += 0.0123
    assert recorded_precision(fine) == (1, 2)
    fine[::20] += 0.0123
    assert recorded_precision(fine)[0] is None or recorded_precision(fine)[0] > 1


def test_rounding_takes_the_coarser_of_the_two_grids_per_value() -> None:
    values = np.array([1.4137, 0.81234, 12.3456, 0.0, np.nan, -2.71828, 1234.56])
    rounded = round_to_precision(values, 3, 3)
    np.testing.assert_array_equal(rounded, [1.41, 0.812, 12.3, 0.0, np.nan, -2.72, 1230.0])
    assert round_to_precision(values, None, None) is values


def test_a_fitted_model_samples_numbers_as_the_training_values_were_recorded(tmp_path) -> None:
    table = _lab_table()
    model = TabularSynthesizer(seed=0, steps=60, progress=False).fit(table)
    assert model.describe()["rounded_columns"] == {"kappa": "3 decimals, 3 significant digits",
                                                    "bmi": "1 decimal, 3 significant digits",
                                                    "area": "1 decimal, 5 significant digits"}
    sample = model.sample(3_000, seed=1)
    for name, (decimals, significant) in {"kappa": (3, 3), "bmi": (1, 3), "area": (1, 5)}.items():
        written = _written(sample[name])
        assert written[0].max() <= decimals and written[1].max() <= significant, name
        # The training split: kappa above 1 is written with 2 decimals, and so is the sample.
        above = sample[name][sample[name] >= 1]
        if name == "kappa":
            assert _written(above)[0].max() == 2
    assert _written(sample["score"])[1].min() > 6  # the unrounded column stays unrounded
    # Rounding moves nothing else: the unrounded model's rows, rounded, are these rows; gaps stay gaps.
    model.rounding_ = False
    unrounded = model.sample(3_000, seed=1)
    model.rounding_ = True
    assert (unrounded["kappa"] != sample["kappa"]).mean() > 0.9
    pd.testing.assert_series_equal(sample["bmi"].isna(), unrounded["bmi"].isna())
    assert sample["bmi"].isna().any()
    pd.testing.assert_frame_equal(sample[["sex", "stage", "score"]], unrounded[["sex", "stage", "score"]])
    pd.testing.assert_series_equal(sample["kappa"], unrounded["kappa"].round(3).where(
        unrounded["kappa"] < 1, unrounded["kappa"].round(2)), check_names=False)
    # Kept through the model file.
    path = model.save(tmp_path / "m.sgz")
    pd.testing.assert_frame_equal(load(path).sample(500, seed=4), model.sample(500, seed=4))


def test_rounding_that_would_complete_training_rows_is_not_kept() -> None:
    # One category and one number recorded to 1 decimal on 12 values: rounded, nearly every sampled
    # row is some training row. The fit sees that on its own draw and samples unrounded numbers.
    rng = np.random.default_rng(0)
    group = rng.choice(["a", "b"], 600)
    confined = pd.DataFrame({"group": group, "dose": np.round(rng.choice(np.arange(1.0, 2.2, 0.1), 600), 1)})
    model = TabularSynthesizer(seed=0, steps=30, progress=False).fit(confined)
    assert model.describe()["rounded_columns"] == {}
    assert _written(model.sample(2_000, seed=1)["dose"])[0].max() > 1


def test_a_training_extreme_held_by_few_rows_is_not_reached_by_rounding() -> None:
    # Values to 1 decimal; the two highest are held by one patient each and sit 0.1 above the rest.
    rng = np.random.default_rng(2)
    values = np.concatenate([np.round(rng.uniform(3.0, 6.0, 596), 1), [6.1, 6.1, 6.2, 6.3]])
    table = pd.DataFrame({"value": values, "group": rng.choice(["x", "y", "z"], 600),
                          **{f"lab{i}": np.round(rng.lognormal(3, 1, 600), 3) for i in range(3)}})
    model = TabularSynthesizer(seed=0, steps=60, progress=False).fit(table)
    assert "value" in model.describe()["rounded_columns"]
    sampled = model.sample(5_000, seed=3)["value"]
    assert not sampled.isin([6.2, 6.3]).any()
    assert sampled.max() <= np.sort(values)[-5]


@pytest.mark.parametrize("state", [{"decimals": -1}, {"decimals": 40}, {"decimals": "2"}, {"decimals": True},
                                   {"significant": 0}, {"significant": 2.5}, {"significant": 99}])
def test_a_crafted_precision_is_refused(state: dict) -> None:
    fitted = ContinuousTransformer().fit(pd.Series(np.round(np.random.default_rng(0).normal(5, 1, 200), 1)),
                                         np.random.default_rng(0))
    assert ContinuousTransformer.from_state(fitted.get_state()).decimals_ == 1
    with pytest.raises(ValueError):
        ContinuousTransformer.from_state({**fitted.get_state(), **state})


def test_the_cli_rounds_unless_told_not_to_and_info_says_which_columns(tmp_path) -> None:
    data = tmp_path / "labs.csv"
    _lab_table(400).to_csv(data, index=False)
    runner = CliRunner()
    for extra, rounded in (([], True), (["--no-rounding"], False)):
        model, out = tmp_path / f"m{len(extra)}.sgz", tmp_path / f"s{len(extra)}.csv"
        fitted = runner.invoke(main, ["fit", str(data), "-o", str(model), "--steps", "20", "--seed", "0", "--quiet", *extra])
        assert fitted.exit_code == 0, fitted.output
        assert runner.invoke(main, ["sample", str(model), "-n", "300", "-o", str(out), "--quiet"]).exit_code == 0
        if rounded:
            assert _written(pd.read_csv(out)["area"])[0].max() <= 1
        shown = runner.invoke(main, ["info", str(model)]).output
        assert ("bmi (1 decimal" in shown) is rounded
        described = json.loads(runner.invoke(main, ["info", str(model), "--json"]).output)["rounded_columns"]
        assert bool(described) is rounded
