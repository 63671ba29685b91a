"""Which columns the real-vs-synthetic detector uses (issue 19): permutation importance per column.

    BENCH_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/detector_columns.py --tables opt indo_rct flchain \
        --seed 0 --top 10 --json out.json

For each table: run.py's split and ``fit_worker`` (synthgen's defaults, seed ``--seed``, a fresh
process), its training-sized draw, then the detector of ``synthgen.evaluation.fidelity`` rebuilt
from the same pieces (its feature coding, HistGradientBoosting parameters, 5 folds drawn per
distinct row, balanced classes). Per fold the model is fitted once; each column's importance is
the fold's test ROC AUC minus the AUC with that column's values shuffled across the fold's test
rows (real and synthetic together), averaged over folds and ``--repeats`` shuffles. The top
columns are then dropped one at a time and the detector refitted: "AUC without it" says how much
the rest of the table still gives away. The base AUC is close to, not the same draw of folds as,
run.py's "detection AUC" (fidelity_section spends its random stream on subsamples first).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402
from tables import TABLES, split  # noqa: E402


def importances(train: pd.DataFrame, synthetic: pd.DataFrame, metadata, repeats: int, top: int,
                rng: np.random.Generator) -> dict:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from threadpoolctl import threadpool_limits

    from synthgen.evaluation import fidelity

    specs = fidelity._scored_specs(metadata)
    size = min(len(train), len(synthetic))
    real, other = fidelity._columns(train, specs), fidelity._columns(synthetic, specs)
    (x_real, x_other), categorical = fidelity._encode(
        [fidelity._subsample(real, size, rng), fidelity._subsample(other, size, rng)], specs)
    rows = fidelity._trainable(np.vstack([x_real, x_other]))
    labels = np.repeat([0, 1], size)
    groups = pd.factorize(pd.util.hash_pandas_object(pd.DataFrame(rows), index=False))[0]
    fold_of = rng.permutation(groups.max() + 1)[groups] % fidelity._FOLDS
    names = list(specs)

    def fold_aucs(keep: np.ndarray) -> tuple[list[float], np.ndarray]:
        aucs, drops = [], np.zeros(len(names))
        for fold in range(fidelity._FOLDS):
            test = fold_of == fold
            model = HistGradientBoostingClassifier(**fidelity._MODEL_PARAMS, categorical_features=categorical[keep],
                                                   random_state=fold).fit(rows[~test][:, keep], labels[~test])
            x_test = rows[test][:, keep]
            auc = roc_auc_score(labels[test], model.predict_proba(x_test)[:, 1])
            aucs.append(auc)
            if keep.all():
                for j in range(len(names)):
                    for _ in range(repeats):
                        shuffled = x_test.copy()
                        shuffled[:, j] = rng.permutation(shuffled[:, j])
                        drops[j] += (auc - roc_auc_score(labels[test], model.predict_proba(shuffled)[:, 1])) / repeats
        return aucs, drops / fidelity._FOLDS

    with threadpool_limits(limits=1, user_api="openmp"):
        aucs, drops = fold_aucs(np.ones(len(names), bool))
        order = np.argsort(-drops)[:top]
        ranked = []
        for j in order:
            keep = np.ones(len(names), bool)
            keep[j] = False
            ranked.append({"column": names[j], "sdtype": specs[names[j]]["sdtype"],
                           "permutation_drop": float(drops[j]), "auc_without": float(np.mean(fold_aucs(keep)[0]))})
    return {"auc": float(np.mean(aucs)), "columns": len(names), "top": ranked}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="+", choices=sorted(TABLES), default=["opt", "indo_rct", "flchain"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="shuffles per column and fold")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import synthgen

    out = {}
    for table in args.tables:
        train, holdout = split(table)
        metadata = synthgen.Metadata.detect(train)
        fitted = bench._in_fresh_process(bench.fit_worker, table, "synthgen", args.seed, 300, None, len(holdout),
                                         len(train), 0)
        out[table] = importances(train, fitted["big"], metadata, args.repeats, args.top, np.random.default_rng(0))
        out[table]["fit_s"] = fitted["fit_s"]
        print(f"{table}: AUC {out[table]['auc']:.3f}; " + ", ".join(
            f"{r['column']} {r['permutation_drop']:.3f} (without: {r['auc_without']:.3f})" for r in out[table]["top"]),
            file=sys.stderr, flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
