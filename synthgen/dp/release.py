"""Differentially private column statistics: the transformers' fitted state, paid for from ε.

Without DP, the transformers read raw columns (mixture modes, exact ranges, category lists). Under
DP they are built only from what this module releases, with Gaussian noise:

- round 1 (numeric columns without public bounds): counts over fixed power-of-two bins
  (±2⁻¹⁰ … ±2⁴⁰, dates ±2³² s); the outermost bins whose noisy count clears 4σ give the bounds.
- round 2: a histogram of each numeric column inside its bounds, its bins over the occupied
  power-of-two range and one bin for each margin (plus a missing-value bin), counts
  of each categorical column's values (plus missing), and the number of rows. Category *names* come
  from the data, so a name is released only when its noisy count clears a threshold set so that a
  name held by one row leaks with probability below ``threshold_delta`` (stability-based
  histogram); unreleased names are pooled into the rare label, whose weight is the released row
  count less the released counts (post-processing: nothing unreleased is summed).

The privacy unit is one row (one patient) added or removed, and the row count is private too: it
is released in round 2, and before any release as a coarse count of its own
(:func:`release_row_count`) that sizes the plan. Sensitivity: a row adds one to exactly one bin of
every histogram of a round (its value's bin, or the missing bin) and one to the row count, and
changes nothing else, so a round of k histograms (plus the count) is one Gaussian mechanism with L2
sensitivity √k (√(k + 1)); ``synthgen.dp.accounting`` composes it with DP-SGD. Values the metadata
declares public (``"public_bounds": [low, high]`` on a numerical column, ``"public_values": [...]``
on a categorical one) skip round 1 or the threshold. The schema (column names, kinds, the declared
``computer_representation`` and ``datetime_format``) comes from the declared metadata alone: no
dtype, kind or format is read from the rows. Every draw comes from :class:`PrivateRandom`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtri

from synthgen.data.base import ColumnTransformer
from synthgen.data.categorical import BooleanTransformer, CategoricalTransformer, _distinct_label, _dtype_kind, _native
from synthgen.data.continuous import _as_float, is_integer_representation
from synthgen.data.datetime import DatetimeTransformer
from synthgen.data.identifier import IdentifierTransformer
from synthgen.data.missing import MissingIndicator
from synthgen.data.quantile import QuantileTransformer
from synthgen.dp.entropy import PrivateRandom
from synthgen.errors import InvalidDataError, MetadataError
from synthgen.metadata import Metadata

#: Power-of-two bin edges run from 2**-10 to 2**TOP; dates (epoch seconds) stop at 2**32 s
#: (year 2106 either side of 1970), inside what pandas timestamps can hold.
_TOP_EXPONENT = {"numerical": 40, "datetime": 32}
#: Noisy counts must clear this many noise standard deviations to count as occupied bins.
_OCCUPIED_SIGMAS = 4.0
#: An occupied bin with no occupied neighbour must clear what noise alone reaches in any of the
#: ~100 bins with this probability: at 4σ one bin of noise, far from the values, stretched the
#: bounds by orders of magnitude in about 0.3% of releases.
_LONE_BIN_FALSE_RATE = 1e-6
#: Without an occupied bin, the values are sought in this many adjacent bins, and the end bins of
#: those that do not clear this many σ are dropped (``_mode_bins``).
_MODE_WINDOW = 3
_MODE_SIGMAS = 2.0
#: Occupied power-of-two bins are widened by this many bins each way: at 4σ a tail of a few dozen
#: rows does not count as occupied, and clipping it onto the bounds made spikes no calibration
#: undoes (pbc at ε = 3: 9-29% of some columns clipped).
_BOUND_MARGIN = 1
#: A missing level (or indicator) is kept when the noisy count of gaps clears this many σ, or this
#: share of the released rows where that is lower (``_missing_threshold``): a wrong "no gaps" loses
#: the column's missingness pattern, a wrong "gaps" costs a level of small frequency.
_MISSING_SIGMAS = 2.0
_MISSING_SHARE = 0.1
#: Positive bounds at least this far apart (a ratio) get log-spaced histogram bins.
_LOG_BINS_RATIO = 8.0
_MAX_FINE_BINS = 50
_MIN_FINE_BINS = 5

#: Released as a histogram over numbers (datetimes as epoch seconds).
_NUMERIC = ("numerical", "datetime")
_CATEGORICAL = ("categorical", "boolean")
#: Every sdtype the release has statistics for (identifiers get none).
RELEASED_SDTYPES = _NUMERIC + _CATEGORICAL


def _coarse_edges(top: int) -> np.ndarray:
    positive = 2.0 ** np.arange(-10, top + 1)
    return np.concatenate([-positive[::-1], positive])  # the bin between ±2⁻¹⁰ holds zero


def release_row_count(n_rows: int, noise: float, private: PrivateRandom) -> float:
    """The row count plus Gaussian noise of ``noise`` (sensitivity 1: a row adds one), at least 1."""
    return max(1.0, n_rows + private.normal(0.0, noise))


def unbounded_columns(metadata: Metadata) -> list[str]:
    """The numeric and date columns without declared ``public_bounds``: their ranges cost a round."""
    return [name for name, spec in metadata.columns.items() if spec.get("sdtype") in _NUMERIC and "public_bounds" not in spec]


def release_rounds(metadata: Metadata) -> int:
    """How many Gaussian rounds the release of this table's statistics takes (0, 1 or 2)."""
    if unbounded_columns(metadata):
        return 2
    return 1 if any(spec.get("sdtype") in RELEASED_SDTYPES for spec in metadata.columns.values()) else 0


