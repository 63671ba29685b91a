"""End-to-end privacy audit of a DP fit with canaries, in one training run.

    python benchmarks/dp_audit.py --epsilons 1 8 inf --canaries 200 --seed 0 [--json out.json]

The one-run audit of Steinke, Nasr & Jagielski (2023, "Privacy auditing with one (1) training
run"): m crafted canary rows are each added to the training table independently with probability
1/2, the table is fitted once, an attacker scores every canary and guesses "in" for the k highest
scores and "out" for the k lowest (k fixed in advance). If the fit is (ε, δ)-DP, the number of
right guesses is (up to a δ term) no likelier to be large than a Binomial(2k, e^ε / (1 + e^ε)); the
largest ε that the observed count rejects at 95% confidence is an empirical lower bound on the ε the
fit really has. A bound above the claimed ε means the guarantee is broken; a bound below it is only
as strong as the attack, which the ε = inf fit (no DP) measures.

Table: 200 rows of scikit-learn's breast-cancer data (30 measurements and the diagnosis), every
column declared with a public domain so the statistics release spends nothing on bounds or names.
Canaries: every value drawn independently within the 5-95% range of its column, so no single value
is unusual, but the combination is unlike any tumour (the measurements are strongly correlated) and,
in 30 dimensions, unlike the other canaries. Two attacks:

- critic (white-box on DP-SGD's output): the critic is the network DP-SGD trains on the rows; its
  final weights are post-processing of the DP-SGD run, so scoring each canary with it audits
  DP-SGD (the model file does not hold the critic; the benchmark keeps it when the fit builds it).
- samples (black-box, the model file): the model is saved, loaded back and sampled; a canary's score
  is minus the distance (columns scaled by their public ranges) to its 5th nearest synthetic row.
  This audits the whole fit as released, statistics and two-way tables included.

See benchmarks/README.md, "DP audit".
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit

TARGET = "target"
#: Each canary value is drawn independently between these quantiles of its column.
CANARY_QUANTILES = (0.05, 0.95)
#: A column's public range is [0, this × its largest value in the published data set]: fixed
#: before any canary is drawn, as a data dictionary's limits would be.
BOUND_MARGIN = 1.25


# --------------------------------------------------------------------------------- the bound
def audit_p_value(canaries: int, guesses: int, correct: int, epsilon: float, delta: float) -> float:
    """P[≥ ``correct`` right out of ``guesses``] for an (ε, δ)-DP fit (Steinke et al. 2023, main theorem).

    Under pure ε-DP the count of right guesses is dominated by Binomial(guesses, q), q = e^ε/(1+e^ε)
    (randomized response is the worst case); δ adds at most ``2 m δ`` times the largest average
    probability of the ``i`` counts just below ``correct`` (as the paper's p-value algorithm computes it).
    """
    if not 0 <= correct <= guesses <= canaries:
        raise ValueError(f"need 0 <= correct <= guesses <= canaries, got {correct}, {guesses}, {canaries}")
    if epsilon < 0 or not 0 <= delta <= 1:
        raise ValueError(f"need epsilon >= 0 and 0 <= delta <= 1, got {epsilon}, {delta}")
    q = expit(epsilon)
    beta = stats.binom.sf(correct - 1, guesses, q)
    alpha = 0.0
    if correct > 0 and delta > 0:
        below = stats.binom.pmf(np.arange(correct - 1, -1, -1), guesses, q)  # P[= correct - i], i = 1..correct
        alpha = float(np.max(np.cumsum(below) / np.arange(1, correct + 1)))
    return float(min(1.0, beta + alpha * delta * 2 * canaries))


def epsilon_lower_bound(canaries: int, guesses: int, correct: int, delta: float, confidence: float = 0.95) -> float:
    """The largest ε that ``correct`` right guesses reject at ``confidence`` (0 when none is rejected).

    ``canaries``: m, each included with probability 1/2; ``guesses``: how many were guessed (not
    abstained on), fixed before looking at the scores; ``delta``: the δ the fit claims.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    level = 1 - confidence
    if audit_p_value(canaries, guesses, correct, 0.0, delta) >= level:
        return 0.0
    low, high = 0.0, 1.0
    while audit_p_value(canaries, guesses, correct, high, delta) < level:
        low, high = high, 2 * high
    for _ in range(40):  # bisection to ~1e-12 of the bracket
        middle = (low + high) / 2
        low, high = (middle, high) if audit_p_value(canaries, guesses, correct, middle, delta) < level else (low, middle)
    return low


# --------------------------------------------------------------------------------- the audit
def full_table() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).frame


