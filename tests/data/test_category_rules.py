"""A category that is a step function of numbers in training is derived from them when sampling (synthgen.data.rules)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import synthgen
from state_checks import info_of, saved_and_crafted

CUTS = [2.0, 2.6, 3.2]  # the groups of kappa + lambda: 1 below 2.0, 2 from 2.0, ... 4 from 3.2
GROUPS = [1, 2, 3, 4]


def grouped(total: np.ndarray) -> np.ndarray:
    return np.asarray(GROUPS)[np.searchsorted(CUTS, total, side="right")]


def make_table(rows: int = 500, seed: int = 0) -> pd.DataFrame:
    """flchain's shape: a group that is the banded sum of two lab values, an age band of one number,
    and columns that merely correlate with the numbers (a rule must hold on every row)."""
    rng = np.random.default_rng(seed)
    kappa = rng.lognormal(0.2, 0.35, rows).round(3)
    lam = rng.lognormal(0.4, 0.3, rows).round(3)
    age = rng.integers(20, 90, rows)
    table = pd.DataFrame({
        "age": age,
        "age_band": np.where(age < 50, "young", np.where(age < 70, "middle", "old")),
        "kappa": kappa,
        "lambda": lam,
        "grp": grouped(kappa + lam),
        "sex": rng.choice(["F", "M"], rows),
        # high for large kappa, but 5% of rows break it: a tendency, not a rule
        "flag": np.where((kappa > 1.4) ^ (rng.random(rows) < 0.05), "high", "normal"),
    })
    table.loc[rng.random(rows) < 0.1, "kappa"] = np.nan  # where a source is missing the group is still known
    return table


@pytest.fixture(scope="module")
def model() -> synthgen.TabularSynthesizer:
    return synthgen.TabularSynthesizer(seed=1, steps=40, progress=False).fit(make_table())


def test_the_rules_found_are_exactly_the_deterministic_ones(model) -> None:
    rules = {rule.column: rule for rule in model.table_.category_rules_}
    assert set(rules) == {"age_band", "grp"}  # not flag (5% of rows break it), not sex
    assert rules["age_band"].sources == ("age",) and rules["age_band"].levels == ("young", "middle", "old")
    assert rules["grp"].sources == ("kappa", "lambda") and rules["grp"].levels == tuple(GROUPS)
    # each cut lies between the training rows on its two sides
    table = make_table()
    total = (table["kappa"] + table["lambda"]).to_numpy()
    for cut, below, above in zip(rules["grp"].thresholds, GROUPS, GROUPS[1:]):
        assert np.nanmax(total[table["grp"] == below]) < cut < np.nanmin(total[table["grp"] == above])


def test_sampled_groups_agree_with_the_sampled_numbers(model) -> None:
    sample = model.sample(3000, seed=2)
    total = (sample["kappa"] + sample["lambda"]).to_numpy()
    # away from the cuts (the learned ones lie between training rows, within 0.05 of these here)
    clear = ~np.isnan(total) & (np.abs(total[:, None] - np.asarray(CUTS)).min(axis=1) > 0.05)
    # after 40 steps the generator alone agrees on about a third of rows; the rule makes it every row
    assert (sample.loc[clear, "grp"].to_numpy() == grouped(total[clear])).all()
    assert ((sample["age"] < 50) == (sample["age_band"] == "young")).all()
    assert sample["grp"].dtype == make_table()["grp"].dtype and set(sample["grp"]) <= set(GROUPS)
    assert sample.loc[np.isnan(total), "grp"].notna().all()  # the model's own group where a source is missing


def test_a_condition_on_a_derived_group_holds_and_agrees_with_its_sources(model) -> None:
    sample = model.sample(300, {"grp": 4}, seed=3)
    assert len(sample) == 300 and (sample["grp"] == 4).all()
    known = sample["kappa"].notna()
    assert ((sample["kappa"] + sample["lambda"])[known] >= CUTS[-1] - 0.1).all()


def test_the_rules_survive_saving_and_crafted_rules_are_refused(model, tmp_path) -> None:
    good = model.table_.get_state()["category_rules"]
    band = next(rule for rule in good if rule["column"] == "age_band")
    crafted = [
        [{**band, "column": "nobody"}],
        [{**band, "column": ["age_band"]}],  # not a name
        [{**band, "sources": ["sex"]}],  # not a number
        [{**band, "thresholds": [70.0, 50.0]}],  # not increasing
        [{**band, "thresholds": [50.0]}],  # one cut for three levels
        [{**band, "levels": ["young", "middle", "ancient"]}],  # a level the column cannot decode to
        [band, band],
        [{**band, "extra": 1}],
        "age_band",
    ]
    saved_and_crafted(tmp_path, model, "category_rules", crafted)


def test_info_names_the_derived_categories(model, tmp_path) -> None:
    text, details = info_of(tmp_path, model)
    assert "(a step function of them on every training row): age_band from age; grp from kappa + lambda" in text
    assert details["derived_categories"] == {"age_band": ["age"], "grp": ["kappa", "lambda"]}


def test_the_cli_fits_with_and_without_derived_categories(tmp_path) -> None:
    import json

    from click.testing import CliRunner

    from synthgen.cli.main import main

    make_table().to_csv(tmp_path / "t.csv", index=False)
    derived = {}
    for flags in ([], ["--no-derive-categories"]):
        model = tmp_path / f"m{len(flags)}.sgz"
        result = CliRunner().invoke(main, ["fit", str(tmp_path / "t.csv"), "-o", str(model), "--steps", "2", "--seed", "0",
                                           "--quiet", *flags])
        assert result.exit_code == 0, result.output
        derived[len(flags)] = json.loads(CliRunner().invoke(main, ["info", str(model), "--json"]).output).get("derived_categories")
    assert derived == {0: {"age_band": ["age"], "grp": ["kappa", "lambda"]}, 1: None}


def test_no_rule_from_a_few_rows_or_when_switched_off() -> None:
    table = make_table(rows=300)
    # "top": the 3 largest lambdas and 3 rows without one. A step seen on 3 rows is no evidence of
    # a rule (and its cut would sit next to their values), though the level itself is common enough.
    top = table["lambda"].nlargest(3).index
    table["rare_band"] = np.where(table.index.isin(top), "top", "rest")
    table.loc[table.index[:3], "rare_band"] = "top"
    table.loc[table.index[:3], "lambda"] = np.nan
    fitted = synthgen.TabularSynthesizer(seed=1, steps=2, progress=False).fit(table)
    assert "top" in fitted.table_.transformer("rare_band").categories
    assert {rule.column for rule in fitted.table_.category_rules_} == {"age_band", "grp"}
    off = synthgen.TabularSynthesizer(seed=1, steps=2, progress=False, derive_categories=False)
    assert off.fit(table).table_.category_rules_ == []


def test_a_dp_fit_reads_no_rules_from_the_rows() -> None:
    """The cut points are values of the rows; a DP fit's transformers come from released statistics only."""
    from synthgen.dp.accounting import DPSettings

    table = make_table(rows=600)
    metadata = synthgen.Metadata.detect(table)
    model = synthgen.TabularSynthesizer(metadata, seed=1, steps=5, progress=False, dp=DPSettings(epsilon=5.0)).fit(table)
    assert model.table_.category_rules_ == []


def test_a_table_too_wide_to_search_is_not_searched(caplog) -> None:
    import logging

    from synthgen.data.rules import MAX_RULE_CHECKS, RuleFinder

    rows = 60
    finder = RuleFinder(rows)
    values = np.arange(rows, dtype=float)
    numeric = int(np.sqrt(MAX_RULE_CHECKS)) + 1
    for i in range(numeric):
        finder.add_numeric(f"x{i}", pd.Series(values))
    for i in range(numeric):  # every one of them a perfect step function of every number
        finder.add_discrete(f"c{i}", pd.Series(np.where(values < rows / 2, "low", "high")))
    with caplog.at_level(logging.INFO, logger="synthgen.data.rules"):
        assert finder.find(5, {f"c{i}": ["low", "high"] for i in range(numeric)}) == []
    assert "too many to look for derived categories" in caplog.text
    small = RuleFinder(rows)
    small.add_numeric("x", pd.Series(values))
    small.add_discrete("c", pd.Series(np.where(values < rows / 2, "low", "high")))
    assert [rule.column for rule in small.find(5, {"c": ["low", "high"]})] == ["c"]