@dataclass
class Release:
    """Fitted transformers built from noisy statistics, plus what was released, for the record."""

    transformers: dict[str, ColumnTransformer]
    #: Noisy frequencies of every conditional column's categories, in ``categories`` order.
    category_counts: dict[str, np.ndarray]
    #: The released (noisy) row count, for everything downstream that needs n.
    rows: float
    record: dict[str, Any] = field(default_factory=dict)

    def fill_unreleased_gaps(self, data: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        """Fill missing values in columns whose released statistics showed no gaps.

        Whether a column has gaps is itself decided from a noisy count; where the answer is "no",
        the few real gaps are filled with draws from the released distribution (decoding a random
        encoding), so the encoding needs no missing level and learns nothing from the rows beyond DP.
        """
        filled = data.copy()
        for name, transformer in self.transformers.items():
            gaps = filled[name].isna().to_numpy()
            if not gaps.any() or transformer.handles_missing and _encodes_gaps(transformer):
                continue
            if not transformer.spans:
                continue
            weights = self.category_counts.get(name)
            draws = transformer.inverse(_random_encoding(transformer, int(gaps.sum()), rng, weights), rng)
            numeric_draws = draws.dtype != object  # the rare label (a string) needs an object column
            column = filled[name].copy() if filled[name].dtype.kind not in "iub" and numeric_draws else filled[name].astype(object)
            column[gaps] = draws.to_numpy()
            try:
                filled[name] = column.astype(data[name].dtype) if data[name].dtype.kind not in "iub" else column
            except (TypeError, ValueError):  # a draw of the rare label (a string) in a numeric column
                filled[name] = column
        return filled

    def fill_encoded_gaps(self, data: pd.DataFrame, encoded: np.ndarray, slices: dict[str, slice],
                          rng: np.random.Generator) -> np.ndarray:
        """Give gaps under a missing indicator an inner encoding drawn from the released distribution.

        A missing indicator fills a gap with a copy of another row's value, which would put one
        patient's value into other examples of DP-SGD, beyond what per-example clipping bounds.
        """
        for name, transformer in self.transformers.items():
            gaps = data[name].isna().to_numpy()
            if isinstance(transformer, MissingIndicator) and gaps.any():
                inner = slice(slices[name].start, slices[name].stop - 2)
                encoded[gaps, inner] = _random_encoding(transformer.inner, int(gaps.sum()), rng)
        return encoded


def outside_public_values_as_gaps(data: pd.DataFrame, metadata: Metadata) -> tuple[pd.DataFrame, list[str]]:
    """``data`` with every value outside its column's declared ``public_values`` made a gap, and the
    names of the columns that held such values.

    Under DP a value outside the public domain must not stop the fit or reach the model: refusing
    the table (as this did) made one patient's value decide whether a model is released, and an
    error naming the value invited adding it to ``public_values``, which would publish it without
    noise. So it becomes a gap, counted in the column's noisy count of gaps like any other.
    """
    outside_columns = []
    conformed = data
    for name, spec in metadata.columns.items():
        public = spec.get("public_values")
        if spec.get("sdtype") != "categorical" or not isinstance(public, list) or not public or name not in data:
            continue
        domain = {_native(value) for value in public}
        column = data[name]
        present = column.notna().to_numpy()
        outside = present & ~np.fromiter((_native(value) in domain for value in column), dtype=bool, count=len(column))
        if outside.any():
            if conformed is data:
                conformed = data.copy()
            conformed[name] = column.where(~outside)
            outside_columns.append(name)
    return conformed, outside_columns


def release_statistics(data: pd.DataFrame, metadata: Metadata, noise: float, rounds: int,
                       threshold_delta: float, *, rows_hint: float, private: PrivateRandom | None = None) -> Release:
    """Build every column's transformer from Gaussian-noised statistics with noise multiplier ``noise``.

    ``rows_hint`` is an already released row count; it sizes the histograms (never the true n).
    """
    rng = private or PrivateRandom()
    metadata.validate(data)
    data = outside_public_values_as_gaps(data, metadata)[0]
    specs = metadata.columns
    numeric = [name for name, spec in specs.items() if spec.get("sdtype") in _NUMERIC]
    needs_bounds = unbounded_columns(metadata)
    levelled = [name for name, spec in specs.items() if spec.get("sdtype") in _CATEGORICAL]
    record: dict[str, Any] = {"noise_multiplier": noise, "rounds": rounds, "columns": {}}

    bounds: dict[str, tuple[float, float]] = {}
    occupied: dict[str, tuple[float, float]] = {}
    if needs_bounds:
        sigma = noise * np.sqrt(len(needs_bounds))  # one bin per histogram: sensitivity √histograms
        for name in needs_bounds:
            edges = _coarse_edges(_TOP_EXPONENT[specs[name]["sdtype"]])
            values = _numbers(data[name], name, specs[name])
            counts = _bin_counts(values[~np.isnan(values)], edges) + rng.normal(0.0, sigma, len(edges) + 1)
            low, high, occupied_low, occupied_high = _bounds_from_coarse(counts, edges, sigma)
            bounds[name], occupied[name] = (low, high), (occupied_low, occupied_high)
            record["columns"][name] = {"bounds": "DP (power-of-two bins)"}
    for name in numeric:
        if name in specs and "public_bounds" in specs[name]:
            low, high = _public_bounds(name, specs[name]["public_bounds"])
            bounds[name] = (low, high)
            record["columns"][name] = {"bounds": "public (metadata)"}

    private_levels = [name for name in levelled if specs[name].get("sdtype") == "categorical" and "public_values" not in specs[name]]
    second_round = numeric + levelled
    sigma = noise * np.sqrt(len(second_round) + 1)  # one bin per histogram, and the row count
    # A name held by one row is released only if 1 + noise clears this: probability ≤ threshold_delta
    # summed over the columns whose names are private (one row holds one name per column).
    threshold = 1.0 + sigma * float(ndtri(1.0 - threshold_delta / max(1, len(private_levels))))
    record["noise_std_per_count"] = float(sigma)
    record["category_threshold"] = float(threshold)
    rows = max(1.0, len(data) + rng.normal(0.0, sigma))
    fine_bins = int(np.clip(rows_hint / (10 * sigma), _MIN_FINE_BINS, _MAX_FINE_BINS))

    transformers: dict[str, ColumnTransformer] = {}
    category_counts: dict[str, np.ndarray] = {}
    for name, spec in specs.items():
        column = data[name]
        kind = spec.get("sdtype")
        if kind in _NUMERIC:
            transformers[name] = _numeric(column, name, spec, bounds[name], occupied.get(name, bounds[name]), fine_bins,
                                          sigma, rows, rng)
            record["columns"].setdefault(name, {})["histogram bins"] = fine_bins
        elif kind == "boolean":
            transformer, counts = _boolean(column, sigma, rows, rng)
            transformers[name], category_counts[name] = transformer, counts
        elif kind == "categorical":
            transformer, counts, shown = _categorical(column, name, spec, sigma, threshold, rows, rng)
            transformers[name], category_counts[name] = transformer, counts
            record["columns"][name] = shown
        elif kind == "id":
            integral = is_integer_representation(spec.get("computer_representation"))
            transformers[name] = IdentifierTransformer.from_state({"kind": "integer" if integral else "string"})
        else:
            raise MetadataError(f"column {name!r}: differentially private training has no release for sdtype {kind!r}")
    record["rows"] = "DP (noisy count)"
    return Release(transformers, category_counts, rows, record)


def _missing_threshold(sigma: float, rows: float) -> float:
    """The noisy count of gaps above which a column keeps a missing level: 2σ, or ``_MISSING_SHARE``
    of the released rows where that is lower. Dropping a column's gaps loses them for good, while a
    level of few gaps costs little; 2σ alone is 25% of pbc's 334 rows at ε = 1, so columns with
    26-33% gaps lost them in about half of the releases. Never below half a row: a count is whole,
    so where the noise is far below one row (large ε) 2σ alone gave a column without gaps a missing
    level in 2.3% of releases, while any real gap clears half a row."""
    return max(0.5, min(_MISSING_SIGMAS * sigma, _MISSING_SHARE * rows))


def _encodes_gaps(transformer: ColumnTransformer) -> bool:
    """Whether ``transformer`` has a place for missing values (indicator or missing level)."""
    return isinstance(transformer, MissingIndicator) or bool(getattr(transformer, "has_missing_", False))


def _random_encoding(transformer: ColumnTransformer, rows: int, rng: np.random.Generator,
                     weights: np.ndarray | None = None) -> np.ndarray:
    """Encodings drawn from the released distribution: normal scores on tanh spans (the quantile
    transformer's scale), one-hots at the released ``weights`` on a conditional span (else uniform)."""
    blocks = []
    for span in transformer.spans:
        if span.activation == "tanh":
            blocks.append(np.clip(rng.normal(0.0, 1.0 / 6.5, (rows, span.width)), -1, 1))
        else:
            block = np.zeros((rows, span.width))
            p = np.asarray(weights, dtype=float) / np.sum(weights) if span.conditional and weights is not None else None
            block[np.arange(rows), rng.choice(span.width, size=rows, p=p)] = 1.0
            blocks.append(block)
    return np.concatenate(blocks, axis=1).astype(np.float32)


def _numbers(column: pd.Series, name: str, spec: dict[str, Any]) -> np.ndarray:
    """The column as float64 with NaN for gaps; datetimes as epoch seconds."""
    try:
        if spec.get("sdtype") != "datetime":
            return _as_float(column)
        values = np.full(len(column), np.nan)
        values[column.notna().to_numpy()] = DatetimeTransformer(spec.get("datetime_format")).seconds(column)
        return values
    except InvalidDataError as exc:
        raise InvalidDataError(f"column {name!r}: {exc}") from None


def _bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts in the bins below, between and above ``edges`` (len(edges) + 1 bins)."""
    return np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1).astype(np.float64)


def _bounds_from_coarse(noisy: np.ndarray, edges: np.ndarray, sigma: float) -> tuple[float, float, float, float]:
    """Outer edges of the occupied power-of-two bins (or of ``_mode_bins`` when none clears 4σ),
    widened by the margin; and the occupied range itself, inside them. A bin clearing 4σ with no
    occupied neighbour counts only above ``_LONE_BIN_FALSE_RATE``'s threshold (5.6σ for 103 bins)."""
    occupied = np.flatnonzero(noisy > _OCCUPIED_SIGMAS * sigma)
    neighbours = np.isin(occupied - 1, occupied) | np.isin(occupied + 1, occupied)
    lone_threshold = sigma * float(ndtri(1.0 - _LONE_BIN_FALSE_RATE / len(noisy)))
    occupied = occupied[neighbours | (noisy[occupied] > lone_threshold)]
    if occupied.size == 0:
        occupied = _mode_bins(noisy, sigma)
    # Bin i lies between edges[i-1] and edges[i]; the open-ended outer bins stop one doubling further.
    padded = np.concatenate([[2 * edges[0]], edges, [2 * edges[-1]]])
    first, last = int(occupied.min()), int(occupied.max())
    low = max(first - _BOUND_MARGIN, 0)
    high = min(last + _BOUND_MARGIN, len(padded) - 2)
    # The margin never moves a bound across zero: a positive column stays positive.
    if padded[first] > 0 >= padded[low]:
        low = first
    if padded[last + 1] < 0 <= padded[high + 1]:
        high = last
    return float(padded[low]), float(padded[high + 1]), float(padded[first]), float(padded[last + 1])


def _mode_bins(noisy: np.ndarray, sigma: float) -> np.ndarray:
    """Where the values sit when no single bin clears 4σ (small tables at small ε).

    The three adjacent bins with the largest noisy sum, less the end bins of those three that do
    not clear 2σ: a column's values fill neighbouring bins, so their sum stands out of ~100 bins of
    noise where one bin does not. The fullest single bin, as before, cut columns short and was at
    times a bin of noise: pbc at ε = 1, 200 releases, bili (0.3-28) got [0.25, 2) in half of them
    (now [0.25, 8) or [0.25, 4) in 56%), alk.phos (289-13,862) [2²¹, 2²⁴) in 1%; the released
    numeric marginals' mean KS complement against the holdout rose from 0.72 to 0.75.
    """
    window = int(np.argmax(np.convolve(noisy, np.ones(_MODE_WINDOW), "valid")))
    first, last = window, window + _MODE_WINDOW - 1
    fullest = first + int(np.argmax(noisy[first:last + 1]))
    while first < fullest and noisy[first] <= _MODE_SIGMAS * sigma:
        first += 1
    while last > fullest and noisy[last] <= _MODE_SIGMAS * sigma:
        last -= 1
    return np.arange(first, last + 1)


def _numeric(column: pd.Series, name: str, spec: dict[str, Any], bounds: tuple[float, float],
             occupied: tuple[float, float], bins: int, sigma: float, rows: float, rng: PrivateRandom) -> ColumnTransformer:
    """Quantile transformer from a noisy histogram inside ``bounds``; a missing indicator if gaps show.

    The ``bins`` bins span the ``occupied`` range (the power-of-two bins that round 1 found
    occupied), and the margins beyond it, up to ``bounds``, get one bin each: spread over the
    widened bounds, most of the few bins the noise allows fell where no value is (pbc at ε = 3:
    albumin's values in 2 of 5 bins over bounds 8 times their range).
    """
    values = _numbers(column, name, spec)
    missing = np.isnan(values)
    low, high = bounds
    inner_low, inner_high = occupied
    if inner_low > 0 and inner_high / inner_low >= _LOG_BINS_RATIO:
        inner = np.geomspace(inner_low, inner_high, bins + 1)  # skewed positive lab values: bins of equal ratio
    else:
        inner = np.linspace(inner_low, inner_high, bins + 1)
    edges = np.concatenate([[low] if low < inner_low else [], inner, [high] if high > inner_high else []])
    # Values outside the bounds are clipped into the end bins, as DP-SGD will see them too.
    counts = np.histogram(np.clip(values[~missing], low, high), bins=edges)[0] + rng.normal(0.0, sigma, len(edges) - 1)
    integer = is_integer_representation(spec.get("computer_representation"))
    transformer: ColumnTransformer = QuantileTransformer.from_histogram(edges, counts, integer=integer)
    if spec.get("sdtype") == "datetime":
        transformer = DatetimeTransformer.from_seconds_transformer(spec.get("datetime_format"), transformer, integer=integer)
    noisy_missing = missing.sum() + rng.normal(0.0, sigma)
    if noisy_missing > _missing_threshold(sigma, rows):
        indicator = MissingIndicator(transformer)
        indicator.missing_rate_ = float(np.clip(noisy_missing / rows, 0.0, 1.0))
        transformer = indicator
    return transformer


def _boolean(column: pd.Series, sigma: float, rows: float, rng: PrivateRandom) -> tuple[ColumnTransformer, np.ndarray]:
    present = column.dropna().astype(bool)
    counts = np.array([(~present).sum(), present.sum(), column.isna().sum()], dtype=np.float64)
    counts = counts + rng.normal(0.0, sigma, 3)
    has_missing = bool(counts[2] > _missing_threshold(sigma, rows))
    # The output dtype follows what was released (gaps or not), not the input column's dtype.
    transformer = BooleanTransformer.from_state({"has_missing": has_missing, "nullable": has_missing})
    return transformer, _positive(counts[: 3 if has_missing else 2])


def _categorical(column: pd.Series, name: str, spec: dict[str, Any], sigma: float, threshold: float, rows: float,
                 rng: PrivateRandom) -> tuple[ColumnTransformer, np.ndarray, dict[str, Any]]:
    """Released levels (by noisy count) and their noisy counts, in the transformer's category order."""
    observed = column.value_counts(dropna=True, sort=False)
    observed = observed[observed > 0]
    public = spec.get("public_values")
    if public is not None:
        if not isinstance(public, list) or not public:
            raise MetadataError(f"column {name!r}: public_values must be a non-empty list, got {public!r}")
        domain = [_native(value) for value in public]
        native_counts = {_native(value): float(count) for value, count in observed.items()}
        # Values outside the domain were made gaps (``outside_public_values_as_gaps``) before any release.
        keyed = {value: native_counts.get(value, 0.0) for value in domain}
    else:
        keyed = {_native(value): float(count) for value, count in observed.items()}
    labels = list(keyed)
    noisy = np.array([keyed[label] for label in labels]) + rng.normal(0.0, sigma, len(labels))
    released = np.ones(len(labels), dtype=bool) if public is not None else noisy > threshold
    order = np.lexsort((np.array([str(label) for label in labels], dtype=object)[released], -noisy[released]))
    levels = [labels[i] for i in np.flatnonzero(released)[order]]
    level_counts = noisy[released][order]
    noisy_missing = column.isna().sum() + rng.normal(0.0, sigma)
    has_missing = bool(noisy_missing > _missing_threshold(sigma, rows))
    dtype = _released_dtype(levels, has_missing)
    kind = _dtype_kind(pd.Series([], dtype=dtype).dtype)
    # Private names: a number that was not released is coded to the nearest released number (its
    # type kept, as top/bottom-coding does); other names go to a rare level that always exists, so
    # whether any name was withheld stays hidden either way. The rare level's weight is what the
    # released counts leave of the released row count: the noisy counts of withheld names are never
    # summed (with none withheld that sum is exactly 0, and one added row with a new name moves it).
    merge = public is None and bool(levels) and kind in ("int", "float")
    rare = public is None and not merge
    pooled = max(0.0, rows - float(level_counts.sum()) - float(noisy_missing)) if rare else 0.0
    state: dict[str, Any] = {
        "min_category_count": 1,
        "rare_label": _distinct_label("Other", levels),
        "levels": levels,
        "has_missing": has_missing,
        "rare": rare,
        "merge_rare": merge,
        "dtype": dtype,
        "kind": kind,
    }
    transformer = CategoricalTransformer.from_state(state)
    counts = [*level_counts, *([noisy_missing] if has_missing else []), *([pooled] if rare else [])]
    shown = {"names": "public (metadata)" if public is not None else "DP (noisy count above threshold)",
             "released levels": len(levels)}
    return transformer, _positive(np.array(counts, dtype=np.float64)), shown


def _released_dtype(levels: list[Any], has_missing: bool) -> str:
    """The output dtype implied by the released names alone (the input column's dtype is not released)."""
    if levels and all(isinstance(level, (bool, np.bool_)) for level in levels):
        return "boolean" if has_missing else "bool"
    if levels and all(isinstance(level, (int, np.integer)) and not isinstance(level, bool) for level in levels):
        return "Int64" if has_missing else "int64"
    if levels and all(isinstance(level, (int, float, np.integer, np.floating)) for level in levels):
        return "float64"
    return "object"


def _positive(counts: np.ndarray) -> np.ndarray:
    """Noisy counts as sampling weights: floored at a small positive share so no level is impossible."""
    counts = np.clip(counts, 0.0, None)
    return counts + max(counts.sum(), 1.0) * 1e-3 / max(len(counts), 1)


def _public_bounds(name: str, value: Any) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise MetadataError(f"column {name!r}: public_bounds must be [low, high], got {value!r}") from None
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise MetadataError(f"column {name!r}: public_bounds must be finite with low < high, got {value!r}")
    return low, high
