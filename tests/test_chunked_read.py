"""Fitting from a file path without holding the table: whole columns a few at a time for the transformers,
then the rows chunk by chunk into the compact table. The same seed must give the bytes of an in-memory fit."""
from __future__ import annotations

import gc
import os
import tempfile
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


def _hostile_csv(path: Path) -> Path:
    """A CSV whose columns change kind from one chunk to the next: what a chunk types alone is not what the
    whole column is (the whole read, read_table, is the reference)."""
    rows = 60
    columns = {
        "int_late_gap": [str(i) for i in range(rows - 2)] + ["", "7"],  # int64 in early chunks, float64 whole
        "digits_then_words": ["007"] * 30 + ["abc"] * 30,  # text whole: "007" stays "007"
        "words_then_digits": ["abc"] * 30 + ["12"] * 30,
        "bool_late_gap": ["True", "False"] * 25 + ["NA"] * 10,  # True/False/NaN whole
        "bool_then_gaps": ["True", "False"] * 10 + [""] * 40,  # chunks of bools only and of gaps only
        "bool_then_words": ["TRUE"] * 40 + ["maybe"] * 20,
        "bool_then_digits": ["True"] * 40 + ["1"] * 20,
        "missing_then_numbers": ["n/a"] * 30 + [f"{i / 3:.5f}" for i in range(30)],
        "empty": [""] * rows,
        "quoted": ['"12"'] * 20 + ['"1,5"'] * 20 + ['"x\ny"'] * 20,  # a quoted number, a comma, a line break
        "na_words": ["NaN", "nan", "NULL", "#N/A", "None", "-nan", "<NA>", "N/A"] * 7 + ["a"] * 4,
        "text_gap_chunk": ["x"] * 20 + [""] * 20 + ["y"] * 20,
        "mixed_in_a_chunk": [str(i) if i % 2 else "w" for i in range(rows)],
        "over_int64": ["18446744073709551615"] * 30 + ["5"] * 30,  # uint64 whole
        "over_int64_negative": ["-5"] * 30 + ["18446744073709551615"] * 30,  # float64 whole
        "special_floats": ["inf", "-inf", "1e400", "-0.0"] * 15,
    }
    lines = [",".join(columns)] + [",".join(values[row] for values in columns.values()) for row in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _assert_read_as_whole(got: pd.DataFrame, whole: pd.DataFrame) -> None:
    assert list(got.columns) == list(whole.columns)
    for name in whole.columns:
        pd.testing.assert_series_equal(got[name], whole[name], check_exact=True, obj=name)
        # The same Python values, not merely equal ones (True, not 1.0; "12", not 12).
        assert [type(value) for value in got[name]] == [type(value) for value in whole[name]], name


@pytest.mark.parametrize("chunk_rows", [7, 20])
def test_csv_columns_whose_kind_changes_between_chunks_read_as_the_whole_read_reads_them(
        tmp_path: Path, chunk_rows: int, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _hostile_csv(tmp_path / "hostile.csv")
    whole = read_table(path)
    assert whole["bool_late_gap"].dtype == object and whole["digits_then_words"][0] == "007"  # the cases are real
    monkeypatch.setattr(table_io, "COLUMN_READ_CELLS", 3 * len(whole))  # three columns per read
    with TableFile(path, chunk_rows) as source:
        _assert_read_as_whole(pd.concat(list(source.columns()), axis=1), whole)
        _assert_read_as_whole(pd.concat(list(source.chunks())), whole)
        # Again, in another order (the calibration reads the numeric columns after the rows).
        names = list(reversed(whole.columns))
        _assert_read_as_whole(pd.concat(list(source.columns(names)), axis=1), whole[names])


def _counting_full_parses(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Every pd.read_csv call that reads past the header (a full pass over the file), recorded."""
    parses: list[dict] = []
    read_csv = pd.read_csv

    def counting(*args, **kwargs):
        if kwargs.get("nrows") is None:
            parses.append(kwargs)
        return read_csv(*args, **kwargs)

    monkeypatch.setattr(pd, "read_csv", counting)
    return parses


def test_a_csv_is_parsed_once_however_many_columns_it_has(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frame = make_patients(ROWS, seed=6)
    for extra in range(10):  # 20 columns
        frame[f"lab{extra}"] = np.round(np.random.default_rng(extra).normal(size=ROWS), 3)
    path = _write(frame, tmp_path / "wide.csv")
    whole = read_table(path)
    monkeypatch.setattr(table_io, "COLUMN_READ_CELLS", ROWS)  # one column per read: 20 reads of columns
    parses = _counting_full_parses(monkeypatch)
    with TableFile(path, chunk_rows=50) as source:
        columns = list(source.columns())
        chunks = list(source.chunks())
        again = list(source.columns(["age", "bilirubin"]))
    assert len(columns) == 20 and len(chunks) == 9 and len(parses) == 1, parses
    _assert_read_as_whole(pd.concat(columns, axis=1), whole)
    _assert_read_as_whole(pd.concat(chunks), whole)
    _assert_read_as_whole(pd.concat(again, axis=1), whole[["age", "bilirubin"]])


def test_a_file_fit_parses_a_csv_at_most_twice_and_gives_the_in_memory_model(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Columns whose chunks disagree (text whole) are the one reason for a second parse, of those columns alone.
    frame = _table()
    frame["code"] = ["0%d" % (row % 9) for row in range(ROWS - 50)] + ["x-%d" % (row % 3) for row in range(50)]
    path = _write(frame, tmp_path / "t.csv")
    monkeypatch.setattr(table_io, "COLUMN_READ_CELLS", ROWS)  # one column per read
    monkeypatch.setattr(tabular, "ENCODE_ROWS", 50)
    whole = _fit(read_table(path), out=tmp_path / "whole.sgz")
    parses = _counting_full_parses(monkeypatch)
    chunked = _fit(path, out=tmp_path / "chunked.sgz")  # the calibration reads the numeric columns once more
    assert chunked == whole
    assert len(parses) == 2 and parses[1]["usecols"] == ["ward", "code"], parses


def _spill_descriptors(folder: Path) -> list[str]:
    """This process's open files in ``folder`` (a file without a name shows as '<folder>/#123 (deleted)')."""
    found = []
    for descriptor in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{descriptor}")
        except OSError:
            continue
        if target.startswith(str(folder)):
            found.append(target)
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads /proc/self/fd (Linux)")
def test_the_csv_spill_has_no_name_and_is_freed_after_use_and_after_errors(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))  # where the system's temporary files would go
    path = _write(make_patients(ROWS), tmp_path / "t.csv")
    source = TableFile(path, chunk_rows=50)
    next(source.chunks())
    # Open, in the temporary folder, and nameless: nothing there to leave behind, whatever ends the process.
    assert [target.endswith("(deleted)") for target in _spill_descriptors(temporary)] == [True]
    assert list(temporary.iterdir()) == []
    source.close()
    assert _spill_descriptors(temporary) == []
    # Dropped without close (an exception's traceback let go of it): freed with the object.
    source = TableFile(path, chunk_rows=50)
    assert source.rows == ROWS and len(_spill_descriptors(temporary)) == 1
    del source
    gc.collect()
    assert _spill_descriptors(temporary) == []

    # A line the parser refuses: the error names the file and where, and the spill is freed at once.
    lines = path.read_text().splitlines()
    lines[200] += ",surplus"
    broken = tmp_path / "broken.csv"
    broken.write_text("\n".join(lines) + "\n")
    source = TableFile(broken, chunk_rows=50)
    with pytest.raises(InvalidDataError, match=r"broken\.csv', after row 150, could not be read as CSV"):
        source.rows
    assert _spill_descriptors(temporary) == [] and list(temporary.iterdir()) == []

    # A fit the CLI stops on a bad chunk (the error raised by the encoder, not by the reader) leaves nothing.
    frame = make_patients(ROWS, seed=4)
    dose = pd.Series(np.round(np.linspace(1, 9, ROWS), 2)).astype(object)
    dose[300:330] = "see notes"  # as in test_a_bad_chunk_names_the_file_its_rows_and_the_column_and_nothing_is_written
    frame["dose"] = dose
    bad = _write(frame, tmp_path / "bad.csv")
    monkeypatch.setattr(tabular, "ENCODE_ROWS", 50)
    result = CliRunner().invoke(main, ["fit", str(bad), "-o", str(tmp_path / "m.sgz"), "--seed", "1", "--steps", "2",
                                       "--chunk-rows", "40", "--quiet"])
    assert result.exit_code == 1 and "rows 301-350" in result.output, result.output
    assert list(temporary.iterdir()) == [] and _spill_descriptors(temporary) == []
    # The same from Python, with the error (and its traceback, the fit's frames) still held: closed.
    with pytest.raises(InvalidDataError, match="rows 301-350") as caught:
        TabularSynthesizer(seed=1, steps=2, progress=False).fit(bad, chunk_rows=40)
    assert caught.value.__traceback__ is not None and _spill_descriptors(temporary) == []
