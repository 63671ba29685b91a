"""The whole table as one encoded matrix: one fitted column transformer per column, side by side."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from synthgen.data.base import ColumnTransformer, Span
from synthgen.data.missing import MissingIndicator
from synthgen.errors import InvalidDataError, MetadataError, NotFittedError, UnknownCategoryError
from synthgen.metadata import Metadata
from synthgen.registry import column_transformers, transformer_for


@contextmanager
def _naming(column: str) -> Iterator[None]:
    """Prefix a transformer's data error with the column it is about (transformers see one column, unnamed)."""
    try:
        yield
    except (InvalidDataError, UnknownCategoryError) as exc:
        raise type(exc)(f"column {column!r}: {exc}") from exc


@dataclass(frozen=True)
class ConditionalColumn:
    """A column the model can be conditioned on: where its one-hot span sits in the encoding."""

    name: str
    data_offset: int
    width: int


class TableTransformer:
    """Encode a DataFrame column by column, following its metadata, and decode it back.

    Columns with missing values whose transformer cannot encode gaps itself are wrapped in a
    :class:`MissingIndicator`, so NaN/NaT come back at the observed rate.
    """

    def __init__(self, metadata: Metadata, options: dict[str, Any] | None = None) -> None:
        self.metadata = metadata
        self.options = dict(options or {})

    def fit(self, data: pd.DataFrame, rng: np.random.Generator) -> "TableTransformer":
        self.metadata.validate(data)
        fitted: dict[str, ColumnTransformer] = {}
        for name, spec in self.metadata.columns.items():
            transformer = transformer_for(name, spec).from_metadata(spec, self.options)
            if not transformer.handles_missing and data[name].isna().any():
                transformer = MissingIndicator(transformer)
            with _naming(name):
                fitted[name] = transformer.fit(data[name], rng)
        self._set_columns(fitted)
        return self

    @classmethod
    def from_fitted(cls, metadata: Metadata, options: dict[str, Any], fitted: dict[str, ColumnTransformer]) -> "TableTransformer":
        """A table of transformers fitted elsewhere (e.g. from DP-released statistics), in metadata order."""
        table = cls(metadata, options)
        table._set_columns({name: fitted[name] for name in metadata.columns})
        return table

    def _set_columns(self, fitted: dict[str, ColumnTransformer]) -> None:
        self.column_transformers_ = fitted
        self.spans_: list[Span] = [span for t in fitted.values() for span in t.spans]
        self.slices_: dict[str, slice] = {}
        conditional: list[ConditionalColumn] = []
        offset = 0
        for name, transformer in fitted.items():
            start = offset
            for span in transformer.spans:
                if span.conditional:
                    if any(c.name == name for c in conditional):
                        raise MetadataError(f"column {name!r}: a transformer may declare at most one conditional span")
                    conditional.append(ConditionalColumn(name, offset, span.width))
                offset += span.width
            self.slices_[name] = slice(start, offset)
        self.conditional_columns_ = conditional
        self.width_ = offset

    def _fitted(self) -> dict[str, ColumnTransformer]:
        if not hasattr(self, "column_transformers_"):
            raise NotFittedError("TableTransformer must be fitted before use; call fit() first")
        return self.column_transformers_

    def transform(self, data: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
        """Encode ``data`` as a float32 matrix of width :attr:`width_`."""
        fitted = self._fitted()
        self.metadata.validate(data)
        blocks = []
        for name, transformer in fitted.items():
            with _naming(name):
                blocks.append(transformer.transform(data[name], rng))
        return np.concatenate(blocks, axis=1).astype(np.float32, copy=False)

    def inverse(self, encoded: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
        """Decode model output back into a DataFrame with the training columns, in order."""
        fitted = self._fitted()
        columns = {}
        for name, transformer in fitted.items():
            decoded = transformer.inverse(encoded[:, self.slices_[name]], rng)
            columns[name] = decoded.reset_index(drop=True)
        return pd.DataFrame(columns)

    def transformer(self, column: str) -> ColumnTransformer:
        return self._fitted()[column]

    def conditional_column(self, column: str) -> ConditionalColumn | None:
        return next((c for c in self.conditional_columns_ if c.name == column), None)

    def get_state(self) -> dict[str, Any]:
        return {
            "options": self.options,
            "columns": [
                {"name": name, "transformer": t.name, "state": t.get_state()} for name, t in self._fitted().items()
            ],
        }

    @classmethod
    def from_state(cls, metadata: Metadata, state: dict[str, Any]) -> "TableTransformer":
        table = cls(metadata, state["options"])
        installed = column_transformers()
        fitted: dict[str, ColumnTransformer] = {}
        for column in state["columns"]:
            name = column["transformer"]
            if name == MissingIndicator.name:
                transformer_class: type[ColumnTransformer] = MissingIndicator
            elif name in installed:
                transformer_class = installed[name]
            else:
                raise MetadataError(
                    f"column {column['name']!r} was encoded by transformer {name!r}, which is not installed here"
                )
            fitted[column["name"]] = transformer_class.from_state(column["state"])
        table._set_columns(fitted)
        return table
