"""Two tables, one patient each in the parent and many rows each in the child, as one long table and back.

The input form SDV users know: multi-table metadata (``tables`` with a ``primary_key`` on the
parent, ``relationships`` with one parent → child link, an optional ``sequence_index`` on the
child). The child's rows are joined to their parent by the key into the long table
``SequenceSynthesizer`` learns, the parent's columns declared static (one value per patient), and a
sampled long table is cut back into a parent table (one row per patient, fresh keys) and a child
table pointing at those keys. Nothing is dropped silently: orphan child rows, parents without a
child row, duplicated parent keys and clashing column names are errors that count them. The
evaluation joins real and sampled pairs the same way (``join_long``), by the layout the model stores.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from synthgen.errors import InvalidDataError, MetadataError
from synthgen.metadata import Metadata

#: Table names become file names when sampling (``<name>.csv``): letters, digits, ``_``, ``-``, ``.``.
_TABLE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


@dataclass(frozen=True)
class TwoTables:
    """The parent → child layout: table names, the key on each side, and each table's columns in order."""

    parent: str
    child: str
    parent_key: str
    child_key: str
    parent_columns: list[str]
    child_columns: list[str]
    sequence_index: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TwoTables":
        """The layout a model file stores; ``ValueError`` when it is not one (a crafted file)."""
        layout = cls(**{name: d[name] for name in cls.__dataclass_fields__})
        names = [layout.parent, layout.child, layout.parent_key, layout.child_key]
        lists = [layout.parent_columns, layout.child_columns]
        if (not all(isinstance(name, str) for name in names) or not _file_names(layout.parent, layout.child) or not all(isinstance(columns, list) for columns in lists)
                or not all(isinstance(name, str) for columns in lists for name in columns)
                or layout.parent_key not in layout.parent_columns or layout.child_key not in layout.child_columns):
            raise ValueError("the two-table layout is malformed")
        return layout


