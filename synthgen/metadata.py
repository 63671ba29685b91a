"""Column kinds of one table, read, written and detected in SDV's single-table metadata format.

Metadata says what each column *is* (its ``sdtype``), so the right transformer encodes it. It is
detected from the table, or loaded from a JSON file written by synthgen or by SDV, so a user can
correct a wrong guess once and reuse it. Error messages name columns and at most one offending
cell: patient data is sensitive and never goes into logs.
"""
from __future__ import annotations

import copy
import json
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthgen._files import write_atomic
from synthgen.choices import MIN_CATEGORY_COUNT
from synthgen.errors import InvalidDataError, MetadataError

logger = logging.getLogger(__name__)

SDTYPES = ("numerical", "categorical", "boolean", "datetime", "id")

#: String formats tried, in order, when detecting dates stored as text.
DATETIME_FORMATS = (
    "%Y-%m-%d",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y/%m/%d",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%d.%m.%Y",
    "%Y%m%d",
)

_SINGLE_TABLE_VERSION = "SINGLE_TABLE_V1"
_KNOWN_VERSIONS = frozenset({_SINGLE_TABLE_VERSION, "V1", "MULTI_TABLE_V1"})

#: SDV's numerical ``computer_representation`` values.
_REPRESENTATIONS = frozenset(
    {"Float", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64"}
)

#: SDV's semantic sdtypes (PII unless the file says ``"pii": false``) and its ``unknown`` sdtype,
#: which SDV also anonymizes. Other sdtypes SDV marks ``"pii": true`` are Faker functions.
_SDV_SEMANTIC_SDTYPES = frozenset({
    "address", "administrative_unit", "city", "country_code", "credit_card_number", "email",
    "first_name", "iban", "ipv4_address", "ipv6_address", "last_name", "latitude",
    "license_plate", "longitude", "mac_address", "name", "phone_number", "postcode",
    "secondary_address", "ssn", "state", "state_abbr", "street_address", "swift11", "swift8",
    "unknown", "user_agent_string", "vin",
})

_ID_NAMES = frozenset(
    {"id", "mrn", "key", "patient", "patient_number", "record", "index", "rownames", "unnamed: 0"}
)
_ID_SUFFIX = re.compile(r"[_\s.\-](?:id|no|number|key|mrn)$")  # matched on the lower-cased name
_ID_CAMEL_SUFFIX = re.compile(r"[a-z0-9](?:ID|Id|No|Number|Key)$")  # patientId, SubjectID

#: A text column is read as numbers or dates when at most this share of its values are not; those
#: cells are then read as missing, with a warning (typos, "n/a?"), rather than the column becoming
#: categorical or an identifier.
MAX_UNREADABLE_SHARE = 0.1
_MIN_ID_ROWS = 10  # fewer unique values than this are too few to call a column an identifier
_SAMPLE = 1000  # values tried first when probing date formats, so most misses are cheap
_MAX_EXACT_FLOAT_INT = 2**53


class Metadata:
    """Column kinds of one table, in SDV's single-table metadata format.

    ``columns`` maps each column name to its SDV column spec, e.g.
    ``{"sdtype": "numerical", "computer_representation": "Int64"}``. Keys synthgen does not use
    (a plugin's ``"transformer"``, SDV's ``"regex_format"``) are kept as they are.
    """

    def __init__(
        self, columns: dict[str, dict[str, Any]] | None = None, primary_key: str | None = None
    ) -> None:
        self.columns: dict[str, dict[str, Any]] = {}
        for name, spec in (columns or {}).items():
            if not isinstance(name, str):
                raise MetadataError(f"column names must be strings, got {name!r}")
            self.columns[name] = _checked_spec(name, copy.deepcopy(spec))
        if primary_key is not None and not isinstance(primary_key, str):
            raise MetadataError(f"primary_key must be one column name, got {primary_key!r}")
        if primary_key is not None and primary_key not in self.columns:
            raise MetadataError(f"primary_key {primary_key!r} is not one of the metadata's columns")
        self.primary_key = primary_key

    @classmethod
    def detect(cls, data: pd.DataFrame) -> "Metadata":
        """Guess every column's sdtype from its values; the first id column becomes the primary key."""
        if data.shape[0] == 0 or data.shape[1] == 0:
            raise InvalidDataError(
                f"the table is empty ({data.shape[0]} rows, {data.shape[1]} columns); "
                "synthgen needs at least one row and one column"
            )
        _check_column_names(data)
        for name in data.columns:
            if not isinstance(name, str):
                raise InvalidDataError(
                    f"column names must be strings, but one is {name!r} ({type(name).__name__}); "
                    "name the columns, e.g. data.columns = data.columns.astype(str)"
                )
        columns = {name: _detect_column(name, data[name]) for name in data.columns}
        primary_key = next((name for name, spec in columns.items() if spec["sdtype"] == "id"), None)
        return cls(columns, primary_key)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Metadata":
        """Read SDV single-table metadata, or SDV multi-table metadata holding exactly one table."""
        if not isinstance(d, dict):
            raise MetadataError(f"metadata must be a JSON object, got {type(d).__name__}")
        version = d.get("METADATA_SPEC_VERSION")
        if version is not None and version not in _KNOWN_VERSIONS:
            raise MetadataError(
                f"unsupported METADATA_SPEC_VERSION {version!r}; expected one of "
                f"{', '.join(sorted(_KNOWN_VERSIONS))}"
            )
        table = d
        if "tables" in d:
            tables = d["tables"]
            if not isinstance(tables, dict) or not tables:
                raise MetadataError("the metadata's 'tables' holds no table")
            if len(tables) > 1:
                raise MetadataError(
                    f"the metadata describes {len(tables)} tables "
                    f"({', '.join(repr(name) for name in tables)}); synthgen models one table, "
                    "so keep only that table's entry"
                )
            (table,) = tables.values()
            if not isinstance(table, dict):
                raise MetadataError("the metadata's table entry must be a JSON object")
        columns = table.get("columns")
        if columns is None and "fields" in table:
            raise MetadataError(
                "this is legacy SDV 0.x metadata ('fields'); upgrade it with SDV 1.x "
                "or let synthgen detect the metadata from the table"
            )
        if not isinstance(columns, dict):
            raise MetadataError("the metadata needs a 'columns' object mapping names to specs")
        return cls(columns, table.get("primary_key"))

    def to_dict(self) -> dict[str, Any]:
        """SDV's single-table format, readable by SDV and by :meth:`from_dict`."""
        d: dict[str, Any] = {"METADATA_SPEC_VERSION": _SINGLE_TABLE_VERSION}
        if self.primary_key is not None:
            d["primary_key"] = self.primary_key
        d["columns"] = copy.deepcopy(self.columns)
        return d

    @classmethod
    def load(cls, path: str | Path) -> "Metadata":
        """Read a metadata JSON file written by synthgen or SDV."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise MetadataError(f"cannot read metadata file {path}: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise MetadataError(f"metadata file {path} is not UTF-8 text") from exc
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MetadataError(
                f"metadata file {path} is not valid JSON: {exc.msg} "
                f"at line {exc.lineno} column {exc.colno}"
            ) from exc
        try:
            return cls.from_dict(d)
        except MetadataError as exc:
            raise MetadataError(f"metadata file {path}: {exc}") from exc

    def save(self, path: str | Path) -> None:
        """Write the metadata as JSON (see :meth:`to_dict`) so it can be edited and reused."""
        path = Path(path)
        try:
            text = json.dumps(self.to_dict(), indent=2) + "\n"
        except (TypeError, ValueError) as exc:
            raise MetadataError(f"the metadata cannot be written as JSON: {exc}") from exc
        write_atomic(path, text)  # a full disk or a kill never leaves a truncated file

    def update_column(self, name: str, **spec: Any) -> "Metadata":
        """Correct one column; returns ``self``.

        As in SDV, a spec with an ``sdtype`` replaces the column's spec; without one, the keys are
        merged into the current spec (e.g. to add a ``transformer``).
        """
        if name not in self.columns:
            raise MetadataError(f"no column {name!r} in the metadata")
        new = spec if "sdtype" in spec else {**self.columns[name], **spec}
        self.columns[name] = _checked_spec(name, copy.deepcopy(new))
        return self

    def validate(self, data: pd.DataFrame) -> None:
        """Check that the table has exactly the metadata's columns; lists every mismatch."""
        _check_column_names(data)
        missing = [name for name in self.columns if name not in data.columns]
        extra = [name for name in data.columns if name not in self.columns]
        problems = []
        if missing:
            problems.append(f"{_count(missing)} in the metadata but not in the table: {_names(missing)}")
        if extra:
            problems.append(f"{_count(extra)} in the table but not in the metadata: {_names(extra)}")
        if problems:
            raise MetadataError("the table does not match the metadata: " + "; ".join(problems))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Metadata):
            return NotImplemented
        return self.columns == other.columns and self.primary_key == other.primary_key

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        counts = Counter(spec["sdtype"] for spec in self.columns.values())
        kinds = [s for s in SDTYPES if s in counts] + [s for s in counts if s not in SDTYPES]
        summary = ", ".join(f"{counts[kind]} {kind}" for kind in kinds)
        n = len(self.columns)
        return f"Metadata({n} column{'' if n == 1 else 's'}{': ' + summary if summary else ''})"


