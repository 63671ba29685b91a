"""Files as a hostile or careless user meets them (issue 18): outputs over inputs, interrupted and failed
writes, crafted model files, reproducible model bytes, and the messages that refuse them.

Every case runs the command line and checks the exit code, a one-line message naming the file,
column or value, that no input changed (bytes and mtime) and that no output or ``.partial`` is left.
"""
from __future__ import annotations

import errno
import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from synthgen.cli.main import main

from conftest import make_patients

FAST = ["--steps", "20", "--quiet"]


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder`` (hidden ones included) with its bytes and mtime."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def refused(result, *named: str) -> str:
    """The one-line error of a refused command, which must name each of ``named``."""
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output and "weights_only" not in result.output
    for name in named:
        assert name in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A table, a model fitted on it, a synthetic sample and a metadata file, made once."""
    folder = tmp_path_factory.mktemp("hostile")
    data = folder / "data.csv"
    make_patients(200).to_csv(data, index=False)
    model = folder / "model.sgz"
    assert run("fit", data, "-o", model, "--seed", "0", *FAST).exit_code == 0
    synthetic = folder / "synthetic.csv"
    assert run("sample", model, "-n", "200", "-o", synthetic, "--seed", "0", "--quiet").exit_code == 0
    meta = folder / "meta.json"
    assert run("metadata", data, "-o", meta).exit_code == 0
    return {"folder": folder, "data": data, "model": model, "synthetic": synthetic, "meta": meta}


@pytest.fixture()
def work(files, tmp_path: Path) -> dict[str, Path]:
    """Fresh copies in an empty folder, so a test can check that nothing in it changed or appeared."""
    copies = {"folder": tmp_path}
    for key, path in files.items():
        if key != "folder":
            copies[key] = tmp_path / path.name
            copies[key].write_bytes(path.read_bytes())
    return copies


# --- 1. Outputs are never written over an input --------------------------------------------------


def _link(work: dict[str, Path], how: str) -> Path:
    """The data file itself, a symbolic link to it, or a hard link to it, as the output path."""
    if how == "same":
        return work["data"]
    link = work["folder"] / f"{how}.csv"
    (link.symlink_to if how == "symlink" else link.hardlink_to)(work["data"])
    return link


@pytest.mark.parametrize("how", ["same", "symlink", "hardlink"])
@pytest.mark.parametrize("command", ["fit", "metadata", "evaluate-html", "evaluate-json", "augment"])
def test_output_over_an_input_is_refused(work, command: str, how: str) -> None:
    out = _link(work, how)
    before = snapshot(work["folder"])
    data = work["data"]
    args = {
        "fit": ["fit", data, "-o", out, "--seed", "0", "--steps", "5000", "--quiet"],  # refused before training
        "metadata": ["metadata", data, "-o", out],
        "evaluate-html": ["evaluate", "--real", data, "--synthetic", work["synthetic"], "-o", out, "--quiet"],
        "evaluate-json": ["evaluate", "--real", data, "--synthetic", work["synthetic"], "--json", out, "--quiet"],
        "augment": ["augment", data, "--target", "sex", "--balance", "-o", out, "--steps", "5000", "--quiet"],
    }[command]
    started = time.perf_counter()
    message = refused(run(*args), str(out))
    assert time.perf_counter() - started < 5  # before any training or scoring
    assert "input" in message
    assert snapshot(work["folder"]) == before


def test_other_inputs_are_protected_too(work) -> None:
    """The model, the metadata, the synthetic and check tables, and one output over another."""
    model_as_csv = work["folder"] / "model.csv"  # a model file may carry any name
    model_as_csv.write_bytes(work["model"].read_bytes())
    before = snapshot(work["folder"])
    cases = [
        (["sample", model_as_csv, "-n", "10", "-o", model_as_csv, "--quiet"], model_as_csv),
        (["fit", work["data"], "-o", work["meta"], "--metadata", work["meta"], *FAST], work["meta"]),
        (["evaluate", work["model"], "--real", work["data"], "--synthetic", work["synthetic"],
          "-o", work["synthetic"], "--quiet"], work["synthetic"]),
        (["evaluate", work["model"], "--real", work["data"], "--synthetic", work["synthetic"], "--json", work["model"],
          "--quiet"], work["model"]),
        (["evaluate", "--real", work["data"], "--synthetic", work["synthetic"], "-o", work["folder"] / "r.html",
          "--json", work["folder"] / "r.html", "--quiet"], work["folder"] / "r.html"),
        (["augment", work["data"], "--target", "sex", "--balance", "--model", work["model"],
          "--check", work["synthetic"], "-o", work["synthetic"], "--quiet"], work["synthetic"]),
    ]
    for args, named in cases:
        refused(run(*args), str(named))
        assert snapshot(work["folder"]) == before, args


# --- 2. Atomic writes: an existing directory, unwritable or full folders, signals ------------------


@pytest.mark.parametrize("command", ["fit", "sample", "metadata", "evaluate", "augment"])
def test_output_that_is_a_directory_is_refused(work, command: str) -> None:
    taken = work["folder"] / "taken.csv"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    before = snapshot(work["folder"])
    args = {
        "fit": ["fit", work["data"], "-o", taken, "--steps", "5000", "--quiet"],
        "sample": ["sample", work["model"], "-n", "50", "-o", taken, "--quiet"],
        "metadata": ["metadata", work["data"], "-o", taken],
        "evaluate": ["evaluate", "--real", work["data"], "--synthetic", work["synthetic"], "--json", taken, "--quiet"],
        "augment": ["augment", work["data"], "--target", "sex", "--balance", "-o", taken, "--steps", "5000", "--quiet"],
    }[command]
    started = time.perf_counter()
    refused(run(*args), str(taken), "directory")
    assert time.perf_counter() - started < 5
    assert snapshot(work["folder"]) == before


def _unwritable_folders(tmp_path: Path) -> list[Path]:
    """/sys refuses new files to everyone; a folder without write permission refuses them except to root."""
    folders = [Path("/sys")] if Path("/sys").is_dir() else []
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if not os.access(locked, os.W_OK):
        folders.append(locked)
    return folders


@pytest.mark.parametrize("command", ["fit", "sample", "metadata", "evaluate"])
def test_unwritable_or_impossible_folder_is_named_before_the_work(work, tmp_path: Path, command: str) -> None:
    folders = _unwritable_folders(tmp_path)
    under_a_file = work["data"] / "sub"  # the "folder" is a file: it can never be created
    before = snapshot(work["folder"])
    for folder in [*folders, under_a_file]:
        out = folder / "out.json"
        args = {
            "fit": ["fit", work["data"], "-o", folder / "model.sgz", "--steps", "5000", "--quiet"],
            "sample": ["sample", work["model"], "-n", "50", "-o", folder / "out.csv", "--quiet"],
            "metadata": ["metadata", work["data"], "-o", out],
            "evaluate": ["evaluate", "--real", work["data"], "--synthetic", work["synthetic"], "--json", out, "--quiet"],
        }[command]
        started = time.perf_counter()
        refused(run(*args), str(folder))
        assert time.perf_counter() - started < 5
    assert snapshot(work["folder"]) == before


def test_missing_folders_are_created(work) -> None:
    out = work["folder"] / "new" / "deeper" / "meta.json"
    assert run("metadata", work["data"], "-o", out).exit_code == 0
    assert json.loads(out.read_text())["columns"]


@pytest.mark.parametrize("command", ["fit", "sample", "metadata", "evaluate"])
def test_full_disk_leaves_nothing_and_is_named(work, monkeypatch, command: str) -> None:
    """The disk fills up as the output is flushed: one line naming the file, no partial file left."""
    def no_space(descriptor: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    out = work["folder"] / {"fit": "m.sgz", "sample": "s.csv", "metadata": "m.json", "evaluate": "r.html"}[command]
    before = snapshot(work["folder"])
    args = {
        "fit": ["fit", work["data"], "-o", out, *FAST],
        "sample": ["sample", work["model"], "-n", "50", "-o", out, "--quiet"],
        "metadata": ["metadata", work["data"], "-o", out],
        "evaluate": ["evaluate", "--real", work["data"], "--synthetic", work["synthetic"], "-o", out, "--quiet"],
    }[command]
    result = run(*args)
    message = result.output.strip().splitlines()[-1]
    assert result.exit_code == 1 and str(out) in message and "No space left" in message, result.output
    assert "Traceback" not in result.output
    assert snapshot(work["folder"]) == before


def _synthgen() -> list[str]:
    return [sys.executable, "-c", "from synthgen.cli.main import main; main()"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_sampling_leaves_no_file(work, signum: int) -> None:
    before = snapshot(work["folder"])
    out = work["folder"] / "big.csv"
    process = subprocess.Popen([*_synthgen(), "sample", str(work["model"]), "-n", "5000000", "-o", str(out),
                                "--chunk-rows", "20000", "--quiet"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 60
    while not list(work["folder"].glob(".big.csv*")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # mid-write
    assert process.poll() is None, "sampling finished before the signal"
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode != 0
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) <= 1, stderr
    assert snapshot(work["folder"]) == before


# --- 3. Crafted model files --------------------------------------------------------------------


def _rewrite(source: Path, target: Path, manifest_edit=None, **members: bytes) -> Path:
    with zipfile.ZipFile(source) as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}
    if manifest_edit is not None:
        manifest = json.loads(contents["model.json"])
        manifest_edit(manifest)
        contents["model.json"] = json.dumps(manifest).encode()
    contents.update(members)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in contents.items():
            archive.writestr(name, data)
    return target


def _set(key: str, value) -> callable:
    def edit(manifest: dict) -> None:
        parent = manifest
        *path, last = key.split(".")
        for part in path:
            parent = parent[part]
        if value is ...:
            del parent[last]
        else:
            parent[last] = value
    return edit


def _numeric_state(key: str, value) -> callable:
    """Set ``key`` in the state of the model's first plain numerical column's transformer."""
    def edit(manifest: dict) -> None:
        column = next(c for c in manifest["transformer"]["columns"] if c["transformer"] == "numerical")
        column["state"][key] = value
    return edit


CRAFTED = {
    "config is a list": _set("config", [1, 2]),
    "training is null": _set("training", None),
    "training rows is text": _set("training.rows", "many"),
    "training lacks steps": _set("training.steps", ...),
    "seed is text": _set("seed", "seven"),
    "kind is a number": _set("kind", 5),
    "metadata is a list": _set("metadata", ["a"]),
    "created is a dict": _set("created", {"a": 1}),
    "no metadata": _set("metadata", ...),
    "manifest is a list": lambda manifest: manifest.clear(),
    "privacy is text": _set("training.privacy", "yes"),
    "privacy is incomplete": _set("training.privacy", {"epsilon": 1.0}),
    "generator dims": _set("config.generator_dims", [40000, 40000]),
    "embedding dim": _set("config.embedding_dim", 10**9),
    "negative dims": _set("config.generator_dims", [-5]),
    "calibration knots unsorted": _set("value_calibration.age", {"generated": [3.0, 2.0, 1.0], "target": [1.0, 2.0, 3.0]}),
    "calibration knots uneven": _set("value_calibration.age", {"generated": [1.0, 2.0, 3.0], "target": [1.0, 2.0]}),
    "calibration by an unknown column": _set("value_calibration.age", {
        "generated": [1.0, 2.0], "target": [1.0, 2.0], "by": "no such column",
        "levels": {"a": {"generated": [1.0, 2.0], "target": [1.0, 2.0]}}}),
    "calibration pairs of one column with itself": _set("value_calibration.age", {
        "generated": [1.0, 2.0], "target": [1.0, 2.0], "by": "sex", "then": "sex",
        "levels": {"F": {"generated": [1.0, 2.0], "target": [1.0, 2.0]}},
        "pair_levels": {"F\x1fF": {"generated": [1.0, 2.0], "target": [1.0, 2.0]}}}),
    "calibration pair maps without a second column": _set("value_calibration.age", {
        "generated": [1.0, 2.0], "target": [1.0, 2.0], "by": "sex",
        "levels": {"F": {"generated": [1.0, 2.0], "target": [1.0, 2.0]}},
        "pair_levels": {"F\x1fM": {"generated": [1.0, 2.0], "target": [1.0, 2.0]}}}),
    "calibration bands cut out of order": _set("value_calibration.age", {
        "generated": [1.0, 2.0], "target": [1.0, 2.0], "by": "sex", "cuts": {"sex": [3.0, 1.0]},
        "levels": {"0": {"generated": [1.0, 2.0], "target": [1.0, 2.0]}}}),
    "copula of an unknown column": _set("value_copula", {
        "columns": ["age", "no such column"], "knots": [[1.0, 2.0], [1.0, 2.0]], "transport": [[1.0, 0.0], [0.0, 1.0]]}),
    "copula of an uncalibrated column": _set("value_copula", {
        "columns": ["age", "sex"], "knots": [[1.0, 2.0], [1.0, 2.0]], "transport": [[1.0, 0.0], [0.0, 1.0]]}),
    "copula of one column twice": _set("value_copula", {
        "columns": ["age", "age"], "knots": [[1.0, 2.0], [1.0, 2.0]], "transport": [[1.0, 0.0], [0.0, 1.0]]}),
    "copula knots unsorted": _set("value_copula", {
        "columns": ["age", "bilirubin"], "knots": [[2.0, 1.0], [1.0, 2.0]], "transport": [[1.0, 0.0], [0.0, 1.0]]}),
    "copula map of the wrong shape": _set("value_copula", {
        "columns": ["age", "bilirubin"], "knots": [[1.0, 2.0], [1.0, 2.0]], "transport": [[1.0, 0.0]]}),
    "copula map of text": _set("value_copula", {
        "columns": ["age", "bilirubin"], "knots": [[1.0, 2.0], [1.0, 2.0]], "transport": [["a", "b"], ["c", "d"]]}),
    "numbers rounded to -3 decimals": _numeric_state("decimals", -3),
    "numbers rounded to 10**9 significant digits": _numeric_state("significant", 10**9),
    "numbers rounded to text decimals": _numeric_state("decimals", "2"),
    "copula without a calibration": lambda manifest: (_set("value_calibration", ...)(manifest), _set("value_copula", {
        "columns": ["age", "bilirubin"], "knots": [[1.0, 2.0], [1.0, 2.0]], "transport": [[1.0, 0.0], [0.0, 1.0]]})(manifest)),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
@pytest.mark.parametrize("command", ["info", "sample", "evaluate"])
def test_crafted_model_description_is_refused_in_one_line(work, case: str, command: str) -> None:
    bad = _rewrite(work["model"], work["folder"] / "crafted.sgz", CRAFTED[case])
    before = snapshot(work["folder"])
    args = {
        "info": ["info", bad],
        "sample": ["sample", bad, "-n", "10", "-o", work["folder"] / "out.csv", "--quiet"],
        "evaluate": ["evaluate", bad, "--real", work["data"], "--synthetic", work["synthetic"], "--quiet"],
    }[command]
    refused(run(*args), "crafted.sgz")
    assert snapshot(work["folder"]) == before


def test_network_size_is_checked_before_anything_is_allocated(work, monkeypatch) -> None:
    """generator_dims of 20,000 would allocate 1.6 GB of weights; the refusal must come first."""
    allocated: list[int] = []
    original = torch.nn.Linear.__init__

    def recording(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        if self.weight.device.type != "meta":
            allocated.append(self.weight.numel())

    monkeypatch.setattr(torch.nn.Linear, "__init__", recording)
    bad = _rewrite(work["model"], work["folder"] / "huge.sgz", _set("config.generator_dims", [20000, 20000]))
    refused(run("info", bad), "huge.sgz", "20000")
    assert max(allocated, default=0) < 10**6  # nothing near the crafted 20,000 x 20,000 layer was allocated


def _forge_size(path: Path, member: str, size: int) -> None:
    """Make the zip directory claim ``member`` expands to ``size`` bytes (an attacker's header)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    offset = 0
    while True:  # find this member's central directory record
        offset = data.find(b"PK\x01\x02", offset)
        name_length = int.from_bytes(data[offset + 28:offset + 30], "little")
        if data[offset + 46:offset + 46 + name_length] == member.encode():
            break
        offset += 4
    data[offset + 24:offset + 28] = size.to_bytes(4, "little")  # uncompressed size
    data[info.header_offset + 22:info.header_offset + 26] = size.to_bytes(4, "little")
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("case", ["tensors claim 3 GB", "model.json claims 1 GB", "model.json is 80 MB of spaces",
                                  "tensors are 8 MB of zeros"])
def test_small_file_that_expands_hugely_is_refused_from_the_directory(work, case: str) -> None:
    bad = work["folder"] / "bomb.sgz"
    if case == "tensors claim 3 GB":
        _rewrite(work["model"], bad)
        _forge_size(bad, "tensors.pt", 3 * 2**30)
    elif case == "model.json claims 1 GB":
        _rewrite(work["model"], bad)
        _forge_size(bad, "model.json", 2**30)
    elif case == "model.json is 80 MB of spaces":
        with zipfile.ZipFile(work["model"]) as archive:
            padded = archive.read("model.json")[:-1] + b" " * (80 * 2**20) + b"}"
        _rewrite(work["model"], bad, **{"model.json": padded})
    else:
        buffer = io.BytesIO()
        torch.save({"padding": torch.zeros(2 * 2**20)}, buffer)
        _rewrite(work["model"], bad, **{"tensors.pt": buffer.getvalue()})
    assert bad.stat().st_size < 4 * 2**20
    before = snapshot(work["folder"])
    message = refused(run("info", bad), "bomb.sgz")
    assert "MB" in message or "compress" in message
    assert snapshot(work["folder"]) == before


def test_tensors_that_disagree_with_the_config_are_refused(work) -> None:
    with zipfile.ZipFile(work["model"]) as archive:
        tensors = torch.load(io.BytesIO(archive.read("tensors.pt")), weights_only=True)
    name = next(k for k in tensors if k.startswith("generator.") and k.endswith("weight"))
    tensors[name] = torch.zeros(3, 3)
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    bad = _rewrite(work["model"], work["folder"] / "reshaped.sgz", **{"tensors.pt": buffer.getvalue()})
    refused(run("info", bad), "reshaped.sgz", name.removeprefix("generator."))


# --- 4. Same seed, same bytes ------------------------------------------------------------------


def test_same_seed_gives_a_byte_identical_model_file(work) -> None:
    first, second = work["folder"] / "a.sgz", work["folder"] / "b.sgz"
    for path in (first, second):
        assert run("fit", work["data"], "-o", path, "--seed", "0", *FAST).exit_code == 0
        time.sleep(1.1)  # a clock in the file (zip times, creation time, seconds trained) would now differ
    assert first.read_bytes() == second.read_bytes()
    shown = run("info", first)
    assert shown.exit_code == 0 and "seed 0" in shown.output, shown.output


# --- 5. Messages ------------------------------------------------------------------------------


class _Payload:
    def __reduce__(self):
        return (print, ("pwned",))


def test_unsafe_weights_are_refused_in_one_line_without_torchs_advice(work) -> None:
    import pickle
    import warnings

    buffer = io.BytesIO()
    torch.save({"x": torch.zeros(2), "y": _Payload()}, buffer)
    for name, payload in [("pickled.sgz", pickle.dumps({"x": _Payload()})), ("object.sgz", buffer.getvalue())]:
        bad = _rewrite(work["model"], work["folder"] / name, **{"tensors.pt": payload})
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # torch's multi-line warning about the pickle is not shown either
            result = run("info", bad)
        message = refused(result, name, "not plain tensors; refused as unsafe")
        assert "pwned" not in result.output and "will likely succeed" not in message


def test_column_named_with_an_equals_sign_can_be_conditioned(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"x=y": rng.choice(["a", "b=c"], 200), "dose": rng.normal(5, 1, 200).round(2)})
    data, model, out = tmp_path / "eq.csv", tmp_path / "eq.sgz", tmp_path / "out.csv"
    table.to_csv(data, index=False)
    assert run("fit", data, "-o", model, "--seed", "0", *FAST).exit_code == 0
    for condition, value in [("x=y=a", "a"), ("x=y=b=c", "b=c")]:
        result = run("sample", model, "-n", "30", "-c", condition, "-o", out, "--quiet")
        assert result.exit_code == 0, result.output
        assert (pd.read_csv(out)["x=y"] == value).all()
    refused(run("sample", model, "-n", "5", "-c", "x=q", "-o", tmp_path / "none.csv", "--quiet"), "'x'")
    assert not (tmp_path / "none.csv").exists()


