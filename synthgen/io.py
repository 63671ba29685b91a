"""Reading input tables and writing sampled ones: CSV, TSV or Parquet, chosen by file suffix.

:func:`read_table` reads a file whole; :class:`TableFile` reads it without ever holding it whole
(whole columns a few at a time, then the rows chunk by chunk, typed as the whole read types them).

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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from synthgen._files import INTERRUPTED, atomic_path
from synthgen.choices import DEFAULT_CHUNK_ROWS
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
#: Cells (rows x columns) :meth:`TableFile.columns` reads at once: a 10M-row file one column at a time.
COLUMN_READ_CELLS = 10_000_000
#: Errors of pandas and Arrow that mean the file could not be read as its suffix says.
_READ_ERRORS = (pd.errors.ParserError, UnicodeDecodeError, OSError, pa.ArrowException, ValueError)


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
    except _READ_ERRORS as exc:
        raise InvalidDataError(f"{str(path)!r} could not be read as {kind.upper()}: {exc}") from exc
    if frame.empty:
        raise InvalidDataError(f"{str(path)!r} has no data rows")
    return frame


@contextmanager
def _reading(path: Path, kind: str, where: str = "") -> Iterator[None]:
    """Read errors as one line that names the file (and ``where`` in it)."""
    try:
        yield
    except pd.errors.EmptyDataError as exc:
        raise InvalidDataError(f"{str(path)!r} is empty") from exc
    except _READ_ERRORS as exc:
        raise InvalidDataError(f"{str(path)!r}{where} could not be read as {kind.upper()}: {exc}") from exc


class TableFile:
    """A CSV, TSV or Parquet file read without holding it whole.

    :meth:`columns` gives whole columns, a few at a time (``COLUMN_READ_CELLS``), exactly as
    :func:`read_table` would give them: CSV types are inferred over a whole column (Parquet's come
    from its schema), so detection and transformer fitting see what an in-memory fit sees.
    :meth:`chunks` then gives the rows ``chunk_rows`` at a time (Parquet record batches, CSV
    ``chunksize``), every column cast to the type its whole read had (a chunk alone would type an
    integer column without gaps as int64, a text column whose text comes later as numbers), indexed
    by row position. A CSV is parsed once per column group and once more for the rows.
    """

    def __init__(self, path: str | Path, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> None:
        self.path = Path(path)
        self.kind = _format(self.path)
        if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
            raise InvalidArgumentError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
        self.chunk_rows = chunk_rows
        if not self.path.is_file():
            raise InvalidDataError(f"{str(self.path)!r} does not exist or is not a file")
        self._rows: int | None = None
        self._first: pd.DataFrame | None = None  # a CSV's first column, read to count its rows
        self._dtypes: dict[str, Any] = {}  # each column's dtype as read whole
        self._text: set[str] = set()  # CSV columns that read whole as text only
        with _reading(self.path, self.kind):
            if self.kind == "parquet":
                parquet = pq.ParquetFile(self.path)
                pandas_meta = parquet.schema_arrow.pandas_metadata or {}
                stored_index = {name for name in pandas_meta.get("index_columns", []) if isinstance(name, str)}
                self.names: list[str] = [name for name in parquet.schema_arrow.names if name not in stored_index]
                self._rows = parquet.metadata.num_rows
            else:
                self._separator = _separator(self.path, "\t" if self.kind == "tsv" else ",")
                header = pd.read_csv(self.path, sep=self._separator, header=None, nrows=1, dtype=str,
                                     keep_default_na=False)
                self.names = header.iloc[0].tolist()
                _check_header(self.path, self.names)
        if not self.names:
            raise InvalidDataError(f"{str(self.path)!r} is empty")

    @property
    def rows(self) -> int:
        """The number of data rows (a Parquet footer says; a CSV is parsed for its first column)."""
        if self._rows is None:
            self._first = self._read(self.names[:1])
            self._rows = len(self._first)
        if self._rows == 0:
            raise InvalidDataError(f"{str(self.path)!r} has no data rows")
        return self._rows

    def _read(self, names: list[str]) -> pd.DataFrame:
        with _reading(self.path, self.kind):
            if self.kind == "parquet":
                frame = pd.read_parquet(self.path, columns=names)
                pa.default_memory_pool().release_unused()  # see read_table
            else:
                frame = self._read_csv_columns(names)
        frame = frame[names]
        self._dtypes.update(frame.dtypes.to_dict())
        self._text.update(name for name in names if pd.api.types.is_object_dtype(frame[name].dtype)
                          and pd.api.types.infer_dtype(frame[name], skipna=True) == "string")
        return frame

    def _read_csv_columns(self, names: list[str]) -> pd.DataFrame:
        """Whole CSV columns, parsed ``chunk_rows`` rows at a time (``low_memory=False`` over a whole
        column would tokenize the whole file at once), typed as that whole-column parse types them:
        numbers, bools, and text concatenate to the same values; a column whose chunks disagree
        otherwise (digits in one, words in another) is all text when read whole, so it is read again as text."""
        def read(text: list[str]) -> list[pd.DataFrame]:
            with pd.read_csv(self.path, sep=self._separator, usecols=names, chunksize=self.chunk_rows,
                             dtype={name: str for name in text}) as reader:
                return [piece[names] for piece in reader]

        pieces = read([])
        if not pieces:
            return pd.read_csv(self.path, sep=self._separator, usecols=names)
        text = [name for name in names if not _same_kind([piece[name] for piece in pieces])]
        if text:
            pieces = read(text)
        return pd.concat(pieces) if len(pieces) > 1 else pieces[0]

    def columns(self, names: list[str] | None = None) -> Iterator[pd.DataFrame]:
        """Frames of whole columns ``names`` (default: all), in that order, a few columns per frame."""
        names = list(self.names if names is None else names)
        unknown = [name for name in names if name not in self.names]
        if unknown:
            raise InvalidArgumentError(f"{str(self.path)!r} has no column {unknown[0]!r}")
        per_read = max(1, COLUMN_READ_CELLS // self.rows)
        while names:
            if self._first is not None and names[0] == self._first.columns[0]:
                group, frame, self._first = names[:1], self._first, None
            else:
                group = names[:per_read]
                if self._first is not None and self._first.columns[0] in group:
                    group = group[: group.index(self._first.columns[0])]
                frame = self._read(group)
            names = names[len(group):]
            yield frame

    def chunks(self) -> Iterator[pd.DataFrame]:
        """Every row, ``chunk_rows`` at a time (fewer at a row group's end), each column of the type it
        has when read whole, indexed by row position; errors name the rows."""
        unseen = [name for name in self.names if name not in self._dtypes]
        for _ in self.columns(unseen) if unseen else ():  # the types come from whole columns
            pass
        self._first = None
        start = 0
        for frame in self._raw_chunks():
            frame.index = pd.RangeIndex(start, start + len(frame))
            with _reading(self.path, self.kind, f", rows {start + 1}-{start + len(frame)},"):
                mismatched = {name: dtype for name, dtype in self._dtypes.items() if frame[name].dtype != dtype}
                frame = frame.astype(mismatched) if mismatched else frame
            start += len(frame)
            if start > self.rows:
                break
            yield frame
        if start != self.rows:
            raise InvalidDataError(f"{str(self.path)!r} changed while it was read: {self.rows} rows first, "
                                   f"{'more' if start > self.rows else start} now")

    def _raw_chunks(self) -> Iterator[pd.DataFrame]:
        if self.kind == "parquet":
            with _reading(self.path, self.kind):
                batches = pq.ParquetFile(self.path).iter_batches(batch_size=self.chunk_rows, columns=self.names,
                                                                 use_pandas_metadata=True)
            done = 0
            while True:
                with _reading(self.path, self.kind, f", after row {done},"):
                    batch = next(batches, None)
                    if batch is None:
                        return
                    frame = batch.to_pandas()[self.names]
                done += len(frame)
                yield frame
        # CSV: text columns as text in every chunk (a chunk of digits alone would be numbers); other
        # types are forced, except object columns of bools with gaps, which a chunk may read as bools.
        forced: dict[str, Any] = {name: str if name in self._text else dtype
                                  for name, dtype in self._dtypes.items()
                                  if not pd.api.types.is_object_dtype(dtype) or name in self._text}
        loose = [name for name in self._dtypes if name not in forced]
        done = 0
        with _reading(self.path, self.kind):
            reader = pd.read_csv(self.path, sep=self._separator, dtype=forced, chunksize=self.chunk_rows)
        with reader:
            while True:
                with _reading(self.path, self.kind, f", after row {done},"):
                    frame = next(reader, None)
                if frame is None:
                    return
                if loose:
                    frame = frame.astype({name: object for name in loose})
                done += len(frame)
                yield frame


def _kind(piece: pd.Series) -> str:
    """What a CSV chunk's parse made of a column: numbers, bools, text, or nothing (all missing)."""
    if piece.isna().all():
        return "missing"
    if pd.api.types.is_bool_dtype(piece.dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(piece.dtype):
        return "number"
    inferred = pd.api.types.infer_dtype(piece, skipna=True)
    return "bool" if inferred == "boolean" else "text" if inferred == "string" else inferred


def _same_kind(pieces: list[pd.Series]) -> bool:
    """Whether the chunks of one CSV column concatenate to what parsing the column whole gives."""
    kinds = {_kind(piece) for piece in pieces} - {"missing"}
    return len(kinds) <= 1 and kinds <= {"number", "bool", "text"}


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
