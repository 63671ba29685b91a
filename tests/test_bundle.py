"""Model files: round trip, CPU loading of GPU-trained weights, refusal of bad or unsafe files."""
from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import torch

import synthgen
from synthgen.errors import ModelFileError


@pytest.fixture(scope="module")
def model_file(fitted, tmp_path_factory) -> Path:
    return fitted.save(tmp_path_factory.mktemp("bundle") / "model.sgz")


def test_loaded_model_samples_identically(fitted, model_file: Path) -> None:
    loaded = synthgen.load(model_file)
    ids = "patient_id"
    pd.testing.assert_frame_equal(loaded.sample(300, seed=4).drop(columns=ids), fitted.sample(300, seed=4).drop(columns=ids))
    assert loaded.describe()["seed"] == 7
    assert loaded.describe()["metadata"] == fitted.metadata_.to_dict()


def test_model_file_is_plain_json_and_tensors(model_file: Path) -> None:
    with zipfile.ZipFile(model_file) as archive:
        assert sorted(archive.namelist()) == ["model.json", "tensors.pt"]
        manifest = json.loads(archive.read("model.json"))
    assert manifest["format"] == "synthgen-model" and manifest["kind"] == "tabular"
    assert "erdheim-chester" not in json.dumps(manifest)  # pooled rare values are not stored


def test_gpu_trained_weights_load_on_cpu(fitted, tmp_path: Path, monkeypatch) -> None:
    """Tensors tagged with a CUDA location (as a GPU run writes them) load on a CPU-only machine."""
    monkeypatch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
    path = fitted.save(tmp_path / "gpu.sgz")
    monkeypatch.undo()
    with zipfile.ZipFile(path) as archive, pytest.raises(RuntimeError, match="CUDA"):
        torch.load(io.BytesIO(archive.read("tensors.pt")), weights_only=True)
    assert len(synthgen.load(path, device="cpu").sample(20, seed=0)) == 20


def _rewrite(source: Path, target: Path, **members: bytes) -> Path:
    with zipfile.ZipFile(source) as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}
    contents.update(members)
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in contents.items():
            archive.writestr(name, data)
    return target


class _Payload:
    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickled_code_in_weights_is_refused(model_file: Path, tmp_path: Path, capsys) -> None:
    evil = _rewrite(model_file, tmp_path / "evil.sgz", **{"tensors.pt": pickle.dumps({"x": _Payload()})})
    with pytest.raises(ModelFileError, match="unsafe|corrupt"):
        synthgen.load(evil)
    assert "pwned" not in capsys.readouterr().out


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_file_is_refused(model_file: Path, tmp_path: Path, cut: float) -> None:
    data = model_file.read_bytes()
    truncated = tmp_path / "cut.sgz"
    truncated.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(ModelFileError, match="cut.sgz"):
        synthgen.load(truncated)


def test_foreign_files_are_refused(model_file: Path, tmp_path: Path) -> None:
    csv = tmp_path / "data.sgz"
    csv.write_text("a,b\n1,2\n")
    with pytest.raises(ModelFileError, match="not a synthgen model"):
        synthgen.load(csv)
    other_zip = tmp_path / "other.sgz"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ModelFileError, match="not a synthgen model"):
        synthgen.load(other_zip)
    with pytest.raises(ModelFileError, match="does not exist"):
        synthgen.load(tmp_path / "missing.sgz")


def test_unknown_version_and_corrupt_description_are_refused(model_file: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(model_file) as archive:
        manifest = json.loads(archive.read("model.json"))
    future = _rewrite(model_file, tmp_path / "future.sgz", **{"model.json": json.dumps({**manifest, "format_version": 99}).encode()})
    with pytest.raises(ModelFileError, match="version 99"):
        synthgen.load(future)
    broken = _rewrite(model_file, tmp_path / "broken.sgz", **{"model.json": b"{not json"})
    with pytest.raises(ModelFileError, match="corrupt"):
        synthgen.load(broken)
    del manifest["transformer"]
    inconsistent = _rewrite(model_file, tmp_path / "inconsistent.sgz", **{"model.json": json.dumps(manifest).encode()})
    with pytest.raises(ModelFileError, match="inconsistent"):
        synthgen.load(inconsistent)


def test_saving_twice_gives_the_same_bytes(fitted, tmp_path: Path) -> None:
    """No clock in the file: zip entries carry 1980-01-01 and the description has no creation time."""
    first, second = fitted.save(tmp_path / "a.sgz"), fitted.save(tmp_path / "b.sgz")
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        manifest = json.loads(archive.read("model.json"))
    assert "created" not in manifest and "seconds" not in manifest["training"]
