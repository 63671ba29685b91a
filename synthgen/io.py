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
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
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
    by row position.

    A CSV is parsed once, ``chunk_rows`` rows at a time, into a spill: each chunk's typed columns as
    Parquet in one anonymous temporary file (:class:`_Spill`), which every later read of columns or
    rows reads instead of the CSV. Only when some column's chunks disagree on its kind (digits in one,
    words in another: text when read whole) are those columns parsed once more, as text. :meth:`close`
    (or leaving a ``with`` block, or dropping the object) frees the spill.
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
        self._dtypes: dict[str, Any] = {}  # each column's dtype as read whole
        self._spill: _Spill | None = None  # a CSV's parsed chunks
        self._parsed: tuple[int, int] | None = None  # the CSV's size and modification time when it was parsed
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

    def __enter__(self) -> "TableFile":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Free a CSV's spill (a later read parses the file again)."""
        if self._spill is not None:
            self._spill.close()
            self._spill, self._rows = None, None

    @property
    def rows(self) -> int:
        """The number of data rows (a Parquet footer says; a CSV is parsed, into its spill)."""
        if self._rows is None:
            self._parse()
        assert self._rows is not None
        if self._rows == 0:
            raise InvalidDataError(f"{str(self.path)!r} has no data rows")
        return self._rows

    def _parse(self) -> None:
        """Parse the CSV once into the spill; then, only if some column's chunks disagree on its kind, parse
        those columns again as text (what the whole read makes of them) into the spill beside the others."""
        stamp = _stamp(self.path)
        spill = _Spill()
        try:
            kinds: dict[str, set[str]] = {name: set() for name in self.names}
            negative: set[str] = set()  # int64 columns with a value below 0 (see _whole_dtype)
            for frame in self._csv_chunks(self.names, {}):
                for name in self.names:
                    kinds[name].add(_kind(frame[name]))
                    if frame[name].dtype == np.int64 and name not in negative and (frame[name] < 0).any():
                        negative.add(name)
                # A column whose kinds disagree (within a chunk, or with earlier ones) is text read whole:
                # its values come from the second parse, so none are kept from here on.
                mixed = {name: pa.nulls(len(frame)) for name in self.names if not _same_kind(kinds[name])}
                spill.add(frame, mixed)
            text = [name for name in self.names if not _same_kind(kinds[name])]
            if text and not spill.retype(text, self._csv_chunks(text, {name: str for name in text})):
                raise self._changed()
            if _stamp(self.path) != stamp:
                raise self._changed()
        except BaseException:
            spill.close()
            raise
        self._spill, self._parsed, self._rows = spill, stamp, spill.rows
        pa.default_memory_pool().release_unused()  # Arrow's pool keeps what it freed (see read_table)
        # Each column's whole type is that of its chunks together (see _whole_dtype).
        self._dtypes = {name: _whole_dtype(spill.dtypes(name), name in negative)
                        for name in self.names} if len(spill) else {}

    def _csv_chunks(self, names: list[str], dtype: dict[str, Any]) -> Iterator[pd.DataFrame]:
        """The CSV's columns ``names``, ``chunk_rows`` rows at a time, each chunk typed by itself."""
        done = 0
        with _reading(self.path, self.kind):
            # Every column but ``names`` is skipped unparsed; all of them (not usecols) when all are read,
            # or pandas would pass over a line with too many fields. A chunk is typed whole, not in pieces.
            reader = pd.read_csv(self.path, sep=self._separator, dtype=dtype, chunksize=self.chunk_rows, low_memory=False,
                                 **({} if names == self.names else {"usecols": names}))
        with reader:
            while True:
                with _reading(self.path, self.kind, f", after row {done},"):
                    frame = next(reader, None)
                if frame is None:
                    return
                done += len(frame)
                yield frame if list(frame.columns) == names else frame[names]

    def _changed(self) -> InvalidDataError:
        return InvalidDataError(f"{str(self.path)!r} changed while it was read (its size or modification time "
                                "differs from the first read); fit it once it is complete")

    def _spilled(self) -> _Spill:
        """The CSV's spill, parsed now if it was not yet, refused if the file changed since it was parsed."""
        if self._spill is None:
            self._parse()
        elif _stamp(self.path) != self._parsed:
            raise self._changed()
        assert self._spill is not None
        return self._spill

    def _read(self, names: list[str]) -> pd.DataFrame:
        if self.kind == "parquet":
            with _reading(self.path, self.kind):
                frame = pd.read_parquet(self.path, columns=names)
                pa.default_memory_pool().release_unused()  # see read_table
            frame = frame[names]
            self._dtypes.update(frame.dtypes.to_dict())
            return frame
        spill = self._spilled()
        # Each chunk is cast into the whole column as it is read, so no more than the columns and one chunk
        # are held (and a bool chunk with an all-missing one is True/False/NaN, as read whole: pandas would
        # join them as 1.0/0.0/NaN).
        columns = {name: np.empty(spill.rows, dtype=self._dtypes[name]) for name in names}
        start = 0
        with _reading(self.path, self.kind):
            for chunk in range(len(spill)):
                for name, values in spill.read(chunk, names).items():
                    columns[name][start: start + spill.sizes[chunk]] = values
                start += spill.sizes[chunk]
        pa.default_memory_pool().release_unused()  # see _parse
        return pd.DataFrame(columns, index=pd.RangeIndex(spill.rows), copy=False)  # copy=False: no consolidating copy

    def columns(self, names: list[str] | None = None) -> Iterator[pd.DataFrame]:
        """Frames of whole columns ``names`` (default: all), in that order, a few columns per frame."""
        names = list(self.names if names is None else names)
        unknown = [name for name in names if name not in self.names]
        if unknown:
            raise InvalidArgumentError(f"{str(self.path)!r} has no column {unknown[0]!r}")
        per_read = max(1, COLUMN_READ_CELLS // self.rows)
        while names:
            group, names = names[:per_read], names[per_read:]
            yield self._read(group)

    def chunks(self) -> Iterator[pd.DataFrame]:
        """Every row, ``chunk_rows`` at a time (fewer at a row group's end), each column of the type it
        has when read whole, indexed by row position; errors name the rows."""
        unseen = [name for name in self.names if name not in self._dtypes]
        if unseen and self.kind == "parquet":
            for _ in self.columns(unseen):  # the types come from whole columns
                pass
        rows = self.rows  # a CSV's types are known once it is parsed
        start = 0
        for frame in self._raw_chunks():
            frame.index = pd.RangeIndex(start, start + len(frame))
            with _reading(self.path, self.kind, f", rows {start + 1}-{start + len(frame)},"):
                mismatched = {name: dtype for name, dtype in self._dtypes.items() if frame[name].dtype != dtype}
                frame = frame.astype(mismatched) if mismatched else frame
            start += len(frame)
            if start > rows:
                break
            yield frame
        if start != rows:
            raise InvalidDataError(f"{str(self.path)!r} changed while it was read: {rows} rows first, "
                                   f"{'more' if start > rows else start} now")

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
        spill = self._spilled()
        for chunk in range(len(spill)):
            with _reading(self.path, self.kind):
                columns = spill.read(chunk, self.names)
            frame = pd.DataFrame({name: values if values.flags.writeable else values.copy()
                                  for name, values in columns.items()}, copy=False)
            del columns
            pa.default_memory_pool().release_unused()  # see _parse (a fit's peak is while it encodes these)
            yield frame


class _Window(io.RawIOBase):
    """Bytes ``start`` to ``start + size`` of an open binary file, as a file of their own (for Parquet's reader)."""

    def __init__(self, file: Any, start: int, size: int) -> None:
        super().__init__()
        self._file, self._start, self._size, self._at = file, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._at

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._at = min(self._size, max(0, offset + (0, self._at, self._size)[whence]))
        return self._at

    def readinto(self, buffer: Any) -> int:
        self._file.seek(self._start + self._at)
        count = self._file.readinto(memoryview(buffer)[: self._size - self._at])
        self._at += count
        return count


class _Spill:
    """A parsed CSV's chunks, each as Parquet (its columns typed as that chunk's parse typed them), in
    one temporary file in the system's temporary folder (``TMPDIR``) that has no name on Linux and macOS
    (O_TMPFILE, or unlinked at once; Windows deletes it on close): the system frees it when it is closed,
    collected, or the process ends, even killed. Dictionary-encoded: smaller than the CSV where values repeat."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="synthgen-spill-")
        self._end = 0
        # Per chunk, per parse: where its Parquet is (start, size), its columns' types, which of them are text.
        self._blobs: list[list[tuple[int, int, dict[str, Any], set[str]]]] = []
        self.sizes: list[int] = []  # rows per chunk
        self.rows = 0

    def __len__(self) -> int:
        return len(self._blobs)

    def close(self) -> None:
        self._file.close()

    def _write(self, frame: pd.DataFrame, replaced: dict[str, Any]) -> tuple[int, int, dict[str, Any], set[str]]:
        table = pa.Table.from_pandas(frame.drop(columns=list(replaced)), preserve_index=False)
        for name, array in replaced.items():
            table = table.append_column(name, array)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="none")  # dictionaries do most of it; this is faster
        data = sink.getvalue()
        self._file.seek(self._end)
        self._file.write(memoryview(data))
        start, self._end = self._end, self._end + data.size
        text = {field.name for field in table.schema if pa.types.is_string(field.type) or pa.types.is_large_string(field.type)}
        return start, data.size, frame.dtypes.to_dict(), text

    def add(self, frame: pd.DataFrame, replaced: dict[str, Any]) -> None:
        """Keep one chunk (its columns ``replaced`` by those Arrow arrays)."""
        self._blobs.append([self._write(frame, replaced)])
        self.sizes.append(len(frame))
        self.rows += len(frame)

    def retype(self, names: list[str], chunks: Iterator[pd.DataFrame]) -> bool:
        """Columns ``names`` parsed again, kept in place of the first parse's; False if the chunks' rows differ."""
        count = 0
        for chunk, frame in enumerate(chunks):
            if chunk >= len(self.sizes) or len(frame) != self.sizes[chunk]:
                return False
            self._blobs[chunk].append(self._write(frame, {}))
            count += 1
        return count == len(self.sizes)

    def dtypes(self, name: str) -> list[Any]:
        """Column ``name``'s type in each chunk."""
        return [next(dtypes[name] for _, _, dtypes, _ in reversed(blobs) if name in dtypes) for blobs in self._blobs]

    def read(self, chunk: int, names: list[str]) -> dict[str, np.ndarray]:
        """Columns ``names`` of one chunk, typed as its parse typed them (the latest parse of each)."""
        columns: dict[str, np.ndarray] = {}
        for start, size, dtypes, text in reversed(self._blobs[chunk]):
            wanted = [name for name in names if name in dtypes and name not in columns]
            if wanted:
                # Text as dictionaries: one str object per distinct value, as pandas' parser shares them.
                table = pq.ParquetFile(_Window(self._file, start, size),
                                       read_dictionary=[name for name in wanted if name in text]).read(columns=wanted)
                columns.update((name, _restored(table.column(name), dtypes[name])) for name in wanted)
        return {name: columns[name] for name in names}


def _stamp(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_size, status.st_mtime_ns


def _restored(column: pa.ChunkedArray, dtype: Any) -> np.ndarray:
    """A spilled column as its chunk's parse had it: Arrow gives text and bool gaps back as None, the parse NaN."""
    if pa.types.is_dictionary(column.type):
        parts = []
        for part in column.chunks:
            # One more entry, NaN, for the gaps.
            distinct = np.append(part.dictionary.to_numpy(zero_copy_only=False).astype(object), np.nan)
            parts.append(distinct[part.indices.fill_null(len(distinct) - 1).to_numpy()])
        return np.concatenate(parts) if len(parts) != 1 else parts[0]
    values = column.to_numpy(zero_copy_only=False)
    if pd.api.types.is_object_dtype(dtype):
        values = values.astype(object, copy=False)
        if column.null_count:
            values[column.is_null().to_numpy(zero_copy_only=False)] = np.nan
    elif values.dtype != dtype:
        values = values.astype(dtype)
    return values  # read-only where Arrow gave it without a copy


def _whole_dtype(dtypes: list[Any], negative: bool) -> Any:
    """A CSV column's type when parsed whole, from its chunks' types (of one kind, see _same_kind): numbers
    widen (int64 with a float chunk is float64; with a uint64 one, uint64 unless some value is below 0);
    bools with a gap, text with an all-missing chunk are objects."""
    if all(dtype == dtypes[0] for dtype in dtypes):
        return dtypes[0]
    if set(dtypes) == {np.dtype(np.int64), np.dtype(np.uint64)} and not negative:
        return np.dtype(np.uint64)
    if all(pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype) for dtype in dtypes):
        return np.result_type(*dtypes)
    return np.dtype(object)


def _kind(piece: pd.Series) -> str:
    """What a CSV chunk's parse made of a column: numbers, bools, text, or nothing (all missing)."""
    if pd.api.types.is_bool_dtype(piece.dtype):
        return "bool" if len(piece) else "missing"
    if pd.api.types.is_numeric_dtype(piece.dtype):
        return "missing" if piece.isna().all() else "number"
    inferred = pd.api.types.infer_dtype(piece, skipna=True)
    return {"empty": "missing", "boolean": "bool", "string": "text"}.get(inferred, inferred)


def _same_kind(kinds: set[str]) -> bool:
    """Whether chunks of one CSV column of these kinds concatenate to what parsing the column whole gives."""
    kinds = kinds - {"missing"}
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
