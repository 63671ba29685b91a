"""Identifier columns (patient numbers, record keys): never modelled, regenerated fresh.

An ID carries no statistical signal and is the most identifying value in the table, so nothing
about the values is learned, not even a common prefix; only whether they are integers or strings.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from synthgen.data.base import ColumnTransformer, Span

#: Fresh integer IDs are drawn below this bound so they stay exact in float64 and JavaScript.
MAX_INT_ID = 2**53
HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


class IdentifierTransformer(ColumnTransformer):
    """Encode an ID column as zero model columns; decode to fresh random integers or UUID4 strings."""

    name = "id"
    handles_missing = True

    def fit(self, column: pd.Series, rng: np.random.Generator) -> IdentifierTransformer:
        present = column.dropna()
        numeric = pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype)
        integral = numeric and bool(np.all(present.to_numpy(dtype=np.float64) % 1 == 0))
        self.kind_ = "integer" if integral else "string"
        return self

    @property
    def spans(self) -> list[Span]:
        self._check_fitted("kind_")
        return []

    def transform(self, column: pd.Series, rng: np.random.Generator) -> np.ndarray:
        self._check_fitted("kind_")
        return np.zeros((len(column), 0), dtype=np.float32)

    def inverse(self, data: np.ndarray, rng: np.random.Generator) -> pd.Series:
        """``data.shape[0]`` fresh IDs: distinct int64 values, or UUID4 strings from ``rng`` bytes."""
        self._check_fitted("kind_")
        n_rows = np.asarray(data).shape[0]
        if self.kind_ == "integer":
            return pd.Series(_distinct_integers(n_rows, rng), dtype=np.int64)
        return pd.Series(_uuid4_strings(n_rows, rng), dtype=object)

    def get_state(self) -> dict[str, Any]:
        self._check_fitted("kind_")
        return {"kind": self.kind_}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> IdentifierTransformer:
        transformer = cls()
        transformer.kind_ = state["kind"]
        return transformer


def _distinct_integers(n_rows: int, rng: np.random.Generator) -> np.ndarray:
    """Random positive int64 values below 2**53, redrawing the (rare) duplicates until all differ."""
    values = rng.integers(1, MAX_INT_ID, size=n_rows, dtype=np.int64)
    while True:
        _, first = np.unique(values, return_index=True)
        duplicate = np.ones(n_rows, dtype=bool)
        duplicate[first] = False
        if not duplicate.any():
            return values
        values[duplicate] = rng.integers(1, MAX_INT_ID, size=int(duplicate.sum()), dtype=np.int64)


def _uuid4_strings(n_rows: int, rng: np.random.Generator) -> np.ndarray:
    """Random version-4 UUIDs as ``8-4-4-4-12`` hex strings, built without a per-row loop."""
    raw = rng.integers(0, 256, size=(n_rows, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    return uuid_strings(raw)


def uuid_strings(raw: np.ndarray) -> np.ndarray:
    """Each row of 16 bytes (uint8) as a ``8-4-4-4-12`` hex string, built without a per-row loop."""
    n_rows = raw.shape[0]
    hex_chars = np.stack([HEX_DIGITS[raw >> 4], HEX_DIGITS[raw & 0x0F]], axis=2).reshape(n_rows, 32)
    chars = np.insert(hex_chars, [8, 12, 16, 20], ord("-"), axis=1)  # dashes of 8-4-4-4-12
    return chars.view("S36").ravel().astype("U36").astype(object)
