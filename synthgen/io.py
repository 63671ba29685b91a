"""Reading input tables and writing sampled ones: CSV, TSV or Parquet, chosen by file suffix.

Writers stream chunks into a temporary file beside the target and rename it only when every
chunk is written, so a failed run never leaves a partial output file behind.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from types import TracebackType

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from synthgen._files import publish
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


class TableWriter:
    """Append DataFrame chunks to one CSV/TSV/Parquet file; the file appears only on success."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.kind = _format(self.path)
        if self.path.suffix.lower() not in (".csv", ".tsv", *_PARQUET):
            raise InvalidArgumentError(f"{str(path)!r}: write .csv, .tsv or .parquet (compressed CSV output is not supported)")
        self.rows = 0

    def __enter__(self) -> "TableWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".partial", dir=self.path.parent)
        os.close(handle)
        self._temporary = Path(name)
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
        if self._parquet is not None:
            self._parquet.close()
        if exc_type is None:
            publish(self._temporary, self.path)
        else:
            self._temporary.unlink(missing_ok=True)
