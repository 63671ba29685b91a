"""The privacy budget: noise from a target (ε, δ), the ε actually spent, and the record of both.

The privacy unit is one patient added or removed; the number of rows is private too. First a
coarse noisy row count (:func:`row_count_noise`, a small fixed share of ε and δ) sizes the plan
(batch rate, training length, histogram bins) without reading n itself. Everything after it that
reads real rows is one entry in Opacus' accountant history, so that composition is exact rather
than a sum of separate ε's:

- the release of the transformers' statistics (``synthgen.dp.release``) and of the pairs
  (``synthgen.dp.pairs``): ``rounds`` Gaussian rounds, each an entry ``(release_noise,
  sample_rate=1, 1 step)``; the pair choices are exponential mechanisms with that entry's Rényi curve;
- DP-SGD on the discriminator: ``(noise_multiplier, batch/n̂, steps)``.

The plan depends on the released row count, so it is composed with it by basic (adaptive)
composition: the guarantee is ε_count + ε_rest at δ_count + δ_rest.

Noise is planned with the RDP accountant (fast, slightly conservative); the ε spent is then
computed with the PRV accountant (tighter), falling back to RDP where PRV fails, and RDP alone
when the history holds exponential-mechanism rounds (PRV's curves are those of Gaussians).
"""
from __future__ import annotations

import logging
import math
import warnings
from dataclasses import asdict, dataclass
from importlib.metadata import version
from typing import Any

import numpy as np
from scipy.stats import norm

from synthgen.errors import InvalidArgumentError

logger = logging.getLogger(__name__)

#: Default share of ε for the releases, below and above this many rows (see DPSettings).
SMALL_TABLE_ROWS = 2_500
SMALL_TABLE_SHARE, LARGE_TABLE_SHARE = 0.9, 0.7
#: Share of δ reserved for releasing category names (a key seen in one row must stay hidden).
THRESHOLD_DELTA_SHARE = 0.1
#: Shares of ε and δ for the coarse row count that sizes the plan before anything else is released.
ROW_COUNT_SHARE, ROW_COUNT_DELTA_SHARE = 0.03, 0.05
#: δ when none is given. It cannot follow n (1/(10 n) would read the rows before any budget is spent).
DEFAULT_DELTA = 1e-5
#: Above this, a noise multiplier buys nothing useful: the budget is too small for the plan.
MAX_NOISE = 1_000.0
#: PRV's discretisation grows with ε; beyond this the RDP figure is reported instead.
_PRV_MAX_EPSILON = 100.0
#: Opacus' default RDP orders stop at 63, which cannot certify an ε below about 0.2 at δ = 1e-5
#: however large the noise; higher orders make small budgets (and heavy noise) expressible.
_RDP_ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)) + [2**k for k in range(6, 14)]


