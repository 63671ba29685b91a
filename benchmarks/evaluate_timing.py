"""Wall time of `synthgen.evaluation` on a 20-column table, for 10k and 100k synthetic rows.

    python benchmarks/evaluate_timing.py

Real data: 10,000 training and 10,000 holdout rows of a generated 20-column mixed table
(10 numerical, 6 categorical, 2 boolean, 1 datetime, 1 identifier). Synthetic data: fresh rows
from the same generator. Sections cap their inputs (stated in the report notes).
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd

from synthgen import Metadata
from synthgen.evaluation import evaluate


def table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=n)
    columns: dict[str, object] = {"record_id": np.arange(n) + seed * 10**7}
    for i in range(10):
        columns[f"lab_{i}"] = np.round(base * (i % 3) + rng.normal(size=n) * (1 + i / 5) + 50, 2)
    for i in range(6):
        levels = np.array([f"c{i}_{k}" for k in range(3 + i)])
        columns[f"code_{i}"] = levels[(np.abs(base * 2 + rng.normal(size=n)) * (i + 1)).astype(int) % len(levels)]
    columns["flag_a"] = base > 0.5
    columns["flag_b"] = rng.random(n) < 0.2
    columns["admitted"] = (pd.Timestamp("2019-01-01") + pd.to_timedelta(rng.integers(0, 1500, n), unit="D")).strftime("%Y-%m-%d")
    return pd.DataFrame(columns)


def main() -> None:
    train, holdout = table(10_000, 1), table(10_000, 2)
    metadata = Metadata.detect(train)
    for rows in (10_000, 100_000):
        synthetic = table(rows, 3)
        started = time.perf_counter()
        report = evaluate(train, synthetic, holdout=holdout, metadata=metadata, progress=False)
        print(f"{rows:>7} synthetic rows x {train.shape[1]} columns: {time.perf_counter() - started:.1f} s "
              f"({report.verdict})", flush=True)


if __name__ == "__main__":
    main()
