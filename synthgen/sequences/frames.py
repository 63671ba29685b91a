"""Long tables (many rows per entity) cut into what the models learn, and put back together.

A long table has an entity column (the patient), an optional sequence index (visit number, day or
datetime) and value columns. Columns constant within every entity are the entity's *static*
attributes (one row per entity); the rest are *per-visit* columns. The sequence index becomes two
learned columns: the entity's first index value (static) and the gap since the previous visit
(per visit), so order and inter-visit gaps are both learned and a decoded index always increases.

Error messages name columns and at most one entity: rows are never logged.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from synthgen.errors import InvalidDataError, MetadataError
from synthgen.metadata import Metadata

logger = logging.getLogger(__name__)

#: Learned helper columns; user columns may not take these names.
START_COLUMN = "__sequence_start__"
GAP_COLUMN = "__sequence_gap__"
_NANOSECONDS_PER_DAY = 86_400 * 10**9


@dataclass
class SequenceSchema:
    """How a long table maps onto (static frame, visit frame) and back; plain JSON via to_dict."""

    entity_column: str
    sequence_index: str | None
    #: "none", "integer", "float" or "datetime"
    index_kind: str
    static_columns: list[str]
    visit_columns: list[str]
    #: the input's column order, restored on output
    column_order: list[str]
    #: "integer" or "string": the kind of fresh entity ids
    entity_kind: str
    max_length: int
    #: smallest positive gap seen in training (decoded gaps never fall below it)
    min_gap: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SequenceSchema":
        return cls(**d)


@dataclass
class SplitTable:
    """A long table as one row per entity (static) and one row per kept visit, with each entity's length."""

    static: pd.DataFrame
    visits: pd.DataFrame
    lengths: np.ndarray


def index_kind(column: pd.Series, name: str) -> str:
    if pd.api.types.is_bool_dtype(column.dtype):
        raise InvalidDataError(f"sequence index {name!r} holds booleans; it must be visit numbers, days or datetimes")
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        return "datetime"
    if pd.api.types.is_numeric_dtype(column.dtype):
        values = column.to_numpy(dtype=np.float64)
        return "integer" if np.all(values % 1 == 0) else "float"
    raise InvalidDataError(
        f"sequence index {name!r} is {column.dtype} values; it must be numbers (visit number, day) or datetimes "
        "(parse date strings first, e.g. pd.to_datetime)"
    )


def _index_values(column: pd.Series, kind: str) -> np.ndarray:
    """The sequence index as float64: numbers as they are, datetimes in days since 1970."""
    if kind == "datetime":
        return column.to_numpy(dtype="datetime64[ns]").astype(np.int64) / _NANOSECONDS_PER_DAY
    return column.to_numpy(dtype=np.float64)


