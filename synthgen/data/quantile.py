"""Numeric columns through a piecewise-linear CDF: value → normal score → one tanh output.

Built from a histogram (bin edges and counts) rather than from raw values, so the same
transformer serves differentially private training, where only a noisy histogram is released
(see ``synthgen.dp.release``). A fit on a column builds the exact histogram.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from synthgen.data.base import ColumnTransformer, Span
from synthgen.data.continuous import _as_float, int_option, is_integer_representation
from synthgen.errors import InvalidDataError

#: Normal scores are divided by this so the whole clipped range (±6.4 sd) fits inside tanh's.
_SCORE_SCALE = 6.5
#: CDF values are kept this far from 0 and 1, where the normal score is infinite.
_CDF_MARGIN = 1e-10


class QuantileTransformer(ColumnTransformer):
    """Encode a number as ``Φ⁻¹(CDF(value)) / 6.5`` from a histogram; decode through the inverse CDF.

    Empty bins (after noise, counts are floored at 0) get a small share of mass so the CDF stays
    strictly increasing and the inverse is well defined.
    """

    name = "quantile"
    handles_missing = False

    def __init__(self, bins: int = 50, integer: bool = False) -> None:
        self.bins = bins
        self.integer = integer

    @classmethod
    def from_metadata(cls, column: dict[str, Any], options: dict[str, Any]) -> QuantileTransformer:
        return cls(bins=int_option(options, "quantile_bins", 50),
                   integer=is_integer_representation(column.get("computer_representation")))

    @classmethod
    def from_histogram(cls, edges: np.ndarray, counts: np.ndarray, *, integer: bool) -> QuantileTransformer:
        """A fitted transformer from bin ``edges`` (len k+1, increasing) and ``counts`` (len k, may be noisy)."""
        transformer = cls(bins=len(counts), integer=integer)
        transformer._set_histogram(np.asarray(edges, dtype=np.float64), np.asarray(counts, dtype=np.float64))
        return transformer

    def _set_histogram(self, edges: np.ndarray, counts: np.ndarray) -> None:
        counts = np.clip(np.nan_to_num(counts), 0.0, None)
        # An empty (or all-negative noisy) histogram falls back to a uniform one over the edges.
        counts = counts + max(counts.sum(), 1.0) * 1e-3 / len(counts)
        cdf = np.concatenate([[0.0], np.cumsum(counts)])
        self.edges_ = edges
        self.cdf_ = cdf / cdf[-1]
        self.integer_ = self.integer

    def fit(self, column: pd.Series, rng: np.random.Generator) -> QuantileTransformer:
        values = _as_float(column)
        values = values[~np.isnan(values)]
        if values.size == 0:
            raise InvalidDataError("a numerical column needs at least one non-missing value to fit")
        low, high = float(values.min()), float(values.max())
        if high == low:
            low, high = low - 0.5, high + 0.5
        edges = np.linspace(low, high, self.bins + 1)
        counts, _ = np.histogram(values, bins=edges)
        self._set_histogram(edges, counts)
        self.integer_ = self.integer or pd.api.types.is_integer_dtype(column.dtype)
        return self

    @staticmethod
    def encoded_quantiles(levels: np.ndarray) -> np.ndarray:
        """Quantiles of the encoding of values that follow the fitted CDF: normal scores / scale."""
        return np.clip(ndtri(np.clip(levels, _CDF_MARGIN, 1 - _CDF_MARGIN)) / _SCORE_SCALE, -1.0, 1.0)

    @property
    def spans(self) -> list[Span]:
        self._check_fitted("cdf_")
        return [Span(1, "tanh")]

    def transform(self, column: pd.Series, rng: np.random.Generator) -> np.ndarray:
        self._check_fitted("cdf_")
        values = _as_float(column)
        if np.isnan(values).any():
            raise InvalidDataError("the quantile transformer got missing values; wrap it in a MissingIndicator")
        cdf = np.interp(values, self.edges_, self.cdf_)
        scores = ndtri(np.clip(cdf, _CDF_MARGIN, 1 - _CDF_MARGIN)) / _SCORE_SCALE
        return np.clip(scores, -1.0, 1.0).astype(np.float32).reshape(-1, 1)

    def inverse(self, data: np.ndarray, rng: np.random.Generator) -> pd.Series:
        self._check_fitted("cdf_")
        scores = np.clip(np.asarray(data, dtype=np.float64)[:, 0], -1.0, 1.0) * _SCORE_SCALE
        values = np.interp(ndtr(scores), self.cdf_, self.edges_)
        if self.integer_:
            return pd.Series(np.rint(values).astype(np.int64))
        return pd.Series(values, dtype=np.float64)

    def get_state(self) -> dict[str, Any]:
        self._check_fitted("cdf_")
        return {"bins": self.bins, "edges": self.edges_.tolist(), "cdf": self.cdf_.tolist(), "integer": self.integer_}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> QuantileTransformer:
        transformer = cls(bins=int(state["bins"]), integer=bool(state["integer"]))
        transformer.edges_ = np.array(state["edges"], dtype=np.float64)
        transformer.cdf_ = np.array(state["cdf"], dtype=np.float64)
        transformer.integer_ = bool(state["integer"])
        return transformer
