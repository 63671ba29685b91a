"""Mode-specific normalisation of a numeric column (the CTGAN encoding).

A Bayesian Gaussian mixture finds the modes of the column; each value is encoded as the mode it
was drawn from (one-hot) and its offset inside that mode (a scalar in [-1, 1]). Multi-modal and
skewed clinical measurements then look like several well-behaved normals to the generator.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture

from synthgen.data.base import ColumnTransformer, Span
from synthgen.errors import InvalidDataError, MetadataError

#: Mixture components lighter than this are dropped: they hold too few rows to learn.
MIN_MODE_WEIGHT = 0.005
#: A mode's std is floored at this fraction of the column's range so alpha stays finite.
STD_FLOOR = 1e-6
#: alpha is (x - mean) / (SPREAD * std): four standard deviations map to +-1.
SPREAD = 4.0
ALPHA_LIMIT = 0.99
#: Larger magnitudes are refused before training: squares and sums of such values overflow float64
#: (the mixture fit and the evaluation compute them), and no measurement is that large.
MAX_MAGNITUDE = 1e100


def int_option(options: dict[str, Any], key: str, default: int) -> int:
    """Read a positive integer synthesizer option, rejecting anything else with a clear message."""
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise MetadataError(f"option {key!r} must be an integer >= 1, got {value!r}")
    return int(value)


def inner_bounds(values: np.ndarray, count: int) -> tuple[float, float]:
    """The ``count``-th smallest and largest of ``values`` (the middle value when there are fewer).

    Decoded values are clipped here, so a training extreme held by fewer than ``count`` rows (an
    extreme is what singles a patient out) is never emitted; one held by ``count`` rows can be.
    """
    ordered = np.sort(values)
    k = max(1, min(count, (ordered.size + 1) // 2))
    return float(ordered[k - 1]), float(ordered[-k])


def is_integer_representation(representation: str | None) -> bool:
    """Whether SDV's ``computer_representation`` (``Int64``, ``UInt8``, ``Float``...) is integral."""
    return representation is not None and representation.lower().lstrip("u").startswith("int")


