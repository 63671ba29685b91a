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
#: A column counts as recorded to a number of decimals, or of significant digits, when at least
#: this share of its training values is; sampled values are rounded the same way (a lab value
#: printed to 15 digits gives a row away, to a detector as to a reader).
GRID_SHARE = 0.99
#: Finer than this is float noise, not how a value was recorded.
MAX_DECIMALS, MAX_SIGNIFICANT = 10, 15
#: The recording precision is read from at most this many evenly spaced values.
GRID_ROWS = 10_000


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


def recorded_precision(values: np.ndarray) -> tuple[int | None, int | None]:
    """The fewest decimals, and the fewest significant digits, that hold ``GRID_SHARE`` of the
    (finite) ``values`` as written (the shortest decimal that reads back as the value: 1.41, not
    1.4099999999999999); None where no count up to ``MAX_DECIMALS`` / ``MAX_SIGNIFICANT`` does."""
    if values.size > GRID_ROWS:
        values = values[np.linspace(0, values.size - 1, GRID_ROWS).round().astype(np.int64)]
    decimals, significant = np.empty(values.size), np.empty(values.size)
    for index, value in enumerate(values):
        written = np.format_float_positional(abs(value), unique=True, trim="-")
        whole, _, fraction = written.partition(".")
        digits = (whole + fraction).lstrip("0")
        decimals[index] = len(fraction)
        significant[index] = len(digits if fraction else digits.rstrip("0")) or 1
    return _fewest(decimals, MAX_DECIMALS), _fewest(significant, MAX_SIGNIFICANT)


def _fewest(counts: np.ndarray, most: int) -> int | None:
    """The smallest count at or above which ``GRID_SHARE`` of ``counts`` lie, if at most ``most``."""
    fewest = int(np.quantile(counts, GRID_SHARE, method="higher"))
    return fewest if fewest <= most else None


def round_to_precision(values: np.ndarray, decimals: int | None, significant: int | None) -> np.ndarray:
    """``values`` rounded to ``decimals`` decimals and to ``significant`` significant digits,
    whichever is coarser for each value (None: no such limit); NaN stays NaN, zero stays zero."""
    if decimals is None and significant is None:
        return values
    places = np.full(values.shape, np.inf if decimals is None else float(decimals))
    if significant is not None:
        sized = np.isfinite(values) & (values != 0)
        magnitude = np.floor(np.log10(np.abs(values[sized])))
        places[sized] = np.minimum(places[sized], significant - 1 - magnitude)
    rounded = values.copy()
    for count in np.unique(places[np.isfinite(places)]):
        at = places == count
        rounded[at] = np.round(values[at], int(count))
    return rounded


def is_integer_representation(representation: str | None) -> bool:
    """Whether SDV's ``computer_representation`` (``Int64``, ``UInt8``, ``Float``...) is integral."""
    return representation is not None and representation.lower().lstrip("u").startswith("int")


class ContinuousTransformer(ColumnTransformer):
    """Encode a numeric column as ``[alpha] + one-hot(mode)`` over the modes of a Gaussian mixture.

    ``integer`` forces integer output (metadata says ``Int64``); an integer dtype implies it too.
    With ``precision`` a float column learns how its values were recorded (:func:`recorded_precision`),
    which :meth:`round` applies to sampled values; ``drop_precision`` forgets it.
    """

    name = "numerical"
    handles_missing = False

    def __init__(self, max_modes: int = 10, gmm_max_rows: int = 10_000, integer: bool = False,
                 extreme_count: int = 5, precision: bool = True) -> None:
        self.max_modes = max_modes
        self.gmm_max_rows = gmm_max_rows
        self.extreme_count = extreme_count
        self.integer = integer
        self.precision = precision

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
        self.decimals_, self.significant_ = (recorded_precision(values) if self.precision and not self.integer_
                                             else (None, None))
        return self

    @property
    def rounds(self) -> bool:
        """Whether :meth:`round` changes values (a recording precision was learned and kept)."""
        return self.decimals_ is not None or self.significant_ is not None

    def describe_precision(self) -> str:
        """How sampled values are rounded, e.g. "2 decimals, 3 significant digits"."""
        parts = [f"{self.decimals_} decimal{'s' * (self.decimals_ != 1)}"] if self.decimals_ is not None else []
        if self.significant_ is not None:
            parts.append(f"{self.significant_} significant digit{'s' * (self.significant_ != 1)}")
        return ", ".join(parts)

    def round(self, column: pd.Series) -> pd.Series:
        """``column`` (sampled values, possibly calibrated) rounded as the training values were recorded."""
        if not self.rounds:
            return column
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        return pd.Series(round_to_precision(values, self.decimals_, self.significant_), index=column.index,
                         name=column.name)

    def drop_precision(self) -> None:
        self.decimals_ = self.significant_ = None

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
            **({"decimals": self.decimals_} if self.decimals_ is not None else {}),
            **({"significant": self.significant_} if self.significant_ is not None else {}),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ContinuousTransformer:
        transformer = cls(max_modes=state["max_modes"], gmm_max_rows=state["gmm_max_rows"], integer=state["integer"])
        transformer.means_ = np.array(state["means"], dtype=np.float64)
        transformer.stds_ = np.array(state["stds"], dtype=np.float64)
        transformer.weights_ = np.array(state["weights"], dtype=np.float64)
        transformer.min_, transformer.max_ = float(state["min"]), float(state["max"])
        transformer.integer_ = bool(state["integer"])
        transformer.decimals_ = _count(state.get("decimals"), 0, MAX_DECIMALS, "decimals")
        transformer.significant_ = _count(state.get("significant"), 1, MAX_SIGNIFICANT, "significant digits")
        return transformer


def _count(value: Any, low: int, high: int, what: str) -> int | None:
    """A stored digit count: None (absent), or an integer in [low, high]; anything else is refused."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"a numerical column's {what} must be an integer from {low} to {high}, got {value!r}")
    return value


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
