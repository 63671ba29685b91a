"""Side-by-side benchmark: synthgen vs CTGAN, SDV's GaussianCopula, peers in their own venvs, an independent sampler.

    python benchmarks/run.py --tables pbc colon --seeds 0 1 2 \
        --methods synthgen ctgan gaussian_copula independent --ctgan-epochs 300 [--quick] [--write-readme]

Every method sees the same 80/20 split (seed 0) of each table. Each fit runs in a fresh spawned
process, which reports its own peak resident memory; quality, detection and privacy are scored
here, in the parent, all against the training split with synthgen's detected metadata. Timings
on a shared machine are noisy, so speed is also reported as ratios measured in the same run
(time per optimiser step, interleaved rounds in one process). See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import multiprocessing
import os
import platform
import re
import resource
import statistics
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tables import TABLES, split  # noqa: E402

#: Peers that pin libraries synthgen's environment cannot hold: each runs peers_worker.py under the
#: Python of its own venv (--peer-python METHOD=PATH overrides), talking through CSV and JSON files.
PEERS = {"tabular_argn": "/work/peers/mostly/bin/python", "ddpm": "/work/peers/synthcity/bin/python",
         "arf": "/work/peers/synthcity/bin/python"}
METHODS = ("synthgen", "ctgan", "gaussian_copula", *PEERS, "independent")
MODEL_METHODS = ("synthgen", "ctgan", "gaussian_copula", *PEERS)
PEERS_WORKER = Path(__file__).resolve().parent / "peers_worker.py"
DRAWS = 3  # synthetic draws (holdout-sized) scored per fit, and independent-sampler draws per seed
SAMPLE_ROWS = 1_000_000  # rows sampled to time sampling (first seed only)
STEP_BATCH = 500  # batch size of the time-per-step comparison (CTGAN's default)
README = Path(__file__).resolve().parent / "README.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
_INDICATOR = "__missing"
MIN_GAP = 0.02  # "gap closed" is shown only where the holdout beats the independent floor by this much
THREADS = int(os.environ.get("BENCH_THREADS", "1"))  # torch/OpenMP threads in every worker


# ---------------------------------------------------------------------------- samplers
class IndependentSampler:
    """Each column resampled on its own from the training rows: the no-correlation baseline.

    Missing cells keep their training share. Numbers are drawn from the linearly interpolated
    empirical quantile function (so no training value is copied exactly; integer columns are
    rounded); categories, booleans and dates are resampled with replacement; ids are fresh.
    """

    def fit(self, train: pd.DataFrame, metadata: dict[str, Any]) -> "IndependentSampler":
        self.train = train
        self.columns = metadata["columns"]
        return self

    def sample(self, n: int, seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        out = {}
        for name, spec in self.columns.items():
            column = self.train[name]
            if spec["sdtype"] == "id":
                out[name] = np.arange(n) + 10**6
                continue
            if spec["sdtype"] != "numerical":
                out[name] = column.to_numpy()[rng.integers(0, len(column), n)]
                continue
            present = column.dropna().to_numpy(dtype="float64")
            values = np.quantile(present, rng.random(n), method="linear")
            if spec.get("computer_representation", "Float") != "Float":
                values = np.round(values)
            values[rng.random(n) < column.isna().mean()] = np.nan
            out[name] = values
        frame = pd.DataFrame(out)
        for name in frame:  # integer columns without missing cells keep their integer dtype
            if pd.api.types.is_integer_dtype(self.train[name].dtype) and not frame[name].isna().any():
                frame[name] = frame[name].astype(self.train[name].dtype)
        return frame


class CTGANWrapper:
    """ctgan.CTGAN with its defaults, made to accept this benchmark's tables.

    ctgan refuses missing values in continuous columns: each numerical column with a missing cell
    gets a 0/1 missing-indicator column (discrete) and its gaps are filled with the training
    median; after sampling the indicator's rows are set back to NaN and the indicator dropped.
    Id columns are left out of the fit and regenerated. Integer columns are rounded after sampling.
    """

    def __init__(self, seed: int, epochs: int, **params: Any) -> None:
        self.seed, self.epochs, self.params = seed, epochs, params

    def fit(self, train: pd.DataFrame, metadata: dict[str, Any]) -> "CTGANWrapper":
        from ctgan import CTGAN

        self.columns = metadata["columns"]
        self.order = list(train.columns)
        data = train[[c for c, s in self.columns.items() if s["sdtype"] != "id"]].copy()
        discrete = [c for c in data if self.columns[c]["sdtype"] != "numerical"]
        self.indicated = [c for c in data if self.columns[c]["sdtype"] == "numerical" and data[c].isna().any()]
        for name in self.indicated:
            data[name + _INDICATOR] = data[name].isna().astype(int)
            data[name] = data[name].fillna(data[name].median())
            discrete.append(name + _INDICATOR)
        self.model = CTGAN(epochs=self.epochs, **self.params)
        self.model.set_random_state(self.seed)
        self.model.fit(data, discrete)
        self.steps = self.epochs * max(len(data) // self.model._batch_size, 1)  # ctgan: n // batch per epoch
        self.dtypes = train.dtypes
        return self

    def sample(self, n: int, seed: int) -> pd.DataFrame:
        self.model.set_random_state(seed)
        frame = self.model.sample(n)
        for name in self.indicated:
            frame.loc[frame.pop(name + _INDICATOR).astype(int) == 1, name] = np.nan
        for name, spec in self.columns.items():
            if spec["sdtype"] == "id":
                frame[name] = np.arange(n) + 10**6
            elif spec["sdtype"] == "numerical" and spec.get("computer_representation", "Float") != "Float":
                frame[name] = np.round(frame[name].astype("float64"))
                if pd.api.types.is_integer_dtype(self.dtypes[name]) and not frame[name].isna().any():
                    frame[name] = frame[name].astype(self.dtypes[name])
        return frame[self.order]


class GaussianCopulaWrapper:
    """SDV's GaussianCopulaSynthesizer with its defaults, on synthgen's detected metadata."""

    def fit(self, train: pd.DataFrame, metadata: dict[str, Any]) -> "GaussianCopulaWrapper":
        from sdv.metadata import Metadata as SDVMetadata
        from sdv.single_table import GaussianCopulaSynthesizer

        columns = {name: {k: v for k, v in spec.items() if k != "computer_representation"}  # sdv 2.0 ignores it
                   for name, spec in metadata["columns"].items()}
        sdv_metadata = SDVMetadata.load_from_dict({**metadata, "columns": columns}, single_table_name="table")
        self.model = GaussianCopulaSynthesizer(sdv_metadata)
        self.model.fit({"table": train})  # sdv 2.0 takes and returns {table name: DataFrame}
        return self

    def sample(self, n: int, seed: int) -> pd.DataFrame:
        # SDV seeds sampling once per synthesizer (a fixed seed); each draw here gets its own.
        self.model._set_random_state(seed)
        sampled = self.model.sample(n)
        return sampled["table"] if isinstance(sampled, dict) else sampled


class SynthgenWrapper:
    def __init__(self, seed: int, **params: Any) -> None:
        self.seed, self.params = seed, params

    def fit(self, train: pd.DataFrame, metadata: dict[str, Any]) -> "SynthgenWrapper":
        from synthgen import TabularSynthesizer

        self.model = TabularSynthesizer(seed=self.seed, progress=False, **self.params).fit(train)
        self.steps = self.model.training_["steps"]
        self.loop_seconds = self.model.training_["seconds"]
        return self

    def sample(self, n: int, seed: int) -> pd.DataFrame:
        return self.model.sample(n, seed=seed)


def _make(method: str, seed: int, ctgan_epochs: int, synthgen_steps: int | None):
    if method == "synthgen":
        return SynthgenWrapper(seed, steps=synthgen_steps)
    if method == "ctgan":
        return CTGANWrapper(seed, ctgan_epochs)
    if method == "gaussian_copula":
        return GaussianCopulaWrapper()
    return IndependentSampler()


def _draw_seed(seed: int, draw: int) -> int:
    return 1000 * (draw + 1) + seed


class _LoopClock:
    """Stands in for ctgan's tqdm over epochs and records when each epoch starts and the loop ends."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self, iterable, **_: Any):
        def epochs():
            for item in iterable:
                self.times.append(time.perf_counter())
                yield item
            self.times.append(time.perf_counter())

        return epochs()

    @property
    def seconds(self) -> float:
        return self.times[-1] - self.times[0]


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


