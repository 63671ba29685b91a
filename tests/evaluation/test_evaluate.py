"""synthgen.evaluation end to end and `synthgen evaluate` on the command line."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from synthgen.cli.evaluate import GATE_FAILED_EXIT
from synthgen.cli.main import main
from synthgen.errors import InvalidArgumentError
from synthgen.evaluation import evaluate

from conftest import make_patients


@pytest.fixture(scope="module")
def split() -> tuple[pd.DataFrame, pd.DataFrame]:
    table = make_patients(2_400, seed=5)
    return table.iloc[:1_200].reset_index(drop=True), table.iloc[1_200:].reset_index(drop=True)


def _independent(train: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """Each column drawn on its own from its marginal: no relationship kept, no row copied whole.

    Float columns are drawn from the interpolated empirical quantiles, as a generator would produce
    new values; resampling raw floats would copy individual patients' exact measurements, which
    the singling-out test rightly flags.
    """
    rng = np.random.default_rng(seed)
    columns = {}
    for name in train:
        values = train[name]
        if pd.api.types.is_float_dtype(values):
            drawn = np.quantile(values.dropna(), rng.random(n))
            drawn[rng.random(n) < values.isna().mean()] = np.nan
            columns[name] = drawn
        else:
            columns[name] = values.to_numpy()[rng.integers(0, len(values), n)]
    return pd.DataFrame(columns)


def _scores(report) -> dict[str, float]:
    return dict(zip(report.scores["metric"], report.scores["value"]))


def test_a_copy_of_the_training_data_fails_the_privacy_gates(split) -> None:
    train, holdout = split
    report = evaluate(train, train.copy(), holdout=holdout, progress=False)
    scores = _scores(report)
    assert not report.passed
    assert scores["Exact copies"] == 1.0
    assert scores["DCR share"] > 0.95 and scores["MIA AUC (distance)"] > 0.9
    failed = {r.gate.metric for r in report.gate_results if r.passed is False}
    assert {"exact_copies", "dcr_share", "mia_auc_distance"} <= failed


def test_an_independent_sampler_passes_privacy_and_scores_the_pair_floor(split) -> None:
    train, holdout = split
    report = evaluate(train, _independent(train, len(holdout), 0), holdout=holdout, progress=False)
    scores = report.scores.set_index("metric")
    assert report.passed, report.summary()
    pairs = scores.loc["Column Pair Trends"]
    assert pairs["value"] < pairs["reference"] - 0.1  # the sex-bilirubin relationship is lost
    assert abs(scores.loc["DCR share", "value"] - 0.5) < 0.08


@pytest.mark.slow
def test_a_perturbed_copy_sits_between_copy_and_independent(split) -> None:
    train, holdout = split
    rng = np.random.default_rng(1)
    n = len(train)
    perturbed = train.copy()
    perturbed["age"] = np.clip(perturbed["age"] + rng.integers(-8, 9, n), 18, 95)
    perturbed["bilirubin"] = perturbed["bilirubin"] * rng.lognormal(0, 0.3, n)
    perturbed["cholesterol"] = (perturbed["cholesterol"] + rng.integers(-30, 31, n)).clip(120, 319)
    for column in ["sex", "stage", "status", "smoker", "diagnosis"]:
        redraw = rng.random(n) < 0.3
        perturbed.loc[redraw, column] = train[column].to_numpy()[rng.integers(0, n, redraw.sum())]
    perturbed = perturbed.sample(frac=1, random_state=0).reset_index(drop=True)
    share = _scores(evaluate(train, perturbed, holdout=holdout, progress=False))["DCR share"]
    independent = _scores(evaluate(train, _independent(train, len(train), 1), holdout=holdout, progress=False))["DCR share"]
    copy = _scores(evaluate(train, train, holdout=holdout, progress=False))["MIA AUC (distance)"]
    perturbed_mia = _scores(evaluate(train, perturbed, holdout=holdout, progress=False))["MIA AUC (distance)"]
    assert independent + 0.1 < share
    assert 0.55 < perturbed_mia < copy - 0.1


def test_unknown_user_gate_lists_the_available_metrics(split) -> None:
    train, holdout = split
    from synthgen.evaluation import Gate

    with pytest.raises(InvalidArgumentError, match="dcr_share"):
        evaluate(train, _independent(train, 300, 0), holdout=holdout, gates=[Gate.parse("dcr_shar<=0.5")], progress=False)


@pytest.mark.slow
def test_cli_evaluates_a_model_with_its_recorded_holdout(tmp_path: Path) -> None:
    make_patients(1_000, seed=2).to_csv(tmp_path / "patients.csv", index=False)
    runner = CliRunner()
    model, synthetic = tmp_path / "m.sgz", tmp_path / "s.csv"
    assert runner.invoke(main, ["fit", str(tmp_path / "patients.csv"), "-o", str(model), "--holdout", "0.3", "--steps", "20", "--quiet"]).exit_code == 0
    assert runner.invoke(main, ["sample", str(model), "-n", "300", "-o", str(synthetic), "--quiet"]).exit_code == 0
    args = ["evaluate", str(model), "--real", str(tmp_path / "patients.csv"), "--synthetic", str(synthetic),
            "-o", str(tmp_path / "r.html"), "--json", str(tmp_path / "r.json"), "--quiet"]
    result = runner.invoke(main, args)
    assert result.exit_code in (0, GATE_FAILED_EXIT), result.output
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["context"]["rows"] == {"real (training)": 700, "holdout": 300, "synthetic": 300}
    html = (tmp_path / "r.html").read_text()
    assert "P00001" not in html and "P00001" not in json.dumps(document)  # no real identifiers
    strict = runner.invoke(main, [*args, "--gate", "column_shapes>=0.999"])
    assert strict.exit_code == GATE_FAILED_EXIT and "column_shapes" in strict.output


def test_cli_copy_of_training_data_exits_with_the_gate_code(tmp_path: Path) -> None:
    table = make_patients(800, seed=3)
    table.iloc[:400].to_csv(tmp_path / "train.csv", index=False)
    table.iloc[400:].to_csv(tmp_path / "holdout.csv", index=False)
    result = CliRunner().invoke(main, ["evaluate", "--real", str(tmp_path / "train.csv"), "--holdout", str(tmp_path / "holdout.csv"),
                                       "--synthetic", str(tmp_path / "train.csv"), "--quiet"])
    assert result.exit_code == GATE_FAILED_EXIT
    assert "FAIL" in result.output and "exact_copies" in result.output


def test_evaluate_is_part_of_the_top_level_api(split) -> None:
    import synthgen

    train, holdout = split
    report = synthgen.evaluate(train, _independent(train, 400, 2), holdout=holdout, progress=False)
    assert "DCR share" in set(report.scores["metric"])