def _checked_spec(name: str, spec: Any) -> dict[str, Any]:
    """Validate one column spec; SDV PII sdtypes become ``id`` (regenerated, never learned)."""
    if not isinstance(spec, dict):
        raise MetadataError(f"column {name!r}: its spec must be a JSON object, got {type(spec).__name__}")
    sdtype = spec.get("sdtype")
    if not isinstance(sdtype, str) or not sdtype:
        raise MetadataError(
            f"column {name!r} needs an 'sdtype' string: one of {', '.join(SDTYPES)} or a plugin's "
            f"name, got {sdtype!r}"
        )
    pii = spec.get("pii")
    if sdtype not in SDTYPES and (sdtype in _SDV_SEMANTIC_SDTYPES or pii is True):
        # SDV regenerates PII with fake values and learns non-PII semantic columns as categories.
        spec = {**spec, "sdtype": "categorical" if pii is False else "id", "pii_sdtype": sdtype}
    representation = spec.get("computer_representation")
    if spec["sdtype"] == "numerical" and representation not in (None, *_REPRESENTATIONS):
        raise MetadataError(
            f"column {name!r}: computer_representation {representation!r} is not one of "
            f"{', '.join(sorted(_REPRESENTATIONS))}"
        )
    datetime_format = spec.get("datetime_format")
    if spec["sdtype"] == "datetime" and datetime_format is not None and (
        not isinstance(datetime_format, str) or "%" not in datetime_format
    ):
        raise MetadataError(
            f"column {name!r}: datetime_format must be a strftime format such as '%Y-%m-%d', "
            f"got {datetime_format!r}"
        )
    others = spec.get("other_datetime_formats")
    if spec["sdtype"] == "datetime" and others is not None and (
        not isinstance(others, list) or not all(isinstance(f, str) and "%" in f for f in others)
    ):
        raise MetadataError(
            f"column {name!r}: other_datetime_formats must be a list of strftime formats, got {others!r}"
        )
    return spec


