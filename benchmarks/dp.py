"""Utility/privacy curve of differentially private training: synthgen vs smartnoise-synth's DP-CTGAN.

    python benchmarks/dp.py --tables pbc flchain --epsilons 1 3 10 inf --seeds 0 1 2 \
        --table-seeds flchain=0 --json benchmarks/results/2026-11-25-dp.json [--write-readme]

For each table and each ε: Column Shapes, gap closed (Column Pair Trends between the independent
sampler and the real holdout), detection AUC, membership-inference AUC, DCR share, fit time and the
ε actually spent — for synthgen (``TabularSynthesizer(dp=DPSettings(ε))``; ε = inf: no DP, its
defaults) and for smartnoise-synth's DP-CTGAN at the same ε, which runs in its own virtual
environment (``--smartnoise-python``, default /work/snvenv; it pins Opacus 0.14) through
``dp_smartnoise_worker.py``. Split, draws and scoring are run.py's (imported from it): 80/20 split
seed 0, every score against the training split with synthgen's detected metadata, quality on 3
holdout-sized draws, detection and privacy on one training-sized draw. See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run as bench  # noqa: E402  (run.py: split, draws, scoring, rendering helpers)
from tables import split  # noqa: E402

METHODS = ("synthgen", "aim", "mst", "smartnoise")
#: Rows as rendered: synthgen given the bounds AIM and MST get (--public-bounds) is a row of its own.
RENDERED = ("synthgen", "synthgen_public_bounds", "aim", "mst", "smartnoise")
#: smartnoise-synth's synthesizer behind each method that runs in its venv.
SMARTNOISE_NAMES = {"smartnoise": "dpctgan", "aim": "aim", "mst": "mst"}
LABELS = {"synthgen": "synthgen", "synthgen_public_bounds": "synthgen, public bounds as AIM/MST",
          "aim": "AIM (smartnoise)", "mst": "MST (smartnoise)", "smartnoise": "smartnoise DP-CTGAN"}
BEGIN, END = "<!-- dp-results:begin -->", "<!-- dp-results:end -->"
SMARTNOISE_WORKER = HERE / "dp_smartnoise_worker.py"
#: AIM/MST: share of ε for releasing the names of categorical columns without documented values.
MARGINAL_NAMES_SHARE = 0.1
#: Categorical codes whose whole domain the dataset's documentation (R survival's help pages) lists.
#: Declared as ``public_values`` they cost no ε; every other name and every numeric bound is DP.
PUBLIC_VALUES: dict[str, dict[str, list[Any]]] = {
    "pbc": {
        "status": [0, 1, 2],  # "status at endpoint, 0/1/2 for censored, transplant, dead"
        "trt": [1.0, 2.0],  # "1/2/NA for D-penicillmain, placebo, not randomised"
        "sex": ["f", "m"],  # "m/f"
        "ascites": [0.0, 1.0],  # "presence of ascites"
        "hepato": [0.0, 1.0],  # "presence of hepatomegaly or enlarged liver"
        "spiders": [0.0, 1.0],  # "blood vessel malformations in the skin"
        "edema": [0.0, 0.5, 1.0],  # "0 no edema, 0.5 untreated or successfully treated, 1 edema despite diuretic therapy"
        "stage": [1.0, 2.0, 3.0, 4.0],  # "histologic stage of disease" (Ludwig stages 1-4)
    },
    "flchain": {
        "sex": ["F", "M"],  # "F=female, M=male"
        "mgus": [0, 1],  # "1 if the subject had been diagnosed with monoclonal gammapothy"
        "death": [0, 1],  # "0=alive at last contact date, 1=dead"
    },
}


#: Bounds of the numeric columns for AIM and MST, which model discrete columns only: chosen from the
#: units and study design that R survival's help pages state (quoted), never from the rows, and cut
#: into 20 bins — of equal ratio ("log") for positive lab values whose range spans decades. Values
#: outside are clipped onto them. synthgen declares none of these: it pays ε for its bounds.
NUMERIC_BINS = 20
PUBLIC_BOUNDS: dict[str, dict[str, dict[str, Any]]] = {
    "pbc": {
        "time": dict(low=0, high=5000, integer=True),  # days from registration (1974-84) to July 1986 at most
        "age": dict(low=0, high=100),  # "in years"
        "bili": dict(low=0.1, high=50, log=True),  # "serum bilirubin (mg/dl)"
        "chol": dict(low=50, high=2000, log=True, integer=True),  # "serum cholesterol (mg/dl)"
        "albumin": dict(low=1, high=6),  # "serum albumin (g/dl)"
        "copper": dict(low=1, high=1000, log=True, integer=True),  # "urine copper (ug/day)"
        "alk.phos": dict(low=10, high=20000, log=True),  # "alkaline phosphotase (U/liter)"
        "ast": dict(low=5, high=1000, log=True),  # "aspartate aminotransferase, once called SGOT (U/ml)"
        "trig": dict(low=10, high=1000, log=True, integer=True),  # "triglycerides (mg/dl)"
        "platelet": dict(low=10, high=1000, log=True, integer=True),  # "platelet count"
        "protime": dict(low=8, high=20),  # "standardised blood clotting time" (seconds)
    },
    "flchain": {
        "age": dict(low=50, high=110, integer=True),  # "residents of Olmsted County aged 50 or greater"
        "kappa": dict(low=0.01, high=100, log=True),  # "serum free light chain, kappa portion" (mg/dl)
        "lambda": dict(low=0.01, high=100, log=True),  # "serum free light chain, lambda portion" (mg/dl)
        "creatinine": dict(low=0.1, high=20, log=True),  # "serum creatinine" (mg/dl)
        "futime": dict(low=0, high=7300, integer=True),  # "days from enrollment until death" (20 years)
    },
}


def marginal_domains(table: str, columns: dict[str, Any], kept: list[str]) -> dict[str, dict[str, Any]]:
    """AIM/MST's coding of each kept column: public bounds, public values, or names released with DP."""
    domains: dict[str, dict[str, Any]] = {}
    for name in kept:
        if columns[name]["sdtype"] == "numerical":
            domains[name] = {"bins": NUMERIC_BINS, "log": False, "integer": False, **PUBLIC_BOUNDS[table][name]}
        else:
            domains[name] = {"values": PUBLIC_VALUES.get(table, {}).get(name)}
    return domains


