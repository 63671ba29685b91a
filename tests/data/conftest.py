"""Helpers for the tests of what a table model learns beside its columns (missing sets, rules):
each is saved, read back the same, refused when crafted, and shown by ``info``."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

import synthgen
from synthgen.bundle import read_bundle, write_bundle
from synthgen.cli.main import main
from synthgen.errors import ModelFileError


@pytest.fixture
def saved_and_crafted(tmp_path: Path) -> Callable[[synthgen.TabularSynthesizer, str, list[Any]], None]:
    """Check that ``model`` samples the same after saving, and that each crafted value of its
    transformer state's ``key`` makes the file refused."""
    def check(model: synthgen.TabularSynthesizer, key: str, crafted: list[Any]) -> None:
        path = model.save(tmp_path / "m.sgz")
        pd.testing.assert_frame_equal(synthgen.load(path).sample(300, seed=4), model.sample(300, seed=4))
        manifest, tensors = read_bundle(path)
        for value in crafted:
            manifest["transformer"][key] = value
            write_bundle(tmp_path / "bad.sgz", manifest, tensors)
            with pytest.raises(ModelFileError):
                synthgen.load(tmp_path / "bad.sgz")
    return check


@pytest.fixture
def info_of(tmp_path: Path) -> Callable[[synthgen.TabularSynthesizer], tuple[str, dict[str, Any]]]:
    """``synthgen info`` of ``model`` saved: its text and its ``--json``."""
    def run(model: synthgen.TabularSynthesizer) -> tuple[str, dict[str, Any]]:
        path = str(model.save(tmp_path / "info.sgz"))
        return CliRunner().invoke(main, ["info", path]).output, json.loads(CliRunner().invoke(main, ["info", path, "--json"]).output)
    return run