def _show(value: Any) -> str:
    """An entity id as the user wrote it (``1004``, ``'P7'``), not numpy's ``np.int64(1004)``."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def check_long_table(frame: pd.DataFrame, entity_column: str, sequence_index: str | None) -> None:
    """Refuse what cannot be a long table: missing columns, missing entity ids, a bad or duplicated index."""
    if not isinstance(frame, pd.DataFrame):
        raise InvalidDataError(f"fit expects a pandas DataFrame, got {type(frame).__name__}")
    if frame.empty:
        raise InvalidDataError("the table is empty: it needs at least one row and one column")
    for role, name in (("entity column", entity_column), ("sequence index", sequence_index)):
        if name is not None and name not in frame.columns:
            raise InvalidDataError(f"the {role} {name!r} is not a column of the table (it has {frame.shape[1]} columns)")
    if entity_column == sequence_index:
        raise InvalidDataError(f"{entity_column!r} cannot be both the entity column and the sequence index")
    for name in (START_COLUMN, GAP_COLUMN):
        if name in frame.columns:
            raise InvalidDataError(f"column name {name!r} is reserved for the sequence model; rename that column")
    if frame[entity_column].isna().any():
        raise InvalidDataError(f"the entity column {entity_column!r} has {int(frame[entity_column].isna().sum())} "
                               "missing values; every row needs its entity")
    if sequence_index is not None:
        index = frame[sequence_index]
        if index.isna().any():
            raise InvalidDataError(f"the sequence index {sequence_index!r} has {int(index.isna().sum())} missing values")
        index_kind(index, sequence_index)
        duplicated = frame.duplicated([entity_column, sequence_index], keep=False)
        if duplicated.any():
            entity = frame.loc[duplicated, entity_column].iloc[0]
            raise InvalidDataError(
                f"the sequence index {sequence_index!r} repeats a value within entity {_show(entity)} "
                f"({int(duplicated.sum())} rows share an (entity, index) pair in all); each visit needs its own index value"
            )


def static_columns(frame: pd.DataFrame, entity_column: str, sequence_index: str | None,
                   metadata: Metadata | None = None) -> list[str]:
    """Columns constant within every entity, or as declared with ``"static": true/false`` in ``metadata``.

    A column declared static that varies within an entity is an error naming it and one such entity.
    """
    candidates = [c for c in frame.columns if c not in (entity_column, sequence_index)]
    groups = frame.groupby(entity_column, sort=False, dropna=False)
    static = []
    for name in candidates:
        varies = groups[name].nunique(dropna=False) > 1
        declared = metadata.columns.get(name, {}).get("static") if metadata is not None else None
        if declared is not None and not isinstance(declared, bool):
            raise MetadataError(f"column {name!r}: \"static\" must be true or false, got {declared!r}")
        if declared is True and varies.any():
            raise InvalidDataError(
                f"column {name!r} is declared static but varies within entity {_show(varies.index[varies.to_numpy()][0])} "
                f"({int(varies.sum())} entities in all); declare it \"static\": false or fix the data"
            )
        if declared is True or (declared is None and not varies.any()):
            static.append(name)
    return static


def split_long_table(frame: pd.DataFrame, schema: SequenceSchema) -> SplitTable:
    """One row per entity (static columns and the first index value) and the visits in order (per-visit
    columns and the gap since the previous visit), each entity cut at ``schema.max_length`` visits."""
    entity, index = schema.entity_column, schema.sequence_index
    if index is not None:
        ordered = frame.sort_values([entity, index], kind="stable")
    else:  # row order within an entity is the visit order
        ordered = frame.sort_values(entity, kind="stable")
    position = ordered.groupby(entity, sort=False).cumcount().to_numpy()
    too_long = position >= schema.max_length
    if too_long.any():
        cut = ordered.loc[too_long, entity].nunique()
        logger.warning("%d entities have more than %d visits; their visits after the %d-th are not learned",
                       cut, schema.max_length, schema.max_length)
    kept = ordered[~too_long]
    first = position[~too_long] == 0
    static = kept.loc[first, schema.static_columns].reset_index(drop=True)
    visits = kept[schema.visit_columns].reset_index(drop=True)
    if index is not None:
        values = _index_values(kept[index], schema.index_kind)
        static[START_COLUMN] = values[first]
        gaps = np.diff(values, prepend=values[0])
        gaps[first] = 0.0  # the first visit's gap is not decoded: its index is the start
        visits[GAP_COLUMN] = gaps
    lengths = kept.groupby(entity, sort=False).size().to_numpy()
    return SplitTable(static, visits, lengths)


def index_metadata(schema: SequenceSchema) -> tuple[dict[str, Any], dict[str, Any]]:
    """Metadata specs of the start and gap columns."""
    representation = "Int64" if schema.index_kind == "integer" else "Float"
    spec = {"sdtype": "numerical", "computer_representation": representation}
    return dict(spec), dict(spec)


def join_long_table(static: pd.DataFrame, visits: pd.DataFrame, lengths: np.ndarray, entity_ids: pd.Series,
                    schema: SequenceSchema) -> pd.DataFrame:
    """The long table of decoded entities: ``static`` (one row each), ``visits`` (``lengths`` rows each, in order)."""
    repeat = np.repeat(np.arange(len(lengths)), lengths)
    out = visits.reset_index(drop=True).copy()
    out[schema.entity_column] = entity_ids.to_numpy()[repeat]
    for name in schema.static_columns:
        out[name] = static[name].iloc[repeat].to_numpy()
    if schema.sequence_index is not None:
        out[schema.sequence_index] = _decoded_index(static[START_COLUMN].to_numpy(dtype=np.float64),
                                                    visits[GAP_COLUMN].to_numpy(dtype=np.float64), lengths, schema)
    return out[schema.column_order]


def _decoded_index(start: np.ndarray, gaps: np.ndarray, lengths: np.ndarray, schema: SequenceSchema) -> np.ndarray | pd.Series:
    """Each visit's index: the entity's start plus the gaps of its later visits (each at least the
    smallest training gap, so the index strictly increases within an entity)."""
    first = np.zeros(len(gaps), dtype=bool)
    first[np.cumsum(lengths)[:-1] if len(lengths) else []] = True
    if len(gaps):
        first[0] = True
    floor = schema.min_gap if schema.min_gap is not None else (1.0 if schema.index_kind == "integer" else 1e-9)
    steps = np.where(first, 0.0, np.maximum(np.nan_to_num(gaps, nan=floor), floor))
    if schema.index_kind == "integer":
        steps = np.round(steps)
        start = np.round(start)
    entity = np.repeat(np.arange(len(lengths)), lengths)
    totals = np.cumsum(steps)
    offsets = np.concatenate([[0.0], totals[np.cumsum(lengths)[:-1] - 1]]) if len(lengths) else np.zeros(0)
    values = start[entity] + totals - offsets[entity] if len(gaps) else np.zeros(0)
    if schema.index_kind == "integer":
        return values.astype(np.int64)
    if schema.index_kind == "datetime":
        return pd.to_datetime(np.round(values * _NANOSECONDS_PER_DAY).astype(np.int64), unit="ns")
    return values


def entity_kind(column: pd.Series) -> str:
    numeric = pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype)
    return "integer" if numeric and bool(np.all(column.to_numpy(dtype=np.float64) % 1 == 0)) else "string"


def split_metadata(metadata: Metadata | None, split: SplitTable, schema: SequenceSchema) -> tuple[Metadata, Metadata]:
    """(static metadata, visit metadata): declared specs where given (without the "static" key), else
    detected: static columns on one row per entity, so a per-patient identifier reads as one."""
    def part(columns: list[str], frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
        if metadata is None:
            return Metadata.detect(frame[columns]).columns if columns else {}
        missing = [c for c in columns if c not in metadata.columns]
        if missing:
            raise MetadataError(f"column {missing[0]!r} is in the table but not in the metadata")
        return {c: {k: v for k, v in metadata.columns[c].items() if k != "static"} for c in columns}

    if metadata is not None:
        extra = [c for c in metadata.columns if c not in schema.column_order]
        if extra:
            raise MetadataError(f"column {extra[0]!r} is in the metadata but not in the table")
    static = part(schema.static_columns, split.static)
    visits = part(schema.visit_columns, split.visits)
    if schema.sequence_index is not None:
        static[START_COLUMN], visits[GAP_COLUMN] = index_metadata(schema)
    return Metadata(static), Metadata(visits)
