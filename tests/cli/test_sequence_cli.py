"""Patient histories on the command line: fit --entity-column, sample -n patients, bad input refused."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import write_two_tables

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
    (["--entity-column", "patient", "--dp-epsilon", "1"], "takes its schema only from metadata you declare"),
    (["--sequence-index", "visit"], "apply to patient histories, with --entity-column"),
])
def test_bad_history_input_is_named_and_leaves_no_file(fitted, tmp_path: Path, args: list[str], message: str) -> None:
    data, _ = fitted
    output = tmp_path / "model.sgz"
    result = run("fit", data, "-o", output, "--steps", "5", "--quiet", *args)
    assert result.exit_code == 1 and message in result.output, result.output
    assert "Traceback" not in result.output and not output.exists()


def test_history_conditions_on_static_columns_and_refusals(fitted, tmp_path: Path) -> None:
    _, model = fitted
    women = tmp_path / "women.csv"
    result = run("sample", model, "-n", "25", "-o", women, "-c", "sex=F", "--seed", "4")
    assert result.exit_code == 0, result.output
    sample = pd.read_csv(women)
    assert sample["patient"].nunique() == 25 and set(sample["sex"]) == {"F"}
    for condition, message in (("lab=5", "'lab' is a per-visit column"), ("sex=X", "sex='X': unknown category 'X'")):
        result = run("sample", model, "-n", "5", "-o", tmp_path / "x.csv", "-c", condition)
        assert result.exit_code == 1 and message in result.output, result.output
    result = run("sample", model, "-n", "5", "-o", tmp_path / "parts", "-c", "sex=X")  # the folder form too
    assert result.exit_code == 1 and "unknown category 'X'" in result.output, result.output
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


def _two_tables(folder: Path) -> tuple[Path, Path, Path]:
    """A parent table (one row per patient) and a child table (visits), with SDV multi-table metadata."""
    long = _histories()
    parents = long.drop_duplicates("patient")[["patient", "sex"]].rename(columns={"patient": "id"})
    parents["age"] = np.random.default_rng(1).integers(30, 80, len(parents))
    children = long[["patient", "visit", "lab"]].rename(columns={"patient": "patient_id"})
    return write_two_tables(folder, parents, children, {
        "patients": {"primary_key": "id", "columns": {"id": {"sdtype": "id"}, "sex": {"sdtype": "categorical"},
                                                      "age": {"sdtype": "numerical"}}},
        "visits": {"sequence_index": "visit",
                   "columns": {"patient_id": {"sdtype": "id"}, "visit": {"sdtype": "numerical"},
                               "lab": {"sdtype": "numerical"}}},
    })


def test_two_tables_in_two_tables_out_with_consistent_fresh_keys(tmp_path: Path) -> None:
    parents, children, metadata = _two_tables(tmp_path)
    model = tmp_path / "model.sgz"
    result = run("fit", parents, children, "--metadata", metadata, "-o", model, "--steps", "60", "--seed", "1",
                 "--max-length", "5", "--quiet")
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    result = run("sample", model, "-n", "30", "-o", out, "--seed", "2")
    assert result.exit_code == 0, result.output
    synthetic_parents, synthetic_children = pd.read_csv(out / "patients.csv"), pd.read_csv(out / "visits.csv")
    assert list(synthetic_parents.columns) == ["id", "sex", "age"]
    assert list(synthetic_children.columns) == ["patient_id", "visit", "lab"]
    assert len(synthetic_parents) == 30 and synthetic_parents["id"].is_unique
    assert set(synthetic_children["patient_id"]) == set(synthetic_parents["id"])  # no orphan, no childless patient
    assert (synthetic_children.groupby("patient_id")["visit"].apply(lambda v: v.is_monotonic_increasing)).all()
    result = run("sample", model, "-n", "5", "-o", tmp_path / "one.csv")
    assert result.exit_code == 1 and "give a new folder name" in result.output


def test_two_tables_that_do_not_link_are_refused_by_count(tmp_path: Path) -> None:
    parents, children, metadata = _two_tables(tmp_path)
    visits = pd.read_csv(children)
    orphans, childless = tmp_path / "orphans.csv", tmp_path / "childless.csv"
    pd.concat([visits, visits.head(2).assign(patient_id=-1)]).to_csv(orphans, index=False)
    visits[visits["patient_id"] != visits["patient_id"].iloc[0]].to_csv(childless, index=False)
    for child, message in ((orphans, "2 row(s) of 'visits' point at no 'patients' row"),
                           (childless, "1 'patients' row(s) have no 'visits' row")):
        output = tmp_path / "model.sgz"
        result = run("fit", parents, child, "--metadata", metadata, "-o", output, "--steps", "5", "--quiet")
        assert result.exit_code == 1 and message in result.output, result.output
        assert not output.exists()
    result = run("fit", parents, children, "-o", tmp_path / "m.sgz")
    assert result.exit_code == 1 and "two tables need --metadata" in result.output


def test_info_lists_the_columns_filled_from_a_rule(tmp_path: Path) -> None:
    data = _histories().assign(event=lambda frame: frame["visit"] + 1)  # an event number beside the visit index
    data.to_csv(tmp_path / "visits.csv", index=False)
    model = tmp_path / "model.sgz"
    assert run("fit", tmp_path / "visits.csv", "-o", model, "--entity-column", "patient", "--sequence-index", "visit",
               "--steps", "5", "--quiet").exit_code == 0
    assert "filled from a rule, not learned: event (visit number)" in run("info", model).output
    out = tmp_path / "synthetic.csv"
    assert run("sample", model, "-n", "30", "-o", out, "--seed", "1").exit_code == 0
    synthetic = pd.read_csv(out)
    assert (synthetic["event"] == synthetic["visit"] + 1).all()


def test_sample_writes_parts_of_whole_patients_with_workers_and_resumes(fitted, tmp_path: Path) -> None:
    _, model = fitted
    one, two = tmp_path / "one", tmp_path / "two"
    common = ["-n", "45", "--shard-rows", "20", "--seed", "6", "-c", "sex=M", "--quiet"]
    result = run("sample", model, "-o", one, *common)
    assert result.exit_code == 0, result.output
    assert "45 synthetic patients in 3 part(s) (3 written now, 0 already there), seed 6" in result.output
    result = run("sample", model, "-o", two, "--workers", "2", *common)
    assert result.exit_code == 0, result.output
    files = sorted(path.name for path in one.iterdir())
    assert files == ["_shards.json", "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert all((one / name).read_bytes() == (two / name).read_bytes() for name in files)
    parts = [pd.read_parquet(one / name) for name in files[1:]]
    assert [part["patient"].nunique() for part in parts] == [20, 20, 5]
    rows = pd.concat(parts, ignore_index=True)
    assert rows["patient"].nunique() == 45 and set(rows["sex"]) == {"M"}
    (one / "part-00001.parquet").unlink()  # a lost part: the same command writes it again, and only it
    result = run("sample", model, "-o", one, *common)
    assert result.exit_code == 0 and "(1 written now, 2 already there)" in result.output, result.output
    assert (one / "part-00001.parquet").read_bytes() == (two / "part-00001.parquet").read_bytes()
    # Several workers need a folder to write parts into: one file is refused, and not written.
    result = run("sample", model, "-n", "5", "-o", tmp_path / "one.csv", "--workers", "2")
    assert result.exit_code == 1 and "give a folder name" in result.output, result.output
    assert not (tmp_path / "one.csv").exists()


def test_evaluate_long_tables_without_a_model(tmp_path: Path) -> None:
    """Any generator's long table: whole patients scored against --real and --holdout; a table of
    rows dealt across patients (an i.i.d.-row generator) is told from fresh patients."""
    real, holdout, fresh = (tmp_path / f"{name}.csv" for name in ("real", "holdout", "fresh"))
    _histories(120, seed=1).to_csv(real, index=False)
    _histories(40, seed=2).assign(patient=lambda f: f["patient"] + 1000).to_csv(holdout, index=False)
    _histories(120, seed=3).to_csv(fresh, index=False)
    scores = tmp_path / "fresh.json"
    base = ["evaluate", "--real", real, "--holdout", holdout, "--entity-column", "patient", "--sequence-index", "visit",
            "--quiet"]
    result = run(*base, "--synthetic", fresh, "--json", scores)
    assert result.exit_code in (0, 4), result.output
    document = json.loads(scores.read_text())
    values = {score["metric"]: score["value"] for score in document["scores"]}
    assert document["context"]["static columns"] == ["sex"]  # found constant within every real patient
    assert values["Static consistency"] == 1.0 and values["Inter-visit gap KS statistic"] < 0.1
    dealt = _histories(120, seed=3)
    rng = np.random.default_rng(0)
    dealt["sex"], dealt["lab"] = rng.permutation(dealt["sex"].to_numpy()), rng.permutation(dealt["lab"].to_numpy())
    dealt_file, dealt_scores = tmp_path / "dealt.csv", tmp_path / "dealt.json"
    dealt.to_csv(dealt_file, index=False)
    assert run(*base, "--synthetic", dealt_file, "--json", dealt_scores).exit_code in (0, 3, 4)
    broken = {score["metric"]: score["value"] for score in json.loads(dealt_scores.read_text())["scores"]}
    assert broken["Static consistency"] < 0.8
    assert broken["Lag-1 autocorrelation, largest gap"] > values["Lag-1 autocorrelation, largest gap"] + 0.3
    assert broken["Transition tables (lag-1 contingency similarity)"] < values["Transition tables (lag-1 contingency similarity)"]


@pytest.mark.parametrize("args, message", [
    ([], "need --holdout"),
    (["--holdout", "HOLDOUT", "--sequence-index", "day"], "no sequence index 'day'"),
    (["--holdout", "HOLDOUT", "--target", "lab"], "--target applies to one-row-per-patient tables"),
])
def test_evaluate_long_tables_refusals_write_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    real, holdout = tmp_path / "real.csv", tmp_path / "holdout.csv"
    _histories(30, seed=1).to_csv(real, index=False)
    _histories(10, seed=2).assign(patient=lambda f: f["patient"] + 1000).to_csv(holdout, index=False)
    out = tmp_path / "report.json"
    args = [str(holdout) if arg == "HOLDOUT" else arg for arg in args]
    result = run("evaluate", "--real", real, "--synthetic", real, "--entity-column", "patient", *args, "--json", out)
    assert result.exit_code == 1 and message in result.output, result.output
    assert not out.exists()


def test_evaluate_entity_options_must_agree_with_the_model(fitted, tmp_path: Path) -> None:
    data, model = fitted
    result = run("evaluate", model, "--real", data, "--synthetic", data, "--entity-column", "lab")
    assert result.exit_code == 1 and "contradicts MODEL, which learned 'patient'" in result.output
    result = run("evaluate", "--real", data, "--synthetic", data, "--sequence-index", "visit")
    assert result.exit_code == 1 and "give --entity-column as well" in result.output
