"""Conditions of a tabular sample (``{column: value}``), planned before the first row is generated.

A categorical or boolean condition is met through the condition vector (``DiscreteCondition``):
rows are generated given the level. Any other column is met by rejection after decoding
(``exact_match``), against a target parsed here so a bad value fails before any generation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from synthgen.data.table import TableTransformer
from synthgen.errors import ConditionError
from synthgen.metadata import Metadata
from synthgen.models.tabular_gan import SpanLayout


@dataclass(frozen=True)
class DiscreteCondition:
    """A condition met through the condition vector: its slot there and its one-hot span in the output."""

    slot: int
    data_index: torch.Tensor
    category: int
    column: str


def plan_conditions(conditions: dict[str, Any], metadata: Metadata, table: TableTransformer,
                    layout: SpanLayout) -> tuple[list[DiscreteCondition], dict[str, Any]]:
    """Split conditions into those the condition vector meets and those checked after decoding."""
    discrete: list[DiscreteCondition] = []
    exact: dict[str, Any] = {}
    columns = list(metadata.columns)
    offsets = np.cumsum([0, *layout.cond_widths])
    for name, value in conditions.items():
        if name not in metadata.columns:
            raise ConditionError(f"cannot condition on {name!r}: no such column (columns: {', '.join(columns)})")
        conditional = table.conditional_column(name)
        if conditional is not None:
            category = table.transformer(name).condition_index(value)
            position = table.conditional_columns_.index(conditional)
            discrete.append(
                DiscreteCondition(
                    slot=int(offsets[position]) + category,
                    data_index=torch.arange(conditional.data_offset, conditional.data_offset + conditional.width),
                    category=category,
                    column=name,
                )
            )
            if table.rule_for(name) is not None:
                # Generated given the level, its value then derived from its sources: rows whose
                # sources give another level are dropped, as for any condition met by rejection.
                exact[name] = exact_target(metadata, name, value)
        elif metadata.columns[name].get("sdtype") == "id":
            raise ConditionError(f"cannot condition on identifier column {name!r}: identifiers are generated fresh")
        else:
            exact[name] = exact_target(metadata, name, value)
    _check_missing_together(discrete, table)
    return discrete, exact


def _check_missing_together(discrete: list[DiscreteCondition], table: TableTransformer) -> None:
    """Refuse conditions that ask one column of a set missing together for a gap and another for a value:
    no training row has that, and decoding keeps each set missing together (on the first conditioned column)."""
    for names in table.missing_groups_:
        asked = {c.column: pd.isna(table.transformer(c.column).categories[c.category]) for c in discrete if c.column in names}
        if len(set(asked.values())) > 1:
            gap, value = (next(name for name, missing in asked.items() if missing is flag) for flag in (True, False))
            raise ConditionError(f"cannot condition {gap!r} on a missing value and {value!r} on a value: the two are "
                                 "missing on the same rows in the training data")


def exact_target(metadata: Metadata, name: str, value: Any) -> Any:
    """The requested value in the form decoded columns take, checked before any generation."""
    spec = metadata.columns[name]
    if spec.get("sdtype") == "numerical":
        try:
            return float(value)
        except (TypeError, ValueError) as exc:
            raise ConditionError(f"condition {name}={value!r}: column {name!r} is numerical and {value!r} is not a number") from exc
    if spec.get("sdtype") == "datetime" and not spec.get("datetime_format"):
        try:
            return pd.Timestamp(value)
        except (TypeError, ValueError) as exc:
            raise ConditionError(f"condition {name}={value!r}: {value!r} is not a date/time") from exc
    return str(value)


def exact_match(frame: pd.DataFrame, exact: dict[str, Any]) -> np.ndarray:
    """Rows whose decoded values equal the requested ones (the rejection-sampling fallback)."""
    keep = np.ones(len(frame), dtype=bool)
    for name, target in exact.items():
        column = frame[name]
        if isinstance(target, float):
            column = column.astype("float64")
        elif isinstance(target, str):
            column = column.astype(str)
        keep &= (column == target).fillna(False).to_numpy(dtype=bool)
    return keep


def describe_conditions(discrete: list[DiscreteCondition], exact: dict[str, Any], table: TableTransformer,
                        layout: SpanLayout) -> str:
    """``column=value, ...`` for an error message, discrete levels by their names."""
    names = [c.name for c in table.conditional_columns_]
    parts = []
    offsets = np.cumsum([0, *layout.cond_widths])
    for condition in discrete:
        position = int(np.searchsorted(offsets, condition.slot, side="right") - 1)
        label = table.transformer(names[position]).categories[condition.category]
        parts.append(f"{names[position]}={label}")
    parts += [f"{name}={value}" for name, value in exact.items()]
    return ", ".join(parts)