def dp_metadata(table: str, train: pd.DataFrame, public_bounds: bool = False):
    """synthgen's detected metadata plus the documented ``public_values`` of ``table``; with
    ``public_bounds``, also the numeric bounds AIM and MST are given (``PUBLIC_BOUNDS``)."""
    import synthgen

    spec = synthgen.Metadata.detect(train).to_dict()
    for name, values in PUBLIC_VALUES.get(table, {}).items():
        spec["columns"][name]["public_values"] = values
    for name, bounds in PUBLIC_BOUNDS.get(table, {}).items() if public_bounds else ():
        spec["columns"][name]["public_bounds"] = [bounds["low"], bounds["high"]]
    return synthgen.Metadata.from_dict(spec)


def _split(table: str, rows: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """run.py's split; with ``rows``, only the training split's first ``rows`` rows (--train-rows)."""
    train, holdout = split(table)
    return (train.head(rows).reset_index(drop=True) if rows else train), holdout


# ---------------------------------------------------------------------------- synthgen (fresh process)
def synthgen_worker(table: str, epsilon: float, seed: int, options: dict[str, Any], n_draw: int, n_big: int) -> dict[str, Any]:
    """Fit synthgen at ``epsilon`` (inf: without DP, defaults) in this fresh process; draws + record."""
    import synthgen
    from synthgen.dp.accounting import DPSettings
    from synthgen.errors import SynthgenError
    from synthgen.models.tabular_gan import GANConfig

    bench._limit_threads(bench.THREADS)
    train, _ = _split(table, options.get("train_rows"))
    if math.isfinite(epsilon):
        config = GANConfig(discriminator_dims=tuple(options["critic_dims"])) if options.get("critic_dims") else None
        params = dict(metadata=dp_metadata(table, train, bool(options.get("public_bounds"))), steps=options.get("steps"), batch_size=options.get("batch_size"),
                      config=config, dp=DPSettings(epsilon=epsilon, max_grad_norm=options.get("clip") or 1.0,
                                                   **({"preprocessing_share": options["statistics_share"]}
                                                      if options.get("statistics_share") is not None else {}),
                                                   **({"critic": options["critic"]} if options.get("critic") is not None else {})))
    else:
        params = dict(metadata=synthgen.Metadata.detect(train))
    model = bench.SynthgenWrapper(seed, **params)
    started = time.perf_counter()
    try:
        model.fit(train, None)
    except SynthgenError as exc:
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "fit_s": time.perf_counter() - started}
    result: dict[str, Any] = {"status": "ok", "fit_s": time.perf_counter() - started, "steps": model.steps,
                              "batch_size": model.model.training_["batch_size"]}
    privacy = model.model.privacy_
    if privacy is not None:
        result.update(epsilon_spent=privacy["epsilon"], delta=privacy["delta"], accountant=privacy["accountant"],
                      noise_multiplier=privacy["noise_multiplier"], sample_rate=privacy["sample_rate"],
                      spent_by=privacy["spent_by"], release_noise=privacy["plan"]["release_noise"])
    result["draws"] = [model.sample(n_draw, bench._draw_seed(seed, d)) for d in range(bench.DRAWS)]
    result["big"] = model.sample(n_big, bench._draw_seed(seed, bench.DRAWS))
    return result


