"""benchmarks/sequences.py's encoding lever (loaded from there, so the test checks what the benchmark runs)."""
from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

_spec = importlib.util.spec_from_file_location(
    "sequences_benchmark", Path(__file__).resolve().parents[2] / "benchmarks" / "sequences.py")
assert _spec is not None and _spec.loader is not None
_benchmark = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_benchmark)


def _long_table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 5, 40)
    rows = int(lengths.sum())
    return pd.DataFrame({
        "id": np.repeat(np.arange(40), lengths),
        "day": np.concatenate([np.arange(k) * 30 for k in lengths]),
        "age": np.repeat(rng.integers(30, 80, 40), lengths),  # static
        "chol": rng.lognormal(5.5, 0.4, rows),
        "albumin": rng.normal(3.5, 0.4, rows),
        "platelet": rng.normal(250, 60, rows),
    })


def _args(encoding: str, columns: list[str]) -> argparse.Namespace:
    return argparse.Namespace(entity="id", index="day", visit_encoding=encoding, quantile_columns=columns)


def _quantile(metadata) -> set[str]:
    return {name for name, spec in metadata.columns.items() if spec.get("transformer") == "quantile"}


def test_quantile_columns_encode_only_the_named_per_visit_columns() -> None:
    table = _long_table()
    assert _quantile(_benchmark.quantile_visits(table, _args("mixture", ["chol", "platelet"]))) == {"chol", "platelet"}
    # The whole-table switch still takes every numerical per-visit column, never the static age or the index.
    assert _quantile(_benchmark.quantile_visits(table, _args("quantile", []))) == {"chol", "albumin", "platelet"}
    with pytest.raises(SystemExit, match="cholesterol"):
        _benchmark.quantile_visits(table, _args("mixture", ["cholesterol"]))