# ---------------------------------------------------------------------------- workers (fresh processes)
def fit_worker(table: str, method: str, seed: int, ctgan_epochs: int, synthgen_steps: int | None, n_draw: int,
               n_big: int, sample_rows: int, sample_threads: int = 1) -> dict[str, Any]:
    """Fit one method in this (fresh) process; return draws, timings and this process's peak RSS."""
    import synthgen

    _limit_threads(THREADS)

    train, _ = split(table)
    metadata = synthgen.Metadata.detect(train).to_dict()
    model = _make(method, seed, ctgan_epochs, synthgen_steps)
    clock = None
    if method == "ctgan":  # the method's libraries are imported before the "before fit" RSS
        import ctgan.synthesizers.ctgan as ctgan_module

        clock = ctgan_module.tqdm = _LoopClock()
    elif method == "gaussian_copula":
        import sdv.single_table  # noqa: F401
    elif method == "synthgen":
        import synthgen.synthesizers.tabular  # noqa: F401
    rss_before = _rss_mb()
    started = time.perf_counter()
    model.fit(train, metadata)
    fit_seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    result: dict[str, Any] = {
        "fit_s": fit_seconds, "peak_mb": peak_mb, "rss_before_mb": rss_before,
        "steps": getattr(model, "steps", None),
        "loop_s": clock.seconds if clock else getattr(model, "loop_seconds", None),
    }
    result["draws"] = [model.sample(n_draw, _draw_seed(seed, d)) for d in range(DRAWS)]
    result["big"] = model.sample(n_big, _draw_seed(seed, DRAWS))
    if sample_rows:
        _limit_threads(sample_threads)  # the sampling target is per machine of 2 cores: every method gets them
        model.sample(1_000, 6)  # warm-up: first-call allocations are not throughput
        started = time.perf_counter()
        rows = len(model.sample(sample_rows, 7))
        result["sample_rows_per_s"] = rows / (time.perf_counter() - started)
    return result


