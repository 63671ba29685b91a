"""Dates and timestamps, encoded as seconds since the epoch by a continuous transformer.

Clinical tables store dates as datetimes, as strings (``"2021-03-04"``) or as integers
(``20210304``). The transformer learns which, and decodes to the same representation and to the
resolution the training data shows (whole days stay whole days).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from synthgen.data.base import ColumnTransformer, Span
from synthgen.data.continuous import ContinuousTransformer, int_option
from synthgen.data.quantile import QuantileTransformer
from synthgen.errors import InvalidDataError
from synthgen.metadata import read_dates

NS_PER_SECOND = 10**9
#: Candidate resolutions, coarsest first, with their length in nanoseconds.
UNITS_NS = {"D": 86_400 * NS_PER_SECOND, "s": NS_PER_SECOND, "ms": 10**6, "us": 10**3, "ns": 1}


class DatetimeTransformer(ColumnTransformer):
    """Encode a date/time column through a :class:`ContinuousTransformer` on epoch seconds."""

    name = "datetime"
    handles_missing = False

    def __init__(self, datetime_format: str | None = None, max_modes: int = 10, gmm_max_rows: int = 10_000,
                 other_formats: list[str] | None = None) -> None:
        self.datetime_format = datetime_format
        self.max_modes = max_modes
        self.gmm_max_rows = gmm_max_rows
        #: Formats also read (a column written in several); output uses ``datetime_format``.
        self.other_formats = list(other_formats or [])

    @classmethod
    def from_metadata(cls, column: dict[str, Any], options: dict[str, Any]) -> DatetimeTransformer:
        return cls(
            datetime_format=column.get("datetime_format"),
            max_modes=int_option(options, "max_modes", 10),
            gmm_max_rows=int_option(options, "gmm_max_rows", 10_000),
            other_formats=column.get("other_datetime_formats"),
        )

    def fit(self, column: pd.Series, rng: np.random.Generator) -> DatetimeTransformer:
        column = column.dropna()
        if column.empty:
            raise InvalidDataError("a datetime column needs at least one non-missing value to fit")
        index = self._parse(column)
        wall_ns = (index.tz_localize(None) if index.tz is not None else index).as_unit("ns").asi8
        self.unit_ = next(unit for unit, step in UNITS_NS.items() if np.all(wall_ns % step == 0))
        self.kind_ = _representation(column.dtype)
        self.dtype_ = str(index.dtype)
        # Epoch seconds: the date format, not decimal digits, says how they were recorded.
        inner = ContinuousTransformer(max_modes=self.max_modes, gmm_max_rows=self.gmm_max_rows, precision=False)
        self.inner_ = inner.fit(pd.Series(_seconds(index)), rng)
        return self

    def _parse(self, column: pd.Series) -> pd.DatetimeIndex:
        """The column as datetimes, reading strings and integers with ``datetime_format``."""
        kind = _representation(column.dtype)
        if kind == "datetime":
            return pd.DatetimeIndex(column)
        if kind == "integer":
            if self.datetime_format is None:
                raise InvalidDataError(
                    "an integer datetime column needs a datetime_format in its metadata (e.g. '%Y%m%d')"
                )
            numbers = column.to_numpy(dtype=np.float64)
            if not np.all(numbers == np.floor(numbers)):
                raise InvalidDataError("a numeric datetime column holds non-integer values")
            column = pd.Series(numbers.astype(np.int64)).astype(str)
        try:
            if self.other_formats and self.datetime_format is not None:
                parsed = read_dates(column, [self.datetime_format, *self.other_formats])
                if parsed.isna().any():
                    raise ValueError("unparsed")
                return pd.DatetimeIndex(parsed)
            return pd.DatetimeIndex(pd.to_datetime(column, format=self.datetime_format))
        except (TypeError, ValueError):
            formats = ", ".join(repr(f) for f in [self.datetime_format, *self.other_formats])
            expected = f"format {formats}" if self.datetime_format else "one date format"
            raise InvalidDataError(f"a datetime column holds values that do not parse with {expected}") from None

    @property
    def spans(self) -> list[Span]:
        self._check_fitted("inner_")
        return self.inner_.spans

    def transform(self, column: pd.Series, rng: np.random.Generator) -> np.ndarray:
        self._check_fitted("inner_")
        if column.isna().any():
            raise InvalidDataError("the datetime transformer got missing values; wrap it in a MissingIndicator")
        return self.inner_.transform(pd.Series(_seconds(self._parse(column))), rng)

    def inverse(self, data: np.ndarray, rng: np.random.Generator) -> pd.Series:
        """Decode seconds, round to the training resolution, and format like the training column."""
        self._check_fitted("inner_")
        index = self._to_index(self.inner_.inverse(data, rng).to_numpy(dtype=np.float64))
        if self.kind_ == "datetime":
            return pd.Series(index).astype(self.dtype_)
        text = index.strftime(self._output_format())
        if self.kind_ == "integer":
            return pd.Series(text.astype(np.int64))
        return pd.Series(text, dtype=object)

    def _to_index(self, seconds: np.ndarray) -> pd.DatetimeIndex:
        """Epoch seconds as datetimes in the training time zone, rounded to ``unit_``."""
        tz = getattr(pd.api.types.pandas_dtype(self.dtype_), "tz", None)
        nanoseconds = np.rint(seconds * NS_PER_SECOND).astype(np.int64)
        if tz is not None and self.unit_ == "D":
            # Whole days are local midnights: round on the wall clock, not in UTC.
            wall = pd.DatetimeIndex(nanoseconds, tz="UTC").tz_convert(tz).tz_localize(None).round("D")
            return wall.tz_localize(tz, ambiguous=np.zeros(len(wall), dtype=bool), nonexistent="shift_forward")
        step = UNITS_NS[self.unit_]
        index = pd.DatetimeIndex((nanoseconds + step // 2) // step * step)
        return index if tz is None else index.tz_localize("UTC").tz_convert(tz)

    def _output_format(self) -> str:
        """``datetime_format``, or an ISO format at the training resolution when none was given."""
        if self.datetime_format is not None:
            return self.datetime_format
        if self.unit_ == "D":
            return "%Y-%m-%d"
        return "%Y-%m-%d %H:%M:%S" if self.unit_ == "s" else "%Y-%m-%d %H:%M:%S.%f"

    def get_state(self) -> dict[str, Any]:
        self._check_fitted("inner_")
        return {
            "datetime_format": self.datetime_format,
            **({"other_formats": self.other_formats} if self.other_formats else {}),
            "kind": self.kind_,
            "dtype": self.dtype_,
            "unit": self.unit_,
            "inner_transformer": self.inner_.name,
            "inner": self.inner_.get_state(),
        }

    @classmethod
    def from_seconds_transformer(cls, datetime_format: str | None, inner: ColumnTransformer, *,
                                 integer: bool = False) -> DatetimeTransformer:
        """A fitted transformer over an already fitted ``inner`` on epoch seconds (used by DP training).

        Nothing is read from the rows: with a declared format the dates come back as text in it (as
        integers such as 20210304 when ``integer``), without one as datetimes. The resolution follows
        the format: whole days when it has no time fields, else seconds.
        """
        transformer = cls(datetime_format)
        transformer.kind_ = "datetime" if datetime_format is None else "integer" if integer else "string"
        dated_only = datetime_format is not None and not any(f in datetime_format for f in ("%H", "%I", "%M", "%S", "%f"))
        transformer.unit_ = "D" if dated_only else "s"
        transformer.dtype_ = "datetime64[ns]"
        transformer.inner_ = inner
        return transformer

    def seconds(self, column: pd.Series) -> np.ndarray:
        """Epoch seconds of the present values of ``column``."""
        return _seconds(self._parse(column.dropna()))

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> DatetimeTransformer:
        if state.get("inner_transformer", "numerical") == "quantile":
            inner: ColumnTransformer = QuantileTransformer.from_state(state["inner"])
            transformer = cls(state["datetime_format"])
        else:
            inner = ContinuousTransformer.from_state(state["inner"])
            transformer = cls(state["datetime_format"], max_modes=inner.max_modes, gmm_max_rows=inner.gmm_max_rows)
        transformer.other_formats = list(state.get("other_formats", []))
        transformer.kind_ = state["kind"]
        transformer.dtype_ = state["dtype"]
        transformer.unit_ = state["unit"]
        transformer.inner_ = inner
        return transformer


def _representation(dtype: Any) -> str:
    """How the column stores its dates: native datetimes, integers such as 20210304, or strings."""
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        return "integer"
    return "string"


def _seconds(index: pd.DatetimeIndex) -> np.ndarray:
    """Seconds since the epoch (UTC for zone-aware datetimes) as float64."""
    return index.as_unit("ns").asi8 / NS_PER_SECOND
