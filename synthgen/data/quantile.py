"""Numeric columns through a piecewise-linear CDF: value → normal score → one tanh output.

The CDF is given by knots (``edges_``) and their probabilities (``cdf_``). A fit on a column puts
the knots at equally spaced quantiles, so every knot interval holds the same share of rows, in the
bulk of a skewed lab value as much as in its tail. Under differential privacy the same transformer
is built from a noisy histogram instead (see ``synthgen.dp.release``). Every column's encoding then
follows the same distribution (a normal, scaled into tanh's range), which the generator learns
easily and which sampling can calibrate onto exactly (``MarginalCalibration``).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from synthgen.data.base import ColumnTransformer, Span
from synthgen.data.continuous import _as_float, inner_bounds, int_option, is_integer_representation
from synthgen.errors import InvalidDataError

#: Normal scores are divided by this so the whole clipped range (±6.4 sd) fits inside tanh's.
_SCORE_SCALE = 6.5
#: CDF values are kept this far from 0 and 1, where the normal score is infinite.
_CDF_MARGIN = 1e-10


class QuantileTransformer(ColumnTransformer):
    """Encode a number as ``Φ⁻¹(CDF(value)) / 6.5``; decode through the inverse CDF.

    ``bins`` knot intervals of equal probability when fitted on a column. Values tied at a knot
    (discrete or integer columns) are spread uniformly over the probability their ties hold, so the
    encoding stays continuous and the decoding gives the tied value back. A histogram (DP) keeps
    empty bins at a small share of mass so the CDF stays strictly increasing.
    """

    name = "quantile"
    handles_missing = False

    def __init__(self, bins: int = 100, integer: bool = False, extreme_count: int = 5) -> None:
        self.bins = bins
        self.integer = integer
        self.extreme_count = extreme_count

    @classmethod
    def from_metadata(cls, column: dict[str, Any], options: dict[str, Any]) -> QuantileTransformer:
        return cls(bins=int_option(options, "quantile_bins", 100),
                   integer=is_integer_representation(column.get("computer_representation")),
                   extreme_count=int_option(options, "min_category_count", 5))

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
        if values.min() == values.max():
            self.edges_ = np.array([values[0] - 0.5, values[0] + 0.5])
            self.cdf_ = np.array([0.0, 1.0])
        else:
            self.cdf_ = np.linspace(0.0, 1.0, self.bins + 1)
            # The outer knots stop at the inner bounds: no rare training extreme is emitted.
            self.edges_ = np.clip(np.quantile(values, self.cdf_), *inner_bounds(values, self.extreme_count))
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
        probability = piecewise_cdf(values, self.edges_, self.cdf_, rng)
        scores = ndtri(np.clip(probability, _CDF_MARGIN, 1 - _CDF_MARGIN)) / _SCORE_SCALE
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


def piecewise_cdf(values: np.ndarray, knots: np.ndarray, probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The CDF through ``(knots, probabilities)`` at ``values``, linear between knots.

    ``knots`` may repeat (a point mass, as quantiles of a discrete or clipped column give): a value
    on tied knots gets a uniform draw over the probability they span, so point masses are spread
    rather than piled onto one probability. Values outside the knots get 0 or 1.
    """
    left = np.searchsorted(knots, values, side="left")
    right = np.searchsorted(knots, values, side="right")
    # np.interp needs distinct knots, so interpolate by hand.
    upper = np.clip(left, 1, len(knots) - 1)
    x0, x1, p0, p1 = knots[upper - 1], knots[upper], probabilities[upper - 1], probabilities[upper]
    width = np.where(x1 > x0, x1 - x0, 1.0)
    probability = np.clip(p0 + (values - x0) / width * (p1 - p0), 0.0, 1.0)
    tied = right > left
    low = probabilities[np.minimum(left, len(probabilities) - 1)]
    high = probabilities[np.maximum(right - 1, 0)]
    return np.where(tied, low + rng.random(values.size) * (high - low), probability)


def column_numbers(column: pd.Series) -> np.ndarray:
    """A column as float64 numbers, NaN where a cell is missing or not a number."""
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
