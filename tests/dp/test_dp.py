"""Differentially private training: accounting, the release of column statistics, the loop, the CLI."""
from __future__ import annotations

import copy
import json
import logging
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.accountants.utils import get_noise_multiplier

from conftest import make_patients
from synthgen import TabularSynthesizer, load
from synthgen.cli.main import main
from synthgen.data.missing import MissingIndicator
from synthgen.data.quantile import QuantileTransformer
from synthgen.dp.accounting import _RELEASES, DPSettings, plan_privacy, privacy_record, spent_epsilon, statement
from synthgen.data.table import TableTransformer
from synthgen.dp.entropy import PrivateRandom
from synthgen.dp.pairs import ColumnCells, PairRelease, column_cells, release_pairs
from synthgen.dp.release import Release, release_rounds, release_statistics
from synthgen.errors import InvalidArgumentError, MetadataError
from synthgen.evaluation.privacy import privacy_section
from synthgen.metadata import Metadata
from synthgen.models.tabular_gan import Discriminator, GANConfig, MarginalLoss
from synthgen.training.private import make_private_critic


def _opacus_epsilon(accountant_class: type, history: list[tuple[float, float, int]], delta: float) -> float:
    accountant = accountant_class()
    accountant.history = list(history)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return accountant.get_epsilon(delta=delta)


# ------------------------------------------------------------------ accounting
@pytest.mark.parametrize("epsilon, n_rows, batch, steps", [(1.0, 6_000, 500, 2_000), (3.0, 334, 334, 300), (10.0, 2_000, 100, 3_000)])
def test_planned_noise_matches_opacus_and_stays_within_the_budget(epsilon, n_rows, batch, steps):
    plan = plan_privacy(DPSettings(epsilon=epsilon), n_rows, batch, steps, release_rounds=0)
    target = epsilon - plan.row_count_epsilon  # the coarse row count takes its share first
    opacus_noise = get_noise_multiplier(target_epsilon=target, target_delta=plan.accountant_delta,
                                        sample_rate=batch / n_rows, steps=steps, accountant="rdp")
    assert plan.noise_multiplier == pytest.approx(opacus_noise, rel=0.03)
    spent, accountant = spent_epsilon(plan.history(), plan.accountant_delta)
    assert accountant == "PRV"
    assert spent == pytest.approx(_opacus_epsilon(PRVAccountant, plan.history(), plan.accountant_delta), rel=1e-9)
    assert spent <= target
    # Planned with the (looser) RDP bound, so RDP itself says the plan is within budget too.
    assert _opacus_epsilon(RDPAccountant, plan.history(), plan.accountant_delta) <= target * 1.001


def test_a_plan_with_exponential_mechanism_choices_is_reported_by_rdp_not_by_the_gaussian_prv():
    # PRV would read the choice round as a Gaussian one and state a smaller ε than is proven.
    plan = plan_privacy(DPSettings(epsilon=3.0), 334, 334, 300, release_rounds=4, selection_rounds=1)
    record = privacy_record(plan, plan.steps, DPSettings(epsilon=3.0), {}, "one row")
    prv = spent_epsilon(plan.history(), plan.accountant_delta)
    assert prv[1] == "PRV" and record["accountant"] == "RDP"
    rdp = _opacus_epsilon(RDPAccountant, plan.history(), plan.accountant_delta)
    assert record["epsilon"] == pytest.approx(plan.row_count_epsilon + rdp, abs=1e-4) and record["epsilon"] > plan.row_count_epsilon + prv[0]
    assert record["epsilon"] <= 3.0


def test_statistics_and_training_compose_within_the_budget():
    settings = DPSettings(epsilon=3.0, preprocessing_share=0.2)
    plan = plan_privacy(settings, 1_000, 200, 1_000, release_rounds=2)
    release_only = spent_epsilon(plan.history(steps=0), plan.accountant_delta)[0]
    training_only = spent_epsilon([(plan.noise_multiplier, plan.sample_rate, plan.steps)], plan.accountant_delta)[0]
    total = spent_epsilon(plan.history(), plan.accountant_delta)[0]
    assert release_only <= 0.2 * (3.0 - plan.row_count_epsilon) + 1e-9
    assert max(release_only, training_only) < total <= 3.0 - plan.row_count_epsilon
    assert plan.delta == pytest.approx(1e-5)
    assert plan.threshold_delta + plan.row_count_delta + plan.accountant_delta == pytest.approx(plan.delta)


def test_the_row_count_noise_meets_its_share_of_the_budget_exactly():
    from synthgen.dp.accounting import ROW_COUNT_DELTA_SHARE, ROW_COUNT_SHARE, _gaussian_delta, row_count_noise

    settings = DPSettings(epsilon=2.0, delta=1e-6)
    noise = row_count_noise(settings)
    assert _gaussian_delta(noise, 2.0 * ROW_COUNT_SHARE) <= 1e-6 * ROW_COUNT_DELTA_SHARE
    assert _gaussian_delta(noise * 0.99, 2.0 * ROW_COUNT_SHARE) > 1e-6 * ROW_COUNT_DELTA_SHARE  # and no more
    # The exact analytic figure is at most what Opacus' (upper-bounding) accountants say of the same step.
    opacus = spent_epsilon([(noise, 1.0, 1)], 1e-6 * ROW_COUNT_DELTA_SHARE)[0]
    assert 2.0 * ROW_COUNT_SHARE <= opacus <= 1.15 * 2.0 * ROW_COUNT_SHARE


def test_fixed_noise_stops_training_when_the_budget_is_spent():
    table = make_patients(300, 0)
    synthesizer = TabularSynthesizer(_declared(table), steps=5_000, batch_size=30, seed=0, progress=False,
                                     dp=DPSettings(epsilon=2.0, noise_multiplier=2.0)).fit(table)
    privacy = synthesizer.privacy_
    assert privacy["steps"] == synthesizer.training_["steps"] < 5_000
    assert privacy["steps_requested"] == 5_000
    assert privacy["epsilon"] <= 2.0
    # One more step would have gone over the budget.
    history = [(privacy["plan"]["release_noise"], 1.0, privacy["plan"]["release_rounds"]),
               (2.0, privacy["sample_rate"], privacy["steps"] + 1)]
    plan = privacy["plan"]
    accountant_delta = plan["delta"] - plan["threshold_delta"] - plan["row_count_delta"]
    assert _opacus_epsilon(RDPAccountant, history, accountant_delta) > 2.0 - plan["row_count_epsilon"]


@pytest.mark.parametrize(
    "settings, message",
    [
        (DPSettings(epsilon=0.0), "positive number"),
        (DPSettings(epsilon=-1.0), "positive number"),
        (DPSettings(epsilon=3.0, delta=1 / 100), "below 1/n"),
        (DPSettings(epsilon=3.0, delta=0.0), "between 0 and 1"),
        (DPSettings(epsilon=1e-4), "too small to release even the column statistics"),
        (DPSettings(epsilon=0.5, noise_multiplier=0.3), "cannot pay for even one DP-SGD step"),
    ],
)
def test_impossible_budgets_are_refused_with_what_would_work(settings, message):
    with pytest.raises(InvalidArgumentError, match=message):
        plan_privacy(settings, 200, 200, 1_000, release_rounds=2)


def test_a_budget_too_small_for_the_steps_says_which_settings_would_work():
    with pytest.raises(InvalidArgumentError, match=r"what would work: --steps \d+"):
        plan_privacy(DPSettings(epsilon=0.3), 200, 200, 200_000, release_rounds=0)


