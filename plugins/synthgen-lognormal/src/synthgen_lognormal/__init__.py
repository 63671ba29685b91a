"""A log-scale numerical transformer, packaged as a synthgen plugin."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from synthgen.data.base import ColumnTransformer, Span
from synthgen.data.continuous import ContinuousTransformer
from synthgen.errors import InvalidDataError


class LogNumericalTransformer(ColumnTransformer):
    """Mode-specific normalisation of log(x) for strictly positive columns."""

    name = "log_numerical"
    handles_missing = False

    def __init__(self, inner: ContinuousTransformer | None = None, integer: bool = False) -> None:
        self.inner = inner or ContinuousTransformer()
        self.integer = integer

    @classmethod
    def from_metadata(cls, column: dict[str, Any], options: dict[str, Any]) -> "LogNumericalTransformer":
        # The inner transformer sees log values, which are never integers; rounding happens here.
        inner = ContinuousTransformer.from_metadata({**column, "computer_representation": "Float"}, options)
        return cls(inner, integer=str(column.get("computer_representation", "")).startswith("Int"))

    @staticmethod
    def _log(column: pd.Series) -> pd.Series:
        values = pd.to_numeric(column, errors="coerce")
        if (values.dropna() <= 0).any():
            raise InvalidDataError("log_numerical needs strictly positive values")
        return np.log(values.astype("float64"))

    def fit(self, column: pd.Series, rng: np.random.Generator) -> "LogNumericalTransformer":
        self.integer_ = self.integer or pd.api.types.is_integer_dtype(column.dtype)
        self.inner.fit(self._log(column), rng)
        return self

    def transform(self, column: pd.Series, rng: np.random.Generator) -> np.ndarray:
        self._check_fitted("integer_")
        return self.inner.transform(self._log(column), rng)

    def inverse(self, data: np.ndarray, rng: np.random.Generator) -> pd.Series:
        self._check_fitted("integer_")
        values = np.exp(self.inner.inverse(data, rng).to_numpy(dtype=np.float64))
        return pd.Series(np.rint(values).astype(np.int64) if self.integer_ else values)

    @property
    def spans(self) -> list[Span]:
        self._check_fitted("integer_")
        return self.inner.spans

    def get_state(self) -> dict[str, Any]:
        self._check_fitted("integer_")
        return {"integer": self.integer_, "inner": self.inner.get_state()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "LogNumericalTransformer":
        transformer = cls(ContinuousTransformer.from_state(state["inner"]), integer=bool(state["integer"]))
        transformer.integer_ = bool(state["integer"])
        return transformer