# ---------------------------------------------------------------------------- smartnoise (its own venv)
def smartnoise_fit(python: str, table: str, epsilon: float, seed: int, share: float, n_draw: int, n_big: int,
                   timeout: float, workdir: Path, method: str = "smartnoise", rows: int | None = None) -> dict[str, Any]:
    """Run dp_smartnoise_worker.py under ``python``; its sample split into DRAWS + 1 frames."""
    import synthgen

    train, _ = _split(table, rows)
    columns = synthgen.Metadata.detect(train).to_dict()["columns"]
    kept = [c for c in train if columns[c]["sdtype"] != "id"]  # ids are regenerated, as for ctgan in run.py
    stem = workdir / f"{table}-{method}-{epsilon}-{seed}"
    train[kept].to_csv(f"{stem}.train.csv", index=False)
    job = {"train": f"{stem}.train.csv", "out": f"{stem}.out.csv", "result": f"{stem}.result.json",
           "epsilon": "inf" if math.isinf(epsilon) else epsilon, "seed": seed, "synthesizer": SMARTNOISE_NAMES[method],
           "categorical": [c for c in kept if columns[c]["sdtype"] != "numerical"],
           "continuous": [c for c in kept if columns[c]["sdtype"] == "numerical"],
           "preprocessor_share": share, "rows": bench.DRAWS * n_draw + n_big, "threads": bench.THREADS}
    if method != "smartnoise":  # AIM / MST: discrete domains declared here, δ as synthgen's default
        job.update(domains=marginal_domains(table, columns, kept), delta=min(1e-5, 1 / (10 * len(train))),
                   names_share=MARGINAL_NAMES_SHARE, sizes=[n_draw] * bench.DRAWS + [n_big])
    Path(f"{stem}.job.json").write_text(json.dumps(job))
    started = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": str(bench.THREADS), "MKL_NUM_THREADS": str(bench.THREADS),
           "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false"}  # mbi's JAX: one thread, like the others
    try:
        process = subprocess.run([python, str(SMARTNOISE_WORKER), f"{stem}.job.json"], capture_output=True, text=True,
                                 timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"status": "not finished", "error": f"not finished after {timeout:.0f} s", "fit_s": time.perf_counter() - started}
    if not Path(job["result"]).exists():
        return {"status": "failed", "error": f"worker exited {process.returncode}: {process.stderr.strip()[-300:]}"}
    result = json.loads(Path(job["result"]).read_text())
    if not result.pop("ok"):
        return {"status": "failed", **result}
    frame = bench._conform(pd.read_csv(job["out"]), train, columns)
    draws = [frame.iloc[d * n_draw:(d + 1) * n_draw].reset_index(drop=True) for d in range(bench.DRAWS)]
    return {"status": "ok", **result, "draws": draws, "big": frame.iloc[bench.DRAWS * n_draw:].reset_index(drop=True)}


# ---------------------------------------------------------------------------- scoring (parent)
def score(train, holdout, metadata, fitted: dict[str, Any], reference, floor) -> dict[str, Any]:
    """run.py's scores of one fit, plus membership inference (distance) and its 95% interval."""
    row = {key: value for key, value in fitted.items() if key not in ("draws", "big")}
    if fitted["status"] != "ok":
        return row
    qualities = [bench._quality(train, draw, metadata) for draw in fitted["draws"]]
    row.update({key: float(np.mean([q[key] for q in qualities])) for key in qualities[0]})
    bench.add_gaps(row, reference, floor)
    row["detection_auc"], row["holdout_detection_auc"] = bench._detection(train, fitted["big"], holdout, metadata)
    scores = bench.privacy_scores(train, fitted["big"], holdout, metadata)
    mia = scores["MIA AUC (distance)"]
    row.update(dcr_share=scores["DCR share"].value, mia_auc=mia.value, mia_low=mia.low, mia_high=mia.high,
               mia_domias_auc=scores["MIA AUC (DOMIAS)"].value)
    row["copies"] = bench._copies(train, [*fitted["draws"], fitted["big"]], metadata)
    row["rows_checked"] = sum(len(f) for f in fitted["draws"]) + len(fitted["big"])
    return row


