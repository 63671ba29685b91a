"""Does `synthgen augment` help a classifier trained on little data? Small-data protocol on breast cancer.

    python benchmarks/augment.py --steps 1000 --seeds 3

scikit-learn's breast-cancer table (569 rows, 30 numeric features, target 0 = malignant, the
minority, 212 rows). For each training size (50, 100, 200 rows) and seed, a stratified sample of
that size is the training set and every remaining row is the test set. One synthesizer is fitted
on the training rows; the classifier (HistGradientBoosting by default) is trained on the real rows
alone, on real + balance-augmented rows and on real + ratio-2 rows, and all three are scored on the
same real test rows. The table reports mean ± sd over seeds and the verdict of
`synthgen.augmentation.compare_runs` (paired over seeds: "helped" when the 95% interval of the
balanced-accuracy difference is above 0 and the ROC AUC one is not entirely below 0, "hurt" when
either lies entirely below 0).

Each seed fits a GAN (about a minute at the default steps on two cores), so the full protocol
(10 seeds, default steps) takes a while; `--steps` and `--seeds` shorten it.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from synthgen.augmentation.check import compare_runs, score_model
from synthgen.augmentation.tables import augment, fit_for_augmentation
from synthgen.choices import CLASSIFIERS

TARGET = "target"
MODES = ("real only", "balance", "ratio 2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 200], help="training rows")
    parser.add_argument("--seeds", type=int, default=10, help="splits (and GAN fits) per size")
    parser.add_argument("--steps", type=int, default=None, help="GAN optimiser steps [default: synthgen's]")
    parser.add_argument("--classifier", choices=CLASSIFIERS, default=CLASSIFIERS[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    frame = load_breast_cancer(as_frame=True).frame
    print(f"breast cancer: {len(frame)} rows, minority class 0 (malignant) {int((frame[TARGET] == 0).sum())} rows; "
          f"classifier {args.classifier}; GAN steps {args.steps or 'default'}; {args.seeds} seeds", flush=True)
    rows = []
    for size in args.sizes:
        runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
        for seed in range(args.seeds):
            train, test = train_test_split(frame, train_size=size, stratify=frame[TARGET], random_state=seed)
            train, test = train.reset_index(drop=True), test.reset_index(drop=True)
            started = time.perf_counter()
            model = fit_for_augmentation(train, TARGET, seed=seed, steps=args.steps, progress=False)
            tables = {
                "real only": train,
                "balance": augment(train, TARGET, balance=True, model=model, seed=seed, flag_column=None),
                "ratio 2": augment(train, TARGET, ratio=2, model=model, seed=seed, flag_column=None),
            }
            with threadpool_limits(limits=1, user_api="openmp"):
                for mode, table in tables.items():
                    runs[mode].append(score_model(table, test, TARGET, task="classification",
                                                  classifier=args.classifier, seed=seed,
                                                  metadata=model.metadata_, minority="0"))
            print(f"  size {size} seed {seed}: {time.perf_counter() - started:.0f} s; " + "; ".join(
                f"{mode} bal.acc {runs[mode][-1]['balanced accuracy']:.3f}" for mode in MODES), flush=True)
        for mode in MODES:
            verdict = ("(baseline)" if mode == "real only"
                       else compare_runs(runs["real only"], runs[mode], "classification")[1])
            cells = [_mean_sd([run[name] for run in runs[mode]])
                     for name in ("ROC AUC", "balanced accuracy", "minority recall (0)")]
            rows.append(f"| {size} | {mode} | " + " | ".join(cells) + f" | {verdict} |")
    print()
    print("| train rows | mode | ROC AUC | balanced accuracy | minority recall | verdict |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


def _mean_sd(values: list[float]) -> str:
    values = np.asarray(values, dtype=float)
    sd = values.std(ddof=1) if len(values) > 1 else float("nan")
    return f"{values.mean():.3f} ± {sd:.3f}"


if __name__ == "__main__":
    main()