@dataclass(frozen=True)
class DPSettings:
    """What the user asks for.

    ``delta`` defaults to :data:`DEFAULT_DELTA`. ``preprocessing_share`` of ε (alone) goes to the
    released column statistics and two-way tables, the rest to DP-SGD. ``critic``: whether DP-SGD
    trains a critic at all (:meth:`resolved_critic`: by default not, and the whole budget goes to
    the releases). With a critic the share defaults to 0.9 under 2,500 rows and 0.7 above;
    measured at ε = 3 (mean gap closed over 3 seeds, benchmarks/README.md): flchain
    (6,299 rows) 0.21 at 0.7, 0.27 at 0.8 and 0.02 at 0.9 (one seed at -0.35: the critic starves). ``noise_multiplier``
    set by hand instead of derived: training then stops when the budget is spent. ``unit_column``:
    rows sharing its value belong to one patient; one row per patient is kept so that one row is one
    patient. ``pairs``: release the dependent pairs' two-way tables (``synthgen.dp.pairs``).
    """

    epsilon: float
    delta: float | None = None
    max_grad_norm: float = 1.0
    preprocessing_share: float | None = None
    noise_multiplier: float | None = None
    unit_column: str | None = None
    pairs: bool = True
    critic: bool | None = None

    def resolved_critic(self) -> bool:
        """Whether a DP-SGD critic trains: as given; else yes with a share or a noise multiplier given,
        or with the pairs off (nothing else would teach the generator the table's structure); else no.

        Without a critic every unit of ε goes to the released tables and the generator is fitted to
        them alone. Measured (gap closed, benchmarks/README.md): pbc (334 rows) at ε = 3, seeds 0-2,
        0.09 with the critic and 0.14 without; flchain (6,299 rows): ε = 1 -0.08 with it (seed 0) and
        0.20 without (seeds 0-2), ε = 3 -0.00 and 0.34. At these sizes DP-SGD's critic learns mostly noise (pbc at
        ε = 3: noise multiplier about 200) and its scores push the generator at random. Larger
        tables are not measured; ``critic=True`` asks for the critic.
        """
        if self.critic is not None:
            return self.critic
        return self.preprocessing_share is not None or self.noise_multiplier is not None or not self.pairs

    def resolved_share(self, n_rows: float) -> float:
        """The share of ε for the releases: all of it when ``critic`` is False, as given, else by table size
        (see the class docstring). ``fit_private`` sets ``critic`` from :meth:`resolved_critic` before planning."""
        if self.critic is False:
            return 1.0
        if self.preprocessing_share is not None:
            return self.preprocessing_share
        return SMALL_TABLE_SHARE if n_rows < SMALL_TABLE_ROWS else LARGE_TABLE_SHARE

    def resolved_delta(self) -> float:
        """δ as given, else :data:`DEFAULT_DELTA`; checked against the released row count by :func:`plan_privacy`."""
        if not (isinstance(self.epsilon, (int, float)) and math.isfinite(self.epsilon) and self.epsilon > 0):
            raise InvalidArgumentError(f"the DP epsilon must be a positive number, got {self.epsilon!r}")
        if self.preprocessing_share is not None and not 0.0 < self.preprocessing_share < 1.0:
            raise InvalidArgumentError(f"the DP statistics share must be between 0 and 1, got {self.preprocessing_share}")
        if self.max_grad_norm <= 0:
            raise InvalidArgumentError(f"the DP clipping norm must be positive, got {self.max_grad_norm}")
        if self.noise_multiplier is not None and self.noise_multiplier <= 0:
            raise InvalidArgumentError(f"the DP noise multiplier must be positive, got {self.noise_multiplier}")
        delta = self.delta if self.delta is not None else DEFAULT_DELTA
        if not 0.0 < delta < 1.0:
            raise InvalidArgumentError(f"the DP delta must be between 0 and 1, got {delta!r}")
        return float(delta)


def _gaussian_delta(noise: float, epsilon: float) -> float:
    """Exact δ(ε) of one Gaussian mechanism with sensitivity 1 (Balle & Wang 2018, Theorem 8)."""
    return float(norm.cdf(-epsilon * noise + 0.5 / noise) - np.exp(epsilon) * norm.cdf(-epsilon * noise - 0.5 / noise))


def row_count_noise(settings: DPSettings) -> float:
    """Noise of the coarse row count: the smallest (to 0.1%) that keeps it within its shares of ε and δ."""
    epsilon, delta = settings.epsilon * ROW_COUNT_SHARE, settings.resolved_delta() * ROW_COUNT_DELTA_SHARE
    low, high = 1e-3, 1.0
    while _gaussian_delta(high, epsilon) > delta:
        low, high = high, 2 * high
    while high - low > 1e-3 * high:
        middle = (low + high) / 2
        low, high = (middle, high) if _gaussian_delta(middle, epsilon) > delta else (low, middle)
    return high


@dataclass(frozen=True)
class PrivacyPlan:
    """The noise and schedule that keep the whole fit within (ε, δ)."""

    epsilon: float
    delta: float
    threshold_delta: float
    #: The coarse row count's noise, ε and δ (composed with the rest by basic composition).
    row_count_noise: float
    row_count_epsilon: float
    row_count_delta: float
    release_noise: float
    release_rounds: int
    noise_multiplier: float
    sample_rate: float
    steps: int
    expected_batch_size: int
    max_grad_norm: float
    #: Steps asked for; more than ``steps`` when a fixed noise multiplier runs out of budget first.
    steps_requested: int
    #: How many of ``release_rounds`` are exponential-mechanism choices with a Gaussian round's
    #: Rényi curve (``synthgen.dp.pairs``). PRV would treat them as Gaussian, which they are not, so
    #: a plan with any is reported by the RDP accountant alone.
    selection_rounds: int = 0

    @property
    def rdp_only(self) -> bool:
        return self.selection_rounds > 0

    @property
    def accountant_delta(self) -> float:
        return self.delta - self.threshold_delta - self.row_count_delta

    def history(self, steps: int | None = None) -> list[tuple[float, float, int]]:
        entries = [(self.release_noise, 1.0, self.release_rounds)] if self.release_rounds else []
        taken = self.steps if steps is None else steps
        return entries + ([(self.noise_multiplier, self.sample_rate, taken)] if taken else [])


