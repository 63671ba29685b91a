"""synthgen augment: balancing and growing a table through native conditioning, exact-copy
replacement, the --check comparison, and the command line."""
from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from sklearn.pipeline import Pipeline

from synthgen import TabularSynthesizer
from synthgen.augmentation.check import VERDICTS, check_augmentation, compare_runs
from synthgen.augmentation.tables import augment, fit_for_augmentation
from synthgen.choices import SYNTHETIC_FLAG
from synthgen.cli.main import main
from synthgen.errors import InvalidArgumentError, InvalidDataError, MetadataError


STEPS = 100


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Train on one thread here: on the shared 2-core machine two spinning threads ran a 100-step fit
    in 85 s instead of 2 s. Restored afterwards, so other test modules are unaffected."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def make_imbalanced(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Two classes (about 13% 'sick') decided by two numeric columns, plus a categorical and an id."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    label = np.where(x1 + x2 + rng.normal(0, 0.5, n) > 1.6, "sick", "healthy")
    return pd.DataFrame({
        "patient_id": [f"P{i:04d}" for i in range(n)],
        "x1": x1.round(3),
        "x2": x2.round(3),
        "sex": rng.choice(["F", "M"], n),
        "label": label,
    })


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return make_imbalanced()


@pytest.fixture(scope="module")
def model(table: pd.DataFrame) -> TabularSynthesizer:
    return fit_for_augmentation(table, "label", seed=0, steps=STEPS, progress=False)


