"""Fitting from a file path without holding the table: whole columns a few at a time for the transformers,
then the rows chunk by chunk into the compact table. The same seed must give the bytes of an in-memory fit."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import synthgen.io as table_io
import synthgen.synthesizers.tabular as tabular
from synthgen.cli.main import main
from synthgen.data.table import TableTransformer
from synthgen.errors import InvalidDataError
from synthgen.io import TableFile, read_table
from synthgen.metadata import Metadata
from synthgen.synthesizers.tabular import TabularSynthesizer

from conftest import make_patients

ROWS = 420


def _table() -> pd.DataFrame:
    """Every column kind, plus the cases a chunked CSV read gets wrong by itself: an integer column whose first
    gap comes late (int64 in early chunks, float64 whole), a bool column with a late gap (object whole), and a
    numeric-looking column whose text comes late (text whole), and categories whose levels come late."""
    frame = make_patients(ROWS, seed=3)
    frame["doses"] = np.arange(ROWS) % 7
    frame.loc[ROWS - 5, "doses"] = np.nan
    frame["consent"] = pd.Series(np.arange(ROWS) % 3 == 0, dtype=object)
    frame.loc[ROWS - 3, "consent"] = None
    frame["ward"] = (np.arange(ROWS) % 4).astype(str)
    frame.loc[ROWS - 2, "ward"] = "annex"
    # A Parquet category column whose record batches each hold only some of the levels.
    frame["grade"] = pd.Categorical(np.repeat(["low", "mid", "high"], [ROWS - 200, 150, 50]), categories=["high", "low", "mid"])
    return frame


def _write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False, row_group_size=60)  # several row groups, some without a gap
    else:
        frame.to_csv(path, index=False)
    return path


def _fit(data, **options) -> bytes:
    path = options.pop("out")
    TabularSynthesizer(seed=5, steps=3, batch_size=64, transformer_sample_rows=150, progress=False,
                       **options).fit(data, holdout=0.2, **({"chunk_rows": 37} if isinstance(data, Path) else {})).save(path)
    return Path(path).read_bytes()


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".csv.gz"])
def test_a_file_fit_in_chunks_gives_the_bytes_of_an_in_memory_fit(tmp_path: Path, suffix: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(_table(), tmp_path / f"t{suffix}")
    # Small encoding chunks too (both routes use them), so holdout gaps fall across chunk edges.
    monkeypatch.setattr(tabular, "ENCODE_ROWS", 50)
    monkeypatch.setattr(table_io, "COLUMN_READ_CELLS", 2 * ROWS)  # two columns per read
    whole = _fit(read_table(path), out=tmp_path / "whole.sgz")
    chunked = _fit(path, out=tmp_path / "chunked.sgz")
    assert chunked == whole
    # The awkward columns are really there, as the whole read types them.
    metadata = Metadata.detect(read_table(path))
    assert metadata.columns["consent"]["sdtype"] == "boolean" and metadata.columns["ward"]["sdtype"] == "categorical"


def test_a_file_fit_never_holds_the_whole_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frame = _table()
    path = _write(frame, tmp_path / "t.parquet")
    monkeypatch.setattr(table_io, "COLUMN_READ_CELLS", ROWS)  # one column per read
    monkeypatch.setattr(tabular, "ENCODE_ROWS", 64)
    monkeypatch.setattr(tabular, "read_table", lambda *a, **k: pytest.fail("the whole table was read"))
    shapes: dict[str, list[tuple[int, int]]] = {"columns": [], "chunks": [], "encoded": []}
    read, chunks, transform = TableFile._read, TableFile._raw_chunks, TableTransformer.transform

    def spy_read(self, names):
        found = read(self, names)
        shapes["columns"].append(found.shape)
        return found

    def spy_chunks(self):
        for found in chunks(self):
            shapes["chunks"].append(found.shape)
            yield found

    def spy_transform(self, data, rng):
        shapes["encoded"].append(data.shape)
        return transform(self, data, rng)

    monkeypatch.setattr(TableFile, "_read", spy_read)
    monkeypatch.setattr(TableFile, "_raw_chunks", spy_chunks)
    monkeypatch.setattr(TableTransformer, "transform", spy_transform)
    model = TabularSynthesizer(seed=1, steps=2, batch_size=64, progress=False).fit(path, chunk_rows=40, holdout=0.1)
    assert model.training_["rows"] == ROWS - 42 and model.training_["columns"] == frame.shape[1]
    width = frame.shape[1]
    # Whole columns one at a time (twice for the numeric ones: the calibration reads them again) ...
    assert {shape for shape in shapes["columns"]} == {(ROWS, 1)} and len(shapes["columns"]) > width
    # ... and rows 40 at a time (row groups of 60 end some batches early), encoded 64 at a time.
    assert max(rows for rows, _ in shapes["chunks"]) == 40 and sum(rows for rows, _ in shapes["chunks"]) == ROWS
    assert {columns for _, columns in shapes["chunks"]} == {width}
    encoded = [rows for rows, _ in shapes["encoded"]]
    assert set(encoded[:-1]) == {64} and sum(encoded) == ROWS - 42


def test_a_bad_chunk_names_the_file_its_rows_and_the_column_and_nothing_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frame = make_patients(ROWS, seed=4)
    dose = pd.Series(np.round(np.linspace(1, 9, ROWS), 2)).astype(object)
    dose[300:330] = "see notes"  # 30 of 420 cells (7%): a numerical column, but its chunk of 50 is 60% text
    frame["dose"] = dose
    path = _write(frame, tmp_path / "bad.csv")
    monkeypatch.setattr(tabular, "ENCODE_ROWS", 50)
    output = tmp_path / "m.sgz"
    result = CliRunner().invoke(main, ["fit", str(path), "-o", str(output), "--seed", "1", "--steps", "2",
                                       "--chunk-rows", "40", "--quiet"])
    assert result.exit_code == 1
    message = result.output
    assert "bad.csv" in message and "'dose'" in message and "rows 301-350" in message, message
    assert "Traceback" not in message and not output.exists() and list(tmp_path.iterdir()) == [path]
    # The in-memory fit refuses the same chunk (without a file to name).
    with pytest.raises(InvalidDataError, match="column 'dose'"):
        TabularSynthesizer(seed=1, steps=2, progress=False).fit(read_table(path))


def test_the_cli_fits_a_file_in_chunks_to_the_in_memory_model(tmp_path: Path) -> None:
    path = _write(_table(), tmp_path / "t.parquet")
    output = tmp_path / "cli.sgz"
    result = CliRunner().invoke(main, ["fit", str(path), "-o", str(output), "--seed", "2", "--steps", "3",
                                       "--holdout", "0.1", "--chunk-rows", "25", "--quiet"])
    assert result.exit_code == 0, result.output
    TabularSynthesizer(seed=2, steps=3, progress=False).fit(read_table(path), holdout=0.1).save(tmp_path / "api.sgz")
    assert output.read_bytes() == (tmp_path / "api.sgz").read_bytes()


def test_each_rank_encodes_only_its_own_share_of_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    # Categories only: their encoding draws nothing, so a rank's rows must equal those rows of the whole encoding.
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.choice(list("xyz"), 101), "b": rng.choice(["p", "q"], 101)})
    table = TableTransformer(Metadata.detect(frame)).fit(frame, np.random.default_rng(0))
    whole = table.transform_compact(frame, np.random.default_rng(0)).to_dense()
    encoded_rows = []
    transform = TableTransformer.transform
    monkeypatch.setattr(TableTransformer, "transform",
                        lambda self, data, rng: encoded_rows.append(len(data)) or transform(self, data, rng))
    chunks = (frame.iloc[start: start + 17] for start in range(0, 101, 17))  # edges that do not fall on the stride
    share = table.encode_chunks(chunks, 101, np.random.default_rng(0), share=(1, 3))
    assert np.array_equal(share.to_dense(), whole[1::3]) and sum(encoded_rows) == len(range(1, 101, 3))


def test_a_file_whose_rows_change_between_passes_is_refused(tmp_path: Path) -> None:
    path = _write(make_patients(120), tmp_path / "t.csv")
    source = TableFile(path, chunk_rows=50)
    assert source.rows == 120
    make_patients(90).to_csv(path, index=False)
    with pytest.raises(InvalidDataError, match="changed while"):
        list(source.chunks())
