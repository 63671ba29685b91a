"""`synthgen evaluate` of a model fitted on two tables: each (parent, child) pair joined by the model's
layout and scored as the long table, number for number; bad pairs refused naming the file."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from test_sequence_cli import _two_tables, run

from synthgen.loading import load


@pytest.fixture(scope="module")
def two_tables(tmp_path_factory) -> dict[str, Path]:
    """A two-table model (a quarter of the patients held out), its sample, and the same model as a long-table one."""
    folder = tmp_path_factory.mktemp("two_tables")
    parents, children, metadata = _two_tables(folder)
    model = folder / "model.sgz"
    result = run("fit", parents, children, "--metadata", metadata, "-o", model, "--steps", "30", "--seed", "1",
                 "--max-length", "5", "--holdout", "0.25", "--quiet")
    assert result.exit_code == 0, result.output
    out = folder / "out"
    assert run("sample", model, "-n", "40", "-o", out, "--seed", "2").exit_code == 0
    long_model = load(model)
    long_model.tables_ = None  # the same weights, schema and holdout, saved as a model of one long table
    long_model.save(folder / "long.sgz")
    return {"parents": parents, "children": children, "model": model, "out": out, "long_model": folder / "long.sgz"}


def _long(parents: pd.DataFrame, children: pd.DataFrame) -> pd.DataFrame:
    """The long table as a user would build it by hand: each visit with its patient's columns."""
    return children.merge(parents.rename(columns={"id": "patient_id"}), on="patient_id", how="left")


def _scores(path: Path) -> dict[str, tuple[float, float | None]]:
    document = json.loads(path.read_text())
    return {score["metric"]: (score["value"], score.get("reference")) for score in document["scores"]}


def test_two_tables_score_as_the_joined_long_table(two_tables: dict[str, Path], tmp_path: Path) -> None:
    real_parents, real_children = pd.read_csv(two_tables["parents"]), pd.read_csv(two_tables["children"])
    out = two_tables["out"]
    _long(real_parents, real_children).to_csv(tmp_path / "long.csv", index=False)
    _long(pd.read_csv(out / "patients.csv"), pd.read_csv(out / "visits.csv")).to_csv(tmp_path / "synthetic.csv",
                                                                                     index=False)
    two, one = tmp_path / "two.json", tmp_path / "one.json"
    result = run("evaluate", two_tables["model"], "--real", two_tables["parents"], "--real", two_tables["children"],
                 "--synthetic", out, "--json", two, "--quiet")
    assert result.exit_code in (0, 3, 4), result.output  # a report, whatever the gates say of a 30-step model
    result = run("evaluate", two_tables["long_model"], "--real", tmp_path / "long.csv", "--synthetic",
                 tmp_path / "synthetic.csv", "--json", one, "--quiet")
    assert result.exit_code in (0, 3, 4), result.output
    scores = _scores(two)
    headline = ("Sequence length KS statistic", "Static consistency", "Lag-1 autocorrelation, largest gap",
                "Per-patient aggregates (Column Shapes)")
    assert all(scores[metric][0] is not None and scores[metric][1] is not None for metric in headline)
    assert len(scores) > len(headline)  # the privacy section's scores too
    assert scores == _scores(one)  # every metric, value and reference: the long-table path's numbers
    assert json.loads(two.read_text())["verdict"] == json.loads(one.read_text())["verdict"]
    # The model's holdout patients, split by patient: 80 patients, 20 held out, none of them trained on.
    assert json.loads(two.read_text())["context"]["patients"] == {"real (training)": 60, "holdout": 20, "synthetic": 40}


def test_holdout_tables_score_as_the_long_holdout(two_tables: dict[str, Path], tmp_path: Path) -> None:
    """--holdout PARENT --holdout CHILD: all of --real is the training reference, as for a long --holdout file."""
    parents, children = pd.read_csv(two_tables["parents"]), pd.read_csv(two_tables["children"])
    held = parents["id"].isin(parents["id"].iloc[::4])
    paths = {name: tmp_path / f"{name}.csv" for name in ("p", "c", "hp", "hc", "long", "holdout", "synthetic")}
    parents[~held].to_csv(paths["p"], index=False)
    children[children["patient_id"].isin(parents["id"][~held])].to_csv(paths["c"], index=False)
    parents[held].to_csv(paths["hp"], index=False)
    children[children["patient_id"].isin(parents["id"][held])].to_csv(paths["hc"], index=False)
    for name, (parent, child) in {"long": ("p", "c"), "holdout": ("hp", "hc")}.items():
        _long(pd.read_csv(paths[parent]), pd.read_csv(paths[child])).to_csv(paths[name], index=False)
    out = two_tables["out"]
    _long(pd.read_csv(out / "patients.csv"), pd.read_csv(out / "visits.csv")).to_csv(paths["synthetic"], index=False)
    two, one = tmp_path / "two.json", tmp_path / "one.json"
    result = run("evaluate", two_tables["model"], "--real", paths["p"], "--real", paths["c"], "--synthetic",
                 out / "patients.csv", "--synthetic", out / "visits.csv", "--holdout", paths["hp"], "--holdout",
                 paths["hc"], "--json", two, "--quiet")
    assert result.exit_code in (0, 3, 4), result.output
    result = run("evaluate", two_tables["long_model"], "--real", paths["long"], "--synthetic", paths["synthetic"],
                 "--holdout", paths["holdout"], "--json", one, "--quiet")
    assert result.exit_code in (0, 3, 4), result.output
    assert _scores(two) == _scores(one)
    assert json.loads(two.read_text())["context"]["patients"] == {"real (training)": 60, "holdout": 20, "synthetic": 40}