def read_two_table_metadata(path: str | Path) -> tuple[TwoTables, dict[str, Any]]:
    """(the layout, each table's column specs by table name) from SDV multi-table metadata JSON."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MetadataError(f"cannot read the metadata file {str(path)!r}: {exc}") from exc
    tables, links = document.get("tables"), document.get("relationships")
    if not isinstance(tables, dict) or not isinstance(links, list) or len(links) != 1 or not isinstance(links[0], dict):
        raise MetadataError(f"{str(path)!r}: two tables need SDV multi-table metadata with 'tables' and exactly one "
                            "entry in 'relationships' (parent_table_name, parent_primary_key, child_table_name, "
                            "child_foreign_key)")
    link = links[0]
    try:
        parent, child = link["parent_table_name"], link["child_table_name"]
        parent_key, child_key = link["parent_primary_key"], link["child_foreign_key"]
        specs = {name: dict(tables[name]["columns"]) for name in (parent, child)}
    except (KeyError, TypeError) as exc:
        raise MetadataError(f"{str(path)!r}: the relationship or its tables are incomplete (missing {exc})") from None
    if not _file_names(parent, child) or parent == child:
        raise MetadataError(f"{str(path)!r}: table names {parent!r} and {child!r} must differ and be plain file names "
                            "(letters, digits, _ - .): sampling writes <name>.csv for each")
    for table, key in ((parent, parent_key), (child, child_key)):
        if key not in specs[table]:
            raise MetadataError(f"{str(path)!r}: key {key!r} is not a column of table {table!r}")
    index = tables[child].get("sequence_index")
    if index is not None and index not in specs[child]:
        raise MetadataError(f"{str(path)!r}: sequence_index {index!r} is not a column of table {child!r}")
    clash = (set(specs[parent]) - {parent_key}) & set(specs[child])
    if clash:
        raise MetadataError(f"{str(path)!r}: column {sorted(clash)[0]!r} is in both tables; rename it in one of them")
    layout = TwoTables(parent, child, parent_key, child_key, list(specs[parent]), list(specs[child]), index)
    return layout, specs


def join_tables(parents: pd.DataFrame, children: pd.DataFrame, layout: TwoTables,
                specs: dict[str, Any], *, declared: bool = False) -> tuple[pd.DataFrame, Metadata]:
    """The long table (one row per child row, its parent's columns repeated) and its metadata.

    The parent's columns are static by the layout. ``declared`` (a DP fit, which reads nothing about
    the schema from the rows) also makes the layout declare the child's columns per visit
    (``"static": false``) unless their spec says otherwise, and keeps the key's declared
    representation, where a fit without DP detects both from the rows.
    """
    long = join_long(parents, children, layout)
    columns = {name: ({"static": False, **spec} if declared else spec) for name, spec in specs[layout.child].items()}
    key_spec = {name: value for name, value in {**specs[layout.parent][layout.parent_key],
                                                **specs[layout.child][layout.child_key]}.items() if name != "static"}
    columns[layout.child_key] = {**key_spec, "sdtype": "id"} if declared else {"sdtype": "id"}
    for name, spec in specs[layout.parent].items():
        if name != layout.parent_key:
            columns[name] = {**spec, "static": True}
    return long, Metadata.from_dict({"columns": columns})


def join_long(parents: pd.DataFrame, children: pd.DataFrame, layout: TwoTables, *,
              sources: tuple[str, str] | None = None, exact: bool = False) -> pd.DataFrame:
    """The long table of a parent and a child table linked as ``layout`` says, in the child's row order
    (so a model's holdout patients are found again): its columns, then the parent's others.

    ``sources`` (say the parent's and the child's file names) prefix each error about that table;
    ``exact`` also refuses columns the layout does not have (a sampled table has exactly its columns).
    """
    where = [f"{sources[0]}: ", f"{sources[1]}: "] if sources is not None else ["", ""]
    for at, frame, table, columns in ((where[0], parents, layout.parent, layout.parent_columns),
                                      (where[1], children, layout.child, layout.child_columns)):
        missing = [name for name in columns if name not in frame.columns]
        if missing:
            raise InvalidDataError(f"{at}the {table!r} table has no column {missing[0]!r} that the metadata declares")
        extra = [str(name) for name in frame.columns if name not in columns]
        if exact and extra:
            raise InvalidDataError(f"{at}the {table!r} table has a column {extra[0]!r} that the model's {table!r} table "
                                   f"does not have (it has {', '.join(map(repr, columns))})")
    keys = parents[layout.parent_key]
    if keys.isna().any() or keys.duplicated().any():
        raise InvalidDataError(f"{where[0]}the {layout.parent!r} table's key {layout.parent_key!r} has "
                               f"{int(keys.isna().sum())} missing and {int(keys.duplicated().sum())} repeated values; "
                               "each patient needs one key")
    links = children[layout.child_key]
    orphans = ~links.isin(keys)
    if orphans.any():
        raise InvalidDataError(f"{where[1]}{int(orphans.sum())} row(s) of {layout.child!r} point at no {layout.parent!r} "
                               f"row through {layout.child_key!r}")
    childless = ~keys.isin(links)
    if childless.any():
        raise InvalidDataError(f"{where[0]}{int(childless.sum())} {layout.parent!r} row(s) have no {layout.child!r} row; "
                               "a patient history needs at least one (remove them, or model the parent table on its own)")
    statics = parents[layout.parent_columns].rename(columns={layout.parent_key: layout.child_key})
    return children[layout.child_columns].merge(statics, on=layout.child_key, how="left", validate="many_to_one")


def table_files(folder: Path, layout: TwoTables) -> tuple[Path, Path]:
    """(parent file, child file) of a folder as ``synthgen sample`` writes it: ``<parent>.csv``, ``<child>.csv``."""
    paths = folder / f"{layout.parent}.csv", folder / f"{layout.child}.csv"
    for path in paths:
        if not path.is_file():
            raise InvalidDataError(f"{str(path)!r} does not exist: the folder {str(folder)!r} should hold the "
                                   f"{layout.parent!r} and {layout.child!r} tables as {paths[0].name} and {paths[1].name}")
    return paths


def split_tables(long: pd.DataFrame, layout: TwoTables) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(parent table, child table) of a sampled long table: one parent row per patient, keys shared."""
    statics = [name for name in layout.parent_columns if name != layout.parent_key]
    parents = (long.drop_duplicates(layout.child_key)[[layout.child_key, *statics]]
               .rename(columns={layout.child_key: layout.parent_key})[layout.parent_columns].reset_index(drop=True))
    return parents, long[layout.child_columns].reset_index(drop=True)


def _file_names(*names: Any) -> bool:
    return all(isinstance(name, str) and _TABLE_NAME.fullmatch(name) is not None for name in names)
