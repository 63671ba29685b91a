"""Privacy scores of one issue-19 lever against the defaults (recipe notes in benchmarks/README.md):
run.py's split, one training-sized draw (sample seed 1), ``run.privacy_scores`` on it.

    OMP_NUM_THREADS=1 python benchmarks/steps_privacy.py TABLE SEED [--lever steps|rules]

``steps``: the default training length against 3,000 steps (two fits). ``rules``: one default fit
sampled with and without its learned rules (derived categories and gaps decided by a category),
so the two draws differ only in what the rules decode.
"""
from __future__ import annotations

import argparse
import json

import run as bench  # benchmarks/run.py: this script's folder is first on sys.path
from tables import split

import synthgen


def _print(table: str, seed: int, tag: str, scores: dict) -> None:
    values = {name: (round(s.value, 4) if s.value is not None else None) for name, s in scores.items()}
    inference = scores["Attribute inference risk"]  # which column it reports, and whether significant
    print(json.dumps({"table": table, "seed": seed, "tag": tag, **values, "Attribute inference note": inference.note,
                      "Attribute inference p (Holm)": inference.p_value}), flush=True)


def main(table: str, seed: int, lever: str) -> None:
    train, holdout = split(table)
    metadata = synthgen.Metadata.detect(train)
    if lever == "steps":
        for tag, steps in (("base", None), ("steps3000", 3000)):
            model = synthgen.TabularSynthesizer(seed=seed, steps=steps, progress=False).fit(train)
            _print(table, seed, tag, bench.privacy_scores(train, model.sample(len(train), seed=1), holdout, metadata))
        return
    model = synthgen.TabularSynthesizer(seed=seed, progress=False).fit(train)
    with_rules = model.sample(len(train), seed=1)
    model.table_.category_rules_, model.table_.gap_rules_ = [], []
    for tag, draw in (("no_rules", model.sample(len(train), seed=1)), ("rules", with_rules)):
        _print(table, seed, tag, bench.privacy_scores(train, draw, holdout, metadata))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table")
    parser.add_argument("seed", type=int)
    parser.add_argument("--lever", choices=("steps", "rules"), default="steps")
    arguments = parser.parse_args()
    main(arguments.table, arguments.seed, arguments.lever)