# ------------------------------------------------------------------ release of column statistics
def _declared(table: pd.DataFrame) -> Metadata:
    """The metadata a user would declare for ``table`` (DP fits refuse to detect it from the rows)."""
    return Metadata.detect(table)


def _release(table: pd.DataFrame, metadata: Metadata | None = None, noise: float = 2.0):
    metadata = metadata or Metadata.detect(table)
    return release_statistics(table, metadata, noise, release_rounds(metadata), 1e-6, rows_hint=len(table))


def _release_where(condition, *args, **kwargs):
    """The first release for which ``condition`` holds: DP noise cannot be seeded, so a test that needs a
    particular noisy outcome (that is likely, not certain) draws until it gets one."""
    return next(r for r in (_release(*args, **kwargs) for _ in range(200)) if condition(r))


def test_a_category_held_by_one_row_is_never_released():
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"diagnosis": rng.choice(["asthma", "copd"], 2_000), "age": rng.normal(60, 10, 2_000)})
    table.loc[7, "diagnosis"] = "kuru"  # one patient's rare diagnosis
    for _ in range(20):
        levels = _release(table).transformers["diagnosis"].categories
        assert "kuru" not in levels
        assert {"asthma", "copd"} <= set(levels) and "Other" in levels


def test_public_values_are_released_whatever_their_counts():
    table = pd.DataFrame({"stage": ["I"] * 500 + ["IV"], "age": np.linspace(20, 90, 501)})
    metadata = Metadata.detect(table)
    metadata.columns["stage"]["public_values"] = ["I", "II", "III", "IV"]
    transformer = _release_where(lambda r: not r.transformers["stage"].has_missing_, table, metadata).transformers["stage"]
    assert set(transformer.categories) == {"I", "II", "III", "IV"}


def test_a_value_outside_the_public_domain_neither_stops_a_dp_fit_nor_reaches_the_model(tmp_path, caplog):
    """One patient's stage 'IV' in a column declared ['I', 'II', 'III'] used to refuse the table with an
    error naming 'IV': that patient decided whether any model was released, and the user was invited to
    add the value to public_values, publishing it without noise. It is a gap now, like a stray cell."""
    rng = np.random.default_rng(3)
    table = pd.DataFrame({"stage": rng.choice(["I", "II", "III"], 300), "age": rng.normal(60, 10, 300).round(1)})
    metadata = _declared(table)
    metadata.columns["stage"]["public_values"] = ["I", "II", "III"]
    metadata.columns["age"]["public_bounds"] = [0, 120]
    attacked = pd.concat([table, pd.DataFrame({"stage": ["IV"], "age": [61.0]})], ignore_index=True)
    models = {}
    for name, frame in (("clean", table), ("attacked", attacked)):
        with caplog.at_level(logging.WARNING, logger="synthgen.synthesizers.private"):
            models[name] = TabularSynthesizer(metadata, steps=3, seed=0, progress=False, calibrate=False,
                                              dp=DPSettings(epsilon=3.0)).fit(frame)
    warned = [r.getMessage() for r in caplog.records if "public_values" in r.getMessage()]
    assert len(warned) == 1 and "'stage'" in warned[0] and "IV" not in warned[0]
    for model in models.values():
        # A missing level (None) is a DP outcome: the noisy count of gaps may clear its threshold.
        assert set(model.table_.transformer("stage").categories) - {None} <= {"I", "II", "III"}
        assert not model.sample(500, seed=1)["stage"].isin(["IV"]).any()
    with zipfile.ZipFile(models["attacked"].save(tmp_path / "dp.sgz")) as bundle:
        assert '"IV"' not in bundle.read("model.json").decode()


def test_numeric_bounds_come_from_noisy_power_of_two_bins_or_from_public_bounds():
    rng = np.random.default_rng(1)
    table = pd.DataFrame({"albumin": rng.normal(3.5, 0.4, 3_000), "bili": rng.lognormal(0, 1, 3_000)})
    release = _release(table)
    for column in table:
        transformer = release.transformers[column]
        edges = getattr(transformer, "inner", transformer).edges_  # a noisy gap count can add an indicator
        assert edges[0] <= np.quantile(table[column], 0.01) and edges[-1] >= np.quantile(table[column], 0.99)
        assert edges[-1] <= 4 * table[column].max()  # a power of two above the data, not 2**40
    metadata = Metadata.detect(table)
    metadata.columns["albumin"]["public_bounds"] = [1.0, 6.0]
    transformer = _release(table, metadata).transformers["albumin"]
    edges = getattr(transformer, "inner", transformer).edges_
    assert (edges[0], edges[-1]) == (1.0, 6.0)


def test_a_small_column_whose_bins_all_sit_below_the_noise_is_not_cut_to_one_bin():
    # 300 copper-like values, log-uniform over 4-600 (about 40 per power-of-two bin), at the noise
    # pbc's 11 numeric columns get at ε = 1: no bin clears 4σ. Bounds around the single fullest
    # noisy bin kept 22-27% of the values inside them (3 runs of 100 releases); around the fullest
    # three adjacent bins, 38-41%.
    values = np.exp(np.random.default_rng(0).uniform(np.log(4), np.log(600), 300))
    table = pd.DataFrame({"copper": values})
    metadata = Metadata.from_dict({"columns": {"copper": {"sdtype": "numerical", "computer_representation": "Float"}}})
    inside = []
    for _ in range(100):  # DP noise cannot be seeded: judge the mean over many releases
        transformer = release_statistics(table, metadata, 31.0, release_rounds(metadata), 1e-6, rows_hint=300).transformers["copper"]
        edges = getattr(transformer, "inner", transformer).edges_
        inside.append(np.mean((values >= edges[0]) & (values <= edges[-1])))
    assert np.mean(inside) > 0.32


def test_gaps_get_an_indicator_only_when_the_noisy_count_shows_them():
    rng = np.random.default_rng(2)
    many = pd.Series(rng.normal(0, 1, 2_000))
    many[:400] = np.nan
    few = pd.Series(rng.normal(0, 1, 2_000))
    few[:2] = np.nan
    table = pd.DataFrame({"many": many, "few": few})
    assert all(_release(table).transformers["many"].name == "missing" for _ in range(20))
    releases = [_release(table) for _ in range(20)]
    assert sum(r.transformers["few"].name == "quantile" for r in releases) >= 12  # 2 gaps seldom clear 2σ
    release = next(r for r in releases if r.transformers["few"].name == "quantile")
    filled = release.fill_unreleased_gaps(table, np.random.default_rng(0))
    assert filled["few"].notna().all() and filled["many"].isna().sum() == 400


def _lab_with_gaps(values: np.ndarray, gaps: int, public_bounds: list[float]) -> tuple[pd.DataFrame, Metadata]:
    """One float lab column, its first ``gaps`` values missing, with declared public bounds."""
    lab = pd.Series(values)
    lab[:gaps] = np.nan
    spec = {"sdtype": "numerical", "computer_representation": "Float", "public_bounds": public_bounds}
    return pd.DataFrame({"lab": lab}), Metadata.from_dict({"columns": {"lab": spec}})


