"""``synthgen demo``: the whole job, with the report, and scores judged at one sample size."""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from synthgen.cli.main import main
from synthgen.datasets import load_example


@pytest.mark.slow
def test_demo_writes_model_sample_and_report_and_scores_equal_sized_samples(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "-o", str(out), "-n", "1000", "--steps", "60", "--seed", "3", "--quiet"])
    assert result.exit_code == 0, result.output
    _, holdout = load_example("breast-cancer", seed=3)
    assert len(pd.read_csv(out / "synthetic.csv")) == 1_000
    assert (out / "model.sgz").stat().st_size > 0
    # The two columns of scores are of samples of one size: the holdout's (114 rows), not 1,000 against 114.
    synthetic_rows, holdout_rows = map(int, re.search(r"(\d+) synthetic rows next to (\d+) holdout rows", result.output).groups())
    assert synthetic_rows == holdout_rows == len(holdout) == 114
    scores = re.findall(r"^  (Column Shapes|Column Pair Trends)\s+([\d.]+)\s+([\d.]+)$", result.output, re.M)
    assert [name for name, _, _ in scores] == ["Column Shapes", "Column Pair Trends"]
    assert all(0 <= float(value) <= 1 for _, synthetic, real in scores for value in (synthetic, real))
    # The report is the fidelity and privacy report of those same rows.
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Privacy" in page and "Fidelity" in page
    assert "the first 114 of the 1000 rows in synthetic.csv" in page
    assert re.search(r"Wrote .*report\.html: fidelity and privacy of those rows, gates (PASS|FAIL|INCONCLUSIVE|NONE)", result.output)
