"""Columns missing on the same training rows are sampled missing together (TableTransformer.missing_groups_)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import synthgen
from state_checks import info_of, saved_and_crafted
from synthgen.errors import ConditionError

PANEL = ["albumin", "bili", "panel_flag"]


def make_table(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    """A lab panel (two numbers and a category) not ordered for 30% of patients, a lab missing on its
    own, and a column that shares only 3 gaps with another by coincidence."""
    rng = np.random.default_rng(seed)
    not_ordered = rng.random(rows) < 0.3
    table = pd.DataFrame({
        "age": rng.integers(20, 90, rows),
        "albumin": rng.normal(3.5, 0.4, rows).round(2),
        "bili": rng.lognormal(0, 0.6, rows).round(2),
        "panel_flag": rng.choice(["low", "normal", "high"], rows),
        "ward": rng.choice(["a", "b"], rows),
        "chol": rng.normal(250, 40, rows).round(0),
        "rare_a": rng.normal(0, 1, rows),
        "rare_b": rng.normal(0, 1, rows),
    })
    table.loc[not_ordered, PANEL] = None
    table.loc[rng.random(rows) < 0.2, "chol"] = None  # missing on its own
    table.loc[[5, 17, 42], ["rare_a", "rare_b"]] = None  # 3 shared gaps: a coincidence, not a rule
    return table


@pytest.fixture(scope="module")
def model() -> synthgen.TabularSynthesizer:
    return synthgen.TabularSynthesizer(seed=1, steps=60, progress=False).fit(make_table())


def test_a_panel_missing_together_in_training_is_sampled_missing_together(model) -> None:
    assert model.table_.missing_groups_ == [PANEL]
    sample = model.sample(3000, seed=2)
    gaps = sample[PANEL].isna()
    # no synthetic row misses part of the panel (after 60 steps the indicators alone break it often)
    assert (gaps.all(axis=1) | ~gaps.any(axis=1)).all()
    assert 0.1 < gaps["albumin"].mean() < 0.5
    assert sample["chol"].isna().any() and not (sample["chol"].isna() == gaps["albumin"]).all()  # chol keeps its own


def test_a_condition_on_a_panel_column_decides_the_panel(model) -> None:
    present = model.sample(500, {"panel_flag": "high"}, seed=3)
    assert (present["panel_flag"] == "high").all() and present[PANEL].notna().all().all()
    absent = model.sample(500, {"panel_flag": None}, seed=3)
    assert absent[PANEL].isna().all().all()


def test_contradictory_conditions_on_one_panel_are_refused() -> None:
    table = make_table().assign(panel_site=lambda t: np.where(t["albumin"].isna(), None, "lab"))
    model = synthgen.TabularSynthesizer(seed=1, steps=5, progress=False).fit(table)
    assert [*PANEL, "panel_site"] in model.table_.missing_groups_
    with pytest.raises(ConditionError, match="missing on the same rows"):
        model.sample(10, {"panel_flag": None, "panel_site": "lab"}, seed=0)


def test_the_sets_survive_saving_and_crafted_sets_are_refused(model, tmp_path) -> None:
    saved_and_crafted(tmp_path, model, "missing_groups", [
        [["albumin", "nobody"]], [["albumin"]], [["albumin", "bili"], ["bili", "panel_flag"]], [["age", "ward"]], "albumin",
    ])


def test_a_dp_fit_reads_no_sets_from_the_rows() -> None:
    """The sets come from the rows themselves; a DP fit's transformers come from released statistics only."""
    from synthgen.dp.accounting import DPSettings

    table = make_table(rows=600)
    metadata = synthgen.Metadata.detect(table)  # declared, as DP requires
    model = synthgen.TabularSynthesizer(metadata, seed=1, steps=5, progress=False, dp=DPSettings(epsilon=5.0)).fit(table)
    assert model.table_.missing_groups_ == []


def test_info_names_the_sets(model, tmp_path) -> None:
    text, details = info_of(tmp_path, model)
    assert "sampled missing together (missing on the same training rows): albumin, bili, panel_flag" in text
    assert details["missing_together"] == [PANEL]
