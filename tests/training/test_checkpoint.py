"""Resumable training: a fit killed mid-way and resumed ends in the same model bytes; foreign checkpoints refused."""
from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

import synthgen.training.tabular as tabular_training
from synthgen.cli.main import main
from synthgen.errors import InvalidArgumentError, ModelFileError
from synthgen.synthesizers.tabular import TabularSynthesizer

from conftest import make_patients

STEPS, EVERY, CRASH = 200, 100, 150


class Killed(BaseException):
    """Stands for the process being killed: not an Exception, so nothing on the way catches it."""


@pytest.fixture(scope="module")
def table():
    return make_patients(300)


@pytest.fixture(scope="module")
def uninterrupted(table, tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("whole") / "model.sgz"
    return TabularSynthesizer(seed=3, steps=STEPS, progress=False).fit(table).save(path).read_bytes()


def _killed(fit, monkeypatch) -> None:
    """Run ``fit()`` with the process "killed" at generator step CRASH."""
    real_step, calls = tabular_training.generator_step, []

    def step(*args, **kwargs):
        calls.append(1)
        if len(calls) == CRASH:
            raise Killed
        return real_step(*args, **kwargs)

    monkeypatch.setattr(tabular_training, "generator_step", step)
    with pytest.raises(Killed):
        fit()
    monkeypatch.setattr(tabular_training, "generator_step", real_step)


def _killed_fit(table, checkpoint: Path, monkeypatch) -> None:
    _killed(lambda: TabularSynthesizer(seed=3, steps=STEPS, progress=False, checkpoint_every=EVERY,
                                       checkpoint_path=checkpoint).fit(table), monkeypatch)


def test_a_resumed_fit_ends_in_the_same_model_bytes(table, uninterrupted: bytes, tmp_path: Path, monkeypatch) -> None:
    checkpoint = tmp_path / "model.ckpt"
    _killed_fit(table, checkpoint, monkeypatch)
    with zipfile.ZipFile(checkpoint) as archive:
        assert json.loads(archive.read("model.json"))["step"] == EVERY  # the last one written before the kill
    resumed = TabularSynthesizer(seed=3, steps=STEPS, progress=False).fit(table, resume=checkpoint)
    assert resumed.save(tmp_path / "resumed.sgz").read_bytes() == uninterrupted
    # Without the checkpoint's state (weights, optimisers, stream), restarting at its step would differ.
    fresh = TabularSynthesizer(seed=3, steps=STEPS - EVERY, progress=False).fit(table)
    assert fresh.save(tmp_path / "fresh.sgz").read_bytes() != uninterrupted


def test_a_checkpoint_of_another_fit_or_an_unsafe_one_is_refused(table, tmp_path: Path, monkeypatch) -> None:
    checkpoint = tmp_path / "model.ckpt"
    _killed_fit(table, checkpoint, monkeypatch)
    with pytest.raises(InvalidArgumentError, match="another fit"):
        TabularSynthesizer(seed=4, steps=STEPS, progress=False).fit(table, resume=checkpoint)
    with pytest.raises(InvalidArgumentError, match="another fit"):
        TabularSynthesizer(seed=3, steps=STEPS, progress=False).fit(table.iloc[:-1], resume=checkpoint)
    with pytest.raises(ModelFileError, match="not a training checkpoint"):
        model = TabularSynthesizer(seed=3, steps=10, progress=False).fit(table).save(tmp_path / "m.sgz")
        TabularSynthesizer(seed=3, steps=STEPS, progress=False).fit(table, resume=model)
    # A checkpoint whose tensors entry is a pickle of code is refused before anything runs.
    poisoned = tmp_path / "poisoned.ckpt"
    with zipfile.ZipFile(checkpoint) as source, zipfile.ZipFile(poisoned, "w") as target:
        target.writestr("model.json", source.read("model.json"))
        target.writestr("tensors.pt", pickle.dumps(eval))
    with pytest.raises(ModelFileError, match="unsafe|corrupt"):
        TabularSynthesizer(seed=3, steps=STEPS, progress=False).fit(table, resume=poisoned)


def test_cli_checkpoints_resumes_and_cleans_up(table, tmp_path: Path, monkeypatch) -> None:
    data = tmp_path / "patients.csv"
    table.to_csv(data, index=False)

    def fit(output: Path, *extra: str):
        return CliRunner().invoke(main, ["fit", str(data), "-o", str(output), "--seed", "3", "--steps", str(STEPS),
                                         "--quiet", *extra])

    assert fit(tmp_path / "whole.sgz").exit_code == 0
    output = tmp_path / "model.sgz"
    _killed(lambda: fit(output, "--checkpoint-every", str(EVERY)), monkeypatch)
    assert not output.exists() and (tmp_path / "model.sgz.ckpt").exists()
    result = fit(output, "--checkpoint-every", str(EVERY), "--resume", str(tmp_path / "model.sgz.ckpt"))
    assert result.exit_code == 0, result.output
    assert output.read_bytes() == (tmp_path / "whole.sgz").read_bytes()
    assert not (tmp_path / "model.sgz.ckpt").exists()  # removed once the model is saved
    result = CliRunner().invoke(main, ["fit", str(data), "-o", str(tmp_path / "dp.sgz"), "--dp-epsilon", "1",
                                       "--checkpoint-every", "10"])
    assert result.exit_code == 1 and "checkpoints are written for a one-process fit without DP" in result.output
