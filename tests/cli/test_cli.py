"""The command line through click's runner, and once as a real subprocess."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from synthgen.cli.main import main

from conftest import make_patients


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    make_patients(300).to_csv(folder / "patients.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def model(workdir: Path) -> Path:
    path = workdir / "model.sgz"
    result = CliRunner().invoke(main, ["fit", str(workdir / "patients.csv"), "-o", str(path), "--seed", "7", "--steps", "200", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "seed 7" in result.output
    return path


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_sample_writes_parquet_and_csv(model: Path, workdir: Path) -> None:
    for name in ["out.parquet", "out.csv"]:
        result = run("sample", str(model), "-n", "2500", "-o", str(workdir / name), "--seed", "1", "--chunk-rows", "1000", "--quiet")
        assert result.exit_code == 0, result.output
    parquet = pd.read_parquet(workdir / "out.parquet")
    csv = pd.read_csv(workdir / "out.csv")
    assert len(parquet) == len(csv) == 2500
    assert list(parquet.columns) == list(make_patients(5).columns)


def test_conditions_from_the_command_line(model: Path, workdir: Path) -> None:
    out = workdir / "rare.csv"
    result = run("sample", str(model), "-n", "200", "-c", "sex=F", "--condition", "stage=4", "-o", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert (table["sex"] == "F").all() and (table["stage"] == 4).all()


def test_info_shows_schema_training_and_seed(model: Path) -> None:
    result = run("info", str(model))
    assert result.exit_code == 0, result.output
    assert "seed 7" in result.output and "200 steps" in result.output and "stage: categorical" in result.output
    details = json.loads(run("info", str(model), "--json").output)
    assert details["training"]["rows"] == 300 and details["seed"] == 7


def test_metadata_file_overrides_detection(workdir: Path) -> None:
    meta = workdir / "meta.json"
    assert run("metadata", str(workdir / "patients.csv"), "-o", str(meta)).exit_code == 0
    spec = json.loads(meta.read_text())
    assert spec["columns"]["status"]["sdtype"] == "categorical"
    spec["columns"]["status"] = {"sdtype": "numerical", "computer_representation": "Int64"}
    meta.write_text(json.dumps(spec))
    model = workdir / "override.sgz"
    result = run("fit", str(workdir / "patients.csv"), "-o", str(model), "--metadata", str(meta), "--steps", "5", "--quiet")
    assert result.exit_code == 0, result.output
    assert "status: numerical" in run("info", str(model)).output


def _bad_tables(folder: Path) -> dict[str, tuple[Path, str]]:
    empty = folder / "empty.csv"
    empty.write_text("")
    header_only = folder / "header.csv"
    header_only.write_text("a,b\n")
    all_missing = make_patients(50)
    all_missing["notes"] = np.nan
    all_missing.to_csv(folder / "all_missing.csv", index=False)
    mixed = make_patients(50)
    mixed["age"] = mixed["age"].astype(object)
    mixed.loc[7, "age"] = "unknown"
    mixed.to_csv(folder / "mixed.csv", index=False)
    garbage = folder / "garbage.parquet"
    garbage.write_bytes(b"\x00\x01not parquet")
    return {
        "empty": (empty, "empty"),
        "header only": (header_only, "no data rows"),
        "all missing": (folder / "all_missing.csv", "notes"),
        "mixed types": (folder / "mixed.csv", "age"),
        "unreadable": (garbage, "garbage.parquet"),
        "missing file": (folder / "nope.csv", "nope.csv"),
        "unknown type": (folder / "table.xlsx", "unsupported file type"),
    }


# "mixed types" (one stray string in a numeric column) is now learned with a warning: tests/test_hostile_data.py.
@pytest.mark.parametrize("case", ["empty", "header only", "all missing", "unreadable", "missing file", "unknown type"])
def test_fit_bad_input_is_named_and_leaves_no_file(tmp_path: Path, case: str) -> None:
    path, message = _bad_tables(tmp_path)[case]
    out = tmp_path / "model.sgz"
    result = run("fit", str(path), "-o", str(out), "--steps", "2", "--quiet")
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["-c", "blood=A"], "blood"),
        (["-c", "sex=X"], "'X'"),
        (["-c", "sexF"], "COLUMN=VALUE"),
        (["-c", "age=500"], "age=500"),
        (["-n", "0"], "0"),
        (["-n", "-3"], "-3"),
    ],
)
def test_sample_bad_requests_are_named_and_leave_no_file(model: Path, tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "out.csv"
    base = ["sample", str(model), "-o", str(out), "--quiet", "--chunk-rows", "2000"]
    if "-n" not in args:
        base += ["-n", "10"]
    result = run(*base, *args)
    assert result.exit_code != 0
    assert message in result.output
    assert not out.exists() and not list(tmp_path.glob(".out.csv*"))


def test_sample_from_corrupt_model_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sgz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    result = run("sample", str(bad), "-n", "5", "-o", str(tmp_path / "x.csv"))
    assert result.exit_code == 1 and "bad.sgz" in result.output


def test_help_explains_each_command() -> None:
    for command in ["fit", "sample", "info", "metadata", "demo"]:
        result = run(command, "--help")
        assert result.exit_code == 0 and "Usage:" in result.output
    assert "--min-category-count" in run("fit", "--help").output


@pytest.mark.slow
def test_real_subprocess_fit_and_sample(workdir: Path) -> None:
    executable = shutil.which("synthgen")
    command = [executable] if executable else [sys.executable, "-m", "synthgen"]
    model = workdir / "subprocess.sgz"
    out = workdir / "subprocess.csv"
    subprocess.run([*command, "fit", str(workdir / "patients.csv"), "-o", str(model), "--steps", "10", "--seed", "1", "--quiet"], check=True, capture_output=True)
    done = subprocess.run([*command, "sample", str(model), "-n", "100", "-o", str(out), "--quiet"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(pd.read_csv(out)) == 100
    failed = subprocess.run([*command, "sample", str(model), "-n", "0", "-o", str(out)], capture_output=True, text=True)
    assert failed.returncode == 2 and "-n" in failed.stderr
