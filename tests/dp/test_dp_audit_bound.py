"""The ε lower bound of benchmarks/dp_audit.py (Steinke, Nasr & Jagielski 2023), checked against
closed forms and against simulated guessers whose true ε is known."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit, logit

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "dp_audit.py"
_spec = importlib.util.spec_from_file_location("dp_audit", _PATH)
dp_audit = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dp_audit)


def test_all_correct_guesses_reach_the_closed_form():
    # δ = 0, every guess right: the p-value is q^r, so the bound solves q^r = 0.05 exactly.
    for guesses in (20, 100, 1_000):
        expected = logit(0.05 ** (1 / guesses))
        assert dp_audit.epsilon_lower_bound(guesses, guesses, guesses, delta=0.0) == pytest.approx(expected, rel=1e-6)
    # The bound grows only like log(r): a perfect attack on 1,000 canaries certifies ε ≈ 5.8, no more;
    # a small δ barely moves it.
    perfect = logit(0.05 ** (1 / 1_000))
    assert perfect - 0.1 < dp_audit.epsilon_lower_bound(1_000, 1_000, 1_000, delta=1e-5) < perfect


def test_delta_and_abstentions_only_weaken_the_bound():
    strict = dp_audit.epsilon_lower_bound(200, 100, 90, delta=0.0)
    assert 0 < dp_audit.epsilon_lower_bound(200, 100, 90, delta=1e-5) < strict
    # The same guesses among more canaries: the δ term (2 m δ) grows, the bound falls.
    assert dp_audit.epsilon_lower_bound(20_000, 100, 90, delta=1e-5) < dp_audit.epsilon_lower_bound(200, 100, 90, delta=1e-5)
    # A δ large enough to explain every success certifies nothing.
    assert dp_audit.epsilon_lower_bound(200, 100, 100, delta=0.01) == 0.0


def test_p_value_is_the_binomial_tail_at_delta_zero():
    from scipy import stats

    assert dp_audit.audit_p_value(50, 40, 30, 1.0, 0.0) == pytest.approx(stats.binom.sf(29, 40, expit(1.0)))
    assert dp_audit.audit_p_value(50, 40, 0, 1.0, 0.0) == 1.0


def test_random_guesses_certify_nothing():
    # Guessing blindly (a fit that leaks nothing): right with probability 1/2. The bound must be 0
    # in at least 95% of audits (its confidence), and tiny on average.
    rng = np.random.default_rng(0)
    bounds = [dp_audit.epsilon_lower_bound(1_000, 200, int(rng.binomial(200, 0.5)), delta=1e-5) for _ in range(400)]
    assert np.mean(np.array(bounds) > 0) <= 0.07
    assert np.mean(bounds) < 0.02


@pytest.mark.parametrize("epsilon", [0.5, 2.0])
def test_the_bound_is_valid_and_nearly_tight_for_randomized_response(epsilon):
    # Randomized response on each canary's bit is exactly ε-DP and the worst case of the theorem:
    # the bound may exceed ε in at most 5% of runs, and with 10,000 guesses it comes within 10%.
    rng = np.random.default_rng(1)
    guesses = 10_000
    bounds = np.array([
        dp_audit.epsilon_lower_bound(guesses, guesses, int(rng.binomial(guesses, expit(epsilon))), delta=0.0)
        for _ in range(200)
    ])
    assert np.mean(bounds > epsilon) <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 200)
    assert 0.9 * epsilon < np.median(bounds) <= epsilon


def test_guessing_uses_the_extremes_and_breaks_ties_at_random():
    included = np.array([True, True, False, False, True, False])
    scores = np.array([5.0, 4.0, -3.0, -2.0, 0.0, 0.0])
    rng = np.random.default_rng(0)
    # top 2 (5, 4) are in, bottom 2 (-3, -2) are out: 4 right.
    assert dp_audit.correct_guesses(scores, included, 2, rng) == 4
    flat = np.zeros(1_000)
    ties = np.arange(1_000) < 500
    counts = [dp_audit.correct_guesses(flat, ties, 100, np.random.default_rng(s)) for s in range(20)]
    assert 80 < np.mean(counts) < 120  # no order leaks through equal scores


def test_bad_counts_are_refused():
    with pytest.raises(ValueError, match="correct <= guesses"):
        dp_audit.epsilon_lower_bound(10, 20, 5, delta=0.0)
    with pytest.raises(ValueError, match="correct <= guesses"):
        dp_audit.epsilon_lower_bound(100, 20, 21, delta=0.0)
