"""The Gaussian-copula correction of generated numeric columns (non-DP models)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy.stats import ks_2samp, spearmanr

import synthgen
from synthgen import Metadata, TabularSynthesizer
from synthgen.cli.main import main
from synthgen.data.calibration import ValueCalibration
from synthgen.data.copula import CopulaCorrection
from synthgen.evaluation.privacy import exact_copy_mask


def _correlated(n: int, rho: float, seed: int) -> pd.DataFrame:
    """Three skewed columns: x and y rank-correlated by about ``rho``, z independent of both."""
    rng = np.random.default_rng(seed)
    common, own = rng.normal(size=n), rng.normal(size=(n, 2))
    x = np.exp(common)
    y = 50 + 10 * (rho * common + np.sqrt(1 - rho**2) * own[:, 0])
    return pd.DataFrame({"x": x, "y": y, "z": rng.gamma(2.0, 1.0, n) + 0.3 * own[:, 1]})


def _rho(frame: pd.DataFrame, a: str = "x", b: str = "y") -> float:
    both = frame[[a, b]].dropna()
    return float(spearmanr(both[a], both[b]).statistic)


def test_independent_generator_gets_the_training_rank_correlation_with_its_own_marginals() -> None:
    real = _correlated(2_000, 0.85, 0)
    generated = _correlated(20_000, 0.0, 1)  # a generator that lost the dependence
    correction = CopulaCorrection.fit(generated, real, ["x", "y", "z"], 100, np.random.default_rng(2))
    fresh = _correlated(5_000, 0.0, 3)
    moved = correction.frame(fresh, np.random.default_rng(4))
    assert abs(_rho(fresh)) < 0.05 and _rho(real) > 0.8
    assert abs(_rho(moved) - _rho(real)) < 0.03
    assert abs(_rho(moved, "x", "z") - _rho(real, "x", "z")) < 0.03
    for name in "xyz":  # the generator's marginals: moving ranks does not move the shape
        assert ks_2samp(moved[name], fresh[name]).statistic < 0.03


def test_a_generator_that_has_the_dependence_is_left_almost_as_it_is() -> None:
    real = _correlated(2_000, 0.85, 0)
    generated = _correlated(20_000, 0.85, 1)
    correction = CopulaCorrection.fit(generated, real, ["x", "y", "z"], 100, np.random.default_rng(2))
    assert np.abs(correction.transport - np.eye(3)).max() < 0.06
    fresh = _correlated(2_000, 0.85, 3)
    moved = correction.frame(fresh, np.random.default_rng(4))
    # A rank moves by a few percent at most where the generator already had the training correlation.
    for name in "xyz":
        assert spearmanr(moved[name], fresh[name]).statistic > 0.99


def test_rows_are_corrected_one_by_one_and_gaps_stay_gaps() -> None:
    real = _correlated(2_000, 0.85, 0)
    real.loc[::7, "y"] = np.nan
    generated = _correlated(20_000, 0.0, 1)
    generated.loc[::5, "x"] = np.nan
    correction = CopulaCorrection.fit(generated, real, ["x", "y", "z"], 100, np.random.default_rng(2))
    fresh = _correlated(1_000, 0.0, 3)
    fresh.loc[::4, "y"] = np.nan
    whole = correction.frame(fresh, np.random.default_rng(4))
    part = correction.frame(fresh.iloc[:100], np.random.default_rng(5))
    pd.testing.assert_frame_equal(part, whole.iloc[:100])  # no row reads another: chunks and shards agree
    assert whole["y"].isna().equals(fresh["y"].isna())
    assert abs(_rho(whole) - _rho(real)) < 0.05


def test_state_round_trips_and_a_crafted_state_is_refused() -> None:
    real, generated = _correlated(2_000, 0.85, 0), _correlated(20_000, 0.0, 1)
    correction = CopulaCorrection.fit(generated, real, ["x", "y"], 100, np.random.default_rng(2))
    again = CopulaCorrection.from_state(correction.get_state(), ["x", "y", "z"])
    pd.testing.assert_frame_equal(again.frame(generated.head(300), np.random.default_rng(0)),
                                  correction.frame(generated.head(300), np.random.default_rng(0)))
    state = correction.get_state()
    for crafted in ({**state, "columns": ["x", "w"]}, {**state, "columns": ["x", "x"]}, {**state, "columns": ["x"]},
                    {**state, "transport": [[1.0, 0.0]]}, {**state, "knots": [list(reversed(state["knots"][0])), state["knots"][1]]},
                    {**state, "knots": "none"}, [1, 2]):
        with pytest.raises(ValueError, match="copula correction is malformed"):
            CopulaCorrection.from_state(crafted, ["x", "y", "z"])


def test_calibration_with_copula_keeps_training_extremes_out_and_calibrated_marginals() -> None:
    real, generated = _correlated(500, 0.9, 0), _correlated(20_000, 0.0, 1)
    calibration, corrected = ValueCalibration.fit(generated, real, ["x", "y", "z"]).with_copula(
        generated, real, np.random.default_rng(2))
    assert calibration.copula is not None and corrected is not generated
    sample = calibration.apply(_correlated(5_000, 0.0, 3), np.random.default_rng(4))
    assert abs(_rho(sample) - _rho(real)) < 0.05
    for name in "xyz":
        observed = np.sort(real[name].to_numpy())
        # Moved rows still pass through the clipped maps: the 4 rarest extremes are never emitted.
        assert observed[4] <= sample[name].min() and sample[name].max() <= observed[-5]
        assert ks_2samp(sample[name], real[name]).statistic < 0.06


def test_fitted_model_keeps_the_training_rank_correlation_through_save_and_info(tmp_path) -> None:
    real = _correlated(600, 0.9, 0)
    # 200 steps: too few for the GAN to learn the dependence itself (and it piles values on a range end).
    with_copula = TabularSynthesizer(seed=0, steps=200, progress=False).fit(real)
    without = TabularSynthesizer(seed=0, steps=200, progress=False, copula=False).fit(real)
    assert without.describe()["copula_columns"] == [] and with_copula.describe()["copula_columns"] == ["x", "y", "z"]
    plain, corrected = without.sample(3_000, seed=1), with_copula.sample(3_000, seed=1)
    assert abs(_rho(plain) - _rho(real)) > 0.1
    assert abs(_rho(corrected) - _rho(real)) < 0.03
    path = with_copula.save(tmp_path / "model.sgz")
    pd.testing.assert_frame_equal(synthgen.load(path).sample(500, seed=2), with_copula.sample(500, seed=2))
    shown = CliRunner().invoke(main, ["info", str(path)])
    assert shown.exit_code == 0 and "joint ranks of 3 numeric columns" in shown.output


def test_the_correction_is_dropped_where_it_would_complete_training_rows(caplog) -> None:
    # Two integer columns equal on every training row: a generator that missed the dependence emits
    # pairs no patient has, and moving its ranks onto the training correlation would turn them into
    # copies of whole training rows. The fit must keep the uncorrected calibration then.
    rng = np.random.default_rng(0)
    x = rng.integers(0, 40, 1_000)
    real = pd.DataFrame({"x": x, "y": x})
    metadata = Metadata({"x": {"sdtype": "numerical"}, "y": {"sdtype": "numerical"}})
    with caplog.at_level("INFO", logger="synthgen"):
        model = TabularSynthesizer(metadata, seed=0, steps=30, progress=False).fit(real)
    assert model.describe()["copula_columns"] == []
    assert "copula correction not kept" in caplog.text
    # What it would have done: the same raw draw calibrated with and without the correction.
    kept = model.value_calibration_
    model.value_calibration_ = None
    raw = model.sample(5_000, seed=1)
    corrected = kept.with_copula(raw, real, np.random.default_rng(2))[0]
    copies = [int(exact_copy_mask(real, calibration.apply(raw, np.random.default_rng(3)), metadata).sum())
              for calibration in (kept, corrected)]
    assert copies[1] > copies[0]


def test_a_correction_not_kept_leaves_the_rest_of_the_fit_as_without_it(monkeypatch) -> None:
    # The correction is tried and dropped (it would complete training rows); every decision after
    # it (the per-level maps' copy check, the rounding's) must then draw what a fit with
    # copula=False draws, or a rejected correction would still change the model.
    rng = np.random.default_rng(0)
    x = rng.integers(0, 40, 1_000)
    real = pd.DataFrame({"x": x, "y": x, "group": rng.choice(["a", "b"], 1_000)})
    streams: list[dict] = []
    by_level = TabularSynthesizer._by_level

    def recording(self, calibration, drawn, training_rows, rng, **options):
        streams.append(rng.bit_generator.state)
        return by_level(self, calibration, drawn, training_rows, rng, **options)

    monkeypatch.setattr(TabularSynthesizer, "_by_level", recording)
    tried = TabularSynthesizer(seed=0, steps=30, progress=False).fit(real)
    assert tried.describe()["copula_columns"] == []
    without = TabularSynthesizer(seed=0, steps=30, progress=False, copula=False).fit(real)
    assert streams[0] == streams[1]
    pd.testing.assert_frame_equal(tried.sample(2_000, seed=1), without.sample(2_000, seed=1))


def test_the_cli_fits_with_the_correction_unless_told_not_to(tmp_path) -> None:
    data = tmp_path / "labs.csv"
    _correlated(400, 0.9, 0).to_csv(data, index=False)
    shown = {}
    for flags in ([], ["--no-copula"]):
        model = tmp_path / f"model{len(flags)}.sgz"
        fitted = CliRunner().invoke(main, ["fit", str(data), "-o", str(model), "--steps", "20", "--seed", "0", "--quiet", *flags])
        assert fitted.exit_code == 0, fitted.output
        shown[bool(flags)] = CliRunner().invoke(main, ["info", str(model)]).output
    assert "joint ranks of 3 numeric columns" in shown[False]
    assert "joint ranks" not in shown[True] and "marginals calibrated" in shown[True]


def test_the_fit_keeps_the_correction_where_it_holds_on_unseen_training_rows(monkeypatch) -> None:
    # The fit fits the correction on each half of the training rows in turn and keeps it only if it
    # brings the other half's pairs closer. A generator stands in for the trained one (the fit's
    # draws come from it), on 12 training tables of the same process:
    def kept(rho: float) -> int:
        monkeypatch.setattr(TabularSynthesizer, "sample", lambda self, num_rows, seed=None, **_: _correlated(num_rows, rho, seed))
        return sum(bool(TabularSynthesizer(seed=seed, steps=1, progress=False).fit(_correlated(1_000, 0.6, seed))
                        .describe()["copula_columns"]) for seed in range(12))

    # One that lost the dependence: the correction holds on the unseen half every time.
    assert kept(0.0) == 12
    # One that already has it: the training rows' correlations differ from its own by sampling noise,
    # and moving onto them fits that noise; a half tells, most of the time (4 of 12 kept, where the
    # training table itself strays from the process: no split of it can see that).
    assert kept(0.6) <= 6