@pytest.fixture
def sample_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Every TabularSynthesizer.sample call: rows asked for, conditions, rows returned."""
    calls: list[dict] = []
    original = TabularSynthesizer.sample

    def spy(self, num_rows, conditions=None, **kwargs):
        rows = original(self, num_rows, conditions, **kwargs)
        calls.append({"num_rows": num_rows, "conditions": conditions, "rows": rows})
        return rows

    monkeypatch.setattr(TabularSynthesizer, "sample", spy)
    return calls


def _synthetic(result: pd.DataFrame) -> pd.DataFrame:
    return result[result[SYNTHETIC_FLAG]].drop(columns=SYNTHETIC_FLAG)


def _copies_of(real: pd.DataFrame, synthetic: pd.DataFrame) -> int:
    """Synthetic rows equal to a real row in every non-id column, counted independently of synthgen."""
    columns = [c for c in real.columns if c != "patient_id"]
    return len(synthetic[columns].merge(real[columns].drop_duplicates(), on=columns, how="inner"))


# ------------------------------------------------------------------------------------ the Python API
def test_balance_gives_equal_classes_and_flags_every_synthetic_row(table, model) -> None:
    result = augment(table, "label", balance=True, model=model, seed=1)
    counts = result["label"].value_counts()
    majority = table["label"].value_counts().max()
    assert counts["sick"] == counts["healthy"] == majority
    n = len(table)
    assert result[SYNTHETIC_FLAG].dtype == bool
    assert not result[SYNTHETIC_FLAG].iloc[:n].any() and result[SYNTHETIC_FLAG].iloc[n:].all()
    pd.testing.assert_frame_equal(result.iloc[:n].drop(columns=SYNTHETIC_FLAG), table)
    assert list(result.columns) == [*table.columns, SYNTHETIC_FLAG]
    info = result.attrs["synthgen_augment"]
    expected = {"healthy": 0, "sick": majority - int((table["label"] == "sick").sum())}
    assert info["added"] == expected and info["synthetic_rows"] == sum(expected.values())
    assert info["exact_copies"] == 0 and info["shortfall"] == 0


def test_ratio_grows_the_table_keeping_the_class_mix(table, model) -> None:
    real_counts = table["label"].value_counts()
    for ratio in (2, 1.37):
        result = augment(table, "label", ratio=ratio, model=model, seed=2, flag_column=None)
        assert len(result) == round(ratio * len(table))
        assert SYNTHETIC_FLAG not in result.columns
        counts = result["label"].value_counts()
        for label, count in real_counts.items():
            assert abs(counts[label] - ratio * count) <= 1, (ratio, label)


def test_synthetic_rows_are_asked_for_by_condition_and_carry_the_label(table, model, sample_calls) -> None:
    result = augment(table, "label", balance=True, model=model, seed=3)
    needed = int(table["label"].value_counts().max() - (table["label"] == "sick").sum())
    assert sample_calls, "the model was never sampled"
    assert all(call["conditions"] == {"label": "sick"} for call in sample_calls)
    # Native conditioning: exactly the rows needed are asked for, no generate-and-filter.
    assert sample_calls[0]["num_rows"] == needed
    assert (_synthetic(result)["label"] == "sick").all() and len(_synthetic(result)) == needed
    sample_calls.clear()
    augment(table, "label", ratio=2, model=model, seed=3)
    assert sorted(call["conditions"]["label"] for call in sample_calls) == ["healthy", "sick"]


def test_no_synthetic_row_is_identical_to_a_real_row(table, model, monkeypatch) -> None:
    """A sample that copies real rows is caught: the copies are dropped and replaced."""
    original = TabularSynthesizer.sample
    leaked = {"done": False}

    def leaky(self, num_rows, conditions=None, **kwargs):
        rows = original(self, num_rows, conditions, **kwargs)
        if not leaked["done"]:  # the first batch carries two real rows of its class, verbatim
            leaked["done"] = True
            real = table[table["label"] == conditions["label"]].head(2)
            rows = pd.concat([real, rows.iloc[2:]], ignore_index=True)
        return rows

    monkeypatch.setattr(TabularSynthesizer, "sample", leaky)
    result = augment(table, "label", balance=True, model=model, seed=4)
    info = result.attrs["synthgen_augment"]
    assert info["exact_copies_dropped"] >= 2
    assert info["exact_copies"] == 0 and info["shortfall"] == 0
    assert (result["label"].value_counts() == table["label"].value_counts().max()).all()
    assert _copies_of(table, _synthetic(result)) == 0


def test_regression_target_grows_by_ratio_and_refuses_balance(sample_calls) -> None:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"x": rng.normal(size=200).round(3), "group": rng.choice(["a", "b"], 200)})
    frame["y"] = (2 * frame["x"] + (frame["group"] == "b") + rng.normal(0, 0.3, 200)).round(3)
    with pytest.raises(InvalidArgumentError, match=r"cannot balance target 'y'.*numerical"):
        augment(frame, "y", balance=True, steps=10, progress=False)
    assert not sample_calls  # refused before anything was fitted or sampled
    result = augment(frame, "y", ratio=1.5, seed=0, steps=50, progress=False)
    assert len(result) == 300 and result[SYNTHETIC_FLAG].sum() == 100
    assert all(call["conditions"] is None for call in sample_calls)
    assert _copies_of(frame, _synthetic(result)) == 0
    check = check_augmentation(frame.iloc[:150], frame.iloc[150:], "y", seeds=2,
                               augmented_factory=lambda s: augment(frame.iloc[:150], "y", ratio=1.5, seed=s,
                                                                   steps=20, progress=False))
    assert [m.metric for m in check.metrics] == ["R²"] and check.verdict in VERDICTS


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"balance": True, "ratio": 2.0}, "not both"),
        ({}, "choose what to add"),
        ({"ratio": 1.0}, "greater than 1"),
        ({"ratio": 1.001}, "adds no row"),
        ({"balance": True, "flag_column": "sex"}, "already has a column named 'sex'"),
        ({"balance": True, "target": "nope"}, "not a column"),
    ],
)
def test_bad_requests_are_refused_before_fitting(table, monkeypatch, kwargs, message) -> None:
    def no_fit(*args, **kw):
        raise AssertionError("fit must not run for a refused request")

    monkeypatch.setattr(TabularSynthesizer, "fit", no_fit)
    target = kwargs.pop("target", "label")
    with pytest.raises(InvalidArgumentError, match=message):
        augment(table, target, **kwargs)


def test_a_given_model_must_know_the_table(table, model) -> None:
    with pytest.raises(MetadataError, match="other columns"):
        augment(table.drop(columns="sex"), "label", balance=True, model=model)
    with pytest.raises(InvalidArgumentError, match="when augment fits"):
        augment(table, "label", balance=True, model=model, steps=10)


def test_rare_classes_stay_generable_with_a_warning(caplog) -> None:
    frame = make_imbalanced(200, seed=1).drop(columns="patient_id")
    frame.loc[:2, "label"] = "rare"  # 3 rows: below the default min_category_count of 5
    with pytest.raises(InvalidDataError, match=r"1 class\(es\).*min_category_count"):
        augment(frame, "label", balance=True, min_category_count=5, steps=10, progress=False)
    single = frame.copy()
    single.loc[3, "label"] = "alone"
    with pytest.raises(InvalidDataError, match="single row"):
        augment(single, "label", balance=True, steps=10, progress=False)
    with caplog.at_level(logging.WARNING, logger="synthgen.augmentation.tables"):
        result = augment(frame, "label", balance=True, seed=0, steps=50, progress=False)
    ours = " ".join(r.getMessage() for r in caplog.records if r.name == "synthgen.augmentation.tables")
    assert "min_category_count is lowered to 3" in ours
    assert re.search(r"\brare\b", ours) is None  # counts only: the rare class is never named
    counts = result["label"].value_counts()
    assert counts.nunique() == 1 and set(counts.index) == {"healthy", "sick", "rare"}
    assert result.attrs["synthgen_augment"]["min_category_count"] == 3
    # A model that pooled the class cannot generate it: a clear error, not rows of "Other".
    pooled = TabularSynthesizer(seed=0, steps=10, progress=False).fit(frame)
    with pytest.raises(InvalidDataError, match=r"1 class\(es\).*pooled as rare.*min_category_count"):
        augment(frame, "label", balance=True, model=pooled)


# ------------------------------------------------------------------------------------ --check
def test_check_scores_only_the_real_test_rows(table, model, monkeypatch) -> None:
    train, test = table.iloc[:200].reset_index(drop=True), table.iloc[200:].reset_index(drop=True)
    before = test.copy()
    predicted: list[pd.DataFrame] = []
    for name in ("predict", "predict_proba"):
        original = getattr(Pipeline, name)

        def spy(self, X, _original=original, **kwargs):
            predicted.append(X)
            return _original(self, X, **kwargs)

        monkeypatch.setattr(Pipeline, name, spy)
    augmented_sizes = []

    def factory(seed: int) -> pd.DataFrame:
        rows = augment(train, "label", balance=True, model=model, seed=seed)
        augmented_sizes.append(len(rows))
        return rows

    result = check_augmentation(train, test, "label", augmented_factory=factory, seeds=3,
                                classifier="logistic_regression", metadata=model.metadata_)
    pd.testing.assert_frame_equal(test, before)
    assert len(predicted) == 2 * 3  # real-only and augmented model, three seeds, nothing else
    assert all(len(X) == len(test) for X in predicted)
    expected = test[["x1", "x2"]].to_numpy()
    assert all(np.array_equal(X[["x1", "x2"]].to_numpy(), expected) for X in predicted)
    assert all(size > len(train) for size in augmented_sizes)
    assert result.verdict in VERDICTS and result.seeds == 3 and result.test_rows == len(test)
    assert [m.metric for m in result.metrics] == ["ROC AUC", "balanced accuracy", "minority recall (sick)"]
    assert "Verdict:" in result.table()


def test_verdict_rule_is_a_paired_comparison() -> None:
    def runs(balanced: list[float], auc: list[float]) -> list[dict[str, float]]:
        return [{"ROC AUC": a, "balanced accuracy": b} for a, b in zip(auc, balanced)]

    real = runs([0.70, 0.72, 0.71, 0.69, 0.70], [0.80, 0.81, 0.80, 0.79, 0.80])
    better = runs([0.75, 0.76, 0.76, 0.74, 0.75], [0.80, 0.82, 0.80, 0.79, 0.81])
    worse = runs([0.70, 0.72, 0.71, 0.69, 0.70], [0.75, 0.76, 0.74, 0.73, 0.75])
    noisy = runs([0.75, 0.66, 0.74, 0.65, 0.72], [0.80, 0.81, 0.80, 0.79, 0.80])
    assert compare_runs(real, better, "classification")[1] == "helped"
    assert compare_runs(real, worse, "classification")[1] == "hurt"
    assert compare_runs(real, noisy, "classification")[1] == "no measurable effect"
    metrics, _ = compare_runs(real, better, "classification")
    difference = metrics[1].difference
    assert difference.mean == pytest.approx(0.048) and difference.low > 0


# ------------------------------------------------------------------------------------ command line
@pytest.fixture(scope="module")
def files(tmp_path_factory, table, model) -> Path:
    folder = tmp_path_factory.mktemp("augment")
    table.iloc[:220].to_csv(folder / "train.csv", index=False)
    table.iloc[220:].to_csv(folder / "test.csv", index=False)
    return folder


def test_cli_writes_the_augmented_table_with_its_flag_column(files: Path) -> None:
    out = files / "augmented.csv"
    result = CliRunner().invoke(main, ["augment", str(files / "train.csv"), "--target", "label", "--balance",
                                       "-o", str(out), "--seed", "1", "--steps", "50", "--quiet"])
    assert result.exit_code == 0, result.output
    written = pd.read_csv(out)
    real = pd.read_csv(files / "train.csv")
    assert written[SYNTHETIC_FLAG].dtype == bool and not written[SYNTHETIC_FLAG].iloc[: len(real)].any()
    assert written[SYNTHETIC_FLAG].iloc[len(real):].all()
    assert written["label"].value_counts().nunique() == 1
    added = int(written[SYNTHETIC_FLAG].sum())
    assert f"sick: {int((real['label'] == 'sick').sum())} real + {added} synthetic" in result.output
    assert "0 synthetic rows identical to a real row" in result.output


def test_cli_check_only_measures_and_prints_a_verdict(files: Path, model: TabularSynthesizer) -> None:
    model_path = files / "model.sgz"
    model.save(model_path)
    before = set(files.iterdir())
    result = CliRunner().invoke(main, ["augment", str(files / "train.csv"), "--target", "label", "--ratio", "2",
                                       "--model", str(model_path), "--check", str(files / "test.csv"),
                                       "--check-seeds", "3", "--seed", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    verdict = result.output.strip().splitlines()[-1]
    assert verdict.removeprefix("Verdict: ") in VERDICTS
    assert "balanced accuracy" in result.output and "ROC AUC" in result.output
    assert set(files.iterdir()) == before  # no -o: nothing written


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--balance", "--ratio", "2", "-o", "x.csv"], "not both"),
        (["--balance"], "nothing to do"),
        (["-o", "x.csv"], "choose what to add"),
        (["--balance", "-o", "x.csv", "--flag-column", "sex"], "already has a column"),
    ],
)
def test_cli_errors_are_one_line(files: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["augment", str(files / "train.csv"), "--target", "label", *args, "--quiet"])
    assert result.exit_code == 1
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (files / "x.csv").exists()
