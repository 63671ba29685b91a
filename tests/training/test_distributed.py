"""Multi-process training under torchrun: DDP on gloo, rank 0 writes, the same seed gives the same file."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from synthgen.dp.accounting import DPSettings
from synthgen.errors import InvalidArgumentError
from synthgen.evaluation.fidelity import quality_scores
from synthgen.loading import load
from synthgen.metadata import Metadata
from synthgen.synthesizers.tabular import TabularSynthesizer

from conftest import make_patients

STEPS = "300"


def _fit(folder: Path, name: str, processes: int, *, nproc_option: bool = False) -> tuple[Path, str]:
    """A fit in ``processes`` processes: under torchrun, or through ``fit --nproc`` (which starts torchrun)."""
    model = folder / name
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes)]
    if processes == 1 or nproc_option:
        launcher = []
    extra = ["--nproc", str(processes)] if nproc_option else []
    command = [sys.executable, *launcher, "-m", "synthgen", "fit", str(folder / "patients.csv"), "-o", str(model),
               "--seed", "1", "--steps", STEPS, "--quiet", *extra]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return model, done.stdout


@pytest.fixture(scope="module")
def fits(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ddp")
    make_patients(600).to_csv(folder / "patients.csv", index=False)
    two, stdout = _fit(folder, "two.sgz", 2)
    assert stdout.count("Saved") == 1  # rank 0 alone writes and reports
    again, _ = _fit(folder, "again.sgz", 2, nproc_option=True)
    one, _ = _fit(folder, "one.sgz", 1)
    return {"two": two, "again": again, "one": one, "folder": folder}


@pytest.mark.slow
def test_two_processes_write_one_reproducible_model_that_says_so(fits: dict[str, Path]) -> None:
    # Same seed, same number of processes: same bytes, whether torchrun was started by hand or by --nproc.
    assert fits["two"].read_bytes() == fits["again"].read_bytes()
    assert fits["two"].read_bytes() != fits["one"].read_bytes()  # the ranks' shares and streams did train it
    details = json.loads(subprocess.run([sys.executable, "-m", "synthgen", "info", str(fits["two"]), "--json"],
                                        capture_output=True, text=True, check=True).stdout)
    assert details["training"]["world_size"] == 2
    assert load(fits["one"]).describe()["training"]["world_size"] == 1


@pytest.mark.slow
def test_two_processes_learn_as_well_as_one(fits: dict[str, Path]) -> None:
    real = pd.read_csv(fits["folder"] / "patients.csv")
    metadata = Metadata.detect(real)
    scores = {name: quality_scores(real, load(fits[name]).sample(600, seed=2), metadata)["Column Shapes"]
              for name in ("one", "two")}
    assert scores["two"] >= scores["one"] - 0.05, scores


def test_a_launch_refuses_dp_and_a_missing_seed_before_training(monkeypatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    table = make_patients(100)
    with pytest.raises(InvalidArgumentError, match="needs --seed"):
        TabularSynthesizer(steps=5, progress=False).fit(table)
    with pytest.raises(InvalidArgumentError, match="differentially private training runs in one process"):
        TabularSynthesizer(Metadata.detect(table), seed=1, dp=DPSettings(epsilon=1.0), progress=False).fit(table)
