"""Reading input tables and writing sampled ones: CSV, TSV or Parquet, chosen by file suffix.

Writers stream chunks into a temporary file beside the target and rename it only when every
chunk is written, so a failed run never leaves a partial output file behind.
"""
from __future__ import annotations

import bz2
import csv
import gzip
import io
import logging
import lzma
import zipfile
from pathlib import Path
from types import TracebackType

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from synthgen._files import INTERRUPTED, atomic_path
from synthgen.errors import InvalidArgumentError, InvalidDataError

logger = logging.getLogger(__name__)

_CSV = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz")
_TSV = (".tsv", ".tsv.gz")
_PARQUET = (".parquet", ".pq")
SUPPORTED = ", ".join((*_CSV, *_TSV, *_PARQUET))
#: Separators a .csv/.tsv file is sniffed for when its header does not split on the expected one.
_SEPARATORS = (",", ";", "\t", "|")
_SNIFF_LINES = 50
_SNIFF_BYTES = 1 << 20


def _format(path: Path) -> str:
    name = path.name.lower()
    for suffixes, kind in ((_CSV, "csv"), (_TSV, "tsv"), (_PARQUET, "parquet")):
        if name.endswith(suffixes):
            return kind
    raise InvalidArgumentError(f"{str(path)!r}: unsupported file type; use one of {SUPPORTED}")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV, TSV or Parquet file into a DataFrame, with errors that name the file."""
    path = Path(path)
    kind = _format(path)
    if not path.is_file():
        raise InvalidDataError(f"{str(path)!r} does not exist or is not a file")
    try:
        if kind == "parquet":
            frame = pd.read_parquet(path)
            # The DataFrame's columns live in Arrow's pool, which keeps the conversion's freed
            # buffers: on a 10M-row table that is as much again as the frame (2.5 GB of RSS for a
            # 1.1 GB frame, 1.25 GB after this), memory a fit would otherwise build on.
            pa.default_memory_pool().release_unused()
        else:
            separator = _separator(path, "\t" if kind == "tsv" else ",")
            header = pd.read_csv(path, sep=separator, header=None, nrows=1, dtype=str, keep_default_na=False)
            _check_header(path, header.iloc[0].tolist())
            frame = pd.read_csv(path, sep=separator, low_memory=False)
    except pd.errors.EmptyDataError as exc:
        raise InvalidDataError(f"{str(path)!r} is empty") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, pa.ArrowException, ValueError) as exc:
        raise InvalidDataError(f"{str(path)!r} could not be read as {kind.upper()}: {exc}") from exc
    if frame.empty:
        raise InvalidDataError(f"{str(path)!r} has no data rows")
    return frame


def _first_lines(path: Path) -> list[str]:
    """The first lines of a (possibly compressed) text table, for sniffing its separator."""
    name = path.name.lower()
    if name.endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if not m.endswith("/")]
            raw = archive.open(members[0]).read(_SNIFF_BYTES) if members else b""
    else:
        opener = gzip.open if name.endswith(".gz") else bz2.open if name.endswith(".bz2") else (
            lzma.open if name.endswith(".xz") else open)
        with opener(path, "rb") as handle:
            raw = handle.read(_SNIFF_BYTES)
    text = raw.decode("utf-8", errors="replace").lstrip("\ufeff")
    lines = text.splitlines()
    if len(raw) == _SNIFF_BYTES and len(lines) > 1:
        lines = lines[:-1]  # cut mid-line
    return [line for line in lines[:_SNIFF_LINES] if line.strip()]


def _separator(path: Path, expected: str) -> str:
    """``expected``, unless the header does not split on it and another separator splits every line alike.

    A semicolon-separated file named .csv (the European spreadsheet default) would otherwise be
    learned as one text column named ``a;b;c``.
    """
    lines = _first_lines(path)
    if not lines:
        return expected

    def widths(separator: str) -> list[int]:
        return [len(row) for row in csv.reader(io.StringIO("\n".join(lines)), delimiter=separator)]

    if widths(expected)[0] > 1:
        return expected
    for separator in _SEPARATORS:
        counts = widths(separator)
        if separator != expected and counts[0] > 1 and all(count == counts[0] for count in counts):
            logger.warning("%r is separated by %r, not %r: read it so", str(path), separator, expected)
            return separator
    return expected


def _check_header(path: Path, names: list[str]) -> None:
    """Refuse empty or repeated column names (pandas would invent ``Unnamed: 0`` and ``a.1``)."""
    blank = [position for position, name in enumerate(names, 1) if not str(name).strip()]
    if blank:
        where = ", ".join(str(position) for position in blank)
        raise InvalidDataError(
            f"{str(path)!r}: column {where} of the header has no name; name every column "
            "(a saved row index? write the file without it, e.g. to_csv(index=False))"
        )
    seen: dict[str, int] = {}
    for name in names:
        seen[name] = seen.get(name, 0) + 1
    repeated = [name for name, count in seen.items() if count > 1]
    if repeated:
        raise InvalidDataError(
            f"{str(path)!r} has duplicate column names: {', '.join(repr(n) for n in repeated)}; rename them"
        )


def is_table_path(path: str | Path) -> bool:
    """Whether ``path``'s name says it is a table file (so that, say, no folder of images goes there)."""
    try:
        _format(Path(path))
    except InvalidArgumentError:
        return False
    return True


class TableWriter:
    """Append DataFrame chunks to one CSV/TSV/Parquet file; the file appears only on success."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.kind = _format(self.path)
        if self.path.suffix.lower() not in (".csv", ".tsv", *_PARQUET):
            raise InvalidArgumentError(f"{str(path)!r}: write .csv, .tsv or .parquet (compressed CSV output is not supported)")
        self.rows = 0

    def __enter__(self) -> "TableWriter":
        self._publication = atomic_path(self.path)
        self._temporary = self._publication.__enter__()
        self._parquet: pq.ParquetWriter | None = None
        return self

    def write(self, frame: pd.DataFrame) -> None:
        if INTERRUPTED.is_set():
            raise KeyboardInterrupt("interrupted by a signal")
        if self.kind == "parquet":
            if self._parquet is None:
                table = pa.Table.from_pandas(frame, preserve_index=False)
                self._parquet = pq.ParquetWriter(self._temporary, table.schema)
            else:
                table = pa.Table.from_pandas(frame, schema=self._parquet.schema, preserve_index=False)
            self._parquet.write_table(table)
        else:
            frame.to_csv(
                self._temporary,
                sep="\t" if self.kind == "tsv" else ",",
                mode="a",
                header=self.rows == 0,
                index=False,
            )
        self.rows += len(frame)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        closing_error = None
        try:
            if self._parquet is not None:
                self._parquet.close()
        except BaseException as error:  # the footer could not be written: nothing is published
            if exc is None:
                closing_error = error
                exc_type, exc, tb = type(error), error, error.__traceback__
        # Publishes on success; on an error removes the partial file (an OS error becomes an OutputError).
        self._publication.__exit__(exc_type, exc, tb)
        if closing_error is not None:
            raise closing_error