def peer_fit(method: str, table: str, seed: int, n_draw: int, n_big: int, python: str, timeout: float,
             workdir: Path) -> dict[str, Any]:
    """Fit ``method`` in peers_worker.py under ``python`` and return what ``fit_worker`` returns.

    The draws are ``fit_worker``'s (DRAWS holdout-sized, then one training-sized, same seeds); the
    peak memory is the worker's own (or, if larger, its largest child's) resident peak after fit.
    A failure comes back as ``{"status": "failed", "error": ...}``.
    """
    import synthgen

    train, _ = split(table)
    columns = synthgen.Metadata.detect(train).to_dict()["columns"]
    kept = [c for c in train if columns[c]["sdtype"] != "id"]  # ids are regenerated, as for ctgan
    workdir = workdir.resolve()
    stem = workdir / f"{table}-{method}-{seed}"
    train[kept].to_csv(f"{stem}.train.csv", index=False)
    sizes = [n_draw] * DRAWS + [n_big]
    job = {"method": method, "train": f"{stem}.train.csv", "out": f"{stem}.out.csv", "result": f"{stem}.result.json",
           "seed": seed, "draws": [[rows, _draw_seed(seed, d)] for d, rows in enumerate(sizes)],
           "categorical": [c for c in kept if columns[c]["sdtype"] != "numerical"],
           "numerical": [c for c in kept if columns[c]["sdtype"] == "numerical"],
           "threads": THREADS, "workdir": str(workdir / f"{table}-{method}-{seed}.work")}
    Path(f"{stem}.job.json").write_text(json.dumps(job))
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS),
           "HF_HUB_OFFLINE": "1"}  # nothing may be downloaded while a benchmark runs
    started = time.perf_counter()
    try:  # in workdir: synthcity writes a "workspace" folder into the current directory
        process = subprocess.run([python, str(PEERS_WORKER), f"{stem}.job.json"], capture_output=True, text=True,
                                 timeout=timeout, env=env, cwd=workdir)
    except subprocess.TimeoutExpired:
        return {"status": "failed", "error": f"not finished after {timeout:.0f} s (fit and draws)",
                "fit_s": time.perf_counter() - started}
    if not Path(job["result"]).exists():
        return {"status": "failed", "error": f"worker exited {process.returncode}: {process.stderr.strip()[-600:]}"}
    result = json.loads(Path(job["result"]).read_text())
    if not result.pop("ok"):
        return {"status": "failed", **result}
    frame = _conform(pd.read_csv(job["out"], dtype={c: str for c in job["categorical"]}), train, columns)
    bounds = np.cumsum([0, *sizes])
    frames = [frame.iloc[a:b].reset_index(drop=True) for a, b in zip(bounds[:-1], bounds[1:])]
    result["peak_mb"] = max(result["peak_mb"], result.get("children_peak_mb") or 0.0)
    return {"status": "ok", **result, "draws": frames[:DRAWS], "big": frames[DRAWS], "steps": None, "loop_s": None}


