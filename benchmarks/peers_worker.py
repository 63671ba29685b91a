"""Fit one peer synthesizer on one CSV and sample from it; run by benchmarks/run.py in the peer's own venv.

    /work/peers/mostly/bin/python benchmarks/peers_worker.py JOB.json
    /work/peers/synthcity/bin/python benchmarks/peers_worker.py JOB.json

The peers pin libraries that cannot share synthgen's environment (synthcity: numpy, xgboost, pgmpy,
...; mostlyai-engine: transformers 5), so each runs in a venv of its own and talks to run.py through
files only, like dp_smartnoise_worker.py. This script imports only the standard library at the top,
so ``--help`` works in any Python.

JOB.json: {"method": "tabular_argn" | "ddpm" | "arf", "train": CSV, "out": CSV, "result": JSON,
"seed": int, "draws": [[rows, seed], ...], "categorical": [...], "numerical": [...],
"threads": int, "workdir": folder}. The training CSV holds the non-id columns; the worker writes
every draw, in order, into one CSV (run.py cuts it back into draws) and into the result JSON
fit seconds, peak resident memory and the versions used. Errors are written to the result file
with their message, never retried with other settings.

- **tabular_argn**: mostlyai-engine's ``TabularARGN(random_state=seed, workspace_dir=...)`` with
  its defaults (model MOSTLY_AI/Medium, at most 100 epochs with early stopping on its own
  validation split of the training rows, value protection on, column encodings inferred); each
  draw calls ``set_random_state(draw seed)`` before ``sample``. It models missing cells itself.
- **ddpm** / **arf**: synthcity's plugins with their defaults (``Plugins().get(name,
  random_state=seed)``), ``generate(count, random_state=draw seed)``. synthcity's encoders take no
  missing cells, so (as run.py's CTGAN wrapper) each numerical column with a gap gets a 0/1
  indicator column and its gaps the training median, and a categorical gap becomes its own
  category; both are turned back into missing cells after sampling.
"""
from __future__ import annotations

import json
import resource
import sys
import time
import traceback

_MISSING = "__missing__"
_INDICATOR = "__missing"


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def _peak_mb() -> tuple[float, float]:
    """Peak RSS of this process and of its largest finished child (ru_maxrss is kB on Linux)."""
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)


def _argn(job: dict, train):
    from mostlyai.engine import TabularARGN, set_random_state

    model = TabularARGN(random_state=job["seed"], workspace_dir=f"{job['workdir']}/argn-workspace", device="cpu")

    def sample(rows: int, seed: int):
        set_random_state(seed)
        return model.sample(n_samples=rows)

    return model, lambda: model.fit(train), sample


def _synthcity(job: dict, train):
    import numpy as np
    import pandas as pd
    from synthcity.plugins import Plugins
    from synthcity.plugins.core.dataloader import GenericDataLoader

    data = train.copy()
    indicated = [c for c in job["numerical"] if data[c].isna().any()]
    for name in indicated:
        data[name + _INDICATOR] = data[name].isna().astype(int)
        data[name] = data[name].fillna(data[name].median())
    for name in job["categorical"]:
        data[name] = data[name].astype(str).where(train[name].notna(), _MISSING)
    model = Plugins().get(job["method"], random_state=job["seed"])

    def sample(rows: int, seed: int):
        frame = model.generate(count=rows, random_state=seed).dataframe()
        for name in indicated:
            frame.loc[frame.pop(name + _INDICATOR).round().astype(int) == 1, name] = np.nan
        for name in job["categorical"]:
            frame[name] = frame[name].astype(object).where(frame[name].astype(str) != _MISSING, None)
        return pd.DataFrame(frame)[list(train.columns)]

    return model, lambda: model.fit(GenericDataLoader(data)), sample


def main(job_path: str) -> None:
    with open(job_path) as handle:
        job = json.load(handle)
    result: dict = {"ok": False}
    try:
        import pandas as pd
        import torch

        torch.set_num_threads(int(job.get("threads", 1)))
        from importlib.metadata import version

        packages = {"tabular_argn": ("mostlyai-engine",), "ddpm": ("schneiderkamplab-synthcity",),
                    "arf": ("schneiderkamplab-synthcity", "arfpy")}[job["method"]]
        result["versions"] = {name: version(name) for name in (*packages, "torch", "pandas")}
        dtypes = {name: str for name in job["categorical"]}
        train = pd.read_csv(job["train"], dtype=dtypes, keep_default_na=True)
        model, fit, sample = (_argn if job["method"] == "tabular_argn" else _synthcity)(job, train)
        result["rss_before_mb"] = _rss_mb()
        started = time.perf_counter()
        fit()
        result["fit_s"] = time.perf_counter() - started
        result["peak_mb"], result["children_peak_mb"] = _peak_mb()
        frames = [sample(rows, seed) for rows, seed in job["draws"]]
        pd.concat(frames, ignore_index=True).to_csv(job["out"], index=False)
        result["ok"] = True
    except Exception as exc:  # recorded as a failure with its message, never papered over
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc(limit=8)
    with open(job["result"], "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if len(sys.argv) == 2 else 2)
    main(sys.argv[1])