def test_a_quarter_of_gaps_is_not_lost_where_the_noise_is_a_quarter_of_the_rows():
    # 300 rows, 26% of one column missing (pbc's trt at ε = 1), noise σ = 37.5 counts: 2σ is 25%
    # of the rows, so a 2σ rule dropped the column's gaps in about half of the releases (53% kept).
    table, metadata = _lab_with_gaps(np.random.default_rng(4).normal(0, 1, 300), 78, public_bounds=[-5, 5])
    noise = 37.5 / np.sqrt(2)  # the histogram round's σ is noise × √(columns + the row count)
    kept = [release_statistics(table, metadata, noise, 1, 1e-6, rows_hint=300).transformers["lab"].name == "missing"
            for _ in range(200)]
    assert np.mean(kept) > 0.8  # 10% of the rows is the threshold: kept 90% of the time


def test_gaps_in_a_numeric_coded_column_can_be_filled_with_the_rare_label():
    # pbc's trt: codes 1.0/2.0 with gaps, in a float column. When no name clears the threshold and the
    # noisy count shows no gaps, the gaps are filled with the rare label, a string: the column must
    # become object rather than fail to cast back to float.
    rng = np.random.default_rng(3)
    code = pd.Series(rng.choice([1.0, 2.0], 300))
    code[:5] = np.nan
    table = pd.DataFrame({"code": code, "x": rng.normal(0, 1, 300)})
    metadata = Metadata.from_dict({"columns": {"code": {"sdtype": "categorical"},
                                               "x": {"sdtype": "numerical", "computer_representation": "Float"}}})
    # Both are likely, not certain: a noisy count clears the name threshold in about 0.7% of releases.
    release = _release_where(lambda r: not r.transformers["code"].has_missing_ and r.transformers["code"].categories == ["Other"],
                             table, metadata, noise=40.0)
    filled = release.fill_unreleased_gaps(table, np.random.default_rng(0))
    assert filled["code"].notna().all() and (filled["code"][:5] == "Other").all()
    assert filled["code"][5:].tolist() == table["code"][5:].tolist()


def test_quantile_transformer_round_trips_through_its_cdf():
    values = pd.Series(np.random.default_rng(3).gamma(2.0, 3.0, 5_000))
    transformer = QuantileTransformer(bins=50).fit(values, np.random.default_rng(0))
    encoded = transformer.transform(values, np.random.default_rng(0))
    assert encoded.shape == (5_000, 1) and np.abs(encoded).max() <= 1
    assert abs(float(np.mean(encoded))) < 0.02  # normal scores of a CDF centre on 0
    decoded = transformer.inverse(encoded, np.random.default_rng(0))
    inside = (values > values.quantile(0.01)) & (values < values.quantile(0.99))
    assert np.allclose(decoded[inside], values[inside], rtol=0.02)


# ------------------------------------------------------------------ training
def test_dp_fit_samples_every_column_and_saves_the_guarantee(tmp_path):
    table = make_patients(400, 0)
    synthesizer = TabularSynthesizer(_declared(table), steps=60, seed=0, progress=False, dp=DPSettings(epsilon=3.0)).fit(table)
    sample = synthesizer.sample(300, seed=1)
    assert list(sample.columns) == list(table.columns) and len(sample) == 300
    assert synthesizer.config_.pac == 1
    privacy = synthesizer.privacy_
    assert 0 < privacy["epsilon"] <= 3.0 and privacy["delta"] == pytest.approx(1e-5)
    assert privacy["accountant"] in {"PRV", "RDP"} and privacy["opacus_version"]
    assert privacy["spent_by"][_RELEASES] < privacy["epsilon"]
    path = synthesizer.save(tmp_path / "dp.sgz")
    reloaded = load(path, device="cpu")
    assert reloaded.privacy_ == privacy
    pd.testing.assert_frame_equal(reloaded.sample(50, seed=4), synthesizer.sample(50, seed=4))


def test_a_dp_fit_says_which_numeric_columns_cost_a_round_for_their_bounds(caplog):
    table = make_patients(200, 0)
    metadata = _declared(table)
    numeric = [name for name, spec in metadata.columns.items() if spec["sdtype"] in ("numerical", "datetime")]
    with caplog.at_level(logging.INFO, logger="synthgen.synthesizers.private"):
        TabularSynthesizer(metadata, steps=3, seed=0, progress=False, calibrate=False, dp=DPSettings(epsilon=5.0)).fit(table)
    said = [r.getMessage() for r in caplog.records if "without public_bounds" in r.getMessage()]
    assert len(said) == 1 and f"{len(numeric)} numeric/date column(s)" in said[0] and repr(numeric[0]) in said[0]
    caplog.clear()
    for name in numeric:
        values = pd.to_numeric(table[name], errors="coerce") if metadata.columns[name]["sdtype"] == "numerical" else None
        if values is None:
            metadata.columns[name]["sdtype"] = "categorical"  # dates: out of this test's way
            continue
        metadata.columns[name]["public_bounds"] = [float(values.min()) - 1, float(values.max()) + 1]
    with caplog.at_level(logging.INFO, logger="synthgen.synthesizers.private"):
        TabularSynthesizer(metadata, steps=3, seed=0, progress=False, calibrate=False, dp=DPSettings(epsilon=5.0)).fit(table)
    assert not [r for r in caplog.records if "without public_bounds" in r.getMessage()]


def test_the_same_seed_does_not_repeat_the_dp_noise_and_the_record_says_so():
    table = make_patients(200, 0)
    fits = [TabularSynthesizer(_declared(table), steps=5, seed=5, progress=False, calibrate=False,
                               dp=DPSettings(epsilon=5.0)).fit(table) for _ in range(2)]
    # Released statistics (the condition sampler's noisy counts) differ between two fits with one seed.
    assert not torch.equal(fits[0].sampler_.counts, fits[1].sampler_.counts)
    assert "not byte-reproducible" in fits[0].privacy_["reproducible"]


def test_a_dp_fit_refuses_to_detect_its_schema_from_the_rows():
    table = make_patients(100, 0)
    with pytest.raises(MetadataError, match="synthgen metadata"):
        TabularSynthesizer(steps=5, progress=False, dp=DPSettings(epsilon=3.0)).fit(table)


def test_one_planted_row_does_not_change_what_a_dp_fit_outputs_for_a_declared_column():
    """Under DP the output type comes from the declared metadata, never from the rows (a planted
    age of 37.5 used to turn an Int64 column into Float)."""
    table = make_patients(200, 0)
    table["age"] = table["age"].round().astype("int64")
    metadata = Metadata.detect(table)
    metadata.columns["age"] = {"sdtype": "numerical", "computer_representation": "Int64"}
    planted = pd.concat([table, table.iloc[:1].assign(age=37.5)], ignore_index=True)
    dtypes = []
    for frame in (table, planted):
        model = TabularSynthesizer(metadata, steps=3, seed=0, progress=False, calibrate=False,
                                   dp=DPSettings(epsilon=5.0)).fit(frame)
        dtypes.append({name: str(dtype) for name, dtype in model.sample(50, seed=0).dtypes.items()})
    # Int64 when the noisy gap count happens to keep a missing level: a DP outcome, not the planted row.
    assert dtypes[0]["age"] in {"int64", "Int64"} and dtypes[1]["age"] in {"int64", "Int64"}


