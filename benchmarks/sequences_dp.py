"""cgd under patient-level DP (issue 15): benchmarks/sequences.py's split, scores and privacy, with a DP fit
from the metadata a user would declare (``cgd_metadata``).

    OMP_NUM_THREADS=1 python benchmarks/sequences_dp.py --epsilons 1 3 --seeds 0 1 2 --nondp --json out.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import sequences as bench  # benchmarks/sequences.py: this script's folder is first on sys.path

from synthgen import Metadata
from synthgen.dp.accounting import DPSettings
from synthgen.sequences import SequenceSynthesizer
from synthgen.sequences.evaluate import sequence_fidelity, split_patients
from synthgen.sequences.frames import static_columns

STATIC = ["center", "random", "treat", "sex", "age", "height", "weight", "inherit", "steroids", "propylac", "hos.cat"]


def cgd_metadata(data):
    """The reviewed draft a user would declare: detected kinds, every column's static flag, the two rules."""
    columns = Metadata.detect(data).columns
    columns["id"] = {"sdtype": "id", "computer_representation": "Int64"}
    for name, spec in columns.items():
        if name not in ("id", "tstop"):
            spec["static"] = name in STATIC
    # Public domains a data dictionary gives (the event indicator, the trial's arms, binary covariates);
    # the centres and hospital categories stay private names (released above the noisy threshold).
    for name in ("status", "sex", "treat", "inherit", "steroids", "propylac"):
        columns[name]["public_values"] = sorted(data[name].dropna().unique().tolist())
    columns["tstart"].update(derived=True, rule="previous_index", first=0)
    columns["enum"] = {"sdtype": "numerical", "computer_representation": "Int64", "static": False, "derived": True,
                       "rule": "visit_number", "first": 1}
    return Metadata(columns)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epsilons", type=float, nargs="+", default=[1.0, 3.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--max-length", type=int, default=8)
    parser.add_argument("--nondp", action="store_true")
    parser.add_argument("--json")
    parser.add_argument("--marginal-weight", type=float)
    parser.add_argument("--share", type=float, help="DPSettings.preprocessing_share (default: the library's)")
    args = parser.parse_args()
    if args.marginal_weight is not None:  # tuning only: the library's weight otherwise
        import synthgen.sequences.private as private
        private.MARGINAL_WEIGHT = args.marginal_weight
    data = bench.load("cgd")
    metadata = cgd_metadata(data)
    ns = argparse.Namespace(entity="id", index="tstop")
    results = []
    for seed in args.seeds:
        train, holdout = split_patients(data, "id", 0.2, seed)
        statics = static_columns(train, "id", "tstop")
        n = int(train["id"].nunique())
        runs = [("non-DP", None)] if args.nondp else []
        runs += [(f"DP eps={e:g}", DPSettings(epsilon=e, **({"preprocessing_share": args.share} if args.share else {}))) for e in args.epsilons]
        for name, dp in runs:
            started = time.perf_counter()
            model = SequenceSynthesizer(metadata if dp else None, seed=seed, max_length=args.max_length if dp else 16,
                                        progress=False, dp=dp).fit(train, "id", "tstop")
            fit_seconds = time.perf_counter() - started
            synthetic = model.sample(n, seed=seed + 1000)
            scores = sequence_fidelity(synthetic, holdout, "id", "tstop", statics)["synthetic"]
            privacy = bench.privacy(train, synthetic, holdout, statics, seed, ns)
            record = model.training_.get("privacy") or {}
            row = {"method": name, "seed": seed, "fit_seconds": round(fit_seconds, 1), **scores, **privacy,
                   "epsilon_spent": record.get("epsilon"), "steps": model.training_["steps"],
                   "noise_multiplier": record.get("noise_multiplier")}
            results.append(row)
            print(json.dumps({k: row[k] for k in ("method", "seed", "fit_seconds", "static_consistency", "length_ks",
                                                  "lag1_max_gap", "aggregate_shapes", "dcr_share", "mia_auc",
                                                  "epsilon_spent", "steps", "noise_multiplier")}, default=float), flush=True)
    print(bench.table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
