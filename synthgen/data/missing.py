"""Missing-value indicator around a transformer that cannot encode gaps itself.

The inner transformer sees only present values; a two-way softmax ``[present, missing]`` is
appended, so the generator learns where values are missing (lab not ordered, date unknown) jointly
with everything else, rather than the gaps being imputed away.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from synthgen.data.base import ColumnTransformer, Span
from synthgen.errors import InvalidDataError, PluginError
from synthgen.registry import column_transformers


class MissingIndicator(ColumnTransformer):
    """Wrap ``inner`` (which has ``handles_missing = False``) and encode missingness as one-hot."""

    name: ClassVar[str] = "missing"
    handles_missing = True

    def __init__(self, inner: ColumnTransformer) -> None:
        self.inner = inner

    def fit(self, column: pd.Series, rng: np.random.Generator) -> MissingIndicator:
        present = column.notna()
        if not present.any():
            raise InvalidDataError("cannot fit a column whose values are all missing")
        self.inner.fit(column[present], rng)
        self.missing_rate_ = float(1.0 - present.mean())
        return self

    @property
    def spans(self) -> list[Span]:
        self._check_fitted("missing_rate_")
        return [*self.inner.spans, Span(2, "softmax")]

    def transform(self, column: pd.Series, rng: np.random.Generator) -> np.ndarray:
        """Inner encoding of present rows; missing rows copy the encoding of a random present row."""
        self._check_fitted("missing_rate_")
        missing = column.isna().to_numpy()
        n_present = int((~missing).sum())
        # A batch with no present value borrows a random valid inner encoding for its gaps.
        pool = self.inner.transform(column[~missing], rng) if n_present else self._random_encoding(rng)
        encoded = np.zeros((len(column), pool.shape[1] + 2), dtype=np.float32)
        encoded[~missing, :-2] = pool[:n_present]
        encoded[missing, :-2] = pool[rng.integers(0, len(pool), size=len(column) - n_present)]
        encoded[:, -2] = ~missing
        encoded[:, -1] = missing
        return encoded

    def _random_encoding(self, rng: np.random.Generator) -> np.ndarray:
        """One valid inner encoding: 0 on tanh spans, a random one-hot on softmax spans."""
        encoding = np.zeros((1, self.inner.output_width), dtype=np.float32)
        start = 0
        for span in self.inner.spans:
            if span.activation == "softmax":
                encoding[0, start + rng.integers(span.width)] = 1.0
            start += span.width
        return encoding

    def inverse(self, data: np.ndarray, rng: np.random.Generator) -> pd.Series:
        """Inner decoding, blanked where the indicator says missing, in a dtype that can hold gaps."""
        self._check_fitted("missing_rate_")
        data = np.asarray(data)
        values = self.inner.inverse(data[:, :-2], rng)
        missing = np.argmax(data[:, -2:], axis=1) == 1
        if pd.api.types.is_integer_dtype(values.dtype):
            values = values.astype("Int64")
        elif pd.api.types.is_bool_dtype(values.dtype):
            values = values.astype("boolean")
        elif not (pd.api.types.is_float_dtype(values.dtype) or pd.api.types.is_datetime64_any_dtype(values.dtype)):
            values = values.astype(object)
            values[missing] = None
            return values
        return values.mask(missing)

    def with_missing(self, data: np.ndarray, missing: np.ndarray) -> np.ndarray:
        """The indicator set from ``missing``; the inner encoding (decoded where present) is kept."""
        forced = np.array(data, dtype=np.float32, copy=True)
        forced[:, -2] = ~missing
        forced[:, -1] = missing
        return forced

    def get_state(self) -> dict[str, Any]:
        self._check_fitted("missing_rate_")
        return {"inner": self.inner.name, "inner_state": self.inner.get_state(), "missing_rate": self.missing_rate_}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> MissingIndicator:
        available = column_transformers()
        if state["inner"] not in available:
            raise PluginError(f"this model needs the transformer {state['inner']!r}, which is not installed")
        transformer = cls(available[state["inner"]].from_state(state["inner_state"]))
        transformer.missing_rate_ = float(state["missing_rate"])
        return transformer