def _check_column_names(data: pd.DataFrame) -> None:
    duplicated = data.columns[data.columns.duplicated()].unique().tolist()
    if duplicated:
        raise InvalidDataError(f"the table has duplicate column names: {_names(duplicated)}; rename them")


def _detect_column(name: str, column: pd.Series) -> dict[str, Any]:
    values = column.dropna()
    if values.empty:
        raise InvalidDataError(f"column {name!r} is entirely missing; drop it or fill it")
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return {"sdtype": "categorical"}
    if pd.api.types.is_bool_dtype(dtype):
        return {"sdtype": "boolean"}
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return {"sdtype": "datetime"}
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
        return _detect_numbers(name, values)
    if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
        kind = pd.api.types.infer_dtype(values, skipna=True)
        if kind == "boolean":
            return {"sdtype": "boolean"}
        if kind == "string":
            return _detect_strings(name, values)
        if kind in ("datetime", "datetime64", "date"):
            return {"sdtype": "datetime"}
        if kind in ("integer", "floating", "mixed-integer-float", "decimal"):
            return _detect_numbers(name, pd.to_numeric(values))
        raise _mixed_types_error(name, values)
    raise InvalidDataError(
        f"column {name!r} has dtype {dtype}, which synthgen cannot model; "
        "convert it to numbers, text or dates"
    )