def _bad_synthetic(out: Path, folder: Path, case: str) -> Path:
    """A copy of the sampled folder spoiled one way; returns the folder."""
    bad = folder / "bad"
    bad.mkdir()
    parents, children = pd.read_csv(out / "patients.csv"), pd.read_csv(out / "visits.csv")
    if case == "orphans":
        children = pd.concat([children, children.head(3).assign(patient_id=-7)])
    elif case == "missing column":
        children = children.drop(columns="lab")
    elif case == "extra column":
        parents = parents.assign(postcode="AB1")
    parents.to_csv(bad / "patients.csv", index=False)
    if case != "no child table":
        children.to_csv(bad / "visits.csv", index=False)
    return bad


@pytest.mark.parametrize("case, message", [
    ("no child table", "visits.csv' does not exist: the folder"),
    ("orphans", "visits.csv': 3 row(s) of 'visits' point at no 'patients' row through 'patient_id'"),
    ("missing column", "visits.csv': the 'visits' table has no column 'lab'"),
    ("extra column", "patients.csv': the 'patients' table has a column 'postcode' that the model's 'patients' table "
                     "does not have"),
])
def test_bad_synthetic_tables_are_refused_naming_the_file(two_tables: dict[str, Path], tmp_path: Path, case: str,
                                                          message: str) -> None:
    bad = _bad_synthetic(two_tables["out"], tmp_path, case)
    report, scores = tmp_path / "report.html", tmp_path / "report.json"
    result = run("evaluate", two_tables["model"], "--real", two_tables["parents"], "--real", two_tables["children"],
                 "--synthetic", bad, "-o", report, "--json", scores, "--quiet")
    assert result.exit_code == 1 and message in result.output and str(bad) in result.output, result.output
    assert "Traceback" not in result.output and not report.exists() and not scores.exists()


def test_bad_real_tables_and_counts_are_refused(two_tables: dict[str, Path], tmp_path: Path) -> None:
    parents, children, model, out = (two_tables[key] for key in ("parents", "children", "model", "out"))
    orphans = tmp_path / "orphan_visits.csv"
    pd.concat([pd.read_csv(children), pd.read_csv(children).head(2).assign(patient_id=-1)]).to_csv(orphans, index=False)
    report = tmp_path / "report.json"
    for args, message in (
        (["--real", children, "--real", parents, "--synthetic", out],  # swapped: the child file is no parent table
         f"{str(children)!r}: the 'patients' table has no column 'id'"),
        (["--real", parents, "--real", orphans, "--synthetic", out],
         f"{str(orphans)!r}: 2 row(s) of 'visits' point at no 'patients' row"),
        (["--real", children, "--synthetic", out], "--real: this model learned two tables; give --real twice"),
        (["--real", parents, "--real", children, "--synthetic", out / "patients.csv"],
         "--synthetic: this model learned two tables"),
    ):
        result = run("evaluate", model, *args, "--json", report, "--quiet")
        assert result.exit_code == 1 and message in result.output, result.output
        assert "Traceback" not in result.output and not report.exists()
    written = (out / "visits.csv").read_bytes()  # a report over an input file of the pair is refused, the file kept
    result = run("evaluate", model, "--real", parents, "--real", children, "--synthetic", out, "--json", out / "visits.csv")
    assert result.exit_code == 1 and "is the input" in result.output and (out / "visits.csv").read_bytes() == written
    # A model of one long table takes one --real, as before.
    result = run("evaluate", two_tables["long_model"], "--real", parents, "--real", children, "--synthetic", out,
                 "--json", report)
    assert result.exit_code == 1 and "--real is given 2 times" in result.output and not report.exists()


def test_python_api_takes_data_frames(two_tables: dict[str, Path], tmp_path: Path) -> None:
    from synthgen.errors import InvalidDataError
    from synthgen.sequences.report import evaluate_two_tables
    model, out = load(two_tables["model"]), two_tables["out"]
    real = pd.read_csv(two_tables["parents"]), pd.read_csv(two_tables["children"])
    synthetic = pd.read_csv(out / "patients.csv"), pd.read_csv(out / "visits.csv")
    evaluate_two_tables(model, real, synthetic).to_json(tmp_path / "api.json")
    result = run("evaluate", two_tables["model"], "--real", two_tables["parents"], "--real", two_tables["children"],
                 "--synthetic", out, "--json", tmp_path / "cli.json", "--quiet")
    assert result.exit_code in (0, 3, 4), result.output
    assert _scores(tmp_path / "api.json") == _scores(tmp_path / "cli.json")
    orphans = synthetic[0], synthetic[1].assign(patient_id=synthetic[1]["patient_id"] + 10**9)
    with pytest.raises(InvalidDataError, match=r"the synthetic tables: \d+ row\(s\) of 'visits' point at no"):
        evaluate_two_tables(model, real, orphans)
