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

``"synthesizer": "aim"`` or ``"mst"`` runs smartnoise's marginal-based AIM or MST instead (they
need ``mbi`` 1.x, which smartnoise-synth installs). They model discrete columns only, so every
column is coded here from a data-independent domain that JOB.json's ``"domains"`` declares —
``{"values": [...]}`` (documented public codes), ``{"values": null}`` (names released with DP, see
below), or ``{"low", "high", "bins", "log", "integer"}`` (public bounds cut into equal-width or
equal-ratio bins; values outside are clipped onto them) — plus one code for a missing cell on every
column (whether a column has gaps is not read from the data). Categorical names that no
documentation lists are released by a thresholded Laplace histogram (stability-based: a name held
by one row passes with probability below δ/2) with ``names_share`` × ε, the rest of ε and δ/2 go
to AIM/MST (basic composition); unreleased names share one pooled code, decoded as ``"Other"``
(text columns) or missing (numeric ones). Coded columns go to ``Synthesizer.create(name,
epsilon, delta)`` through a TableTransformer whose BinTransformers map code k of K to itself
(bounds [0, K], K bins: no ε and nothing read from the rows). Numeric codes are decoded to a
uniform (log-uniform for equal-ratio bins) draw inside their bin, seeded by ``seed``.
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

        result["versions"] = {name: version(name) for name in ("smartnoise-synth", "opacus", "torch", "mbi")}
        train = pd.read_csv(job["train"])
        fit = _dpctgan if job.get("synthesizer", "dpctgan") == "dpctgan" else _marginal
        result.update(fit(job, train))
        result["ok"] = True
    except Exception as exc:  # recorded as a failure with its message, never papered over
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc(limit=6)
    with open(job["result"], "w") as handle:
        json.dump(result, handle)


def _dpctgan(job: dict, train) -> dict:
    """DP-CTGAN with its defaults at the job's ε (inf: ``disabled_dp``); writes its samples."""
    import pandas as pd
    from snsynth import Synthesizer

    result: dict = {}
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
    return result


def _released_names(train, names: list, epsilon: float, delta: float, rng) -> dict:
    """Names of each column in ``names`` whose Laplace-noised count clears the stability threshold.

    One row adds 1 to one count in each of the c columns (L1 sensitivity c): scale c/ε gives ε;
    a name held by one row is released when 1 + Lap(c/ε) > τ, probability ½·exp(−(τ−1)ε/c), which
    τ = 1 + (c/ε)·ln(c/(2δ)) holds at δ/c per column, δ for the row's c names together.
    """
    import numpy as np

    if not names:
        return {}
    scale = len(names) / epsilon
    threshold = 1.0 + scale * np.log(len(names) / (2.0 * delta))
    released = {}
    for name in names:
        counts = train[name].dropna().value_counts()
        noisy = counts.to_numpy(dtype=float) + rng.laplace(0.0, scale, len(counts))
        released[name] = sorted(counts.index[noisy > threshold].tolist(), key=str)
    return released


def _edges(domain: dict):
    import numpy as np

    if domain.get("log"):
        return np.geomspace(domain["low"], domain["high"], domain["bins"] + 1)
    return np.linspace(domain["low"], domain["high"], domain["bins"] + 1)


def _marginal(job: dict, train) -> dict:
    """Code ``train`` on the declared domains, fit smartnoise's AIM or MST, write decoded samples."""
    import numpy as np
    import pandas as pd
    from snsynth import Synthesizer
    from snsynth.transform.bin import BinTransformer
    from snsynth.transform.table import TableTransformer

    rng = np.random.default_rng(job["seed"])  # post-processing only (bin draws); the DP noise is OpenDP's
    np.random.seed(job["seed"])  # AIM/MST's selection and MST's decompression draw from numpy's global RNG
    epsilon, delta, domains = float(job["epsilon"]), float(job["delta"]), job["domains"]
    secret = [c for c, d in domains.items() if "values" in d and d["values"] is None]
    share = float(job.get("names_share", 0.1)) if secret else 0.0
    names = _released_names(train, secret, share * epsilon, delta / 2, rng)
    model_epsilon, model_delta = (1 - share) * epsilon, delta / 2 if secret else delta
    codes, cards = {}, []
    for column, domain in domains.items():
        values = train[column]
        if "low" in domain:
            edges = _edges(domain)
            clipped = np.clip(values.to_numpy(dtype=float), domain["low"], domain["high"])
            code = np.clip(np.searchsorted(edges, clipped, side="right") - 1, 0, domain["bins"] - 1)
            size = domain["bins"]
        else:
            known = domain["values"] if domain["values"] is not None else names[column]
            lookup = {str(v): i for i, v in enumerate(known)}
            size = len(known) + (domain["values"] is None)  # + the pooled code for unreleased names
            code = np.array([lookup.get(str(v), len(known)) for v in values])
        code = np.where(values.isna().to_numpy(), size, code)  # the missing code, last
        codes[column] = code.astype(int)
        cards.append(size + 1)
    coded = pd.DataFrame(codes)
    # Code k of K maps to bin int(K·k/K) = k: the transformer is the identity on the declared codes.
    transformer = TableTransformer([BinTransformer(lower=0, upper=k, bins=k) for k in cards])
    model = Synthesizer.create(job["synthesizer"], epsilon=model_epsilon, delta=model_delta, verbose=False)
    started = time.perf_counter()
    model.fit(coded, transformer=transformer, preprocessor_eps=0.0)
    fit_s = time.perf_counter() - started
    # mbi's synthetic_data is not a row-by-row draw: it rounds each marginal onto the rows in order,
    # so its rows come sorted. One call per frame (``sizes``: the driver's draws), rows shuffled.
    frames = []
    for size in job.get("sizes", [int(job["rows"])]):
        rows = np.floor(np.asarray(model.sample(int(size)), dtype=float)).astype(int)
        frames.append(rows[rng.permutation(len(rows))])
    sample = pd.DataFrame(np.concatenate(frames), columns=list(domains))
    out = {}
    for (column, domain), size in zip(domains.items(), cards):
        code = sample[column].to_numpy()
        missing = code == size - 1
        if "low" in domain:
            edges = _edges(domain)
            inner = np.clip(code, 0, domain["bins"] - 1)
            low, high = edges[inner], edges[inner + 1]
            u = rng.random(len(code))
            value = np.exp(np.log(low) + u * (np.log(high) - np.log(low))) if domain.get("log") else low + u * (high - low)
            if domain.get("integer"):
                value = np.round(value)
            out[column] = np.where(missing, np.nan, value)
        else:
            known = domain["values"] if domain["values"] is not None else names[column]
            pooled = "Other" if train[column].dtype == object else None
            decoded = [None if m else (known[c] if c < len(known) else pooled) for c, m in zip(code, missing)]
            out[column] = pd.Series(decoded, dtype=object)
    pd.DataFrame(out).to_csv(job["out"], index=False)
    return {"fit_s": fit_s, "epsilon_spent": epsilon, "epsilon_model": model_epsilon, "epsilon_names": share * epsilon,
            "delta": delta, "released_names": {c: len(v) for c, v in names.items()},
            "domain_size": float(np.prod(np.array(cards, dtype=float)))}


def _exact_minmax(column, nullable: bool):
    from snsynth.transform.minmax import MinMaxTransformer

    return MinMaxTransformer(lower=float(column.min()), upper=float(column.max()), nullable=nullable)


if __name__ == "__main__":
    main(sys.argv[1])
