"""Fit smartnoise-synth's DP-CTGAN on one CSV and sample from it; run by benchmarks/dp.py in its own venv.

    /work/snvenv/bin/python benchmarks/dp_smartnoise_worker.py JOB.json

smartnoise-synth 1.0.8 pins Opacus 0.14, which cannot share an environment with synthgen's Opacus
1.6, so it runs in a separate virtual environment and talks to the benchmark through files only.
JOB.json: {"train": CSV, "out": CSV, "result": JSON, "epsilon": float or "inf", "seed": int,
"categorical": [...], "continuous": [...], "preprocessor_share": float, "rows": int, "threads": int}.

The synthesizer is ``Synthesizer.create("dpctgan", epsilon=ε, verbose=False)`` with its defaults
(batch 500, 300 epochs, noise multiplier σ = 5, clipping 1.0, δ = 1/(n√n)); ``fit`` gets the
categorical and continuous column lists, ``nullable=True`` when a cell is missing, and
``preprocessor_eps = preprocessor_share × ε`` (its continuous columns need DP bounds: with 0 it
refuses to fit). ε = inf trains the same DP-CTGAN with ``disabled_dp=True``. Errors are written to
the result file with their message, never retried with other settings.
"""
from __future__ import annotations

import json
import math
import sys
import time
import traceback


def _dpsgd_epsilon(sigma: float, sample_rate: float, steps: int, delta: float) -> float:
    """ε of ``steps`` steps at (σ, q) with Opacus 0.14's RDP accountant and smartnoise's orders."""
    from opacus import privacy_analysis

    orders = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))
    rdp = privacy_analysis.compute_rdp(sample_rate, sigma, steps, orders)
    return float(privacy_analysis.get_privacy_spent(orders, rdp, delta)[0])


def main(job_path: str) -> None:
    job = json.loads(open(job_path).read())
    result: dict = {"ok": False}
    try:
        import numpy as np
        import pandas as pd
        import torch

        torch.set_num_threads(int(job.get("threads", 1)))
        torch.manual_seed(job["seed"])
        np.random.seed(job["seed"])
        from importlib.metadata import version

        from snsynth import Synthesizer

        result["versions"] = {name: version(name) for name in ("smartnoise-synth", "opacus", "torch")}
        train = pd.read_csv(job["train"])
        epsilon = float(job["epsilon"])
        private = math.isfinite(epsilon)
        params = {"verbose": False} if private else {"verbose": False, "disabled_dp": True}
        model = Synthesizer.create("dpctgan", epsilon=epsilon if private else 1.0, **params)
        fit_args = {
            "categorical_columns": job["categorical"],
            "continuous_columns": job["continuous"],
            "nullable": bool(train.isna().any().any()),
            "preprocessor_eps": job["preprocessor_share"] * epsilon if private else 0.0,
        }
        if not private:  # no budget to spend on bounds: the exact ones, as a non-private fit would
            from snsynth.transform.table import TableTransformer

            fit_args["transformer"] = TableTransformer.create(
                train, style="gan", nullable=fit_args["nullable"], categorical_columns=job["categorical"],
                continuous_columns=job["continuous"],
                constraints={c: _exact_minmax(train[c], fit_args["nullable"]) for c in job["continuous"]},
            )
        started = time.perf_counter()
        model.fit(train, **fit_args)
        result["fit_s"] = time.perf_counter() - started
        epochs = len(model.loss_d_list)
        steps_per_epoch = max(len(train) // model._batch_size, 1)
        result["epochs"] = epochs
        result["steps"] = epochs * steps_per_epoch
        if private:
            preprocessing = job["preprocessor_share"] * epsilon
            # Two optimiser steps per iteration (fakes, then reals): Opacus 0.14 counts both.
            sgd = _dpsgd_epsilon(model.sigma, model._batch_size / len(train), 2 * result["steps"], model.delta)
            result["epsilon_spent"] = preprocessing + sgd
            result["epsilon_sgd"] = sgd
            result["epsilon_preprocessing"] = preprocessing
            result["epsilon_reported_last_check"] = float(model.epsilon_list[-1]) if model.epsilon_list else None
            result["delta"] = float(model.delta)
        frames = [model.sample(int(job["rows"])) for _ in range(int(job.get("draws", 1)))]
        pd.concat(frames, ignore_index=True).to_csv(job["out"], index=False)
        result["ok"] = True
    except Exception as exc:  # recorded as a failure with its message, never papered over
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc(limit=6)
    with open(job["result"], "w") as handle:
        json.dump(result, handle)


def _exact_minmax(column, nullable: bool):
    from snsynth.transform.minmax import MinMaxTransformer

    return MinMaxTransformer(lower=float(column.min()), upper=float(column.max()), nullable=nullable)


if __name__ == "__main__":
    main(sys.argv[1])
