"""Table files: chunked writes that appear only on success."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from synthgen.errors import InvalidArgumentError
from synthgen.io import TableWriter, read_table


@pytest.mark.parametrize("name", ["t.csv", "t.tsv", "t.parquet"])
def test_chunks_append_into_one_table(tmp_path: Path, name: str) -> None:
    chunks = [pd.DataFrame({"a": [i, i + 1], "b": ["x", "y"], "c": [0.5, float("nan")]}) for i in range(3)]
    with TableWriter(tmp_path / name) as writer:
        for chunk in chunks:
            writer.write(chunk)
    back = read_table(tmp_path / name)
    pd.testing.assert_frame_equal(back, pd.concat(chunks, ignore_index=True), check_dtype=False)


def test_failure_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), TableWriter(tmp_path / "out.parquet") as writer:
        writer.write(pd.DataFrame({"a": [1]}))
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_compressed_output_is_refused_up_front(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="parquet"):
        TableWriter(tmp_path / "out.csv.gz")


def test_directory_or_full_disk_is_an_output_error_naming_the_file(tmp_path: Path, monkeypatch) -> None:
    from synthgen.errors import OutputError

    (tmp_path / "taken.csv").mkdir()
    with pytest.raises(OutputError, match="taken.csv.*directory"), TableWriter(tmp_path / "taken.csv") as writer:
        writer.write(pd.DataFrame({"a": [1]}))

    def no_space(descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", no_space)
    with pytest.raises(OutputError, match="out.parquet.*No space"), TableWriter(tmp_path / "out.parquet") as writer:
        writer.write(pd.DataFrame({"a": [1]}))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.csv"]


def test_reading_parquet_hands_arrows_freed_conversion_buffers_back(tmp_path: Path, monkeypatch) -> None:
    import pyarrow as pa

    released: list[bool] = []

    class Pool:
        def release_unused(self) -> None:
            released.append(True)

    pd.DataFrame({"a": [1, 2]}).to_parquet(tmp_path / "t.parquet")
    monkeypatch.setattr(pa, "default_memory_pool", Pool)
    assert read_table(tmp_path / "t.parquet")["a"].tolist() == [1, 2] and released == [True]


def test_a_writer_stops_at_its_next_chunk_once_a_signal_came(tmp_path) -> None:
    """A SIGINT/SIGTERM whose exception Python dropped (raised inside a callback from C) still stops
    the writing at the next chunk, and leaves no file behind."""
    from synthgen._files import INTERRUPTED
    from synthgen.io import TableWriter

    target = tmp_path / "out.csv"
    frame = pd.DataFrame({"a": [1, 2, 3]})
    try:
        with pytest.raises(KeyboardInterrupt), TableWriter(target) as writer:
            writer.write(frame)
            INTERRUPTED.set()  # what the CLI's handler does before raising
            writer.write(frame)
    finally:
        INTERRUPTED.clear()
    assert list(tmp_path.iterdir()) == []