class ContinuousTransformer(ColumnTransformer):
    """Encode a numeric column as ``[alpha] + one-hot(mode)`` over the modes of a Gaussian mixture.

    ``integer`` forces integer output (metadata says ``Int64``); an integer dtype implies it too.
    """

    name = "numerical"
    handles_missing = False

    def __init__(self, max_modes: int = 10, gmm_max_rows: int = 10_000, integer: bool = False,
                 extreme_count: int = 5) -> None:
        self.max_modes = max_modes
        self.gmm_max_rows = gmm_max_rows
        self.extreme_count = extreme_count
        self.integer = integer

    @classmethod
    def from_metadata(cls, column: dict[str, Any], options: dict[str, Any]) -> ContinuousTransformer:
        representation = column.get("computer_representation")
        return cls(
            max_modes=int_option(options, "max_modes", 10),
            gmm_max_rows=int_option(options, "gmm_max_rows", 10_000),
            integer=is_integer_representation(representation),
            extreme_count=int_option(options, "min_category_count", 5),
        )

    def fit(self, column: pd.Series, rng: np.random.Generator) -> ContinuousTransformer:
        values = _as_float(column)
        values = values[~np.isnan(values)]
        if values.size == 0:
            raise InvalidDataError("a numerical column needs at least one non-missing value to fit")
        low, high = float(values.min()), float(values.max())
        scale = high - low if high > low else max(abs(high), 1.0)
        means, stds, weights = self._fit_modes(values, rng)
        self.means_ = means
        self.stds_ = np.maximum(stds, STD_FLOOR * scale)
        self.weights_ = weights
        self.min_, self.max_ = inner_bounds(values, self.extreme_count)
        self.integer_ = self.integer or pd.api.types.is_integer_dtype(column.dtype)
        return self

    def _fit_modes(self, values: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """Means, stds and weights of the kept mixture modes; one mode for a constant column."""
        seed = int(rng.integers(2**31 - 1))
        if values.size > self.gmm_max_rows:
            values = values[rng.choice(values.size, size=self.gmm_max_rows, replace=False)]
        n_distinct = np.unique(values).size
        if n_distinct == 1:
            return np.array([values[0]]), np.zeros(1), np.ones(1)
        # Fit on standardised values: the mixture's priors and reg_covar are absolute, so raw
        # magnitudes (epoch seconds, lab values in the thousands) would distort the fit.
        centre, spread = values.mean(), values.std()
        gmm = BayesianGaussianMixture(
            n_components=min(self.max_modes, n_distinct),
            weight_concentration_prior_type="dirichlet_process",
            weight_concentration_prior=1e-3,
            n_init=1,
            random_state=seed,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gmm.fit(((values - centre) / spread).reshape(-1, 1))
        keep = gmm.weights_ > MIN_MODE_WEIGHT
        if not keep.any():
            keep[np.argmax(gmm.weights_)] = True
        means = gmm.means_[keep, 0] * spread + centre
        stds = np.sqrt(gmm.covariances_[keep].reshape(-1)) * spread
        return means, stds, gmm.weights_[keep]

    @property
    def spans(self) -> list[Span]:
        self._check_fitted("means_")
        return [Span(1, "tanh"), Span(len(self.means_), "softmax")]

    def transform(self, column: pd.Series, rng: np.random.Generator) -> np.ndarray:
        """Sample each row's mode from its posterior, then normalise the value inside that mode."""
        self._check_fitted("means_")
        values = _as_float(column)
        if np.isnan(values).any():
            raise InvalidDataError(
                "the numerical transformer got missing values; wrap it in a MissingIndicator"
            )
        z = (values[:, None] - self.means_) / self.stds_
        log_post = -0.5 * z**2 - np.log(self.stds_) + np.log(self.weights_)
        posterior = np.exp(log_post - log_post.max(axis=1, keepdims=True))
        cumulative = np.cumsum(posterior, axis=1)
        draws = rng.random(values.size)[:, None] * cumulative[:, -1:]
        modes = np.minimum((cumulative < draws).sum(axis=1), len(self.means_) - 1)
        rows = np.arange(values.size)
        encoded = np.zeros((values.size, 1 + len(self.means_)), dtype=np.float32)
        encoded[:, 0] = np.clip(z[rows, modes] / SPREAD, -ALPHA_LIMIT, ALPHA_LIMIT)
        encoded[rows, 1 + modes] = 1.0
        return encoded

    def inverse(self, data: np.ndarray, rng: np.random.Generator) -> pd.Series:
        """Undo the normalisation in the arg-max mode; clip into the inner bounds (see :func:`inner_bounds`)."""
        self._check_fitted("means_")
        data = np.asarray(data, dtype=np.float64)
        alpha = np.clip(data[:, 0], -1.0, 1.0)
        modes = np.argmax(data[:, 1:], axis=1)
        values = np.clip(alpha * SPREAD * self.stds_[modes] + self.means_[modes], self.min_, self.max_)
        if self.integer_:
            return pd.Series(np.rint(values).astype(np.int64))
        return pd.Series(values, dtype=np.float64)

    def get_state(self) -> dict[str, Any]:
        self._check_fitted("means_")
        return {
            "max_modes": self.max_modes,
            "gmm_max_rows": self.gmm_max_rows,
            "means": self.means_.tolist(),
            "stds": self.stds_.tolist(),
            "weights": self.weights_.tolist(),
            "min": self.min_,
            "max": self.max_,
            "integer": self.integer_,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ContinuousTransformer:
        transformer = cls(max_modes=state["max_modes"], gmm_max_rows=state["gmm_max_rows"], integer=state["integer"])
        transformer.means_ = np.array(state["means"], dtype=np.float64)
        transformer.stds_ = np.array(state["stds"], dtype=np.float64)
        transformer.weights_ = np.array(state["weights"], dtype=np.float64)
        transformer.min_, transformer.max_ = float(state["min"]), float(state["max"])
        transformer.integer_ = bool(state["integer"])
        return transformer


def _as_float(column: pd.Series) -> np.ndarray:
    """The column as float64 with NaN for missing; non-numeric or infinite values are rejected."""
    try:
        values = pd.to_numeric(column, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        raise InvalidDataError("a numerical column holds values that are not numbers") from None
    beyond = np.abs(values) > MAX_MAGNITUDE  # NaN compares False; inf is beyond
    if beyond.any():
        first = int(np.argmax(beyond))
        label = column.index[first]
        label = label.item() if isinstance(label, np.generic) else label
        raise InvalidDataError(
            f"a numerical column holds {float(values[first])!r} (row {label!r}); numbers beyond "
            f"±{MAX_MAGNITUDE:g} and infinite ones cannot be modelled: fix the cell or make it missing"
        )
    return values