def _rdp_epsilon(history: list[tuple[float, float, int]], delta: float) -> float:
    from opacus.accountants import RDPAccountant

    if not history:
        return 0.0
    accountant = RDPAccountant()
    accountant.history = list(history)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "optimal order is the smallest alpha": only a looser bound
        return float(accountant.get_epsilon(delta=delta, alphas=_RDP_ORDERS))


def spent_epsilon(history: list[tuple[float, float, int]], delta: float, *, rdp_only: bool = False) -> tuple[float, str]:
    """ε of ``history`` at ``delta``: PRV where it works (and is allowed), else RDP; with the accountant's name."""
    from opacus.accountants import PRVAccountant

    rdp = _rdp_epsilon(history, delta)
    if not history or rdp_only or rdp > _PRV_MAX_EPSILON:
        return rdp, "RDP"
    accountant = PRVAccountant()
    accountant.history = list(history)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prv = float(accountant.get_epsilon(delta=delta))
    except Exception as exc:  # PRV's numerical domain fails for some extreme settings
        logger.info("PRV accountant failed (%s); reporting RDP", exc)
        return rdp, "RDP"
    if not math.isfinite(prv) or prv > rdp:
        return rdp, "RDP"
    return prv, "PRV"


def _smallest_noise(target: float, prefix: list[tuple[float, float, int]], sample_rate: float, steps: int,
                    delta: float) -> float | None:
    """Smallest noise multiplier (to 1%) whose entry after ``prefix`` stays within ``target``."""
    def fits(noise: float) -> bool:
        return _rdp_epsilon(prefix + ([(noise, sample_rate, steps)] if steps else []), delta) <= target

    high = 1.0
    while not fits(high):
        high *= 2
        if high > MAX_NOISE:
            return None
    low = 0.0
    while high - low > 0.01 * high:
        middle = (low + high) / 2
        low, high = (low, middle) if fits(middle) else (middle, high)
    return high


def plan_privacy(settings: DPSettings, n_rows: float, batch_size: int, steps: int, release_rounds: int,
                 *, shorten: bool = False, selection_rounds: int = 0) -> PrivacyPlan:
    """Noise for the release and for DP-SGD so that the composed ε is at most ``settings.epsilon``.

    ``selection_rounds`` of the ``release_rounds`` are exponential-mechanism rounds (see
    :attr:`PrivacyPlan.selection_rounds`); the plan is RDP throughout, so they change only the report.

    ``n_rows`` is the released (noisy) row count, never the true one. ``shorten`` (for a default
    training length): when what is left of the budget cannot pay for ``steps`` at any useful
    noise, halve them until it can, rather than refuse.
    """
    delta = settings.resolved_delta()
    if delta >= 1.0 / n_rows:
        raise InvalidArgumentError(
            f"the DP delta {delta:g} is not below 1/n for a table of about {n_rows:.0f} rows (a delta of 1/n "
            f"lets a mechanism publish one whole row); use --dp-delta {1.0 / (10 * n_rows):.2g} or smaller"
        )
    threshold_delta = delta * THRESHOLD_DELTA_SHARE
    row_delta = delta * ROW_COUNT_DELTA_SHARE
    accountant_delta = delta - threshold_delta - row_delta
    row_epsilon = settings.epsilon * ROW_COUNT_SHARE
    target = settings.epsilon - row_epsilon
    sample_rate = min(1.0, batch_size / n_rows)
    release_noise = 0.0
    prefix: list[tuple[float, float, int]] = []
    if release_rounds:
        share = settings.resolved_share(n_rows)
        found = _smallest_noise(target * share, [], 1.0, release_rounds, accountant_delta)
        if found is None:
            enough = spent_epsilon([(MAX_NOISE, 1.0, release_rounds)], accountant_delta)[0] / share
            raise InvalidArgumentError(
                f"epsilon {settings.epsilon} is too small to release even the column statistics "
                f"(its {share:g} share would need noise above {MAX_NOISE:g}); "
                f"use --dp-epsilon {enough:.2g} or more, or declare public_bounds/public_values in the metadata"
            )
        release_noise = found
        prefix = [(release_noise, 1.0, release_rounds)]
    requested = steps
    if settings.critic is False:
        if not release_rounds:
            raise InvalidArgumentError("without a DP-SGD critic there must be released tables to fit the generator to")
        noise, steps = 0.0, 0  # the generator's steps read no rows and cost nothing
    elif settings.noise_multiplier is None:
        noise = _smallest_noise(target, prefix, sample_rate, steps, accountant_delta)
        while noise is None and shorten and steps > 1:
            steps //= 2
            noise = _smallest_noise(target, prefix, sample_rate, steps, accountant_delta)
        if noise is None:
            raise InvalidArgumentError(_too_small(settings, target, n_rows, batch_size, requested, prefix, accountant_delta))
    else:
        noise = settings.noise_multiplier
        planned = steps
        steps = _affordable_steps(target, prefix, noise, sample_rate, steps, accountant_delta)
        if steps < 1:
            needed = _smallest_noise(target, prefix, sample_rate, planned, accountant_delta)
            hint = f"--dp-noise {needed:.3g} pays for all {planned} steps" if needed else "raise epsilon"
            raise InvalidArgumentError(
                f"epsilon {settings.epsilon} cannot pay for even one DP-SGD step with noise multiplier {noise:g} "
                f"and batches of {batch_size} of about {n_rows:.0f} rows; {hint}"
            )
    return PrivacyPlan(settings.epsilon, delta, threshold_delta, row_count_noise(settings), row_epsilon, row_delta,
                       release_noise, release_rounds, noise, sample_rate, steps, max(1, round(sample_rate * n_rows)),
                       settings.max_grad_norm, requested, selection_rounds)