def public_bounds(frame: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Every measurement's public range (see ``BOUND_MARGIN``); all are positive quantities."""
    return {name: (0.0, float(BOUND_MARGIN * frame[name].max())) for name in frame.columns if name != TARGET}


def base_table(frame: pd.DataFrame, rows: int, rng: np.random.Generator) -> pd.DataFrame:
    return frame.iloc[np.sort(rng.choice(len(frame), size=rows, replace=False))].reset_index(drop=True)


def make_canaries(table: pd.DataFrame, count: int, rng: np.random.Generator) -> pd.DataFrame:
    """``count`` rows whose every value is ordinary but whose combination no tumour has (see the module doc)."""
    columns = {name: rng.uniform(*table[name].quantile(CANARY_QUANTILES).to_numpy(), count)
               for name in table.columns if name != TARGET}
    return pd.DataFrame({**columns, TARGET: rng.integers(0, 2, count)})


def declared_metadata(bounds: dict[str, tuple[float, float]]):
    """Every column declared, with its public domain: nothing about the schema comes from the rows."""
    import synthgen

    columns: dict[str, dict[str, Any]] = {
        name: {"sdtype": "numerical", "computer_representation": "Float", "public_bounds": list(limits)}
        for name, limits in bounds.items()
    }
    columns[TARGET] = {"sdtype": "categorical", "public_values": [0, 1]}
    return synthgen.Metadata(columns)


def default_delta() -> float:
    """synthgen's default δ (``DPSettings``): the δ the ε = inf run is audited at."""
    from synthgen.dp.accounting import DEFAULT_DELTA

    return DEFAULT_DELTA


@contextlib.contextmanager
def recorded_critics() -> Iterator[list]:
    """Every critic the synthesizer builds while this is open, kept for the white-box score.

    The critic is the network DP-SGD trains on the rows; the model file does not hold it, but its
    final weights are a post-processing of the DP-SGD run, so auditing them audits DP-SGD itself.
    """
    # The plain fit builds its critic in synthesizers/tabular.py, the DP fit in synthesizers/private.py.
    import synthgen.synthesizers.private as private_module
    import synthgen.synthesizers.tabular as tabular_module

    modules = (tabular_module, private_module)
    original, made = tabular_module.Discriminator, []

    class Recorded(original):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    for module in modules:
        module.Discriminator = Recorded
    try:
        yield made
    finally:
        for module in modules:
            module.Discriminator = original


def fit(train: pd.DataFrame, metadata, epsilon: float, seed: int, steps: int | None, share: float | None = None):
    """Fit at ``epsilon`` (inf: no DP); the fitted model, its trained critic, seconds, DP record.

    ``share``: the statistics' share of ε (synthgen's default when None); a small one leaves most
    of the budget to DP-SGD, the strongest test of the critic.
    """
    import synthgen
    from synthgen.dp.accounting import DPSettings

    options = {} if share is None else {"preprocessing_share": share}
    # The audit is of DP-SGD: the critic trains, which a default DP fit no longer does.
    dp = None if math.isinf(epsilon) else DPSettings(epsilon=epsilon, critic=True, **options)
    model = synthgen.TabularSynthesizer(metadata, dp=dp, steps=steps, seed=seed, progress=False)
    start = time.perf_counter()
    with recorded_critics() as critics:
        model.fit(train)
    seconds = time.perf_counter() - start
    if len(critics) != 1:
        raise RuntimeError(f"expected the fit to build one critic, it built {len(critics)}: update recorded_critics")
    return model, critics[0], seconds, model.privacy_


def critic_scores(model, critic, canaries: pd.DataFrame, seed: int, repeats: int = 8) -> np.ndarray:
    """The trained critic's score of each canary as a real row, averaged over ``repeats`` encodings.

    Rows are encoded by the model's own transformers (from the released statistics under DP) with
    the condition vector DP-SGD gives a real row; encodings that draw a mode are drawn ``repeats`` times.
    """
    import torch

    rng, generator = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    critic = critic.cpu().eval()
    total = np.zeros(len(canaries))
    with torch.no_grad():
        for _ in range(repeats):
            rows = torch.from_numpy(model.table_.transform(canaries, rng)).float()
            cond = model.sampler_.cpu().of_rows(rows, generator)
            total += critic(torch.cat([rows, cond], dim=1)).squeeze(1).double().numpy()
    return total / repeats


def sample_scores(model, canaries: pd.DataFrame, bounds: dict[str, tuple[float, float]], sample_rows: int,
                  neighbours: int, seed: int) -> np.ndarray:
    """Minus the distance from each canary to its ``neighbours``-th nearest synthetic row (public scaling)."""
    from sklearn.neighbors import NearestNeighbors

    columns = list(bounds)
    low = np.array([bounds[c][0] for c in columns])
    width = np.array([bounds[c][1] - bounds[c][0] for c in columns])
    synthetic = model.sample(sample_rows, seed=seed)[columns].to_numpy(float)
    # A DP model may release a missing level from noise alone; gaps say nothing about a canary.
    points = (synthetic[~np.isnan(synthetic).any(axis=1)] - low) / width
    targets = (canaries[columns].to_numpy(float) - low) / width
    distance, _ = NearestNeighbors(n_neighbors=neighbours).fit(points).kneighbors(targets)
    return -distance[:, -1]


def correct_guesses(scores: np.ndarray, included: np.ndarray, k: int, rng: np.random.Generator) -> int:
    """Guess "in" for the ``k`` highest scores and "out" for the ``k`` lowest; ties broken at random."""
    order = np.lexsort((rng.random(len(scores)), scores))  # ascending score, random among equals
    return int(included[order[-k:]].sum() + (~included[order[:k]]).sum())


def audit(epsilon: float, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One fit at ``epsilon``, canaries drawn from ``args.seed``; a row per attack."""
    import synthgen

    rng = np.random.default_rng(args.seed)
    frame = full_table()
    bounds = public_bounds(frame)
    table = base_table(frame, args.rows, rng)
    canaries = make_canaries(table, args.canaries, rng)
    included = rng.random(args.canaries) < 0.5
    train = pd.concat([table, canaries[included]], ignore_index=True)
    steps = args.nodp_steps if math.isinf(epsilon) else args.steps
    model, critic, seconds, privacy = fit(train, declared_metadata(bounds), epsilon, args.seed, steps,
                                               args.statistics_share)
    scores = {"critic (DP-SGD's output, white-box)": critic_scores(model, critic, canaries, args.seed + 1)}
    with tempfile.TemporaryDirectory() as folder:
        # The black-box attacker has the model file and nothing else.
        released = synthgen.load(model.save(Path(folder) / "audit.sgz"))
        scores["samples (model file, black-box)"] = sample_scores(
            released, canaries, bounds, args.sample_rows, args.neighbours, args.seed + 2)
    delta = privacy["delta"] if privacy else default_delta()
    rows = []
    for attack, score in scores.items():
        correct = correct_guesses(score, included, args.guesses, np.random.default_rng(args.seed + 3))
        rows.append({
            "claimed_epsilon": privacy["epsilon"] if privacy else math.inf,
            "target_epsilon": epsilon,
            "delta": delta,
            "attack": attack,
            "empirical_epsilon_lower": epsilon_lower_bound(args.canaries, 2 * args.guesses, correct, delta),
            "canaries": args.canaries,
            "included": int(included.sum()),
            "guesses": 2 * args.guesses,
            "correct": correct,
            "auc": _auc(score, included),
            "fit_seconds": round(seconds, 1),
            "training_rows": len(train),
            "steps": model.training_.get("steps"),
            # Canaries are synthetic, not patients: their scores let a reader re-guess with another k.
            "scores": [round(float(x), 6) for x in score],
            "included_mask": [bool(x) for x in included],
        })
    return rows


def _auc(scores: np.ndarray, included: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(included, scores))


def _commit() -> str | None:
    import subprocess

    found = subprocess.run(["git", "rev-parse", "HEAD"], check=False, cwd=Path(__file__).parent,
                           capture_output=True, text=True)
    return found.stdout.strip() or None


def render(rows: list[dict[str, Any]]) -> str:
    header = ("| claimed ε | δ | attack | empirical ε lower bound (95%) | canaries (in) | guesses | correct | "
              "score AUC | steps | fit s |")
    lines = [header, "|---" * (header.count("|") - 1) + "|"]
    for row in rows:
        claimed = "inf (no DP)" if math.isinf(row["claimed_epsilon"]) else f"{row['claimed_epsilon']:.3g}"
        lines.append(
            f"| {claimed} | {row['delta']:.2g} | {row['attack']} | {row['empirical_epsilon_lower']:.2f} | {row['canaries']} "
            f"({row['included']}) | {row['guesses']} | {row['correct']} | {row['auc']:.3f} | {row['steps']} | "
            f"{row['fit_seconds']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epsilons", nargs="+", type=float, default=[1.0, 8.0, math.inf],
                        help="target ε of each fit; inf fits without DP (the audit's power check)")
    parser.add_argument("--canaries", type=int, default=200, help="m, each included with probability 1/2")
    parser.add_argument("--guesses", type=int, default=40, help="k: guesses 'in' for the top k and 'out' for the bottom k")
    parser.add_argument("--rows", type=int, default=200, help="real rows of breast-cancer under the canaries")
    parser.add_argument("--steps", type=int, default=1_000, help="optimiser steps of the DP fits")
    parser.add_argument("--nodp-steps", type=int, default=3_000,
                        help="optimiser steps of the ε = inf fit (long, so that it can memorise: the power check)")
    parser.add_argument("--statistics-share", type=float, default=None,
                        help="share of ε for the released statistics (default: synthgen's); e.g. 0.1 audits DP-SGD "
                             "with most of the budget")
    parser.add_argument("--sample-rows", type=int, default=100_000, help="synthetic rows the attacker draws")
    parser.add_argument("--neighbours", type=int, default=5, help="the k-th nearest synthetic row scores a canary")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the rows and settings here")
    args = parser.parse_args(argv)
    if not 0 < 2 * args.guesses <= args.canaries:
        parser.error(f"--guesses must be between 1 and canaries/2, got {args.guesses}")

    commit, rows = _commit(), []  # the code audited: taken before the fits, which take minutes
    for epsilon in args.epsilons:
        rows.extend(audit(epsilon, args))
        print(render(rows[-2:]), file=sys.stderr, flush=True)
    print(render(rows))
    if args.json is not None:
        settings = {k: v for k, v in vars(args).items() if k != "json"}
        payload = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "settings": settings,
                   "commit": commit, "rows": rows}
        args.json.write_text(json.dumps(payload, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
