"""Shared fixtures: a small mixed-type patient table built here, and one model fitted on it."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from synthgen import Metadata, TabularSynthesizer

N_ROWS = 600


@pytest.fixture(autouse=True, scope="session")
def one_thread() -> Iterator[None]:
    """One intra-op thread for torch: tests train tiny networks, which more threads only slow down
    on a shared machine (and results then do not depend on the core count)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def write_two_tables(folder: Path, parents: pd.DataFrame, children: pd.DataFrame,
                     tables: dict) -> tuple[Path, Path, Path]:
    """patients.csv, visits.csv and SDV multi-table metadata (``tables``, linked by patients.id →
    visits.patient_id) in ``folder``; their paths."""
    metadata = {"tables": tables, "relationships": [{"parent_table_name": "patients", "parent_primary_key": "id",
                                                     "child_table_name": "visits", "child_foreign_key": "patient_id"}]}
    paths = folder / "patients.csv", folder / "visits.csv", folder / "multi.json"
    parents.to_csv(paths[0], index=False)
    children.to_csv(paths[1], index=False)
    paths[2].write_text(json.dumps(metadata))
    return paths


def make_patients(n: int = N_ROWS, seed: int = 0) -> pd.DataFrame:
    """A table with every column kind, missing values, a rare category and a real dependency."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["F", "M"], n)
    bilirubin = np.where(sex == "F", rng.lognormal(0.0, 0.4, n), rng.lognormal(1.5, 0.4, n))
    bilirubin[rng.random(n) < 0.1] = np.nan
    cholesterol = pd.array(rng.integers(120, 320, n), dtype="Int64")
    cholesterol[rng.random(n) < 0.15] = pd.NA
    visit = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D")
    visit_text = pd.Series(visit.strftime("%Y-%m-%d"), dtype=object)
    visit_text[rng.random(n) < 0.05] = None
    diagnosis = rng.choice(["asthma", "copd", "fibrosis"], n, p=[0.5, 0.3, 0.2]).astype(object)
    diagnosis[:2] = "erdheim-chester"  # seen twice: must be pooled, never reproduced
    return pd.DataFrame(
        {
            "patient_id": [f"P{i:05d}" for i in range(n)],
            "sex": sex,
            "age": np.clip(rng.normal(60, 12, n).round(), 18, 95).astype(int),
            "stage": rng.choice([1, 2, 3, 4], n, p=[0.4, 0.3, 0.2, 0.1]),
            "status": rng.choice([0, 1, 2], n),
            "smoker": rng.random(n) < 0.3,
            "bilirubin": bilirubin,
            "cholesterol": cholesterol,
            "visit": visit_text,
            "diagnosis": diagnosis,
        }
    )


@pytest.fixture(scope="session")
def patients() -> pd.DataFrame:
    return make_patients()


@pytest.fixture(scope="session")
def fitted(patients: pd.DataFrame) -> TabularSynthesizer:
    """One model for the many tests that only sample; trained briefly (tests check behaviour)."""
    return TabularSynthesizer(seed=7, steps=1000, progress=False).fit(patients)


@pytest.fixture(scope="session")
def patients_metadata(patients: pd.DataFrame) -> Metadata:
    return Metadata.detect(patients)