def _affordable_steps(target: float, prefix: list, noise: float, sample_rate: float, planned: int, delta: float) -> int:
    """The most steps (≤ ``planned``) that a fixed noise multiplier can take within ``target``."""
    if _rdp_epsilon(prefix + [(noise, sample_rate, planned)], delta) <= target:
        return planned
    low, high = 0, planned  # fits(low) holds, fits(high) does not
    while high - low > 1:
        middle = (low + high) // 2
        if _rdp_epsilon(prefix + [(noise, sample_rate, middle)], delta) <= target:
            low = middle
        else:
            high = middle
    return low


def _too_small(settings: DPSettings, target: float, n_rows: float, batch_size: int, steps: int, prefix: list,
               delta: float) -> str:
    """The error for a budget that cannot pay for the plan, with settings that would work."""
    advice = []
    for fewer in (steps // 10, steps // 100, 1):
        if fewer >= 1 and _smallest_noise(target, prefix, min(1.0, batch_size / n_rows), fewer, delta):
            advice.append(f"--steps {fewer}")
            break
    smaller = max(1, batch_size // 10)
    if _smallest_noise(target, prefix, min(1.0, smaller / n_rows), steps, delta):
        advice.append(f"--batch-size {smaller}")
    hint = f"; what would work: {' or '.join(advice)}" if advice else "; raise epsilon"
    return (f"epsilon {settings.epsilon} cannot pay for {steps} DP-SGD steps with batches of {batch_size} "
            f"of about {n_rows:.0f} rows (noise multiplier would exceed {MAX_NOISE:g}){hint}")


def privacy_record(plan: PrivacyPlan, steps_taken: int, settings: DPSettings, release: dict[str, Any],
                   unit: str) -> dict[str, Any]:
    """What the model file stores and ``info``/the report show: the guarantee and how it was spent."""
    rest, accountant = spent_epsilon(plan.history(steps_taken), plan.accountant_delta, rdp_only=plan.rdp_only)
    epsilon = plan.row_count_epsilon + rest
    release_alone, _ = spent_epsilon(plan.history(0), plan.accountant_delta, rdp_only=plan.rdp_only)
    sgd_alone, _ = spent_epsilon([(plan.noise_multiplier, plan.sample_rate, steps_taken)] if steps_taken else [],
                                 plan.accountant_delta, rdp_only=plan.rdp_only)
    return {
        "epsilon": round(epsilon, 4),
        "epsilon_target": plan.epsilon,
        "delta": plan.delta,
        "accountant": accountant,
        "opacus_version": version("opacus"),
        "noise_multiplier": round(plan.noise_multiplier, 4),
        "sample_rate": plan.sample_rate,
        "expected_batch_size": plan.expected_batch_size,
        "steps": steps_taken,
        "steps_planned": plan.steps,
        "steps_requested": plan.steps_requested,
        "max_grad_norm": plan.max_grad_norm,
        "secure_rng": True,
        "privacy_unit": unit,
        "neighbouring": NEIGHBOURING,
        "reproducible": REPRODUCIBILITY,
        "spent_by": {
            "row count (coarse, sizes the plan; basic composition)": round(plan.row_count_epsilon, 4),
            _RELEASES: round(release_alone, 4),
            "discriminator DP-SGD": round(sgd_alone, 4),
            "category names (thresholding delta)": plan.threshold_delta,
        },
        "release": release,
        "plan": asdict(plan),
    }


#: What "neighbouring datasets" means for every guarantee this module states.
NEIGHBOURING = ("add/remove one patient: the guarantee holds between any table and the same table with one "
                "patient added or removed; the row count is not assumed public (it is released with noise)")
#: Why a DP fit cannot be repeated byte for byte, for ``info`` and the report.
REPRODUCIBILITY = ("not byte-reproducible: DP noise and Poisson sampling come from fresh OS entropy, never from "
                   "--seed, so nobody can replay them from the model file; --seed fixes everything else")


def statement(record: dict[str, Any]) -> str:
    """One paragraph stating the guarantee, for ``synthgen info`` and the evaluation report."""
    spent = record["spent_by"]
    return (
        f"trained with (ε={record['epsilon']:.3g}, δ={record['delta']:.2g})-DP (target ε={record['epsilon_target']:g}), "
        f"accountant: {record['accountant']} (Opacus {record['opacus_version']}); "
        f"spent by: {_row_count(spent)}{_releases_made(record)} ε={_released(spent):.3g} alone, "
        f"{_training(record)}"
        f"category names released above a noisy threshold (δ share {spent['category names (thresholding delta)']:.2g}); "
        f"secure RNG: {'yes' if record['secure_rng'] else 'no'}. "
        f"Privacy unit: {record['privacy_unit']}; neighbouring tables: {record.get('neighbouring', 'add/remove one row, n public')}. "
        f"The generator only sees {_generator_inputs(record)} "
        "(post-processing), so the guarantee covers the model file and every sample drawn from it. "
        f"The fit is {record.get('reproducible', 'seeded')}."
    )


#: The releases' entry in ``spent_by``; files from before the pair choices and tables name it differently.
_RELEASES = "column statistics, pair choices and two-way tables (Gaussian and exponential-mechanism releases)"


def _released(spent: dict[str, float]) -> float:
    """ε of the releases alone; files from before the two-way tables name it differently."""
    for key in (_RELEASES, "column statistics and two-way tables (Gaussian releases)", "column statistics (Gaussian histograms)"):
        if key in spent:
            return spent[key]
    raise KeyError("no release entry in the privacy record")


def _row_count(spent: dict[str, float]) -> str:
    """The coarse row count's share, added to the rest; files from before it have none."""
    key = "row count (coarse, sizes the plan; basic composition)"
    return f"a coarse noisy row count ε={spent[key]:.3g} (added), " if key in spent else ""


def _releases_made(record: dict[str, Any]) -> str:
    """What the release rounds released: pairs only where the fit released them (not with
    ``--dp-no-pairs``, nor for patient histories), so the statement claims no release that did not happen."""
    return "column statistics, pair choices and two-way tables" if _pairs_released(record) else "column statistics"


def _pairs_released(record: dict[str, Any]) -> bool:
    return "pairs" in record.get("release", {})


def _critic_trained(record: dict[str, Any]) -> bool:
    return not (record["steps"] == 0 and record["noise_multiplier"] == 0)


def _generator_inputs(record: dict[str, Any]) -> str:
    """What the generator learned from: the released tables, and the critic's scores when one trained."""
    released = "the released tables" if _pairs_released(record) else "the released statistics"
    return f"the discriminator's scores and {released}" if _critic_trained(record) else released


def _training(record: dict[str, Any]) -> str:
    """What DP-SGD spent and how it ran; or that no critic trained (the generator fitted to the releases)."""
    if not _critic_trained(record):
        return (f"no DP-SGD: no critic read the rows; the generator was fitted to the released {_releases_made(record)} alone "
                "(post-processing, no ε); ")
    return (f"discriminator DP-SGD ε={record['spent_by']['discriminator DP-SGD']:.3g} alone (these two composed, not added), "
            f"noise multiplier {record['noise_multiplier']:.3g}, sample rate {record['sample_rate']:.3g}, "
            f"{record['steps']} steps{_stopped(record)}, expected batch {record['expected_batch_size']}, "
            f"clipping norm {record['max_grad_norm']:g}; ")


def _stopped(record: dict[str, Any]) -> str:
    requested = record.get("steps_requested", record["steps"])
    return f" (of {requested} requested: stopped when the budget was spent)" if requested > record["steps"] else ""
