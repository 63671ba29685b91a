"""Issue 19's per-level calibration, measured paired: one fit, the same draws, with and without it.

    OMP_NUM_THREADS=1 python benchmarks/conditional_calibration.py --tables flchain opt --seeds 0 1 2 --json out.json

For each table and seed: run.py's split, synthgen's defaults (seed SEED) fitted once; then run.py's
draws (3 holdout-sized, one training-sized, the same sampling seeds) scored twice: as fitted (numeric
columns calibrated per level of a category where the fit found one and kept it) and with the levels
removed (the global calibration alone, what the product did before), or with ``--baseline single``
with only the maps per pair of levels removed (each column by one category), or with ``--baseline
categories`` against a second fit of the same seed (the same weights) whose levels are categories
only (no bands of another numeric column), or with ``--baseline copula`` against a second fit of
the same seed without the copula correction (``copula=False``), or with ``--baseline rounding``
against the same fit sampled with its numbers unrounded. Prints and writes
detection AUC, gap closed, Column Shapes and the privacy scores of both, and which columns were
calibrated by which category. ``--from-json`` re-renders the table of earlier runs.
"""
from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

import numpy as np

import run as bench  # benchmarks/run.py: this script's folder is first on sys.path
from tables import TABLES, split

PRIVACY = ("DCR share", "MIA AUC (distance)", "Exact copies")


def measure(table: str, seed: int, baseline: str = "global") -> dict[str, Any]:
    import dataclasses

    import synthgen
    from synthgen.data import calibration as calibration_module
    from synthgen.data.calibration import ValueCalibration

    bench._limit_threads(bench.THREADS)
    train, holdout = split(table)
    metadata = synthgen.Metadata.detect(train)
    model = synthgen.TabularSynthesizer(seed=seed, progress=False).fit(train)
    flat = copy.copy(model)
    calibration = model.value_calibration_
    if baseline == "rounding":  # the same fit sampled with its numbers unrounded
        flat.rounding_ = False
    elif baseline == "copula":  # the same seed's fit (the same weights) without the copula correction
        flat = synthgen.TabularSynthesizer(seed=seed, progress=False, copula=False).fit(train)
    elif baseline == "categories":  # the same seed's fit, bands of numeric columns switched off
        bands = calibration_module.MAX_LEVEL_BANDS
        calibration_module.MAX_LEVEL_BANDS = 1
        try:
            flat = synthgen.TabularSynthesizer(seed=seed, progress=False).fit(train)
        finally:
            calibration_module.MAX_LEVEL_BANDS = bands
    elif calibration is not None and baseline == "single":  # each column by its first category only
        flat.value_calibration_ = ValueCalibration(calibration.maps, {
            name: dataclasses.replace(level, then=None, pair_maps={}) for name, level in calibration.levels.items()})
    elif calibration is not None:
        flat.value_calibration_ = ValueCalibration(calibration.maps)
    reference, floor = bench.reference_and_floor(train, holdout, metadata, [seed])
    result: dict[str, Any] = {"table": table, "seed": seed, "baseline": baseline,
                              "by_level": model.describe()["calibrated_by_level"],
                              "copula_columns": model.describe()["copula_columns"],
                              "rounded_columns": model.describe()["rounded_columns"],
                              "fit_s": model.training_["seconds"]}
    for tag, synthesizer in (("global", flat), ("levels", model)):
        row = result[tag] = score(synthesizer, train, holdout, metadata, seed, reference, floor)
        print(f"{table} seed {seed} {tag}: AUC {row['detection_auc']:.3f}, gap {row['gap Column Pair Trends']:.3f}, "
              f"Column Shapes {row['Column Shapes']:.3f}, DCR share {row['DCR share']:.3f}, MIA AUC "
              f"{row['MIA AUC (distance)']:.3f}, exact copies {row['Exact copies']:.4f} ({row['copies']} rows in all draws)",
              flush=True)
    return result


def score(synthesizer: Any, train: Any, holdout: Any, metadata: Any, seed: int, reference: Any, floor: Any) -> dict[str, Any]:
    """run.py's draws of ``synthesizer`` (3 holdout-sized, one training-sized) scored as run.py scores them."""
    draws = [synthesizer.sample(len(holdout), seed=bench._draw_seed(seed, d)) for d in range(bench.DRAWS)]
    big = synthesizer.sample(len(train), seed=bench._draw_seed(seed, bench.DRAWS))
    qualities = [bench._quality(train, d, metadata) for d in draws]
    row = {key: float(np.mean([q[key] for q in qualities])) for key in qualities[0]}
    bench.add_gaps(row, reference, floor)
    row["detection_auc"], _ = bench._detection(train, big, holdout, metadata)
    privacy = bench.privacy_scores(train, big, holdout, metadata)
    row.update({name: privacy[name].value for name in PRIVACY})
    row["copies"] = bench._copies(train, [*draws, big], metadata)
    return row


def render(results: list[dict[str, Any]]) -> str:
    lines = ["| table | per level (column by category) | detection AUC | gap closed | Column Shapes | DCR share "
             "| distance-MIA AUC | copies (all draws) |", "|---|---|---|---|---|---|---|---|"]
    for table in dict.fromkeys(r["table"] for r in results):
        rows = [r for r in results if r["table"] == table]

        def pair(key: str, digits: int = 3) -> str:
            mean = {tag: float(np.mean([r[tag][key] for r in rows])) for tag in ("global", "levels")}
            return f"{mean['global']:.{digits}f} → {mean['levels']:.{digits}f}"

        pairs = {(column, by) for r in rows for column, by in r["by_level"].items()}
        found = []
        for by in sorted({by for _, by in pairs}):
            columns = sorted(column for column, b in pairs if b == by)
            found.append(f"{len(columns)} columns by {by}" if len(columns) > 3 else f"{', '.join(columns)} by {by}")
        copies = " / ".join(f"{r['global']['copies']} → {r['levels']['copies']}" for r in rows)
        versus = {"single": " (against one category per column)",
                  "categories": " (against categories only)", "copula": " (against no copula correction)",
                  "rounding": " (against unrounded numbers)"}.get(rows[0].get("baseline", "global"), "")
        lines.append(f"| {table} ({len(rows)} seeds){versus} | {', '.join(found) or 'none'} | {pair('detection_auc')} "
                     f"| {pair('gap Column Pair Trends', 2)} | {pair('Column Shapes')} | {pair('DCR share')} "
                     f"| {pair('MIA AUC (distance)')} | {copies} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", nargs="+", default=list(TABLES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--json", type=Path, help="write (and extend) the results here")
    parser.add_argument("--baseline", choices=["global", "single", "categories", "copula", "rounding"], default="global",
                        help="compare against the global maps alone, maps by one category per column, "
                             "levels of categories only (no numeric bands), or a fit without the copula correction")
    parser.add_argument("--from-json", nargs="+", type=Path, help="render these result files; fit nothing")
    args = parser.parse_args()
    if args.from_json:
        print(render([r for path in args.from_json for r in json.loads(path.read_text())]))
        return
    results = json.loads(args.json.read_text()) if args.json and args.json.exists() else []
    for table in args.tables:
        for seed in args.seeds:
            results.append(measure(table, seed, args.baseline))
            if args.json:
                args.json.write_text(json.dumps(results, indent=1))
    print(render(results))


if __name__ == "__main__":
    main()
