"""Checks shared by the tests of what a table model learns beside its columns (missing sets, rules):
each is saved, read back the same, refused when crafted, and shown by ``info``. (Not conftest.py:
other test folders import the top-level conftest by that name.)"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

import synthgen
from synthgen.bundle import read_bundle, write_bundle
from synthgen.cli.main import main
from synthgen.errors import ModelFileError


def saved_and_crafted(tmp_path: Path, model: synthgen.TabularSynthesizer, key: str, crafted: list[Any]) -> None:
    """``model`` samples the same after saving, and each crafted value of its transformer state's
    ``key`` makes the file refused."""
    path = model.save(tmp_path / "m.sgz")
    pd.testing.assert_frame_equal(synthgen.load(path).sample(300, seed=4), model.sample(300, seed=4))
    manifest, tensors = read_bundle(path)
    for value in crafted:
        manifest["transformer"][key] = value
        write_bundle(tmp_path / "bad.sgz", manifest, tensors)
        with pytest.raises(ModelFileError):
            synthgen.load(tmp_path / "bad.sgz")


def info_of(tmp_path: Path, model: synthgen.TabularSynthesizer) -> tuple[str, dict[str, Any]]:
    """``synthgen info`` of ``model`` saved: its text and its ``--json``."""
    path = str(model.save(tmp_path / "info.sgz"))
    return CliRunner().invoke(main, ["info", path]).output, json.loads(CliRunner().invoke(main, ["info", path, "--json"]).output)
