"""Long tables (many rows per entity) cut into what the models learn, and put back together.

A long table has an entity column (the patient), an optional sequence index (visit number, day or
datetime) and value columns. Columns constant within every entity are the entity's *static*
attributes (one row per entity); the rest are *per-visit* columns. The sequence index becomes two
learned columns: the entity's first index value (static) and the gap since the previous visit
(per visit), so order and inter-visit gaps are both learned and a decoded index always increases.
Per-visit columns that follow exactly from the visits themselves (a visit number; the previous
visit's index, as the start of counting-process intervals) are *derived*: recorded as a rule,
not learned, and filled from it on decode, so a synthetic patient cannot break them.

Error messages name columns and at most one entity: rows are never logged.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
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
#: Derived-column rules: the first visit's value plus 0, 1, 2, ...; the previous visit's sequence
#: index (a constant at the first visit).
VISIT_NUMBER, PREVIOUS_INDEX = "visit_number", "previous_index"
RULES = (VISIT_NUMBER, PREVIOUS_INDEX)
_DERIVED_DTYPES = ("integer", "float", "datetime")
#: A rule is read from the data only when at least this many later visits (after each patient's
#: first) follow it: on a handful of visits a coincidence would pass for a rule.
MIN_RULE_VISITS = 10


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
    #: per-visit columns filled from a rule (:func:`derived_columns`): name → {"rule", "first", "dtype"}
    derived: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SequenceSchema":
        """The schema a model file stores; ``ValueError`` when its derived columns are not well formed."""
        schema = cls(**d)
        if not isinstance(schema.derived, dict):
            raise ValueError("derived columns are malformed")
        for name, rule in schema.derived.items():
            if (name not in schema.column_order or name in (*schema.static_columns, *schema.visit_columns)
                    or not isinstance(rule, dict) or rule.get("rule") not in RULES or rule.get("dtype") not in _DERIVED_DTYPES
                    or isinstance(rule.get("first"), bool) or not isinstance(rule.get("first"), (int, float))
                    or not np.isfinite(rule["first"])
                    or rule["rule"] == PREVIOUS_INDEX and schema.sequence_index is None):
                raise ValueError(f"derived column {name!r} is malformed")
        return schema


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


def derived_columns(frame: pd.DataFrame, entity_column: str, sequence_index: str | None, kind: str,
                    candidates: list[str], metadata: Metadata | None = None) -> dict[str, dict[str, Any]]:
    """The per-visit columns among ``candidates`` that follow a rule on every row, with the rule.

    A visit number is the first visit's value (the same for every entity) plus 0, 1, 2, ... (cgd's
    ``enum``); a previous index is the previous visit's sequence index, and one constant at each
    entity's first visit (cgd's ``tstart`` beside the index ``tstop``: the (start, stop] intervals of
    the counting-process format). Learned, they are only approximately kept (cgd: ``enum``'s lag-1
    0.89 against 1.00). ``"derived": false`` in a column's metadata keeps it learned; ``true``
    requires a rule and is an error naming the column where none holds.
    """
    if sequence_index is not None:
        ordered = frame.sort_values([entity_column, sequence_index], kind="stable")
        index = _index_values(ordered[sequence_index], kind)
    else:
        ordered, index = frame.sort_values(entity_column, kind="stable"), None
    position = ordered.groupby(entity_column, sort=False).cumcount().to_numpy()
    later = position > 0
    derived = {}
    for name in candidates:
        declared = metadata.columns.get(name, {}).get("derived") if metadata is not None else None
        if declared is not None and not isinstance(declared, bool):
            raise MetadataError(f"column {name!r}: \"derived\" must be true or false, got {declared!r}")
        if declared is False:
            continue
        rule = _rule(ordered[name], position, index, kind)
        if rule is None or later.sum() < MIN_RULE_VISITS and not declared:
            if declared:
                raise InvalidDataError(
                    f"column {name!r} is declared derived but is neither a visit number (the first visit's value "
                    "plus 0, 1, 2, ...) nor the previous visit's sequence index on every row; declare it "
                    "\"derived\": false or fix the data")
            continue
        derived[name] = rule
    if derived:
        logger.info("per-visit column(s) %s follow a rule on every visit: filled from it, not learned",
                    ", ".join(f"{name} ({rule['rule'].replace('_', ' ')})" for name, rule in derived.items()))
    return derived


def _rule(column: pd.Series, position: np.ndarray, index: np.ndarray | None, kind: str) -> dict[str, Any] | None:
    """The rule ``column`` (in visit order) follows on every row, or None."""
    if column.isna().any() or pd.api.types.is_bool_dtype(column.dtype):
        return None
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        dtype, values = "datetime", _index_values(column, "datetime")
    elif pd.api.types.is_numeric_dtype(column.dtype):
        dtype = "integer" if pd.api.types.is_integer_dtype(column.dtype) else "float"
        values = column.to_numpy(dtype=np.float64)
    else:
        return None
    first = position == 0
    if first.all():
        return None
    offsets = values - position
    if dtype != "datetime" and np.all(offsets == offsets[0]):
        return {"rule": VISIT_NUMBER, "first": float(offsets[0]), "dtype": dtype}
    starts = values[first]
    if index is not None and (dtype == "datetime") == (kind == "datetime") and np.all(starts == starts[0]):
        previous = np.roll(index, 1)  # at a later visit, the row before is the same entity's previous visit
        if np.all(values[~first] == previous[~first]):
            return {"rule": PREVIOUS_INDEX, "first": float(starts[0]), "dtype": dtype}
    return None


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
    """The long table of decoded entities: ``static`` (one row each), ``visits`` (``lengths`` rows each, in
    order), the sequence index rebuilt from the start and gaps, and the derived columns from their rules."""
    repeat = np.repeat(np.arange(len(lengths)), lengths)
    out = visits.reset_index(drop=True).copy()
    out[schema.entity_column] = entity_ids.to_numpy()[repeat]
    for name in schema.static_columns:
        out[name] = static[name].iloc[repeat].to_numpy()
    first = np.zeros(len(out), dtype=bool)
    first[np.cumsum(lengths)[:-1] if len(lengths) else []] = True
    first[:1] = True
    index = None
    if schema.sequence_index is not None:
        index = _decoded_index(static[START_COLUMN].to_numpy(dtype=np.float64),
                               visits[GAP_COLUMN].to_numpy(dtype=np.float64), lengths, first, schema)
        out[schema.sequence_index] = _as_dtype(index, schema.index_kind)
    position = np.arange(len(out)) - np.flatnonzero(first)[np.cumsum(first) - 1] if len(out) else np.zeros(0, dtype=np.int64)
    for name, rule in schema.derived.items():
        if rule["rule"] == VISIT_NUMBER:
            values = rule["first"] + position
        else:
            values = np.where(first, rule["first"], np.roll(index, 1)) if index is not None else np.zeros(0)
        out[name] = _as_dtype(values, rule["dtype"])
    return out[schema.column_order]


def _decoded_index(start: np.ndarray, gaps: np.ndarray, lengths: np.ndarray, first: np.ndarray,
                   schema: SequenceSchema) -> np.ndarray:
    """Each visit's index (as float: days for datetimes): the entity's start plus the gaps of its later
    visits, each at least the smallest training gap, so the index strictly increases within an entity."""
    floor = schema.min_gap if schema.min_gap is not None else (1.0 if schema.index_kind == "integer" else 1e-9)
    steps = np.where(first, 0.0, np.maximum(np.nan_to_num(gaps, nan=floor), floor))
    if schema.index_kind == "integer":
        steps = np.round(steps)
        start = np.round(start)
    entity = np.repeat(np.arange(len(lengths)), lengths)
    totals = np.cumsum(steps)
    offsets = np.concatenate([[0.0], totals[np.cumsum(lengths)[:-1] - 1]]) if len(lengths) else np.zeros(0)
    return start[entity] + totals - offsets[entity] if len(gaps) else np.zeros(0)


def _as_dtype(values: np.ndarray, dtype: str) -> np.ndarray | pd.Series:
    """Float index values as the column's kind: integers, floats, or datetimes from days since 1970."""
    if dtype == "integer":
        return np.round(values).astype(np.int64)
    if dtype == "datetime":
        return pd.to_datetime(np.round(np.asarray(values) * _NANOSECONDS_PER_DAY).astype(np.int64), unit="ns")
    return np.asarray(values, dtype=np.float64)