def test_gaps_are_filled_from_the_released_distribution_not_with_other_patients_values():
    rng = np.random.default_rng(5)
    table, metadata = _lab_with_gaps(rng.normal(50, 10, 2_000), 600, public_bounds=[0, 100])
    release = _release(table, metadata)
    encoder = TableTransformer.from_fitted(metadata, {}, release.transformers)
    encoded = release.fill_encoded_gaps(table, encoder.transform(table, rng), encoder.slices_, rng)
    present, gaps = encoded[600:, 0], encoded[:600, 0]
    # Gaps do not carry present rows' values (copying donors gave every gap one); a continuous draw
    # can still equal one of 1,400 float32 values by chance (CI saw one), so a handful is allowed.
    assert np.isin(gaps, present).mean() < 0.01


def test_one_row_per_patient_is_kept_when_a_unit_column_is_declared():
    table = make_patients(300, 0)
    table["patient_id"] = [f"p{i // 3}" for i in range(300)]  # three visits per patient
    synthesizer = TabularSynthesizer(_declared(table), steps=10, seed=0, progress=False,
                                     dp=DPSettings(epsilon=5.0, unit_column="patient_id")).fit(table)
    sigma = synthesizer.privacy_["release"]["noise_std_per_count"]
    assert abs(synthesizer.training_["rows"] - 100) < 5 * sigma  # the released (noisy) count of patients
    assert "one row per patient kept" in synthesizer.privacy_["privacy_unit"]
    with pytest.raises(InvalidArgumentError, match="'nobody' is not in the table"):
        TabularSynthesizer(_declared(table), steps=10, progress=False, dp=DPSettings(epsilon=5.0, unit_column="nobody")).fit(table)


def test_empty_poisson_batches_still_train_and_count():
    table = make_patients(400, 0)
    synthesizer = TabularSynthesizer(_declared(table), steps=30, batch_size=2, seed=0, progress=False,
                                     dp=DPSettings(epsilon=8.0, critic=True)).fit(table)
    assert synthesizer.privacy_["steps"] == 30  # at q = 0.5%, about one batch in seven holds no real row
    assert np.isfinite(synthesizer.training_["discriminator_loss"])


def test_by_default_no_critic_trains_and_the_whole_budget_goes_to_the_releases(monkeypatch):
    import synthgen.synthesizers.private as private_fit

    def no_dp_sgd(*args, **kwargs):
        raise AssertionError("DP-SGD ran without being asked for")

    monkeypatch.setattr(private_fit, "train_gan_private", no_dp_sgd)
    table = _dependent_table(600, 0)
    synthesizer = TabularSynthesizer(_declared(table), steps=300, seed=0, progress=False, dp=DPSettings(epsilon=3.0)).fit(table)
    privacy = synthesizer.privacy_
    assert privacy["steps"] == 0 and privacy["noise_multiplier"] == 0 and privacy["spent_by"]["discriminator DP-SGD"] == 0
    assert synthesizer.training_["steps"] == 300  # the generator's steps, fitted to the released tables
    assert 0 < privacy["epsilon"] <= 3.0 and privacy["spent_by"][_RELEASES] > 0.9 * (3.0 - privacy["plan"]["row_count_epsilon"])
    assert "no DP-SGD" in statement(privacy) and "noise multiplier" not in statement(privacy)
    assert "only sees the released tables" in statement(privacy) and "discriminator" not in statement(privacy)
    # The released tables alone carry the dependence: b is missing where a is "x", shifted where a is "z".
    sample = synthesizer.sample(3_000, seed=1)
    assert sample.loc[sample["a"] == "x", "b"].isna().mean() > 0.5 > sample.loc[sample["a"] == "y", "b"].isna().mean() + 0.25
    assert sample.loc[sample["a"] == "z", "b"].mean() > sample.loc[sample["a"] == "y", "b"].mean() + 0.8


def test_columns_missing_for_the_same_patients_stay_missing_together():
    # A sub-study: six labs drawn for 70% of 400 patients only, the same 70%, beside columns that
    # depend on each other (and compete for the tree's edges). A tree of noisy two-way tables
    # carried "missing together" only part of the way along its paths.
    rng = np.random.default_rng(0)
    n = 400
    age = rng.normal(60, 10, n)
    table = pd.DataFrame({"age": age, "weight": age + rng.normal(0, 5, n), "sex": rng.choice(["f", "m"], n)})
    outside = rng.random(n) < 0.3
    labs = ["chol", "copper", "trig", "ast", "alk", "bili"]
    for lab in labs:
        table[lab] = np.where(outside, np.nan, rng.lognormal(5, 0.5, n))
    synthesizer = TabularSynthesizer(_declared(table), steps=400, seed=0, progress=False, dp=DPSettings(epsilon=3.0)).fit(table)
    assert synthesizer.privacy_["release"]["pairs"]["missingness patterns"]["patterns kept"] >= 2
    missing = synthesizer.sample(3_000, seed=1)[labs].isna()
    assert 0.2 < missing["chol"].mean() < 0.4
    for lab in labs[1:]:
        assert missing.loc[missing["chol"], lab].mean() > 0.75  # real: 1.0
        assert missing.loc[~missing["chol"], lab].mean() < 0.12  # real: 0.0


@pytest.mark.parametrize("settings, critic", [
    (DPSettings(epsilon=3.0), False),
    (DPSettings(epsilon=3.0, critic=True), True),
    (DPSettings(epsilon=3.0, preprocessing_share=0.8), True),  # a share for DP-SGD asks for it
    (DPSettings(epsilon=3.0, noise_multiplier=2.0), True),
    (DPSettings(epsilon=3.0, pairs=False), True),  # no tables to fit the generator to
    (DPSettings(epsilon=3.0, pairs=False, critic=False), False),
])
def test_whether_a_critic_trains(settings, critic):
    assert settings.resolved_critic() is critic


def _mia_auc(dp: DPSettings | None, seed: int) -> float:
    """Distance-attack AUC on a 30-row table trained long enough to memorise it without DP."""
    rows = make_patients(60, seed)
    train, holdout = rows.iloc[:30].reset_index(drop=True), rows.iloc[30:].reset_index(drop=True)
    synthesizer = TabularSynthesizer(Metadata.detect(rows), steps=1_500, batch_size=30, seed=seed, progress=False,
                                     dp=dp).fit(train)
    synthetic = synthesizer.sample(1_000, seed=seed)
    section = privacy_section(train, synthetic, holdout, Metadata.detect(rows), rng=np.random.default_rng(seed))
    return next(s.value for s in section.scores if s.metric == "MIA AUC (distance)")


@pytest.mark.slow
def test_membership_inference_is_closer_to_chance_with_dp():
    seeds = [0, 1, 2]
    plain = [abs(_mia_auc(None, seed) - 0.5) for seed in seeds]
    private = [abs(_mia_auc(DPSettings(epsilon=1.0, delta=1e-2 / 3), seed) - 0.5) for seed in seeds]
    assert np.mean(plain) > 0.15  # the attack works on the memorising model (measured: AUC 0.68-0.84)
    assert np.mean(private) < np.mean(plain)