def _detect_strings(name: str, values: pd.Series) -> dict[str, Any]:
    dates = _detect_dates(name, values)
    if dates is not None:
        return dates
    numbers = pd.to_numeric(values, errors="coerce")
    n_bad = int(numbers.isna().sum())
    if 0 < n_bad <= MAX_UNREADABLE_SHARE * len(values):  # probably typos in a numeric column
        spec = _detect_numbers(name, numbers.dropna())
        if spec["sdtype"] in ("numerical", "datetime"):
            logger.warning(
                "column %r is detected as %s, but %d of %d values are not numbers: those cells will be "
                "read as missing (fix them, or declare the column's sdtype in a metadata file)",
                name, spec["sdtype"], n_bad, len(values),
            )
            return spec
    if len(values) >= _MIN_ID_ROWS and values.is_unique:
        return {"sdtype": "id"}
    return {"sdtype": "categorical"}


def _detect_dates(name: str, values: pd.Series) -> dict[str, Any] | None:
    """A datetime spec when (nearly) every value is a date in one of ``DATETIME_FORMATS``, else None.

    Formats are chosen greedily, most values first; the first is the one samples are written in.
    Mixed formats and unreadable cells are said in a warning, never silently turned into an ``id``.
    """
    head = values.iloc[:_SAMPLE]
    head_masks = {fmt: _parses(head, fmt) for fmt in DATETIME_FORMATS}
    if np.logical_or.reduce(list(head_masks.values())).mean() < 1 - MAX_UNREADABLE_SHARE:
        return None  # cheap exit for text that is not dates
    candidates = [fmt for fmt, mask in head_masks.items() if mask.any()]
    masks = {fmt: head_masks[fmt] if len(values) <= _SAMPLE else _parses(values, fmt) for fmt in candidates}
    unread = np.ones(len(values), dtype=bool)
    chosen: list[tuple[str, int]] = []
    while candidates:
        gains = [int((masks[fmt] & unread).sum()) for fmt in candidates]
        best = int(np.argmax(gains))
        if gains[best] == 0:
            break
        fmt = candidates.pop(best)
        chosen.append((fmt, gains[best]))
        unread &= ~masks[fmt]
    n_bad = int(unread.sum())
    if not chosen or n_bad > MAX_UNREADABLE_SHARE * len(values):
        return None
    spec: dict[str, Any] = {"sdtype": "datetime", "datetime_format": chosen[0][0]}
    if len(chosen) > 1:
        spec["other_datetime_formats"] = [fmt for fmt, _ in chosen[1:]]
        logger.warning(
            "column %r holds dates in %d formats (%s); all are read, and samples are written as %s",
            name, len(chosen), ", ".join(f"{fmt}: {count} values" for fmt, count in chosen), chosen[0][0],
        )
    if n_bad:
        logger.warning(
            "column %r is detected as dates (%s), but %d of %d values are not dates: those cells will be "
            "read as missing (fix them, or declare the column's sdtype in a metadata file)",
            name, spec["datetime_format"], n_bad, len(values),
        )
    return spec


def unreadable_cells(column: pd.Series, spec: dict[str, Any]) -> np.ndarray | None:
    """Present text cells of a numerical or datetime column that do not read as its kind, or None.

    None when the column is not text of one of those kinds (nothing to read). The cells found are
    read as missing by the table transformer, with a warning.
    """
    if not (column.dtype == object or pd.api.types.is_string_dtype(column.dtype)):
        return None
    present = column.notna().to_numpy()
    if spec.get("sdtype") == "numerical":
        return present & pd.to_numeric(column, errors="coerce").isna().to_numpy()
    if spec.get("sdtype") == "datetime" and spec.get("datetime_format"):
        return present & read_dates(column, datetime_formats(spec)).isna().to_numpy()
    return None


