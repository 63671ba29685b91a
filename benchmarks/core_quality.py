"""Fit time, steps and sdmetrics QualityReport of synthgen's default model on benchmark tables.

    python benchmarks/core_quality.py breast-cancer pbc --rows 10000

Scores compare 10k sampled rows with the training split (80/20, seed 0); the holdout's own
scores against the training split are printed beside them as the attainable reference.
"""
from __future__ import annotations

import argparse
import time

from synthgen import TabularSynthesizer
from synthgen.evaluation.fidelity import quality_scores
from tables import TABLES, split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tables", nargs="+", choices=sorted(TABLES))
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print("| table | train rows x cols | steps | fit s | sample s | Column Shapes (holdout) | Column Pair Trends (holdout) | all pairs (holdout) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.tables:
        train, holdout = split(name)
        model = TabularSynthesizer(seed=args.seed, progress=False).fit(train)
        started = time.perf_counter()
        synthetic = model.sample(args.rows, seed=args.seed)
        sample_seconds = time.perf_counter() - started
        ours = quality_scores(train, synthetic, model.metadata_)
        real = quality_scores(train, holdout, model.metadata_)
        cells = [f"{ours[k]:.3f} ({real[k]:.3f})" for k in ("Column Shapes", "Column Pair Trends", "Column Pair Trends (all pairs)")]
        summary = model.training_
        print(f"| {name} | {len(train)} x {train.shape[1]} | {summary['steps']} | {summary['seconds']:.1f} | "
              f"{sample_seconds:.2f} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