# ------------------------------------------------------------------ CLI
def test_cli_fit_info_and_evaluate_state_the_guarantee(tmp_path):
    data, declared = tmp_path / "patients.csv", tmp_path / "metadata.json"
    make_patients(300, 0).to_csv(data, index=False)
    model, synthetic = tmp_path / "dp.sgz", tmp_path / "s.csv"
    runner = CliRunner()
    refused = runner.invoke(main, ["fit", str(data), "-o", str(model), "--dp-epsilon", "3", "--quiet"])
    assert refused.exit_code == 1 and "--metadata" in refused.output and not model.exists()
    assert runner.invoke(main, ["metadata", str(data), "-o", str(declared)]).exit_code == 0
    fitted = runner.invoke(main, ["fit", str(data), "-o", str(model), "--dp-epsilon", "3", "--dp-delta", "1e-6",
                                  "--metadata", str(declared), "--steps", "20", "--seed", "0", "--quiet",
                                  "--holdout", "0.3"])
    assert fitted.exit_code == 0, fitted.output
    assert "-DP (target ε=3)" in fitted.output and "δ=1e-06" in fitted.output
    shown = runner.invoke(main, ["info", str(model)])
    assert "trained with (ε=" in shown.output and "accountant: RDP" in shown.output
    assert "add/remove one patient" in shown.output and "not byte-reproducible" in shown.output
    assert json.loads(runner.invoke(main, ["info", str(model), "--json"]).output)["training"]["privacy"]["delta"] == 1e-6
    runner.invoke(main, ["sample", str(model), "-n", "200", "-o", str(synthetic), "--quiet"])
    report = tmp_path / "r.json"
    evaluated = runner.invoke(main, ["evaluate", str(model), "--real", str(data), "--synthetic", str(synthetic),
                                     "--json", str(report), "--quiet"])
    assert evaluated.exit_code in (0, 3), evaluated.output
    assert "-DP (target ε=3)" in json.loads(report.read_text())["context"]["dp statement"]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--dp-epsilon", "0"], "positive number"),
        (["--dp-epsilon", "3", "--dp-delta", "0.5"], "below 1/n"),
        (["--dp-delta", "1e-6"], "need --dp-epsilon"),
        (["--dp-epsilon", "0.5", "--dp-noise", "0.3"], "cannot pay for even one DP-SGD step"),
    ],
)
def test_cli_refuses_bad_dp_settings_and_writes_nothing(tmp_path, arguments, message):
    data, declared = tmp_path / "patients.csv", tmp_path / "metadata.json"
    make_patients(100, 0).to_csv(data, index=False)
    Metadata.detect(make_patients(100, 0)).save(declared)
    model = tmp_path / "dp.sgz"
    result = CliRunner().invoke(main, ["fit", str(data), "-o", str(model), "--steps", "10", "--quiet",
                                       "--metadata", str(declared), *arguments])
    assert result.exit_code == 1 and message in result.output
    assert not model.exists()


