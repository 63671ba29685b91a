"""Issue 19's calibration per band of another numeric column: its variants on one fit, paired.

    OMP_NUM_THREADS=1 python benchmarks/band_variants.py --table diabetes --seeds 0 1 2 --json out.json

For each seed: run.py's split, synthgen's defaults fitted once (without the copula correction, which
came after the bands and which the bands were measured without); the generator's own 10,000-row draw
(calibration off, sampling seed 12345) then feeds the fit's calibration step again (``_by_level``:
levels, pairs, bands and the copy check) once per variant, switched by the module constants of
``synthgen.data.calibration``: ``cats`` (no bands: the product before them), ``bands`` (every band
of a source that clears the share), ``gated01``/``gated05`` (a band mapped only where the global
map leaves it off, KS at 1% / 5%). Each variant is scored on run.py's draws: detection AUC, gap
closed, Column Shapes, DCR share, distance-MIA AUC, exact copies (as ``conditional_calibration.py`` scores).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

import run as bench  # benchmarks/run.py: this script's folder is first on sys.path
from conditional_calibration import PRIVACY, score
from tables import split

VARIANTS: dict[str, dict[str, Any]] = {"cats": {"MAX_LEVEL_BANDS": 1}, "bands": {"BAND_KS_ALPHA": None},
                                       "gated01": {"BAND_KS_ALPHA": 0.01}, "gated05": {"BAND_KS_ALPHA": 0.05}}


def measure(table: str, seed: int, variants: list[str]) -> list[dict[str, Any]]:
    import synthgen
    from synthgen.data import calibration
    from synthgen.data.calibration import ValueCalibration

    bench._limit_threads(bench.THREADS)
    train, holdout = split(table)
    metadata = synthgen.Metadata.detect(train)
    model = synthgen.TabularSynthesizer(seed=seed, progress=False, copula=False).fit(train)
    maps = model.value_calibration_.maps
    model.value_calibration_ = None
    drawn = model.sample(10_000, seed=12345)
    reference, floor = bench.reference_and_floor(train, holdout, metadata, [seed])
    defaults = {name: getattr(calibration, name) for name in ("MAX_LEVEL_BANDS", "BAND_KS_ALPHA")}
    rows = []
    for variant in variants:
        for name, value in {**defaults, **VARIANTS[variant]}.items():
            setattr(calibration, name, value)
        try:
            model.value_calibration_ = model._by_level(ValueCalibration(maps), drawn, lambda names: train[names],
                                                       np.random.default_rng(seed))
        finally:
            for name, value in defaults.items():
                setattr(calibration, name, value)
        row = score(model, train, holdout, metadata, seed, reference, floor)
        row.update(table=table, seed=seed, variant=variant, by_level=model.describe()["calibrated_by_level"])
        rows.append(row)
        print(f"{table} seed {seed} {variant:8s} AUC {row['detection_auc']:.3f} gap {row['gap Column Pair Trends']:.3f} "
              f"Column Shapes {row['Column Shapes']:.3f} DCR share {row['DCR share']:.3f} "
              f"MIA AUC {row['MIA AUC (distance)']:.3f} exact copies {row['Exact copies']:.4f}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", required=True)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--json", type=Path, help="write (and extend) the results here")
    args = parser.parse_args()
    results = json.loads(args.json.read_text()) if args.json and args.json.exists() else []
    for seed in args.seeds:
        results.extend(measure(args.table, seed, args.variants))
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
    for variant in args.variants:
        rows = [r for r in results if r["variant"] == variant]
        print(f"{variant}: " + ", ".join(f"{key} {np.mean([r[key] for r in rows]):.3f}" for key in
                                         ("detection_auc", "gap Column Pair Trends", "Column Shapes", *PRIVACY)))


if __name__ == "__main__":
    main()
