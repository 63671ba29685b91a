"""Gaps that a category decides in training ("not applicable") are decided by it in every sample (synthgen.data.rules.GapRule)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import synthgen
from state_checks import info_of, saved_and_crafted

PANEL = ["pocket_depth", "plaque"]


def make_table(rows: int = 500, seed: int = 0) -> pd.DataFrame:
    """A cause of death only for the dead, a diabetes type only for diabetics, a treatment-arm panel
    not measured in the control arm, and a lab missing on its own (no rule)."""
    rng = np.random.default_rng(seed)
    death = rng.integers(0, 2, rows)
    diabetes = rng.choice(["yes", "no"], rows, p=[0.3, 0.7])
    arm = rng.choice(["control", "treated"], rows)
    table = pd.DataFrame({
        "age": rng.integers(20, 90, rows),
        "death": death,
        "cause": np.where(death == 1, rng.choice(["cancer", "stroke", "heart"], rows), None),
        "diabetes": diabetes,
        "diabetes_type": np.where(diabetes == "yes", rng.choice(["type 1", "type 2"], rows), None),
        "arm": arm,
        "pocket_depth": np.where(arm == "treated", rng.normal(3, 0.5, rows).round(2), np.nan),
        "plaque": np.where(arm == "treated", rng.normal(1, 0.2, rows).round(2), np.nan),
        "chol": rng.normal(250, 40, rows).round(0),
    })
    table.loc[rng.random(rows) < 0.2, "chol"] = np.nan
    return table


@pytest.fixture(scope="module")
def model() -> synthgen.TabularSynthesizer:
    return synthgen.TabularSynthesizer(seed=1, steps=40, progress=False).fit(make_table())


def test_the_rules_found_are_the_structural_gaps_only(model) -> None:
    rules = {(rule.missing, rule.when, rule.levels) for rule in model.table_.gap_rules_}
    assert rules == {("cause", "death", (0,)), ("diabetes_type", "diabetes", ("no",)), ("pocket_depth", "arm", ("control",))}
    assert model.table_.missing_groups_ == [PANEL]


def test_every_sampled_row_keeps_the_gaps_its_category_decides(model) -> None:
    sample = model.sample(3000, seed=2)
    # after 40 steps the model's own indicators disagree with their category on about half the rows
    assert (sample["cause"].isna() == (sample["death"] == 0)).all()
    assert (sample["diabetes_type"].isna() == (sample["diabetes"] == "no")).all()
    for column in PANEL:
        assert (sample[column].isna() == (sample["arm"] == "control")).all()
    assert 0.3 < (sample["death"] == 0).mean() < 0.7  # the deciding category is still learned, not fixed
    assert sample["chol"].isna().any() and sample["chol"].notna().any()


@pytest.mark.parametrize("conditions, check", [
    ({"cause": "stroke"}, lambda s: (s["cause"] == "stroke").all() and (s["death"] == 1).all()),
    ({"cause": None}, lambda s: s["cause"].isna().all() and (s["death"] == 0).all()),
    ({"death": 0}, lambda s: s["cause"].isna().all()),
    ({"arm": "control"}, lambda s: s[PANEL].isna().all().all()),
])
def test_conditions_keep_the_rule(model, conditions, check) -> None:
    sample = model.sample(200, conditions, seed=3)
    assert len(sample) == 200 and check(sample)


def test_the_rules_survive_saving_and_crafted_rules_are_refused(model, tmp_path) -> None:
    cause = next(rule for rule in model.table_.get_state()["gap_rules"] if rule["missing"] == "cause")
    crafted = [
        [{**cause, "missing": "nobody"}],
        [{**cause, "when": ["death"]}],  # not a name
        [{**cause, "missing": "plaque"}],  # not the first column of its set
        [{**cause, "when": "cause"}],
        [{**cause, "when": "chol"}],  # not a category
        [{**cause, "when": "diabetes_type"}],  # a category with gaps of its own
        [{**cause, "levels": [7]}],
        [{**cause, "levels": [0, 1]}],  # every level: the column would never be present
        [{**cause, "levels": []}],
        [cause, cause],
        [{**cause, "extra": 1}],
        {"cause": "death"},
    ]
    saved_and_crafted(tmp_path, model, "gap_rules", crafted)


def test_info_names_the_rules(model, tmp_path) -> None:
    text, details = info_of(tmp_path, model)
    assert "as in every training row: cause by death; diabetes_type by diabetes; pocket_depth by arm" in text
    assert details["gaps_decided_by"] == {"cause": "death", "diabetes_type": "diabetes", "pocket_depth": "arm"}


def test_one_row_against_the_rule_means_no_rule_and_off_means_off() -> None:
    table = make_table(rows=300)
    table.loc[0, ["death", "cause"]] = [0, "cancer"]  # one patient alive with a cause recorded
    fitted = synthgen.TabularSynthesizer(seed=1, steps=2, progress=False).fit(table)
    assert "cause" not in {rule.missing for rule in fitted.table_.gap_rules_}
    off = synthgen.TabularSynthesizer(seed=1, steps=2, progress=False, derive_categories=False).fit(table)
    assert off.table_.gap_rules_ == []


def test_a_dp_fit_reads_no_rules_from_the_rows() -> None:
    from synthgen.dp.accounting import DPSettings

    table = make_table(rows=600)
    metadata = synthgen.Metadata.detect(table)
    model = synthgen.TabularSynthesizer(metadata, seed=1, steps=5, progress=False, dp=DPSettings(epsilon=5.0)).fit(table)
    assert model.table_.gap_rules_ == []


def test_a_category_derived_from_numbers_decides_no_gaps(tmp_path) -> None:
    """The derived category is set after decoding, so gaps decided by its generated value would disagree with it."""
    table = make_table(rows=400)
    table["age_band"] = np.where(table["age"] < 50, "young", "old")
    table["screening"] = np.where(table["age_band"] == "old", table["age"] * 0.1, np.nan)
    model = synthgen.TabularSynthesizer(seed=1, steps=2, progress=False).fit(table)
    assert model.table_.rule_for("age_band") is not None
    assert "screening" not in {rule.missing for rule in model.table_.gap_rules_}
    good = model.table_.get_state()["gap_rules"]
    saved_and_crafted(tmp_path, model, "gap_rules", [[*good, {"missing": "screening", "when": "age_band", "levels": ["young"]}]])