def test_each_rows_gradient_is_clipped_before_the_private_sum():
    """Ghost clipping on our critic gives exactly the sum of per-row gradients clipped to the norm."""
    torch.manual_seed(0)
    critic = Discriminator(6, (16, 16), 1, 0.0)
    rows = torch.randn(8, 6)
    rows[0] *= 100.0  # an outlier row whose raw gradient is far above the clipping norm
    targets = torch.tensor([1.0] * 4 + [0.0] * 4)
    plan = plan_privacy(DPSettings(epsilon=10.0), 1_000, 8, 10, release_rounds=0)
    private, optimiser, criterion = make_private_critic(copy.deepcopy(critic), plan, 1e-3, torch.Generator())
    optimiser.zero_grad(set_to_none=True)
    criterion(private(rows).squeeze(1), targets).backward()
    clipped_sum = [p.grad.clone() for p in private.parameters()]

    expected = [torch.zeros_like(p) for p in critic.parameters()]
    norms = []
    for row, target in zip(rows, targets):
        critic.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(critic(row[None]).squeeze(1), target[None]).backward()
        grads = [p.grad for p in critic.parameters()]
        norm = torch.sqrt(sum((g**2).sum() for g in grads))
        norms.append(float(norm))
        for total, grad in zip(expected, grads):
            total += grad * min(1.0, plan.max_grad_norm / (float(norm) + 1e-6))
    assert max(norms) > 10 * plan.max_grad_norm  # the outlier really was clipped
    for got, want in zip(clipped_sum, expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_dates_stay_representable_even_when_noise_drowns_their_counts():
    dates = pd.Series(pd.date_range("2019-01-01", periods=30, freq="7D").strftime("%Y-%m-%d"))
    table = pd.DataFrame({"visit": dates, "age": np.arange(30.0)})
    metadata = Metadata.detect(table)
    metadata.columns["visit"] = {"sdtype": "datetime", "datetime_format": "%Y-%m-%d"}
    for _ in range(10):
        release = _release(table, metadata, noise=1_000.0)
        dates = release.transformers["visit"]
        dates = getattr(dates, "inner", dates)  # a noisy gap count can add a missing indicator
        seconds = dates.inner_.edges_
        assert -(2.0**33) <= seconds[0] < seconds[-1] <= 2.0**33  # inside pandas' timestamp range
        filled = dates.inverse(np.zeros((5, 1), np.float32), np.random.default_rng(0))
        assert len(filled) == 5


@pytest.mark.slow
def test_calibration_puts_the_released_marginals_on_a_barely_trained_dp_generator(tmp_path):
    from scipy.stats import ks_2samp

    table = make_patients(1_000, 0)
    synthesizer = TabularSynthesizer(_declared(table), steps=20, seed=0, progress=False, dp=DPSettings(epsilon=5.0)).fit(table)
    assert synthesizer.calibration_ is not None
    calibrated = synthesizer.sample(3_000, seed=1)
    calibration, synthesizer.calibration_ = synthesizer.calibration_, None
    raw = synthesizer.sample(3_000, seed=1)
    synthesizer.calibration_ = calibration
    for column in ("age", "bilirubin"):
        real = table[column].dropna().astype(float)
        after = ks_2samp(real, calibrated[column].dropna().astype(float)).statistic
        before = ks_2samp(real, raw[column].dropna().astype(float)).statistic
        assert after < 0.15 and after < before, (column, after, before)
    shares = calibrated["sex"].value_counts(normalize=True)
    assert abs(shares.get("F", 0) - (table["sex"] == "F").mean()) < 0.05
    # The calibration travels with the model file.
    reloaded = load(synthesizer.save(tmp_path / "dp.sgz"), device="cpu")
    pd.testing.assert_frame_equal(reloaded.sample(100, seed=2), synthesizer.sample(100, seed=2))


def test_unreleased_gaps_are_filled_at_the_released_frequencies():
    table = pd.DataFrame({"stage": ["I"] * 900 + ["II"] * 97 + [None] * 3, "age": np.linspace(20, 90, 1_000)})
    # 3 gaps seldom clear the noise; the noise is not seedable, so take the first release where they do not.
    release = _release_where(lambda r: not r.transformers["stage"].has_missing_, table, noise=1.0)
    filled = release.fill_unreleased_gaps(pd.concat([table] * 100, ignore_index=True), np.random.default_rng(0))
    gap_rows = pd.concat([table] * 100, ignore_index=True)["stage"].isna()
    assert (filled.loc[gap_rows, "stage"] == "I").mean() > 0.8  # "I" holds 90% of the rows, not a third


# ------------------------------------------------------------------ two-way tables
def _dependent_table(n: int, seed: int) -> pd.DataFrame:
    """a and b depend on each other (b mostly missing when a is 'x'); c and d are noise."""
    rng = np.random.default_rng(seed)
    a = rng.choice(["x", "y", "z"], n, p=[0.3, 0.4, 0.3])
    b = np.where(a == "x", np.nan, rng.normal(0, 1, n) + (a == "z") * 2.0)
    return pd.DataFrame({"a": a, "b": b, "c": rng.normal(5, 2, n), "d": rng.choice(["p", "q"], n)})


def test_cells_follow_the_encoding_bins_missing_and_categories():
    table = _dependent_table(2_000, 0)
    metadata = Metadata.detect(table)
    # Columns without gaps get a missing level only when noise clears 2σ (about 1 release in 40; 2σ is
    # below 10% of the rows here).
    release = _release_where(lambda r: not (r.transformers["a"].has_missing_ or r.transformers["c"].name == "missing"
                                            or r.transformers["d"].has_missing_), table, metadata)
    encoder = TableTransformer.from_fitted(metadata, {}, release.transformers)
    encoded = encoder.transform(release.fill_unreleased_gaps(table, np.random.default_rng(0)), np.random.default_rng(0))
    cells = {c.name: c for c in column_cells(encoder, release.category_counts, bins=4)}
    assert cells["b"].kind == "bins" and cells["b"].size == 5 and len(cells["b"].positions) == 3
    assert cells["c"].size == 4 and cells["a"].kind == "categories"
    b_codes = cells["b"].codes(encoded)
    assert np.array_equal(b_codes == 4, table["b"].isna().to_numpy())  # the missing cell
    c_codes = cells["c"].codes(encoded)
    shares = np.bincount(c_codes, minlength=4) / len(c_codes)
    assert np.abs(shares - 0.25).max() < 0.08  # equal-probability bins of the released CDF
    assert np.all(np.diff([table["c"][c_codes == k].median() for k in range(4)]) > 0)
    a_codes = cells["a"].codes(encoded)
    assert np.array_equal(np.asarray(encoder.transformer("a").categories)[a_codes], table["a"].to_numpy())


def test_a_released_histogram_spends_its_bins_where_the_values_are():
    # Albumin-like values (3.5 ± 0.4) get DP bounds of [1, 16]: power-of-two bins widened by one
    # each way. With the 5 bins the noise allows spread over those bounds, the values fell in 2 of
    # them and the released distribution matched the data with a KS complement of 0.58-0.61.
    from scipy.stats import ks_2samp

    from synthgen.dp.release import _random_encoding

    rng = np.random.default_rng(0)
    table = pd.DataFrame({"albumin": rng.normal(3.5, 0.4, 2_000)})
    metadata = Metadata.from_dict({"columns": {"albumin": {"sdtype": "numerical", "computer_representation": "Float"}}})
    for _ in range(5):
        released = _release(table, metadata, noise=30.0).transformers["albumin"]  # noise for 5 bins, as pbc's at ε = 3
        released = getattr(released, "inner", released)
        assert len(released.edges_) >= 6
        draws = released.inverse(_random_encoding(released, 5_000, rng), rng).astype(float)
        assert 1 - ks_2samp(draws, table["albumin"]).statistic > 0.72  # measured 0.79-0.83


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dependent_pairs_are_released_and_independent_ones_are_not(seed):
    table = _dependent_table(3_000, seed)
    metadata = Metadata.detect(table)
    independent = 0
    for _ in range(10):  # DP noise cannot be seeded: judge the rates over several releases
        release = _release(table, metadata)
        encoder = TableTransformer.from_fitted(metadata, {}, release.transformers)
        encoded = encoder.transform(release.fill_unreleased_gaps(table, np.random.default_rng(0)), np.random.default_rng(0))
        columns = column_cells(encoder, release.category_counts, bins=4)
        pairs = release_pairs(encoded, columns, noise=2.0, rows=release.rows)
        released = pairs.record["pairs released"]
        assert ["a", "b"] in released
        independent += len(released) - 1
        table_ab = pairs.tables[released.index(["a", "b"])]
        assert table_ab.shape == (columns[0].size, columns[1].size) and table_ab.sum() == pytest.approx(1.0)
        x_row = encoder.transformer("a").categories.index("x")
        assert table_ab[x_row, -1] > 0.25  # "x" rows are the missing-b rows (0.3 of all)
    assert independent <= 5  # measured: an independent pair in about 1 release in 5 on one of these tables


def test_a_columns_one_way_shares_pool_its_released_marginal_with_its_tables():
    # 400 rows; the table (a, b) sums b's 9 noisy cells into each of a's shares, so a's released
    # marginal measures them more precisely than the table does. Pooled by their noise, a's one-way
    # shares err less than the table's margin alone (the old answer): measured 0.62-0.69 of its error.
    table = _dependent_table(400, 0)
    metadata = Metadata.detect(table)
    truth = table["a"].value_counts(normalize=True)
    pooled, margins = [], []
    for _ in range(150):  # DP noise cannot be seeded: judge the mean error over many releases
        release = _release(table, metadata, noise=4.0)
        encoder = TableTransformer.from_fitted(metadata, {}, release.transformers)
        encoded = encoder.transform(release.fill_unreleased_gaps(table, np.random.default_rng(0)), np.random.default_rng(0))
        columns = column_cells(encoder, release.category_counts, bins=8,
                               marginal_sd=release.record["noise_std_per_count"] / release.rows)
        pairs = release_pairs(encoded, columns, noise=4.0, rows=release.rows)
        with_a = [i for i, pair in enumerate(pairs.pairs) if 0 in pair]
        if [list(pair) for pair in pairs.pairs] != [[0, 1]]:
            continue  # a in another table too: the old answer is not this table's margin
        levels = encoder.transformer("a").categories
        error = lambda shares: sum(abs(shares[levels.index(v)] - truth[v]) for v in truth.index)  # noqa: E731
        pooled.append(error(pairs.one_way(0)))
        margins.append(error(pairs.tables[with_a[0]].sum(axis=1)))
    assert len(pooled) >= 50
    assert np.mean(pooled) < 0.85 * np.mean(margins)


def test_a_column_whose_marginal_misfits_is_not_paired_with_everything():
    rng = np.random.default_rng(0)
    noise_columns = {f"n{i}": rng.normal(0, 1, 2_000) for i in range(5)}
    table = pd.DataFrame(noise_columns)
    columns = [ColumnCells(name, "bins", (i,), (-0.1, 0.0, 0.1), np.full(4, 0.25)) for i, name in enumerate(table)]
    encoded = np.stack([np.clip(table[c] / 6.5, -1, 1) for c in table], axis=1)
    encoded[:, 0] = np.abs(encoded[:, 0])  # n0's real cells hold 0/0/50/50 % where 25% each was released
    for _ in range(10):  # the choices are random: n0 is never among them
        # (A pair of the independent columns whose utility happens to sit near 0 may be; it is not the claim.)
        assert not any(0 in pair for pair in release_pairs(encoded, columns, noise=1.0, rows=2_000.0).pairs)


def test_marginal_loss_is_zero_at_the_targets_and_pulls_toward_them():
    columns = [{"kind": "categories", "positions": [0, 1], "thresholds": []},
               {"kind": "bins", "positions": [2, 3, 4], "thresholds": [0.0]}]
    one_way = [torch.tensor([0.5, 0.5]), torch.tensor([0.25, 0.25, 0.5])]
    joint = torch.tensor([[0.25, 0.25, 0.0], [0.0, 0.0, 0.5]])  # category 0: present; 1: missing
    loss = MarginalLoss(columns, one_way, [(0, 1)], [joint], softness=0.01)
    sure = 20.0  # logits this far apart give probabilities of 0 and 1
    value = lambda v: float(np.arctanh(v))  # noqa: E731 (the raw output whose tanh is v)
    raw = torch.tensor([[sure, -sure, value(0.5), sure, -sure], [sure, -sure, value(-0.5), sure, -sure],
                        [-sure, sure, 0.0, -sure, sure], [-sure, sure, 0.3, -sure, sure]])
    assert loss(raw).item() == pytest.approx(0.0, abs=1e-6)
    wrong = raw.clone()
    wrong[:2, 2] = value(0.01)  # both present values just inside the upper bin, where one belongs below
    wrong.requires_grad_(True)
    distance = loss(wrong)
    distance.backward()
    assert distance.item() > 0.01
    assert wrong.grad[0, 2] > 0 and wrong.grad[1, 2] > 0  # the loss falls as either value moves down


def _chain_release() -> tuple[PairRelease, np.ndarray]:
    """Exact tables of a Markov chain a → b → c, and d independent of all: (a, b) and (b, c) released."""
    p_a = np.array([0.2, 0.5, 0.3])
    b_given_a = np.array([[0.7, 0.2, 0.1, 0.0], [0.1, 0.6, 0.2, 0.1], [0.0, 0.1, 0.3, 0.6]])
    c_given_b = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.05, 0.95]])
    p_d = np.array([0.4, 0.6])
    ab = p_a[:, None] * b_given_a
    bc = ab.sum(0)[:, None] * c_given_b
    truth_ac = ab @ c_given_b
    columns = [ColumnCells(name, "categories", (), (), marginal)
               for name, marginal in zip("abcd", [p_a, ab.sum(0), bc.sum(0), p_d])]
    return PairRelease(columns, [(0, 1), (1, 2)], [ab, bc]), truth_ac


