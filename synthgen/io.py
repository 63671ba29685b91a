"""Reading input tables and writing sampled ones: CSV, TSV or Parquet, chosen by file suffix.

Writers stream chunks into a temporary file beside the target and rename it only when every
chunk is written, so a failed run never leaves a partial output file behind.
"""
from __future__ import annotations

from pathlib import Path
from types import TracebackType

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from synthgen._files import atomic_path
from synthgen.errors import InvalidArgumentError, InvalidDataError

_CSV = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz")
_TSV = (".tsv", ".tsv.gz")
_PARQUET = (".parquet", ".pq")
SUPPORTED = ", ".join((*_CSV, *_TSV, *_PARQUET))


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
        else:
            frame = pd.read_csv(path, sep="\t" if kind == "tsv" else ",", low_memory=False)
    except pd.errors.EmptyDataError as exc:
        raise InvalidDataError(f"{str(path)!r} is empty") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, pa.ArrowException, ValueError) as exc:
        raise InvalidDataError(f"{str(path)!r} could not be read as {kind.upper()}: {exc}") from exc
    if frame.empty:
        raise InvalidDataError(f"{str(path)!r} has no data rows")
    return frame


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