def entity_kind(column: pd.Series) -> str:
    numeric = pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype)
    return "integer" if numeric and bool(np.all(column.to_numpy(dtype=np.float64) % 1 == 0)) else "string"


def split_metadata(metadata: Metadata | None, split: SplitTable, schema: SequenceSchema) -> tuple[Metadata, Metadata]:
    """(static metadata, visit metadata): declared specs where given (without the "static" and "derived" keys), else
    detected: static columns on one row per entity, so a per-patient identifier reads as one."""
    def part(columns: list[str], frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
        if metadata is None:
            return Metadata.detect(frame[columns]).columns if columns else {}
        missing = [c for c in columns if c not in metadata.columns]
        if missing:
            raise MetadataError(f"column {missing[0]!r} is in the table but not in the metadata")
        return {c: {k: v for k, v in metadata.columns[c].items() if k not in ("static", "derived")} for c in columns}

    if metadata is not None:
        extra = [c for c in metadata.columns if c not in schema.column_order]
        if extra:
            raise MetadataError(f"column {extra[0]!r} is in the metadata but not in the table")
    static = part(schema.static_columns, split.static)
    visits = part(schema.visit_columns, split.visits)
    if schema.sequence_index is not None:
        static[START_COLUMN], visits[GAP_COLUMN] = index_metadata(schema)
    return Metadata(static), Metadata(visits)