def test_pairs_nothing_was_released_about_get_the_forests_tables_not_free_rein():
    release, truth_ac = _chain_release()
    pairs, tables = release.implied_tables()
    table = dict(zip(pairs, tables))
    assert sorted(table) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]  # every pair has a target
    np.testing.assert_allclose(table[(0, 1)], release.tables[0], atol=1e-12)  # margins agree: kept as released
    np.testing.assert_allclose(table[(0, 2)], truth_ac, atol=1e-12)  # a and c depend through b
    assert np.abs(table[(0, 2)] - np.outer(truth_ac.sum(1), truth_ac.sum(0))).max() > 0.05
    for a, b in [(0, 3), (1, 3), (2, 3)]:  # d joins nothing: independence
        np.testing.assert_allclose(table[(a, b)], np.outer(release.one_way(a), release.one_way(b)), atol=1e-12)
    for (a, b), values in table.items():
        assert values.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(values.sum(1), release.one_way(a), atol=1e-9)


def test_a_released_table_is_raked_onto_the_pooled_one_way_shares_keeping_its_odds_ratios():
    # b's released marginal says 0.45 / 0.55 where the table's margin says 0.3 / 0.7: the pooled
    # shares lie between, and the table's target must agree with them (the generator is trained
    # toward both at once) while keeping the dependence the table measured.
    ab = np.array([[0.2, 0.1], [0.1, 0.6]])
    columns = [ColumnCells("a", "categories", (), (), np.array([0.3, 0.7]), marginal_sd=0.05),
               ColumnCells("b", "categories", (), (), np.array([0.45, 0.55]), marginal_sd=0.05)]
    release = PairRelease(columns, [(0, 1)], [ab], cell_sd=0.05)
    pooled = release.one_way(1)
    assert 0.3 < pooled[0] < 0.45
    (pair,), (target,) = release.implied_tables()
    np.testing.assert_allclose(target.sum(0), pooled, atol=1e-6)
    np.testing.assert_allclose(target.sum(1), release.one_way(0), atol=1e-6)
    odds = lambda t: t[0, 0] * t[1, 1] / (t[0, 1] * t[1, 0])  # noqa: E731
    assert odds(target) == pytest.approx(odds(ab), rel=1e-6)


def test_marginal_loss_over_many_pairs_is_the_sum_of_each_pairs_squared_error():
    release, _ = _chain_release()
    pairs, tables = release.implied_tables()
    columns = [{"kind": "categories", "positions": list(range(3 * i, 3 * i + c.size)), "thresholds": []}
               for i, c in enumerate(release.columns)]
    positions = [p for c in columns for p in c["positions"]]
    raw = torch.zeros(64, 3 * len(columns))
    raw[:, positions] = torch.randn(64, len(positions), generator=torch.Generator().manual_seed(0))
    one_way = [torch.as_tensor(release.one_way(i)) for i in range(len(columns))]
    loss = MarginalLoss(columns, one_way, pairs, [torch.as_tensor(t) for t in tables])
    cells = [torch.softmax(raw[:, c["positions"]], dim=1) for c in columns]
    expected = sum(((c.mean(0) - o.float()) ** 2).sum() for c, o in zip(cells, one_way))
    expected += sum(((cells[a].T @ cells[b] / 64 - torch.as_tensor(t).float()) ** 2).sum() for (a, b), t in zip(pairs, tables))
    assert loss(raw).item() == pytest.approx(float(expected), rel=1e-5)


@pytest.mark.slow
def test_dp_fit_releases_pairs_inside_the_same_budget():
    table = _dependent_table(1_500, 0)
    with_pairs = TabularSynthesizer(_declared(table), steps=30, seed=0, progress=False, dp=DPSettings(epsilon=3.0)).fit(table)
    without = TabularSynthesizer(_declared(table), steps=30, seed=0, progress=False, dp=DPSettings(epsilon=3.0, pairs=False)).fit(table)
    record = with_pairs.privacy_
    assert record["epsilon"] <= 3.0 and record["plan"]["release_rounds"] == without.privacy_["plan"]["release_rounds"] + 2
    assert ["a", "b"] in record["release"]["pairs"]["pairs released"]
    assert "pairs" not in without.privacy_["release"]


def test_a_default_training_length_the_budget_cannot_pay_for_is_shortened_not_refused():
    settings = DPSettings(epsilon=0.2)
    shortened = plan_privacy(settings, 300, 300, 3_000, release_rounds=4, shorten=True)
    assert shortened.steps < shortened.steps_requested == 3_000 and shortened.noise_multiplier <= 1_000
    with pytest.raises(InvalidArgumentError, match="what would work"):  # asked for explicitly: refused
        plan_privacy(settings, 300, 300, 3_000, release_rounds=4)
    # A whole fit at that budget stays within it, whatever its noisy row count made of the plan.
    table = make_patients(300, 0)
    small = GANConfig(generator_dims=(32,), discriminator_dims=(32,), embedding_dim=16)  # a fast test
    privacy = TabularSynthesizer(_declared(table), seed=0, progress=False, config=small,
                                 dp=settings).fit(table).privacy_
    assert privacy["epsilon"] <= 0.2 and privacy["noise_multiplier"] <= 1_000
    assert privacy["steps"] <= privacy["steps_requested"]


def test_a_dp_numeric_code_keeps_its_type_and_a_genuine_other_stays_apart():
    """Unreleased numbers are coded to the nearest released one (never the string 'Other'); a released
    name spelled 'Other' is not the pooled level."""
    stays = [0] * 300 + [1] * 200 + [2] * 100 + [7]  # 7: one patient's value, never released
    table = pd.DataFrame({"stays": stays, "ward": ["Other"] * 301 + ["ICU"] * 300})
    metadata = Metadata.from_dict({"columns": {"stays": {"sdtype": "categorical"}, "ward": {"sdtype": "categorical"}}})
    release = _release_where(lambda r: not (r.transformers["stays"].has_missing_ or r.transformers["ward"].has_missing_),
                             table, metadata, noise=1.0)
    stays_transformer, ward = release.transformers["stays"], release.transformers["ward"]
    assert stays_transformer.categories == [0, 1, 2]
    decoded = stays_transformer.inverse(stays_transformer.transform(table["stays"], np.random.default_rng(0)),
                                        np.random.default_rng(0))
    assert decoded.dtype == np.int64 and decoded.iloc[-1] == 2  # 7 -> the nearest released code
    assert "Other" in ward.categories and ward.categories[-1] != "Other"  # the pool is spelled apart


