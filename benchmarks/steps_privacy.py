"""Privacy scores of the default training length against 3,000 steps (issue 19 recipe notes):
run.py's split, one training-sized draw (sample seed 1), ``run.privacy_scores`` on it.

    OMP_NUM_THREADS=1 python benchmarks/steps_privacy.py TABLE SEED
"""
from __future__ import annotations

import json
import sys

import run as bench  # benchmarks/run.py: this script's folder is first on sys.path
from tables import split

import synthgen


def main(table: str, seed: int) -> None:
    train, holdout = split(table)
    metadata = synthgen.Metadata.detect(train)
    for tag, steps in (("base", None), ("steps3000", 3000)):
        model = synthgen.TabularSynthesizer(seed=seed, steps=steps, progress=False).fit(train)
        scores = bench.privacy_scores(train, model.sample(len(train), seed=1), holdout, metadata)
        print(json.dumps({"table": table, "seed": seed, "tag": tag,
                          **{name: (round(s.value, 4) if s.value is not None else None) for name, s in scores.items()}}),
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
