"""Sharded sampling of patient histories: parts of whole patients, ids unique across parts, resumable.

That parts do not depend on the number of workers is shown on the command line
(tests/cli/test_sequence_cli.py), so that this module starts no worker processes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synthgen.errors import ConditionError, OutputError
from synthgen.io import TableWriter
from synthgen.sequences import SequenceSynthesizer
from synthgen.shards import MANIFEST, sample_shards

from test_sequences import SMALL, make_visits

PATIENTS, SHARD_PATIENTS = 250, 100  # three parts, the last one short


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    model = SequenceSynthesizer(seed=3, max_length=8, config=SMALL, steps=20, progress=False)
    return model.fit(make_visits(60), "patient", "day").save(tmp_path_factory.mktemp("histories") / "model.sgz")


def _contents(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def one_worker(model_file: Path, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("one") / "out"
    report = sample_shards(model_file, PATIENTS, folder, seed=5, shard_rows=SHARD_PATIENTS, progress=False)
    assert (report.written, report.skipped) == (3, 0)
    return folder


def test_parts_hold_whole_patients_and_no_id_twice(one_worker: Path) -> None:
    parts = [pd.read_parquet(path) for path in sorted(one_worker.glob("part-*.parquet"))]
    assert [part["patient"].nunique() for part in parts] == [100, 100, 50]  # --shard-rows counts patients
    ids = [set(part["patient"]) for part in parts]
    assert sum(len(part) for part in ids) == len(set().union(*ids)) == PATIENTS  # no id in two parts
    rows = pd.concat(parts, ignore_index=True)
    assert (rows.groupby("patient")[["sex", "age"]].nunique() == 1).all().all()  # static within each patient
    assert rows.groupby("patient").size().max() <= 8
    # Each part draws from its own stream: the second part does not repeat the first one's patients.
    first, second = (part.drop(columns="patient").head(20).reset_index(drop=True) for part in parts[:2])
    assert not first.equals(second)


def test_a_failure_leaves_whole_parts_only_and_a_rerun_completes_them(model_file: Path, one_worker: Path,
                                                                       tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "out"
    real_write = TableWriter.write

    def failing_write(self, frame):
        if self.path.name == "part-00001.parquet":  # the second part fails after its rows reached the spill
            real_write(self, frame)
            raise OSError(28, "No space left on device")
        real_write(self, frame)

    monkeypatch.setattr(TableWriter, "write", failing_write)
    with pytest.raises(OutputError, match="part-00001.parquet"):
        sample_shards(model_file, PATIENTS, folder, seed=5, shard_rows=SHARD_PATIENTS, progress=False)
    assert sorted(path.name for path in folder.iterdir()) == [MANIFEST, "part-00000.parquet"]
    first = (folder / "part-00000.parquet").stat().st_mtime_ns
    monkeypatch.setattr(TableWriter, "write", real_write)
    report = sample_shards(model_file, PATIENTS, folder, shard_rows=SHARD_PATIENTS, progress=False)  # the recorded seed
    assert (report.written, report.skipped, report.plan.seed) == (2, 1, 5)
    assert (folder / "part-00000.parquet").stat().st_mtime_ns == first  # kept, not rewritten
    assert _contents(folder) == _contents(one_worker)


def test_conditions_hold_in_every_part_and_a_bad_one_writes_nothing(model_file: Path, tmp_path: Path) -> None:
    women = tmp_path / "women"
    report = sample_shards(model_file, 30, women, seed=2, shard_rows=12, conditions={"sex": "F"}, progress=False)
    rows = pd.concat([pd.read_parquet(path) for path in report.parts], ignore_index=True)
    assert [pd.read_parquet(path)["patient"].nunique() for path in report.parts] == [12, 12, 6]
    assert rows["patient"].nunique() == 30 and set(rows["sex"]) == {"F"}
    for condition, error in (({"lab": 5}, "'lab' is a per-visit column"), ({"sex": "X"}, "sex='X': unknown category 'X'")):
        with pytest.raises(ConditionError, match=error):
            sample_shards(model_file, 5, tmp_path / "bad", conditions=condition, progress=False)
        assert not (tmp_path / "bad").exists()


def test_patient_ids_are_a_keyed_permutation_of_patient_numbers() -> None:
    from synthgen.sequences import synthesizer as sequences

    # The construction, exhaustively, on a domain small enough to enumerate: every number maps to a
    # distinct value of the domain, so no two patients of a request can share an id.
    for size in (1, 2, 1_000, 4_096):
        for key in (0, 7, 2**63 - 1):
            assert sorted(sequences._permute(np.arange(size, dtype=np.uint64), key, size).tolist()) == list(range(size))
    # The ids a shard gets depend on the patients' numbers in the request, not on how they are cut.
    whole = sequences.patient_ids("integer", 11, 0, 3_000)
    cut = pd.concat([sequences.patient_ids("integer", 11, start, 1_000) for start in (0, 1_000, 2_000)])
    assert whole.tolist() == cut.tolist() and whole.is_unique
    assert whole.min() >= 1 and whole.max() < 2**53 and whole.dtype == np.int64
    assert not whole.equals(sequences.patient_ids("integer", 12, 0, 3_000))  # another seed, other ids
    assert np.corrcoef(np.arange(3_000), whole.to_numpy(dtype=float))[0, 1] < 0.1  # not the patient number itself
    # A million patients, far past where draws below 2**53 collide in one request of 10**8: still none.
    assert sequences.patient_ids("integer", 3, 123_456_789, 1_000_000).is_unique
    strings = sequences.patient_ids("string", 11, 0, 3_000)
    assert strings.is_unique and strings.str.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}").all()
    assert strings.tolist() == pd.concat([sequences.patient_ids("string", 11, s, 1_500) for s in (0, 1_500)]).tolist()


def test_a_two_table_model_is_refused_and_writes_nothing(model_file: Path, tmp_path: Path) -> None:
    from synthgen.errors import InvalidArgumentError
    from synthgen.loading import load
    from synthgen.sequences.tables import TwoTables

    model = load(model_file)
    model.tables_ = TwoTables(parent="patients", child="visits", parent_key="id", child_key="patient",
                              parent_columns=["id", "sex", "age"], child_columns=["patient", "day", "lab", "ward"],
                              sequence_index="day")
    two_tables = model.save(tmp_path / "two.sgz")
    with pytest.raises(InvalidArgumentError, match="a parent and a child table"):
        sample_shards(two_tables, 10, tmp_path / "parts", progress=False)
    assert not (tmp_path / "parts").exists()
