"""The column-transformer contract: what every built-in and plugin transformer implements.

A transformer turns one column into a block of model columns and back. It describes that block as
a list of :class:`Span` objects; the model reads only spans, never what a column "is".
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from synthgen.errors import NotFittedError

Activation = Literal["tanh", "softmax"]


@dataclass(frozen=True)
class Span:
    """A contiguous block of encoded columns.

    ``conditional`` declares whether the model may condition on this span (it must then be a
    one-hot ``softmax`` span whose positions are the transformer's ``categories``). It is declared,
    never inferred from the shape: a softmax span of a mixture mode is not a condition.
    """

    width: int
    activation: Activation
    conditional: bool = False

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ValueError(f"span width must be >= 1, got {self.width}")
        if self.activation not in ("tanh", "softmax"):
            raise ValueError(f"unknown span activation {self.activation!r}")
        if self.conditional and self.activation != "softmax":
            raise ValueError("only softmax spans can be conditional")


class ColumnTransformer(ABC):
    """Encode one column as a float32 block described by :attr:`spans`, and decode it back.

    Subclasses set ``name`` (the entry-point name) and keep learned state in attributes ending
    with ``_``. ``get_state`` returns plain JSON-compatible data so model files need no pickle.
    Randomness is always passed in as a ``numpy.random.Generator``, never drawn from global state.
    """

    name: ClassVar[str]
    #: True when the transformer encodes missing values itself; otherwise the table wraps it in
    #: a missing-value indicator whenever the training column has gaps.
    handles_missing: ClassVar[bool] = False

    @classmethod
    def from_metadata(cls, column: dict[str, Any], options: dict[str, Any]) -> "ColumnTransformer":
        """Build an unfitted transformer from the column's metadata and the synthesizer options."""
        return cls()

    @abstractmethod
    def fit(self, column: pd.Series, rng: np.random.Generator) -> "ColumnTransformer":
        """Learn the encoding from ``column``; returns ``self``."""

    @abstractmethod
    def transform(self, column: pd.Series, rng: np.random.Generator) -> np.ndarray:
        """Encode ``column`` as a ``(len(column), sum of span widths)`` float32 array."""

    @abstractmethod
    def inverse(self, data: np.ndarray, rng: np.random.Generator) -> pd.Series:
        """Decode a block produced by the model (softmax spans one-hot or probabilities)."""

    @property
    @abstractmethod
    def spans(self) -> list[Span]:
        """The layout of the encoded block; only valid after ``fit``."""

    @property
    def categories(self) -> list[Any]:
        """Labels of the positions of the conditional span, for transformers that declare one."""
        raise NotImplementedError(f"{type(self).__name__} has no conditional span")

    def condition_index(self, value: Any) -> int:
        """Position of ``value`` inside the conditional span; raises UnknownCategoryError."""
        raise NotImplementedError(f"{type(self).__name__} has no conditional span")

    @abstractmethod
    def get_state(self) -> dict[str, Any]:
        """Learned parameters as JSON-compatible data (lists, numbers, strings, None, dicts)."""

    @classmethod
    @abstractmethod
    def from_state(cls, state: dict[str, Any]) -> "ColumnTransformer":
        """Rebuild a fitted transformer from :meth:`get_state` output."""

    def with_missing(self, data: np.ndarray, missing: np.ndarray) -> np.ndarray | None:
        """``data`` (this column's encoded block) rewritten to decode to a gap exactly where ``missing``
        is True and to a value elsewhere; None when this transformer cannot (then its column keeps
        its own gaps). Lets columns that are missing together in training stay so in every sample."""
        return None

    @property
    def output_width(self) -> int:
        return sum(span.width for span in self.spans)

    def _check_fitted(self, attribute: str) -> None:
        if not hasattr(self, attribute):
            raise NotFittedError(f"{type(self).__name__} must be fitted before use; call fit() first")
