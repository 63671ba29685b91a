"""Sharded sampling: parts that do not depend on the workers, never half-written, resumable."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from synthgen.cli.main import main
from synthgen.errors import InvalidArgumentError, OutputError
from synthgen.io import TableWriter
from synthgen.shards import MANIFEST, sample_shards

ROWS, SHARD_ROWS = 2_500, 1_000  # three parts, the last one short


@pytest.fixture(scope="module")
def model_file(fitted, tmp_path_factory) -> Path:
    return fitted.save(tmp_path_factory.mktemp("shards") / "model.sgz")


def _contents(folder: Path) -> dict[str, bytes]:
    """Every file in ``folder``, hidden ones included, by name."""
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def _parts(folder: Path) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(path) for path in sorted(folder.glob("part-*.parquet"))], ignore_index=True)


@pytest.fixture(scope="module")
def one_worker(model_file: Path, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("one") / "out"
    report = sample_shards(model_file, ROWS, folder, seed=3, shard_rows=SHARD_ROWS, chunk_rows=300, progress=False)
    assert (report.written, report.skipped) == (3, 0)
    return folder


def test_parts_are_byte_identical_whatever_the_number_of_workers(model_file: Path, one_worker: Path, tmp_path: Path) -> None:
    two = tmp_path / "two"
    report = sample_shards(model_file, ROWS, two, seed=3, shard_rows=SHARD_ROWS, chunk_rows=300, workers=2,
                           progress=False)
    assert [path.name for path in report.parts] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert _contents(two) == _contents(one_worker)
    rows = _parts(one_worker)
    assert len(rows) == ROWS and [len(pd.read_parquet(p)) for p in report.parts] == [1000, 1000, 500]
    # Each part has its own stream: no part repeats another's rows.
    first, second = (pd.read_parquet(p) for p in report.parts[:2])
    assert not first.reset_index(drop=True).equals(second.reset_index(drop=True))


def test_a_failure_leaves_whole_parts_only_and_a_rerun_completes_them(model_file: Path, one_worker: Path,
                                                                       tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "out"
    real_write, calls = TableWriter.write, []

    def failing_write(self, frame):
        calls.append(self.path.name)
        if len(calls) == 6:  # inside the second part, after some of its rows reached the temporary file
            raise OSError(28, "No space left on device")
        real_write(self, frame)

    monkeypatch.setattr(TableWriter, "write", failing_write)
    with pytest.raises(OutputError, match="part-00001.parquet"):
        sample_shards(model_file, ROWS, folder, seed=3, shard_rows=SHARD_ROWS, chunk_rows=300, progress=False)
    assert sorted(path.name for path in folder.iterdir()) == [MANIFEST, "part-00000.parquet"]
    first = (folder / "part-00000.parquet").stat()
    monkeypatch.setattr(TableWriter, "write", real_write)
    # A killed job (no cleanup) leaves its temporary file behind; the resumed job removes it.
    (folder / ".part-00001.parquet.x1y2.partial").write_bytes(b"half a part")
    report = sample_shards(model_file, ROWS, folder, shard_rows=SHARD_ROWS, chunk_rows=300, progress=False)  # no --seed: the recorded one
    assert (report.written, report.skipped, report.plan.seed) == (2, 1, 3)
    assert (folder / "part-00000.parquet").stat().st_mtime_ns == first.st_mtime_ns  # kept, not rewritten
    assert _contents(folder) == _contents(one_worker)


@pytest.mark.parametrize("change", [{"num_rows": 3_000}, {"seed": 4}, {"shard_rows": 500}, {"conditions": {"sex": "F"}}])
def test_a_folder_of_another_request_is_refused_untouched(model_file: Path, one_worker: Path, tmp_path: Path,
                                                           change: dict) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(one_worker, folder)
    (folder / "part-00002.parquet").unlink()  # incomplete, so a wrong resume would write something
    before = _contents(folder)
    request = {"num_rows": ROWS, "seed": 3, "shard_rows": SHARD_ROWS, "conditions": None} | change
    with pytest.raises(OutputError, match="another request"):
        sample_shards(model_file, request.pop("num_rows"), folder, progress=False, **request)
    assert _contents(folder) == before


def test_a_new_folder_must_be_empty_and_a_bad_condition_writes_nothing(model_file: Path, tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("someone else's file")
    with pytest.raises(OutputError, match="not an empty directory"):
        sample_shards(model_file, ROWS, busy, seed=1, progress=False)
    assert sorted(path.name for path in busy.iterdir()) == ["notes.txt"]
    with pytest.raises(InvalidArgumentError, match="workers"):
        sample_shards(model_file, ROWS, tmp_path / "w", workers=0, progress=False)
    fresh = tmp_path / "fresh"
    with pytest.raises(Exception, match="no_such_column"):
        sample_shards(model_file, ROWS, fresh, conditions={"no_such_column": "x"}, progress=False)
    assert not fresh.exists()


def test_cli_writes_parts_and_refuses_workers_for_one_file(model_file: Path, one_worker: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    result = CliRunner().invoke(main, ["sample", str(model_file), "-n", str(ROWS), "-o", str(out), "--seed", "3",
                                       "--shard-rows", str(SHARD_ROWS), "--chunk-rows", "300", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "3 part(s) (3 written now, 0 already there), seed 3" in result.output
    assert _contents(out) == _contents(one_worker)
    result = CliRunner().invoke(main, ["sample", str(model_file), "-n", "10", "-o", str(tmp_path / "one.csv"),
                                       "--workers", "2"])
    assert result.exit_code == 1 and "give a folder name" in result.output
    assert not (tmp_path / "one.csv").exists()


@pytest.mark.slow
def test_torchrun_ranks_write_the_same_parts(model_file: Path, one_worker: Path, tmp_path: Path) -> None:
    out = tmp_path / "ranks"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "synthgen", "sample", str(model_file), "-n", str(ROWS), "-o", str(out), "--seed", "3",
               "--shard-rows", str(SHARD_ROWS), "--chunk-rows", "300", "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("part(s)") == 1  # rank 0 alone reports
    assert _contents(out) == _contents(one_worker)


def test_a_condition_never_met_leaves_no_folder_to_lock(model_file: Path, tmp_path: Path) -> None:
    # Found only by rejection, after the manifest: a manifest left behind would bind the folder to
    # the failed request, and the corrected command would be refused as "another request".
    folder = tmp_path / "out"
    with pytest.raises(Exception, match="age=1000"):
        sample_shards(model_file, 100, folder, seed=1, conditions={"age": 1000}, progress=False)
    assert not folder.exists()
    report = sample_shards(model_file, 100, folder, seed=1, conditions={"age": 60}, shard_rows=60, progress=False)
    assert report.written == 2 and set(pd.concat(map(pd.read_parquet, report.parts))["age"]) == {60}