# ---------------------------------------------------------------------------- the run
def _seeds(args: argparse.Namespace, table: str) -> list[int]:
    for item in args.table_seeds:
        name, _, seeds = item.partition("=")
        if name == table:
            return [int(s) for s in seeds.split(",")]
    return args.seeds


def run(args: argparse.Namespace) -> dict[str, Any]:
    import synthgen

    options = {"steps": args.steps, "batch_size": args.batch_size, "statistics_share": args.statistics_share,
               "critic_dims": args.critic_dims, "clip": args.clip, "train_rows": args.train_rows, "critic": args.critic,
               "public_bounds": args.public_bounds}
    results: dict[str, Any] = {"tables": {}, "options": options}
    workdir = Path(tempfile.mkdtemp(prefix="dp-bench-"))
    pool = concurrent.futures.ThreadPoolExecutor(1)  # smartnoise fits run beside synthgen's (--parallel)
    lock = threading.Lock()
    for table in args.tables:
        started = time.perf_counter()
        train, holdout = _split(table, args.train_rows)
        metadata = synthgen.Metadata.detect(train)
        seeds = _seeds(args, table)
        n_draw, n_big = len(holdout), len(train)
        reference, floor = bench.reference_and_floor(train, holdout, metadata, seeds)
        entry: dict[str, Any] = {"rows": len(train), "holdout_rows": len(holdout), "columns": train.shape[1],
                                 "seeds": seeds, "holdout": reference, "independent_floor": floor,
                                 "public_values": sorted(PUBLIC_VALUES.get(table, {})), "runs": []}

        def record(method: str, epsilon: float, seed: int, fitted: dict[str, Any]) -> None:
            with lock:  # scoring in the parent, one at a time
                row = {"method": method, "epsilon": epsilon, "seed": seed,
                       **score(train, holdout, metadata, fitted, reference, floor)}
                entry["runs"].append(row)
            _log(table, row)

        pending = []
        for method in [m for m in ("aim", "mst", "smartnoise") if m in args.methods]:
            # AIM and MST have no non-private mode: finite ε only.
            for epsilon in [e for e in args.epsilons if math.isfinite(e) or (method == "smartnoise" and args.smartnoise_inf)]:
                for seed in seeds:
                    def job(method=method, epsilon=epsilon, seed=seed):
                        fitted = smartnoise_fit(args.smartnoise_python, table, epsilon, seed, args.smartnoise_share,
                                                n_draw, n_big, args.smartnoise_timeout, workdir, method,
                                                args.train_rows)
                        record(method, epsilon, seed, fitted)
                    pending.append(pool.submit(job) if args.parallel else job)
        if "synthgen" in args.methods:
            for epsilon in args.epsilons:
                for seed in seeds:
                    fitted = bench._in_fresh_process(synthgen_worker, table, epsilon, seed, options, n_draw, n_big)
                    record("synthgen_public_bounds" if args.public_bounds else "synthgen", epsilon, seed, fitted)
        for job in pending:
            job.result() if args.parallel else job()
        entry["holdout"]["detection_auc"] = _holdout_detection(entry["runs"])
        entry["wall_s"] = time.perf_counter() - started
        results["tables"][table] = entry
        print(f"{table}: done in {entry['wall_s']:.0f} s", file=sys.stderr, flush=True)
    pool.shutdown()
    return results