def datetime_formats(spec: dict[str, Any]) -> list[str]:
    """The formats a datetime column is read with: ``datetime_format``, then any others detected."""
    return [spec["datetime_format"], *spec.get("other_datetime_formats", [])]


def read_dates(values: pd.Series, formats: list[str]) -> pd.Series:
    """``values`` as datetimes, each read with the first of ``formats`` that parses it; NaT otherwise."""
    result = pd.to_datetime(values, format=formats[0], errors="coerce")
    for fmt in formats[1:]:
        todo = result.isna().to_numpy() & values.notna().to_numpy()
        if not todo.any():
            break
        result[todo] = pd.to_datetime(values[todo], format=fmt, errors="coerce").to_numpy(dtype=result.dtype)
    return result


def _detect_numbers(name: str, values: pd.Series) -> dict[str, Any]:
    floats = values.to_numpy(dtype="float64")
    integral = pd.api.types.is_integer_dtype(values.dtype) or bool(
        np.all(np.isfinite(floats) & (np.floor(floats) == floats) & (np.abs(floats) <= _MAX_EXACT_FLOAT_INT))
    )
    if (
        integral
        and floats.min() >= 19000101
        and floats.max() <= 21001231
        and _all_parse(values.astype("int64").astype(str), "%Y%m%d")
    ):
        return {"sdtype": "datetime", "datetime_format": "%Y%m%d"}
    distinct = values.nunique()
    if integral and distinct == len(values) and len(values) >= _MIN_ID_ROWS and _looks_like_id(name):
        return {"sdtype": "id"}
    # Few distinct values make a coded category, unless none is seen MIN_CATEGORY_COUNT times: then
    # every level would be pooled away and nothing could be generated (medicaldata::opt's
    # BL.Drks.Day: 9 values in 658 rows), so the numbers are modelled as numbers.
    frequent = int(values.value_counts().max()) >= MIN_CATEGORY_COUNT
    if frequent and (distinct <= 5 or (integral and distinct <= 10)):
        return {"sdtype": "categorical"}
    return {"sdtype": "numerical", "computer_representation": "Int64" if integral else "Float"}


def _all_parse(values: pd.Series, fmt: str) -> bool:
    """Whether every (non-null) string parses with ``fmt``."""
    return bool(_parses(values, fmt).all())


def _parses(values: pd.Series, fmt: str) -> np.ndarray:
    """Which strings parse with ``fmt``."""
    # numpy's str_ cells (frames built from numpy draws) are strings too, but pandas' parser refuses them.
    parsed = pd.to_datetime(values.map(str), format=fmt, errors="coerce").notna().to_numpy()
    if fmt == "%Y%m%d":  # without separators, only 8 digits are unambiguous ("202111" is not a date)
        parsed &= values.astype(str).str.fullmatch(r"\d{8}").to_numpy(dtype=bool)
    return parsed


def _looks_like_id(name: str) -> bool:
    lower = name.strip().lower()
    return lower in _ID_NAMES or bool(_ID_SUFFIX.search(lower) or _ID_CAMEL_SUFFIX.search(name.strip()))


def _mixed_types_error(name: str, values: pd.Series) -> InvalidDataError:
    types = values.map(type)  # per cell, but only on this error path
    counts = types.value_counts()
    majority = counts.index[0]
    if len(counts) == 1:
        return InvalidDataError(
            f"column {name!r} holds {majority.__name__} values, which synthgen cannot model; "
            "convert them to numbers, text or dates"
        )
    first = int(np.argmax((types != majority).to_numpy()))
    return InvalidDataError(
        f"column {name!r} mixes Python types {', '.join(t.__name__ for t in counts.index)}: mostly "
        f"{majority.__name__}, first {types.iloc[first].__name__} in row {_row(values, first)}; "
        "convert the column to one type"
    )


def _row(values: pd.Series, position: int) -> str:
    """The row label of ``values.iloc[position]``, printed as a plain Python value."""
    label = values.index[position]
    return repr(label.item() if isinstance(label, np.generic) else label)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _count(names: list[Any]) -> str:
    return f"{len(names)} column{'' if len(names) == 1 else 's'}"


def _names(names: list[Any]) -> str:
    return ", ".join(repr(name) for name in names)
