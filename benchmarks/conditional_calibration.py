"""Scratch lever for issue 19, measured, not in the product: each numeric column calibrated per level
of one category column (recipe notes in benchmarks/README.md).

    OMP_NUM_THREADS=1 python benchmarks/conditional_calibration.py TABLE SEED [MIN_LEVEL_ROWS]

run.py's split and synthgen's defaults (seed SEED). For each numeric column the category column
whose levels explain most of its ranks in the training rows (correlation ratio of the ranks, at
least 0.05) is chosen; for every level with at least MIN_LEVEL_ROWS (100) training and generated
rows, the column's values in that level are mapped from a 20,000-row generator draw's quantiles
onto the level's training quantiles (clipped to the 5th smallest and largest, as ValueCalibration
does). Prints detection AUC (training-sized draw), gap closed and Column Shapes (3 holdout-sized
draws), DCR share, distance-MIA AUC and exact copies, without and with the mapping.
"""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd

import run as bench  # benchmarks/run.py: this script's folder is first on sys.path
from tables import split

import synthgen
from synthgen.data.quantile import piecewise_cdf

GRID = np.linspace(0, 1, 101)
CLIP = 5


def rank_eta2(values: np.ndarray, groups: pd.Series) -> float:
    """Share of the variance of ``values``' ranks explained by ``groups`` (missing on either side dropped)."""
    present = ~np.isnan(values) & groups.notna().to_numpy()
    frame = pd.DataFrame({"rank": pd.Series(values[present]).rank().to_numpy(), "group": groups[present].astype(str).to_numpy()})
    means = frame.groupby("group")["rank"].transform("mean")
    total = ((frame["rank"] - frame["rank"].mean()) ** 2).sum()
    return float(((means - frame["rank"].mean()) ** 2).sum() / total) if total else 0.0


def level_maps(train: pd.DataFrame, drawn: pd.DataFrame, metadata: synthgen.Metadata, min_rows: int) -> dict:
    columns = metadata.to_dict()["columns"]
    numeric = [name for name, spec in columns.items() if spec["sdtype"] == "numerical"]
    discrete = [name for name, spec in columns.items() if spec["sdtype"] in ("categorical", "boolean")]
    maps = {}
    for name in numeric:
        values = pd.to_numeric(train[name], errors="coerce").to_numpy(float)
        strength, by = max(((rank_eta2(values, train[d]), d) for d in discrete), default=(0.0, None))
        if strength < 0.05:
            continue
        levels = {}
        for level, rows in train.groupby(train[by].astype(str)).groups.items():
            observed = np.sort(values[train.index.get_indexer(rows)])
            observed = observed[~np.isnan(observed)]
            generated = pd.to_numeric(drawn.loc[drawn[by].astype(str) == level, name], errors="coerce").dropna().to_numpy(float)
            if len(observed) >= min_rows and len(generated) >= min_rows:
                target = np.clip(np.quantile(observed, GRID), observed[CLIP - 1], observed[-CLIP])
                levels[level] = (np.quantile(generated, GRID), target)
        if levels:
            maps[name] = (by, levels)
            print(f"{name} by {by} (rank eta2 {strength:.3f}, {len(levels)} levels)", flush=True)
    return maps


def apply(frame: pd.DataFrame, maps: dict, rng: np.random.Generator) -> pd.DataFrame:
    frame = frame.copy()
    for name, (by, levels) in maps.items():
        values = pd.to_numeric(frame[name], errors="coerce").to_numpy(float)
        mapped = values.copy()
        level_of = frame[by].astype(str).to_numpy()
        for level, (source, target) in levels.items():
            rows = (level_of == level) & ~np.isnan(values)
            if rows.any():
                mapped[rows] = np.interp(piecewise_cdf(values[rows], source, GRID, rng), GRID, target)
        if pd.api.types.is_integer_dtype(frame[name].dtype):
            mapped = np.where(np.isnan(mapped), np.nan, np.rint(mapped))
            frame[name] = pd.array([None if np.isnan(v) else int(v) for v in mapped], dtype=frame[name].dtype)
        else:
            frame[name] = mapped
    return frame


def main(table: str, seed: int, min_rows: int) -> None:
    train, holdout = split(table)
    metadata = synthgen.Metadata.detect(train)
    model = synthgen.TabularSynthesizer(seed=seed, progress=False).fit(train)
    maps = level_maps(train, model.sample(20_000, seed=99), metadata, min_rows)
    big = model.sample(len(train), seed=1)
    draws = [model.sample(len(holdout), seed=1000 * (d + 1) + seed) for d in range(bench.DRAWS)]
    reference, floor = bench.reference_and_floor(train, holdout, metadata, [seed])
    rng = np.random.default_rng(0)
    for tag, change in (("defaults", lambda f: f), ("conditional", lambda f: apply(f, maps, rng))):
        qualities = [bench._quality(train, change(d), metadata) for d in draws]
        row = {key: float(np.mean([q[key] for q in qualities])) for key in qualities[0]}
        bench.add_gaps(row, reference, floor)
        auc, _ = bench._detection(train, change(big), holdout, metadata)
        privacy = bench.privacy_scores(train, change(big), holdout, metadata)
        print(f"{table} seed {seed} {tag}: AUC {auc:.3f}, gap {row['gap Column Pair Trends']:.3f}, Column Shapes "
              f"{row['Column Shapes']:.3f}, DCR share {privacy['DCR share'].value:.3f}, MIA AUC "
              f"{privacy['MIA AUC (distance)'].value:.3f}, exact copies {privacy['Exact copies'].value:.4f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 100)