def test_one_bin_of_noise_far_away_does_not_stretch_the_bounds():
    """~100 power-of-two bins of noise: one of them clears 4σ in about 0.3% of releases. Alone, far
    from the values, it stretched an albumin-like column's bounds to [-2^28, 8) (a flaky 5-release
    test caught it: KS complement 0.03)."""
    from synthgen.dp.release import _bounds_from_coarse, _coarse_edges

    edges = _coarse_edges(40)
    sigma = 30.0
    noisy = np.zeros(len(edges) + 1)
    albumin = int(np.searchsorted(edges, 3.5))  # the bin of [2, 4)
    noisy[albumin] = 1_700.0
    noisy[albumin + 1] = 150.0  # a real neighbour at 5σ
    spurious = int(np.searchsorted(edges, -2.0 ** 27))
    noisy[spurious] = 4.5 * sigma
    low, high, occupied_low, occupied_high = _bounds_from_coarse(noisy, edges, sigma)
    assert (occupied_low, occupied_high) == (2.0, 8.0) and (low, high) == (1.0, 16.0)
    # a lone bin far above what noise reaches is values, not noise: a second cluster is kept
    noisy[spurious] = 40 * sigma
    assert _bounds_from_coarse(noisy, edges, sigma)[2] < -1e8


def test_the_stated_guarantee_names_only_the_releases_that_were_made():
    """The statement in info and the report said "pair choices and two-way tables" for every fit, also
    for one with --dp-no-pairs, which releases none: a claim about the data's use that was false."""
    table = make_patients(200, 0)
    said = {}
    for pairs in (True, False):
        model = TabularSynthesizer(_declared(table), steps=3, seed=0, progress=False, calibrate=False,
                                   dp=DPSettings(epsilon=3.0, pairs=pairs)).fit(table)
        said[pairs] = statement(model.privacy_)
    assert "two-way tables" in said[True] and "pair choices" in said[True]
    assert "two-way tables" not in said[False] and "pair choices" not in said[False]
    assert "column statistics" in said[False]


def test_where_the_noise_is_far_below_one_row_only_real_gaps_get_a_missing_level():
    """At noise far below a row (large ε) a 2σ threshold is a fraction of a row: a column without gaps
    got a missing level in 2.3% of releases (a flaky DP histories test caught it)."""
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"ward": rng.choice(["a", "b"], 200), "lab": rng.normal(5, 1, 200), "flag": rng.random(200) < 0.5})
    table.loc[3, "lab"] = np.nan  # one real gap
    metadata = _declared(table)
    metadata.columns["lab"]["public_bounds"] = [0, 10]
    spurious = kept = 0
    for _ in range(300):
        transformers = _release(table, metadata, noise=1e-3).transformers
        spurious += transformers["ward"].has_missing_ + transformers["flag"].has_missing_
        kept += isinstance(transformers["lab"], MissingIndicator)
    assert spurious == 0 and kept == 300


def test_adding_a_row_anywhere_moves_no_other_row_in_or_out_of_a_dp_fits_holdout():
    """The guarantee is stated for any table and the same table plus one patient. Membership drawn by
    row position moved every row after an inserted one in or out of training, so the two fits read
    tables that differed by many patients, not one."""
    table = make_patients(300, 0)
    model = TabularSynthesizer(_declared(table), steps=3, seed=7, progress=False, calibrate=False,
                               dp=DPSettings(epsilon=3.0)).fit(table, holdout=0.3)
    newcomer = table.iloc[[5]].assign(age=table["age"].max() + 1)
    neighbour = pd.concat([newcomer, table], ignore_index=True)  # one patient added, at the top

    def held_out_rows(frame: pd.DataFrame) -> set[tuple]:
        return set(model.split(frame)[1].astype(str).itertuples(index=False))

    before, after = held_out_rows(table), held_out_rows(neighbour)
    assert 40 < len(before) < 140  # about 30% held out
    assert after - before <= set(newcomer.astype(str).itertuples(index=False)) and before <= after


def test_the_per_row_draws_before_a_release_are_not_replayed_from_the_seed(monkeypatch):
    """A gap under a missing indicator is encoded with a draw from the released distribution. Drawn in
    row order from the seed, an inserted row shifted every later gap's draw, so two neighbouring tables
    were encoded differently in many rows, and anyone with the seed could replay the draws. Two fits
    with one seed must fill the same gaps differently."""
    table = make_patients(300, 0)
    table.loc[: 119, "cholesterol"] = np.nan  # 40% gaps: kept as a missing indicator in any release
    metadata = _declared(table)
    metadata.columns["cholesterol"]["public_bounds"] = [0, 600]
    fills = []
    original = Release.fill_encoded_gaps

    def recording(self, data, encoded, slices, rng):
        filled = original(self, data, encoded, slices, rng)
        fills.append(filled[:120, slices["cholesterol"]][:, 0].copy())
        return filled

    monkeypatch.setattr(Release, "fill_encoded_gaps", recording)
    # The same releases both times (noise switched off), so only the per-row draws can differ.
    monkeypatch.setattr(PrivateRandom, "normal", lambda self, loc=0.0, scale=1.0, size=None:
                        float(loc) if size is None else np.full(size, float(loc)))
    monkeypatch.setattr(PrivateRandom, "uniform", lambda self, size: np.full(size, 0.5))
    for _ in range(2):
        TabularSynthesizer(metadata, steps=2, seed=0, progress=False, calibrate=False, dp=DPSettings(epsilon=3.0)).fit(table)
    first, second = fills
    assert np.mean(first != second) > 0.9


def test_adding_a_patient_changes_no_other_patients_kept_row():
    """With a DP unit column one row per patient is kept. A seeded permutation of all rows chose it, so
    a patient added at the top changed which row every other patient kept: the fits of the two tables
    read rows of many patients that differed, not one patient's."""
    from synthgen.synthesizers.private import one_row_per_unit

    rng = np.random.default_rng(0)
    table = pd.DataFrame({"patient": rng.integers(0, 60, 300), "lab": rng.normal(5, 1, 300).round(3)})
    newcomer = pd.DataFrame({"patient": [999, 999], "lab": [1.0, 2.0]})
    kept = one_row_per_unit(table, "patient", seed=3)
    kept_after = one_row_per_unit(pd.concat([newcomer, table], ignore_index=True), "patient", seed=3)
    assert kept["patient"].is_unique and set(kept["patient"]) == set(table["patient"])
    mine = kept_after[kept_after["patient"] != 999]
    assert sorted(map(tuple, mine.to_numpy())) == sorted(map(tuple, kept.to_numpy()))
    assert len(kept_after) == len(kept) + 1
    # the row a patient keeps is drawn (not always its first), and the seed decides it
    assert not kept.index.equals(table.drop_duplicates("patient").index)
    assert not one_row_per_unit(table, "patient", seed=4).index.equals(kept.index)
