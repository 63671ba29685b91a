"""False-alarm and detection rates of each default privacy gate (issue 14).

    python benchmarks/privacy_gates.py --tables pbc breast-cancer --repeats 20 --model-repeats 3 \
        --json gates.json                    # then --from-json gates.json [...] --write-readme

Per repeat the table's rows are shuffled and cut into three equal parts: training rows, holdout
rows (the gates' null) and fresh rows. Each case is a "synthetic" table judged by the default
gates of ``synthgen.evaluation.gates`` (privacy section only, evaluation seed = repeat):

- ``null``: the fresh rows: real patients never trained on, leaking nothing: every failure is a
  false alarm;
- ``copy``: the training rows themselves; ``perturbed``: the training rows with 30% of their
  cells replaced, each by the same column's value in another training row: every pass is a miss;
- ``independent``: each column resampled on its own from the training rows (``run.py``'s
  sampler; no row structure kept, so it should pass);
- ``synthgen`` (defaults) and ``ctgan`` (0.12.1, 300 epochs, ``run.py``'s wrapper), fitted on the
  training rows, sampling as many rows: no ground truth, reported as measured.

Cells are "failed / repeats" per gate, "inconclusive" counted apart; the last column is the whole
gate set (FAIL when any gate fails).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import CTGANWrapper, IndependentSampler, SynthgenWrapper, _limit_threads  # noqa: E402
from tables import TABLES  # noqa: E402

from synthgen import Metadata  # noqa: E402
from synthgen.evaluation.gates import DEFAULT_GATES  # noqa: E402
from synthgen.evaluation.privacy import privacy_section  # noqa: E402
from synthgen.evaluation.report import Report  # noqa: E402

CASES = ("null", "copy", "perturbed", "independent", "synthgen", "ctgan")
MODELS = ("synthgen", "ctgan")
README = Path(__file__).resolve().parent / "README.md"
BEGIN, END = "<!-- privacy-gates:begin -->", "<!-- privacy-gates:end -->"


def perturbed(train: pd.DataFrame, rng: np.random.Generator, share: float = 0.3) -> pd.DataFrame:
    """``train`` with ``share`` of its cells replaced by the same column's value in another training row."""
    copy = train.copy()
    n = len(train)
    for name in train.columns:
        rows = np.flatnonzero(rng.random(n) < share)
        donors = rng.integers(0, n - 1, len(rows))
        donors += donors >= rows  # any row but the replaced one
        copy.iloc[rows, copy.columns.get_loc(name)] = train[name].to_numpy()[donors]
    return copy


def synthetic(case: str, train: pd.DataFrame, fresh: pd.DataFrame, metadata: Metadata, seed: int,
              ctgan_epochs: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    if case == "null":
        return fresh
    if case == "copy":
        return train.copy()
    if case == "perturbed":
        return perturbed(train, rng)
    model = {"independent": IndependentSampler, "synthgen": lambda: SynthgenWrapper(seed),
             "ctgan": lambda: CTGANWrapper(seed, ctgan_epochs)}[case]()
    return model.fit(train, metadata.to_dict()).sample(len(train), seed + 1)


def one(table: str, case: str, repeat: int, ctgan_epochs: int) -> dict[str, Any]:
    frame = TABLES[table]()
    parts = np.array_split(np.random.default_rng(repeat).permutation(len(frame)), 3)
    train, holdout, fresh = (frame.iloc[part].reset_index(drop=True) for part in parts)
    metadata = Metadata.detect(frame)
    started = time.perf_counter()
    rows = synthetic(case, train, fresh, metadata, repeat, ctgan_epochs)
    fitted = time.perf_counter() - started
    started = time.perf_counter()
    section = privacy_section(train, rows, holdout, metadata, rng=np.random.default_rng(repeat))
    report = Report({"privacy": section}, {}, gates=list(DEFAULT_GATES))
    return {"table": table, "case": case, "repeat": repeat, "verdict": report.verdict,
            "gates": {r.gate.metric: {"status": r.status, "value": r.value, "null": r.null, "p_value": r.p_value}
                      for r in report.gate_results},
            "seconds": {"make": fitted, "privacy": time.perf_counter() - started}}


def markdown(results: list[dict[str, Any]]) -> str:
    gates = [gate.metric for gate in DEFAULT_GATES]
    head = "| table | case | n | " + " | ".join(f"`{g}`" for g in gates) + " | whole set FAIL (inconcl.) |"
    lines = [head, "|" + "---|" * (len(gates) + 4)]
    frame = pd.DataFrame(results)
    for table in dict.fromkeys(frame["table"]):
        for case in CASES:
            runs = [r for r in results if r["table"] == table and r["case"] == case]
            if not runs:
                continue
            cells = []
            for gate in gates:
                failed = sum(r["gates"][gate]["status"] == "fail" for r in runs)
                unsure = sum(r["gates"][gate]["status"] == "inconclusive" for r in runs)
                cells.append(f"{failed}/{len(runs)}" + (f" ({unsure})" if unsure else ""))
            failed = sum(r["verdict"] == "FAIL" for r in runs)
            unsure = sum(r["verdict"] in ("INCONCLUSIVE", "NOT EVALUATED") for r in runs)
            cells.append(f"**{failed}/{len(runs)}**" + (f" ({unsure})" if unsure else ""))
            lines.append(f"| {table} | {case} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_readme(table: str) -> None:
    text = README.read_text(encoding="utf-8")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    README.write_text(text[:start] + "\n" + table + "\n" + text[end:], encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", nargs="+", default=["pbc", "breast-cancer"], choices=list(TABLES))
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--repeats", type=int, default=20, help="repeats of null, copy, perturbed and independent")
    parser.add_argument("--model-repeats", type=int, default=3, help="repeats of synthgen and ctgan (a fit each)")
    parser.add_argument("--ctgan-epochs", type=int, default=300)
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument("--from-json", nargs="+", type=Path, help="render (and merge) earlier --json files instead of running")
    parser.add_argument("--write-readme", action="store_true", help="put the table between the markers in benchmarks/README.md")
    args = parser.parse_args()
    if args.from_json:
        results = [r for path in args.from_json for r in json.loads(path.read_text())["results"]]
    else:
        _limit_threads(int(os.environ.get("BENCH_THREADS", "1")))
        results = []
        for table in args.tables:
            for case in args.cases:
                for repeat in range(args.model_repeats if case in MODELS else args.repeats):
                    result = one(table, case, repeat, args.ctgan_epochs)
                    results.append(result)
                    failed = [g for g, r in result["gates"].items() if r["status"] != "pass"]
                    print(f"{table} {case} {repeat}: {result['verdict']} {failed} "
                          f"({result['seconds']['make']:.1f} s + {result['seconds']['privacy']:.1f} s)", flush=True)
                    if args.json:
                        args.json.write_text(json.dumps({"argv": sys.argv, "results": results}, indent=1))
    table = markdown(results)
    print(table)
    if args.write_readme:
        write_readme(table)


if __name__ == "__main__":
    main()