def _conform(frame: pd.DataFrame, train: pd.DataFrame, columns: dict[str, Any]) -> pd.DataFrame:
    """A peer's CSV back in the training dtypes: ids fresh, integer columns rounded (as the ctgan wrapper)."""
    for name, spec in columns.items():
        if spec["sdtype"] == "id":
            frame[name] = np.arange(len(frame)) + 10**6
        elif spec["sdtype"] == "numerical" and spec.get("computer_representation", "Float") != "Float":
            frame[name] = np.round(pd.to_numeric(frame[name], errors="coerce"))
        elif spec["sdtype"] != "numerical" and train[name].dtype.kind in "ifb":
            frame[name] = pd.to_numeric(frame[name], errors="coerce")
        elif spec["sdtype"] != "numerical":
            frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
        if train[name].dtype.kind in "iu" and not frame[name].isna().any():
            frame[name] = frame[name].astype(train[name].dtype)
    return frame[list(train.columns)]


def step_worker(table: str, steps: int, rounds: int) -> dict[str, list[float]]:
    """Seconds per optimiser step at batch 500, widths (256, 256), in interleaved rounds.

    CTGAN (defaults: pac 10, dropout 0.5), synthgen with CTGAN's settings (pac 10, dropout 0.5,
    flat learning rate) and synthgen's defaults. The training rows are repeated up to at least
    500 so that synthgen does not shrink its batch to a small table. Only the training loop is
    timed: CTGAN's epoch loop (epochs x n // 500 steps), synthgen's ``training_["seconds"]``.
    """
    import ctgan.synthesizers.ctgan as ctgan_module
    import synthgen
    from synthgen import TabularSynthesizer
    from synthgen.models.tabular_gan import GANConfig

    _limit_threads(THREADS)

    train, _ = split(table)
    train = pd.concat([train] * math.ceil(STEP_BATCH / len(train)), ignore_index=True)
    metadata = synthgen.Metadata.detect(train).to_dict()
    per_epoch = max(len(train) // STEP_BATCH, 1)
    epochs = max(1, round(steps / per_epoch))
    configs = {
        "synthgen (CTGAN settings)": GANConfig(pac=10, dropout=0.5, final_learning_rate_fraction=1.0, batch_size=STEP_BATCH),
        "synthgen (defaults)": GANConfig(batch_size=STEP_BATCH),
    }
    out: dict[str, list[float]] = {"ctgan": [], **{name: [] for name in configs}}
    for round_ in range(rounds):
        clock = ctgan_module.tqdm = _LoopClock()
        CTGANWrapper(round_, epochs, batch_size=STEP_BATCH).fit(train, metadata)
        out["ctgan"].append(clock.seconds / (epochs * per_epoch))
        for name, config in configs.items():
            model = TabularSynthesizer(seed=round_, steps=epochs * per_epoch, config=config, progress=False).fit(train)
            assert model.training_["batch_size"] == STEP_BATCH
            out[name].append(model.training_["seconds"] / model.training_["steps"])
    return out


def _limit_threads(threads: int) -> None:
    """Same thread count for every method; on a shared machine spinning OpenMP threads stall."""
    import torch

    torch.set_num_threads(threads)


def _in_fresh_process(function, *args):
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(function, *args).result()


# ---------------------------------------------------------------------------- scoring (parent)
def _quality(train: pd.DataFrame, frame: pd.DataFrame, metadata) -> dict[str, float]:
    from synthgen.evaluation.fidelity import quality_scores

    return quality_scores(train, frame, metadata)


def _detection(train, synthetic, holdout, metadata) -> tuple[float, float | None]:
    from synthgen.evaluation.fidelity import fidelity_section

    section = fidelity_section(train, synthetic, holdout, metadata, rng=np.random.default_rng(0))
    score = next(s for s in section.scores if s.metric == "Detection ROC AUC")
    return score.value, score.reference


def privacy_scores(train, synthetic, holdout, metadata) -> dict[str, Any]:
    """``privacy_section``'s scores by metric name (rng seed 0, 200 attack targets)."""
    from synthgen.evaluation.privacy import privacy_section

    section = privacy_section(train, synthetic, holdout, metadata, rng=np.random.default_rng(0), n_attacks=200)
    return {s.metric: s for s in section.scores}


def _privacy(train, synthetic, holdout, metadata) -> dict[str, float]:
    scores = privacy_scores(train, synthetic, holdout, metadata)
    return {"dcr_share": scores["DCR share"].value, "copy_share": scores["Exact copies"].value,
            "holdout_copy_share": scores["Exact copies"].reference}


def _copies(train: pd.DataFrame, frames: list[pd.DataFrame], metadata) -> int:
    """Synthetic rows equal to a training row in every non-id column (missing equals missing)."""
    from synthgen.evaluation.privacy import privacy_section

    total = 0
    for frame in frames:
        section = privacy_section(train, frame, None, metadata, rng=np.random.default_rng(0))
        total += round(next(s for s in section.scores if s.metric == "Exact copies").value * len(frame))
    return total


def score_fit(train, holdout, metadata, fitted: dict[str, Any]) -> dict[str, Any]:
    qualities = [_quality(train, draw, metadata) for draw in fitted["draws"]]
    row = {key: float(np.mean([q[key] for q in qualities])) for key in qualities[0]}
    row["detection_auc"], row["holdout_detection_auc"] = _detection(train, fitted["big"], holdout, metadata)
    row.update(_privacy(train, fitted["big"], holdout, metadata))
    row["copies"] = _copies(train, [*fitted["draws"], fitted["big"]], metadata)
    row["rows_checked"] = sum(len(f) for f in fitted["draws"]) + len(fitted["big"])
    for key in ("fit_s", "peak_mb", "rss_before_mb", "steps", "loop_s", "sample_rows_per_s"):
        row[key] = fitted.get(key)
    return row


def reference_and_floor(train, holdout, metadata, seeds) -> tuple[dict[str, float], dict[str, float]]:
    """Quality of the real holdout, and of the independent sampler (mean over DRAWS draws per seed).

    Both are scored against ``train`` on holdout-sized frames; they are the two ends of "gap closed".
    """
    reference = _quality(train, holdout, metadata)
    baseline = IndependentSampler().fit(train, metadata.to_dict())
    independent = [_quality(train, baseline.sample(len(holdout), _draw_seed(s, d)), metadata)
                   for s in seeds for d in range(DRAWS)]
    return reference, {key: float(np.mean([q[key] for q in independent])) for key in independent[0]}


def add_gaps(row: dict[str, Any], reference: dict[str, float], floor: dict[str, float]) -> None:
    """``row["gap <Pair Trends>"]``: the share of the independent-to-holdout gap that ``row`` closes."""
    for key in ("Column Pair Trends", "Column Pair Trends (all pairs)"):
        denominator = reference[key] - floor[key]
        row[f"gap {key}"] = (row[key] - floor[key]) / denominator if denominator else float("nan")


# ---------------------------------------------------------------------------- the run
def run(args: argparse.Namespace) -> dict[str, Any]:
    import synthgen

    results: dict[str, Any] = {"tables": {}}
    for table in args.tables:
        started = time.perf_counter()
        train, holdout = split(table)
        metadata = synthgen.Metadata.detect(train)
        n_draw, n_big = len(holdout), len(train)
        reference, floor = reference_and_floor(train, holdout, metadata, args.seeds)
        reference["copies"] = _copies(train, [holdout], metadata)
        entry: dict[str, Any] = {"rows": len(train), "holdout_rows": len(holdout), "columns": train.shape[1],
                                 "holdout": reference, "independent_floor": floor, "methods": {}}
        for method in args.methods:
            runs = []
            for i, seed in enumerate(args.seeds):
                if method in PEERS:
                    workdir = Path(tempfile.mkdtemp(prefix=f"{method}-"))
                    fitted = peer_fit(method, table, seed, n_draw, n_big, args.peer_python.get(method, PEERS[method]),
                                      args.peer_timeout, workdir)
                    if fitted.pop("status") != "ok":
                        entry.setdefault("failures", {})[f"{method} seed {seed}"] = fitted
                        print(f"  {table} {method} seed {seed}: FAILED {fitted.get('error')}", file=sys.stderr, flush=True)
                        continue
                    shutil.rmtree(workdir)
                else:
                    try:  # a method that refuses a table is recorded (issue 19: synthgen on opt), the run goes on
                        fitted = _in_fresh_process(fit_worker, table, method, seed, args.ctgan_epochs, args.synthgen_steps,
                                                   n_draw, n_big, 0 if i or args.no_sampling else
                                                   SAMPLE_ROWS if method in ("synthgen", "independent") else
                                                   args.peer_sample_rows, args.sample_threads)
                    except Exception as exc:
                        entry.setdefault("failures", {})[f"{method} seed {seed}"] = {"error": f"{type(exc).__name__}: {exc}"}
                        print(f"  {table} {method} seed {seed}: FAILED {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                        continue
                row = score_fit(train, holdout, metadata, fitted)
                add_gaps(row, reference, floor)
                row["seed"] = seed
                runs.append(row)
                print(f"  {table} {method} seed {seed}: gap {row['gap Column Pair Trends']:.3f}, shapes "
                      f"{row['Column Shapes']:.3f}, AUC {row['detection_auc']:.3f}, DCR {row['dcr_share']:.3f}, "
                      f"copies {row['copies']}, fit {row['fit_s']:.1f} s, steps {row['steps']}, "
                      f"peak {row['peak_mb']:.0f} MB", file=sys.stderr, flush=True)
            if runs:
                entry["methods"][method] = runs
        if not args.no_step_timing and {"synthgen", "ctgan"} <= set(args.methods):
            entry["step_seconds"] = _in_fresh_process(step_worker, table, args.timing_steps, args.timing_rounds)
            print(f"  {table} step timing: " + ", ".join(
                f"{k} {1000 * statistics.median(v):.1f} ms" for k, v in entry["step_seconds"].items()),
                file=sys.stderr, flush=True)
        aucs = [r["holdout_detection_auc"] for runs in entry["methods"].values() for r in runs]
        reference["detection_auc"] = float(np.mean(aucs)) if aucs else float("nan")
        entry["wall_s"] = time.perf_counter() - started
        results["tables"][table] = entry
        print(f"{table}: done in {entry['wall_s']:.0f} s", file=sys.stderr, flush=True)
        if args.json:  # a long run stopped part-way still leaves its finished tables
            args.json.with_suffix(".partial.json").write_text(json.dumps(results, indent=1, default=float))
    return results


# ---------------------------------------------------------------------------- rendering
def _spread(values: list[float], digits: int = 3, scale: float = 1.0) -> str:
    values = [v * scale for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return "–"
    mean = float(np.mean(values))
    if len(values) == 1 or max(values) - min(values) < 0.5 * 10 ** -digits:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def _rate(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value / 1e6:.2f} M" if value >= 1e5 else f"{value / 1e3:.0f} k"


def render(results: dict[str, Any]) -> str:
    lines = [
        "| table | method | gap closed | gap closed, all pairs | Column Shapes | Pair Trends | all pairs | "
        "detection AUC | DCR share | exact copies | fit s | steps | peak MB | sampling rows/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for table, entry in results["tables"].items():
        ref, floor = entry["holdout"], entry["independent_floor"]
        lines.append(
            f"| {table} ({entry['rows']}+{entry['holdout_rows']} × {entry['columns']}) | *real holdout* | 1 | 1 | "
            f"{ref['Column Shapes']:.3f} | {ref['Column Pair Trends']:.3f} | {ref['Column Pair Trends (all pairs)']:.3f} | "
            f"{ref['detection_auc']:.3f} | 0.5 | {ref['copies']} / {entry['holdout_rows']} | | | | |")
        lines.append(
            f"| | *independent floor* | 0 | 0 | {floor['Column Shapes']:.3f} | {floor['Column Pair Trends']:.3f} | "
            f"{floor['Column Pair Trends (all pairs)']:.3f} | | | | | | | |")
        for method, runs in entry["methods"].items():
            col = lambda key: [r[key] for r in runs]  # noqa: E731
            copies = f"{sum(col('copies'))} / {sum(col('rows_checked'))}"
            steps = _spread(col("steps"), 0) if runs[0]["steps"] is not None else "–"
            gaps = [_spread(col(f"gap {key}"), 2) if ref[key] - floor[key] >= MIN_GAP else "n/a"
                    for key in ("Column Pair Trends", "Column Pair Trends (all pairs)")]
            lines.append(
                f"| | {method} | {gaps[0]} | {gaps[1]} | {_spread(col('Column Shapes'))} | "
                f"{_spread(col('Column Pair Trends'))} | {_spread(col('Column Pair Trends (all pairs)'))} | "
                f"{_spread(col('detection_auc'))} | {_spread(col('dcr_share'))} | {copies} | "
                f"{_spread(col('fit_s'), 1)} | {steps} | {_spread(col('peak_mb'), 0)} | "
                f"{_rate(runs[0].get('sample_rows_per_s'))} |")
    timing = [(t, e["step_seconds"]) for t, e in results["tables"].items() if "step_seconds" in e]
    if timing:
        lines += [
            "",
            "Time per optimiser step, batch 500, widths (256, 256), interleaved rounds in one process "
            "(median ms; ratio to CTGAN: median of the per-round ratios, min–max):",
            "",
            "| table | CTGAN ms/step | synthgen, CTGAN settings: ms/step | ratio | synthgen defaults: ms/step | ratio |",
            "|---|---|---|---|---|---|",
        ]
        for table, seconds in timing:
            ctgan = seconds["ctgan"]
            cells = []
            for name in ("synthgen (CTGAN settings)", "synthgen (defaults)"):
                ratios = [a / b for a, b in zip(seconds[name], ctgan)]
                cells.append(f"{1000 * statistics.median(seconds[name]):.1f} | "
                             f"{statistics.median(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f})")
            lines.append(f"| {table} | {1000 * statistics.median(ctgan):.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def environment() -> str:
    import torch

    versions = ", ".join(f"{name} {version(name)}" for name in ("synthgen", "ctgan", "sdv", "sdmetrics", "rdt", "scikit-learn", "pandas"))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "synthgen"], capture_output=True, text=True,
                           cwd=Path(__file__).resolve().parent.parent).stdout.strip()
    return (f"Python {platform.python_version()}, torch {torch.__version__} (CPU, {os.environ.get('BENCH_THREADS', THREADS)} thread(s) per worker), "
            f"{versions}; synthgen at commit {commit}{' with uncommitted changes under synthgen/' if dirty else ''}; "
            f"{multiprocessing.cpu_count()} CPU cores shared with other jobs, no GPU")


def write_readme(block: str, begin: str = BEGIN, end: str = END) -> None:
    """Put ``block`` into README.md between the ``begin`` and ``end`` markers (appended if absent)."""
    text = README.read_text() if README.exists() else f"# Benchmarks\n\n{begin}\n{end}\n"
    if begin not in text:
        text += f"\n{begin}\n{end}\n"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    README.write_text(pattern.sub(lambda _: f"{begin}\n{block}\n{end}", text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="+", choices=sorted(TABLES), default=sorted(TABLES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--ctgan-epochs", type=int, default=300)
    parser.add_argument("--synthgen-steps", type=int, help="override synthgen's default training length (debugging)")
    parser.add_argument("--quick", action="store_true", help="smoke test: one seed (the first)")
    parser.add_argument("--timing-steps", type=int, default=150, help="optimiser steps per timing round")
    parser.add_argument("--timing-rounds", type=int, default=3, help="interleaved timing rounds")
    parser.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads per worker (every method alike)")
    parser.add_argument("--no-step-timing", action="store_true")
    parser.add_argument("--peer-sample-rows", type=int, default=200_000,
                        help="rows CTGAN and GaussianCopula sample to time sampling (synthgen, independent: 1M)")
    parser.add_argument("--no-sampling", action="store_true", help="skip timing the sampling of 1M rows")
    parser.add_argument("--sample-threads", type=int, default=2, help="torch threads while timing sampling (every method alike)")
    parser.add_argument("--peer-python", nargs="+", default=[], metavar="METHOD=PYTHON",
                        help=f"the venv Python of a peer (defaults: {', '.join(f'{k}={v}' for k, v in PEERS.items())})")
    parser.add_argument("--peer-timeout", type=float, default=1800.0, help="seconds per peer fit and its draws")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--from-json", nargs="+", type=Path, help="render earlier --json results (merged) instead of running")
    parser.add_argument("--write-readme", action="store_true", help=f"write the table into {README.name} between markers")
    args = parser.parse_args()
    if args.quick:
        args.seeds = args.seeds[:1]
    args.peer_python = dict(item.split("=", 1) for item in args.peer_python)
    # Spawned workers inherit these before they import numpy/torch/scikit-learn.
    os.environ["BENCH_THREADS"] = os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
    command = "python benchmarks/run.py " + " ".join(sys.argv[1:])
    if args.from_json:
        results = {"tables": {}, "runs": []}
        for path in args.from_json:
            loaded = json.loads(path.read_text())
            results["tables"].update(loaded["tables"])
            results["runs"] += loaded.get("runs", [loaded.get("run", {})])
    else:
        started = datetime.now(timezone.utc)
        results = run(args)
        results["run"] = {"command": command, "date": started.strftime("%Y-%m-%d %H:%M UTC"),
                          "minutes": round((datetime.now(timezone.utc) - started).total_seconds() / 60, 1),
                          "environment": environment()}
        results["runs"] = [results["run"]]
        if args.json:
            args.json.write_text(json.dumps(results, indent=1, default=float))
    table = render(results)
    print(table)
    if args.write_readme:
        header = "\n".join(f"- `{r['command']}` — {r['date']}, {r['minutes']} min; {r['environment']}"
                           for r in results["runs"])
        write_readme(f"Produced by:\n\n{header}\n\n{table}")


if __name__ == "__main__":
    main()