def _log(table: str, row: dict[str, Any]) -> None:
    if row["status"] != "ok":
        print(f"  {table} {row['method']} ε={row['epsilon']} seed {row['seed']}: {row['status']}: {row.get('error')}",
              file=sys.stderr, flush=True)
        return
    print(f"  {table} {row['method']} ε={row['epsilon']} seed {row['seed']}: spent {row.get('epsilon_spent', '–')}, "
          f"gap {row['gap Column Pair Trends']:.3f}, shapes {row['Column Shapes']:.3f}, AUC {row['detection_auc']:.3f}, "
          f"MIA {row['mia_auc']:.3f}, DCR {row['dcr_share']:.3f}, fit {row['fit_s']:.1f} s, steps {row.get('steps')}",
          file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- rendering
def _epsilon(value: float) -> str:
    return "∞" if math.isinf(value) else f"{value:g}"


def render(results: dict[str, Any]) -> str:
    spread = bench._spread
    lines = [
        "| table | ε | method | ε spent | gap closed | Column Shapes | Pair Trends | detection AUC | MIA AUC (distance) | "
        "DCR share | exact copies | fit s | steps |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for table, entry in results["tables"].items():
        ref, floor = entry["holdout"], entry["independent_floor"]
        seeds = len(entry["seeds"])
        lines.append(
            f"| {table} ({entry['rows']}+{entry['holdout_rows']} × {entry['columns']}, {seeds} seed{'s' * (seeds > 1)}) | "
            f"| *real holdout* | | 1 | {ref['Column Shapes']:.3f} | {ref['Column Pair Trends']:.3f} | "
            f"{ref['detection_auc']:.3f} | 0.5 | 0.5 | | | |")
        lines.append(f"| | | *independent floor* | | 0 | {floor['Column Shapes']:.3f} | {floor['Column Pair Trends']:.3f} "
                     "| | | | | | |")
        epsilons = sorted({r["epsilon"] for r in entry["runs"]})
        for epsilon in epsilons:
            for method in RENDERED:
                runs = [r for r in entry["runs"] if r["epsilon"] == epsilon and r["method"] == method]
                if not runs:
                    continue
                name = LABELS[method]
                if len(runs) < seeds:  # fewer seeds than the table's header says
                    name += f" (seed{'s' * (len(runs) > 1)} {', '.join(str(r['seed']) for r in sorted(runs, key=lambda r: r['seed']))})"
                if math.isinf(epsilon):
                    name += " (no DP)" if method.startswith("synthgen") else " (disabled_dp)"
                ok = sorted((r for r in runs if r["status"] == "ok"), key=lambda r: r["seed"])
                bad = [r for r in runs if r["status"] != "ok"]
                note = "; ".join(sorted({(r.get("error", "") if r.get("error", "").startswith(r["status"])
                                          else f"{r['status']}: {r.get('error', '')}").replace("|", "/") for r in bad}))
                if not ok:
                    lines.append(f"| | {_epsilon(epsilon)} | {name} | {note} ({len(bad)} of {len(runs)} seeds) "
                                 "| | | | | | | | | |")
                    continue
                col = lambda key: [r.get(key) for r in ok]  # noqa: E731
                spent = spread(col("epsilon_spent"), 2) if ok[0].get("epsilon_spent") is not None else "–"
                if bad:
                    name += f" ({len(ok)} of {len(runs)} seeds; {note})"
                mia = f"{spread(col('mia_auc'))} [{min(col('mia_low')):.2f}, {max(col('mia_high')):.2f}]"
                gap = spread(col("gap Column Pair Trends"), 2) if ref["Column Pair Trends"] - floor["Column Pair Trends"] >= bench.MIN_GAP else "n/a"
                lines.append(
                    f"| | {_epsilon(epsilon)} | {name} | {spent} | {gap} | {spread(col('Column Shapes'))} | "
                    f"{spread(col('Column Pair Trends'))} | {spread(col('detection_auc'))} | {mia} | "
                    f"{spread(col('dcr_share'))} | {sum(col('copies'))} / {sum(col('rows_checked'))} | "
                    f"{spread(col('fit_s'), 1)} | {spread(col('steps'), 0)} |")
    return "\n".join(lines)


def environment(python: str) -> str:
    smartnoise = subprocess.run(
        [python, "-c", "from importlib.metadata import version as v; print(', '.join(f'{n} {v(n)}' for n in "
                       "('smartnoise-synth', 'opacus', 'torch')))"], capture_output=True, text=True).stdout.strip()
    import synthgen

    where = Path(synthgen.__file__).resolve().parent.parent
    source = "" if where == HERE.parent else f"; synthgen imported from {where} (PYTHONPATH), not from this checkout"
    return f"{bench.environment()}, opacus {version('opacus')}; smartnoise venv: {smartnoise or 'not found'}{source}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="+", choices=["pbc", "flchain", *sorted(bench.TABLES)], default=["pbc", "flchain"])
    parser.add_argument("--epsilons", nargs="+", type=float, default=[1.0, 3.0, 10.0, math.inf],
                        help="target ε of each fit; inf = synthgen without DP (its defaults)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--table-seeds", nargs="*", default=[], metavar="TABLE=S1,S2",
                        help="seeds for one table instead of --seeds, e.g. flchain=0")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--train-rows", type=int,
                        help="fit on the training split's first N rows only (fit-time checks; scored as usual)")
    parser.add_argument("--steps", type=int, help="synthgen DP: optimiser steps [default: synthgen's default_steps]")
    parser.add_argument("--batch-size", type=int, help="synthgen DP: expected batch of real rows [default: 500, at most n]")
    parser.add_argument("--statistics-share", type=float,
                        help="synthgen DP: share of ε for the column statistics and pair tables [default: synthgen's]")
    parser.add_argument("--critic", action=argparse.BooleanOptionalAction, default=None,
                        help="synthgen DP: train a DP-SGD critic or not [default: synthgen's: none]")
    parser.add_argument("--public-bounds", action="store_true",
                        help="synthgen DP: declare the numeric bounds AIM/MST get (PUBLIC_BOUNDS) instead of paying ε for them")
    parser.add_argument("--smartnoise-share", type=float, default=0.2,
                        help="share of ε for smartnoise's DP bounds (its preprocessor_eps)")
    parser.add_argument("--critic-dims", nargs="+", type=int, help="synthgen DP: critic hidden widths [default: 256 256]")
    parser.add_argument("--clip", type=float, help="synthgen DP: per-row gradient clipping norm [default: 1.0]")
    parser.add_argument("--smartnoise-python", default="/work/snvenv/bin/python")
    parser.add_argument("--smartnoise-timeout", type=float, default=600.0, help="seconds per smartnoise fit")
    parser.add_argument("--smartnoise-inf", action="store_true", help="also run DP-CTGAN with disabled_dp at ε = inf")
    parser.add_argument("--parallel", action="store_true",
                        help="run smartnoise's fits beside synthgen's (two processes, one thread each)")
    parser.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads per worker")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--from-json", nargs="+", type=Path,
                        help="render earlier --json results instead of running (several: their runs merged per table)")
    parser.add_argument("--write-readme", action="store_true", help="write the table into README.md between the DP markers")
    args = parser.parse_args()
    os.environ["BENCH_THREADS"] = os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
    bench.THREADS = args.threads
    if args.from_json:
        results = _merged([json.loads(path.read_text()) for path in args.from_json])
    else:
        started = datetime.now(timezone.utc)
        results = run(args)
        results["run"] = {"command": "python benchmarks/dp.py " + " ".join(sys.argv[1:]),
                          "date": started.strftime("%Y-%m-%d %H:%M UTC"),
                          "minutes": round((datetime.now(timezone.utc) - started).total_seconds() / 60, 1),
                          "environment": environment(args.smartnoise_python)}
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=1, default=float))
    table = render(results)
    print(table)
    if args.write_readme:
        header = "\n".join(f"- `{r['command']}` — {r['date']}, {r['minutes']} min; {r['environment']}"
                           for r in (results["runs"] if "runs" in results else [results["run"]]))
        bench.write_readme(f"Produced by:\n\n{header}\n\n{table}", BEGIN, END)


def _holdout_detection(runs: list[dict[str, Any]]) -> float:
    """Detection AUC of the holdout against the training rows (the same for every fit that was scored)."""
    return float(np.mean([r["holdout_detection_auc"] for r in runs if "holdout_detection_auc" in r] or [float("nan")]))


def _merged(loaded: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs' results as one: each table's fits pooled; the references of its first run, gaps re-based on them."""
    merged: dict[str, Any] = {"tables": {}, "runs": []}
    for results in loaded:
        merged["runs"].append(results["run"])
        for name, entry in results["tables"].items():
            if name not in merged["tables"]:
                merged["tables"][name] = entry
                continue
            kept = merged["tables"][name]
            kept["runs"] += entry["runs"]
            kept["seeds"] = sorted(set(kept["seeds"]) | set(entry["seeds"]))
            kept["holdout"]["detection_auc"] = _holdout_detection(kept["runs"])
    for entry in merged["tables"].values():  # one floor per table: a run's own seeds' floor differs slightly
        for row in entry["runs"]:
            if row["status"] == "ok":
                bench.add_gaps(row, entry["holdout"], entry["independent_floor"])
    return merged


if __name__ == "__main__":
    main()
