"""Randomness that protects privacy: drawn from the operating system's CSPRNG, never from the seed.

DP noise and Poisson sampling hide real rows only while nobody can regenerate them. A seed stored
in the model file (or one an attacker can guess) would let anyone replay the noise and subtract it
from the released counts, so these draws never touch ``--seed``; the non-private randomness
(initialisation, fakes, sampling) stays seeded and reproducible.

- Release noise (counts, scores, two-way tables) is computed here from ``os.urandom`` bytes: each
  normal is the scaled sum of four Box-Muller normals, as Opacus' secure mode does against the
  floating-point attacks on naive Gaussian samplers (Holohan & Braghin 2021).
- DP-SGD runs on the training device, where per-step host bytes would stall the loop: its torch
  generator is re-keyed with 64 fresh OS bits before every step (:meth:`PrivateRandom.key`), and
  Opacus' ``secure_mode`` sums four normals per coordinate. (Opacus' fully cryptographic generator
  needs torchcsprng, which is not maintained for current torch.)
"""
from __future__ import annotations

import os
import secrets

import numpy as np

#: Opacus' secure mode: the sum of this many normals, scaled by 1/√n, replaces one normal.
_SECURE_TERMS = 4


class PrivateRandom:
    """A source of privacy-protecting randomness with the slice of numpy's API the releases use."""

    def uniform(self, size: int) -> np.ndarray:
        """``size`` floats in (0, 1), 53 random bits each."""
        words = np.frombuffer(os.urandom(8 * size), dtype=np.uint64) >> np.uint64(11)
        return (words.astype(np.float64) + 0.5) * 2.0**-53

    def normal(self, loc: float = 0.0, scale: float = 1.0, size: int | tuple[int, ...] | None = None) -> np.ndarray | float:
        """Gaussian draws like ``numpy.random.Generator.normal``."""
        shape = () if size is None else (size,) if isinstance(size, (int, np.integer)) else tuple(size)
        count = int(np.prod(shape, dtype=np.int64))
        pairs = (count * _SECURE_TERMS + 1) // 2
        radius = np.sqrt(-2.0 * np.log(self.uniform(pairs)))
        angle = 2.0 * np.pi * self.uniform(pairs)
        normals = np.concatenate([radius * np.cos(angle), radius * np.sin(angle)])[: count * _SECURE_TERMS]
        draws = normals.reshape(count, _SECURE_TERMS).sum(axis=1) / np.sqrt(_SECURE_TERMS)
        draws = loc + scale * draws.reshape(shape)
        return float(draws) if size is None else draws

    def exponential(self, utility: np.ndarray, epsilon: float, sensitivity: float = 1.0) -> int:
        """The exponential mechanism: index i with probability ∝ exp(ε · utility[i] / (2 · sensitivity)).

        Sampled by inverting the cumulative probabilities with one CSPRNG uniform. It is ε-DP, and
        (being ε-bounded-range) ε²/8-zCDP (Cesar & Rogers 2021), which is how it is accounted.
        """
        logits = epsilon * np.asarray(utility, dtype=np.float64) / (2.0 * sensitivity)
        weights = np.exp(logits - logits.max())
        cumulative = np.cumsum(weights / weights.sum())
        return int(min(np.searchsorted(cumulative, self.uniform(1)[0], side="right"), len(cumulative) - 1))

    @staticmethod
    def generator() -> np.random.Generator:
        """A numpy generator seeded from 128 OS bits, for the per-row draws made before a release
        (gap fills, encoding jitter). Seeded draws taken in row order would shift every later row's
        draw when a row is inserted, so two neighbouring tables would be encoded differently in many
        rows; fresh draws are independent of a row's position and cannot be replayed."""
        return np.random.default_rng(secrets.randbits(128))

    @staticmethod
    def key() -> int:
        """64 fresh bits to key a torch generator for one DP-SGD step."""
        return secrets.randbits(64)
