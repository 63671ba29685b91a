"""Patient histories on the command line: fit --entity-column, sample -n patients, bad input refused."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from synthgen.cli.main import main


def _histories(patients: int = 80, seed: int = 0) -> pd.DataFrame:
    """1-5 visits per patient; sex static; a lab value per visit."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 6, patients)
    visit = np.concatenate([np.arange(k) for k in lengths])
    return pd.DataFrame({
        "patient": np.repeat(np.arange(patients) + 500, lengths),
        "visit": visit,
        "week": visit // 2,  # two visits a week: not a valid sequence index
        "sex": np.repeat(rng.choice(["F", "M"], patients), lengths),
        "lab": (np.repeat(rng.normal(5, 1, patients), lengths) + 0.3 * visit).round(2),
    })


def run(*args: str):
    return CliRunner().invoke(main, [str(arg) for arg in args])


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("histories")
    data = folder / "visits.csv"
    _histories().to_csv(data, index=False)
    model = folder / "model.sgz"
    result = run("fit", data, "-o", model, "--entity-column", "patient", "--sequence-index", "visit",
                 "--max-length", "5", "--steps", "60", "--seed", "2", "--holdout", "0.25", "--quiet")
    assert result.exit_code == 0, result.output
    assert "60 patients (20 held out)" in result.output and "static: sex" in result.output
    return data, model


def test_sample_counts_patients_and_keeps_them_whole(fitted, tmp_path: Path) -> None:
    _, model = fitted
    out = tmp_path / "synthetic.csv"
    result = run("sample", model, "-n", "40", "-o", out, "--seed", "1")
    assert result.exit_code == 0, result.output
    synthetic = pd.read_csv(out)
    assert synthetic["patient"].nunique() == 40
    assert (synthetic.groupby("patient")["sex"].nunique() == 1).all()  # one sex per synthetic patient
    assert synthetic.groupby("patient").size().max() <= 5
    again = tmp_path / "again.csv"
    assert run("sample", model, "-n", "40", "-o", again, "--seed", "1").exit_code == 0
    assert again.read_bytes() == out.read_bytes()
    details = json.loads(run("info", model, "--json").output)
    assert details["kind"] == "sequence" and details["sequence"]["entity_column"] == "patient"
    assert "trained on 60 patients" in run("info", model).output


@pytest.mark.parametrize("args, message", [
    (["--entity-column", "nobody"], "'nobody' is not a column"),
    (["--entity-column", "patient", "--sequence-index", "week"], "repeats a value within entity"),
    (["--entity-column", "patient", "--dp-epsilon", "1"], "patient histories (--entity-column) do not have them yet"),
    (["--sequence-index", "visit"], "apply to patient histories, with --entity-column"),
])
def test_bad_history_input_is_named_and_leaves_no_file(fitted, tmp_path: Path, args: list[str], message: str) -> None:
    data, _ = fitted
    output = tmp_path / "model.sgz"
    result = run("fit", data, "-o", output, "--steps", "5", "--quiet", *args)
    assert result.exit_code == 1 and message in result.output, result.output
    assert "Traceback" not in result.output and not output.exists()


def test_history_sample_refuses_conditions_and_folders(fitted, tmp_path: Path) -> None:
    _, model = fitted
    result = run("sample", model, "-n", "5", "-o", tmp_path / "x.csv", "-c", "sex=F")
    assert result.exit_code == 1 and "samples whole patients unconditioned" in result.output
    result = run("sample", model, "-n", "5", "-o", tmp_path / "parts")
    assert result.exit_code == 1 and "writes one table file" in result.output
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "parts").exists()


def test_evaluate_scores_patients_and_flags_copied_patients(fitted, tmp_path: Path) -> None:
    data, model = fitted
    synthetic = tmp_path / "synthetic.csv"
    assert run("sample", model, "-n", "60", "-o", synthetic, "--seed", "1").exit_code == 0
    report, scores = tmp_path / "report.html", tmp_path / "report.json"
    result = run("evaluate", model, "--real", data, "--synthetic", synthetic, "-o", report, "--json", scores, "--quiet")
    assert result.exit_code in (0, 4), result.output  # a fresh sample is not judged a leak
    document = json.loads(scores.read_text())
    metrics = {score["metric"] for score in document["scores"]}
    assert {"Sequence length KS statistic", "Static consistency", "Lag-1 autocorrelation, largest gap"} <= metrics
    assert document["context"]["patients"] == {"real (training)": 60, "holdout": 20, "synthetic": 60}
    assert report.read_text().count("Static consistency") >= 1
    # The attacker's "synthetic" file: the training patients themselves, under new ids.
    from synthgen.loading import load
    train, _ = load(model).split(pd.read_csv(data))
    copied = tmp_path / "copies.csv"
    train.assign(patient=train["patient"] + 10_000).to_csv(copied, index=False)
    result = run("evaluate", model, "--real", data, "--synthetic", copied, "--quiet")
    assert result.exit_code == 3, result.output  # a gate fails: patients copied whole