@pytest.fixture(scope="module")
def image_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    np.savez(folder / "digits.npz", train_images=rng.integers(0, 256, (16, 16, 16), dtype=np.uint8),
             train_labels=np.repeat([0, 1], 8))
    model = folder / "image.sgz"
    result = run("fit", folder / "digits.npz", "-o", model, "--image-size", "16", "--steps", "2",
                 "--batch-size", "8", "--seed", "0", "--quiet")
    assert result.exit_code == 0, result.output
    return model


@pytest.mark.parametrize("name", ["x.csv", "x.parquet", "x.tsv"])
def test_image_model_sampled_to_a_table_file_is_refused(image_model: Path, tmp_path: Path, name: str) -> None:
    out = tmp_path / name
    refused(run("sample", image_model, "-n", "4", "-o", out, "--quiet"), name, "image")
    assert list(tmp_path.iterdir()) == []


def test_a_version_1_model_file_with_clock_readings_still_loads(work) -> None:
    """Files written before the clock readings were dropped keep working."""
    def version_1(manifest: dict) -> None:
        manifest.update(format_version=1, created="2026-11-30T10:00:00+00:00")
        manifest["training"]["seconds"] = 12.5

    old = _rewrite(work["model"], work["folder"] / "v1.sgz", version_1)
    shown = run("info", old)
    assert shown.exit_code == 0, shown.output
    assert "on 2026-11-30T10:00:00+00:00" in shown.output and "12.5 s on cpu" in shown.output
