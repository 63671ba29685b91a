"""Longitudinal tables: whole patients learned and sampled (synthgen.sequences)."""
from __future__ import annotations

import logging
import zipfile
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

import synthgen
from synthgen import Metadata
from synthgen.errors import InvalidArgumentError, InvalidDataError, MetadataError, ModelFileError, SynthgenError
from synthgen.sequences import SequenceSynthesizer
from synthgen.evaluation.scores import Score
from synthgen.sequences.evaluate import (
    lag1_autocorrelation, length_ks, patient_aggregates, patient_privacy, patient_summaries, sequence_fidelity,
    split_patients, static_consistency,
)
from synthgen.data.base import Span
from synthgen.sequences.model import STOP_SPAN, SequenceConfig, SequenceGenerator, layouts

MAX_VISITS = 8
SMALL = SequenceConfig(noise_dim=16, static_dims=(64,), hidden_dim=32, critic_dims=(64, 64), steps=600, learning_rate=2e-3)


def make_visits(n_patients: int = 150, seed: int = 0) -> pd.DataFrame:
    """1-8 visits per patient; sex and age static; a lab value whose level depends on sex and that
    rises along each patient's own trend; visit days with irregular gaps."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, MAX_VISITS + 1, n_patients)
    patient = np.repeat(np.arange(n_patients) + 1000, lengths)
    visit = np.concatenate([np.arange(k) for k in lengths])
    sex = np.repeat(rng.choice(["F", "M"], n_patients), lengths)
    age = np.repeat(rng.integers(30, 80, n_patients), lengths)
    level = np.repeat(rng.normal(0, 1, n_patients), lengths) + np.where(sex == "F", 5.0, 8.0)
    slope = np.repeat(rng.normal(0.5, 0.2, n_patients), lengths)
    gaps = np.where(visit == 0, rng.integers(0, 30, len(visit)), rng.integers(20, 200, len(visit)))
    day = pd.Series(gaps).groupby(patient).cumsum().to_numpy()
    return pd.DataFrame({
        "patient": patient, "day": day, "sex": sex, "age": age,
        "lab": (level + slope * visit + rng.normal(0, 0.2, len(visit))).round(2),
        "ward": rng.choice(["a", "b", "c"], len(visit)),
    })


@pytest.fixture(scope="module")
def visits() -> pd.DataFrame:
    return make_visits()


@pytest.fixture(scope="module")
def model(visits: pd.DataFrame) -> SequenceSynthesizer:
    return SequenceSynthesizer(seed=3, max_length=MAX_VISITS, config=SMALL, progress=False).fit(visits, "patient", "day")


@pytest.fixture(scope="module")
def sample(model: SequenceSynthesizer) -> pd.DataFrame:
    return model.sample(300, seed=11)


def test_static_columns_detected_and_kept_constant(model: SequenceSynthesizer, sample: pd.DataFrame) -> None:
    assert model.schema_.static_columns == ["sex", "age"]
    assert model.schema_.visit_columns == ["lab", "ward"]
    assert static_consistency(sample, "patient", ["sex", "age"]) == 1.0
    assert set(sample["sex"]) <= {"F", "M"}


def test_sample_counts_patients_with_fresh_ids_and_lengths_in_range(visits, sample: pd.DataFrame) -> None:
    assert list(sample.columns) == list(visits.columns)
    lengths = sample.groupby("patient").size()
    assert len(lengths) == 300
    assert lengths.min() >= 1 and lengths.max() <= MAX_VISITS
    assert not set(sample["patient"]) & set(visits["patient"])
    # the generated length distribution is learned, not stuck at 1 or at the cap
    assert 1 < lengths.mean() < MAX_VISITS
    # visit days strictly increase within every patient
    steps = sample.groupby("patient")["day"].diff().dropna()
    assert (steps > 0).all()
    assert sample["day"].dtype == visits["day"].dtype


def test_static_part_conditions_the_visits(sample: pd.DataFrame) -> None:
    """Women's lab values sit 3 units below men's in the fixture; the GRU sees the sex it generated
    (at 600 steps seeds 0-3 learn 2.5-4.0; visits blind to the static part give about 0.1)."""
    means = sample.groupby("sex")["lab"].mean()
    assert means["M"] - means["F"] > 1.5


def test_same_seed_same_frame(model: SequenceSynthesizer, sample: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(model.sample(300, seed=11), sample)
    assert not model.sample(300, seed=12).equals(sample)


def test_same_seed_same_fit(visits: pd.DataFrame) -> None:
    """Every weight, the GRU's included, is drawn from the seed: two fits sample the same frame."""
    tiny = visits[visits["patient"] < 1040]
    fits = [SequenceSynthesizer(seed=5, config=SequenceConfig(steps=3), progress=False).fit(tiny, "patient", "day")
            for _ in range(2)]
    pd.testing.assert_frame_equal(fits[0].sample(30, seed=0), fits[1].sample(30, seed=0))


def test_bad_seeds_and_counts_are_one_line_errors(model: SequenceSynthesizer, visits: pd.DataFrame) -> None:
    for bad in (-1, 1.5, True):
        with pytest.raises(InvalidArgumentError, match="seed"):
            model.sample(5, seed=bad)
    for bad in (0, -3, 2.0):
        with pytest.raises(InvalidArgumentError, match="patients"):
            model.sample(bad, seed=0)
    with pytest.raises(InvalidArgumentError, match="seed"):
        SequenceSynthesizer(seed=-2, config=SMALL, progress=False).fit(visits, "patient", "day")


def test_save_load_round_trip(model: SequenceSynthesizer, sample: pd.DataFrame, tmp_path) -> None:
    path = model.save(tmp_path / "m.sgz")
    loaded = synthgen.load(path)
    assert isinstance(loaded, SequenceSynthesizer)
    pd.testing.assert_frame_equal(loaded.sample(300, seed=11), sample)
    # the model file is JSON + tensors, and saving the loaded model gives the same bytes
    assert set(zipfile.ZipFile(path).namelist()) == {"model.json", "tensors.pt"}
    assert loaded.save(tmp_path / "again.sgz").read_bytes() == path.read_bytes()


def test_tampered_weights_are_refused(model: SequenceSynthesizer, tmp_path) -> None:
    from synthgen.bundle import read_bundle, write_bundle

    manifest, tensors = read_bundle(model.save(tmp_path / "m.sgz"))
    manifest["config"]["hidden_dim"] = 4096  # a network the weights do not fit
    write_bundle(tmp_path / "bad.sgz", manifest, tensors)
    with pytest.raises(ModelFileError, match="do not match"):
        synthgen.load(tmp_path / "bad.sgz")


def test_missing_entity_column_is_refused(visits: pd.DataFrame) -> None:
    with pytest.raises(InvalidDataError, match="'subject'"):
        SequenceSynthesizer(config=SMALL, progress=False).fit(visits, "subject", "day")
    with pytest.raises(InvalidDataError, match="'visit_date'"):
        SequenceSynthesizer(config=SMALL, progress=False).fit(visits, "patient", "visit_date")


def test_varying_column_declared_static_names_column_and_entity(visits: pd.DataFrame) -> None:
    metadata = Metadata.detect(visits.drop(columns="patient"))
    metadata.columns["ward"]["static"] = True
    changes = visits.groupby("patient")["ward"].nunique()
    with pytest.raises(InvalidDataError, match=r"'ward' is declared static but varies within entity (\d+)") as info:
        SequenceSynthesizer(metadata, config=SMALL, progress=False).fit(visits, "patient", "day")
    entity = int(str(info.value).split("within entity ")[1].split()[0])
    assert changes[entity] > 1  # the entity named really has two wards


def test_duplicate_sequence_index_names_the_entity(visits: pd.DataFrame) -> None:
    bad = visits.copy()
    second = bad.index[(bad["patient"] == 1004)][1]
    bad.loc[second, "day"] = bad.loc[bad.index[bad["patient"] == 1004][0], "day"]
    with pytest.raises(InvalidDataError, match="within entity 1004"):
        SequenceSynthesizer(config=SMALL, progress=False).fit(bad, "patient", "day")


def test_static_flag_must_be_a_boolean(visits: pd.DataFrame) -> None:
    metadata = Metadata.detect(visits.drop(columns="patient"))
    metadata.columns["age"]["static"] = 1
    with pytest.raises(MetadataError, match="'age'.*true or false"):
        SequenceSynthesizer(metadata, config=SMALL, progress=False).fit(visits, "patient", "day")


def test_declared_not_static_is_learned_per_visit(visits: pd.DataFrame) -> None:
    metadata = Metadata.detect(visits.drop(columns="patient"))
    metadata.columns["age"]["static"] = False
    tiny = visits[visits["patient"] < 1030]
    model = SequenceSynthesizer(metadata, config=SequenceConfig(steps=2), progress=False).fit(tiny, "patient", "day")
    assert model.schema_.static_columns == ["sex"]
    assert "age" in model.schema_.visit_columns


def test_long_sequences_are_cut_at_the_cap_with_a_warning(visits: pd.DataFrame, caplog) -> None:
    tiny = visits[visits["patient"] < 1030]
    with caplog.at_level(logging.WARNING, logger="synthgen.sequences"):
        model = SequenceSynthesizer(max_length=3, config=SequenceConfig(steps=2), progress=False).fit(tiny, "patient", "day")
    over = int((tiny.groupby("patient").size() > 3).sum())
    assert f"{over} entities have more than 3 visits" in caplog.text
    assert model.sample(50, seed=0).groupby("patient").size().max() <= 3


def test_datetime_index_and_no_index(visits: pd.DataFrame) -> None:
    """A datetime index comes back as increasing datetimes; without an index, row order is the visit
    order and the output has no index column."""
    tiny = visits[visits["patient"] < 1030]
    dated = tiny.assign(day=pd.Timestamp("2020-01-01") + pd.to_timedelta(tiny["day"], unit="D"))
    model = SequenceSynthesizer(config=SequenceConfig(steps=2), seed=0, progress=False).fit(dated, "patient", "day")
    out = model.sample(40, seed=0)
    assert pd.api.types.is_datetime64_any_dtype(out["day"])
    assert (out.groupby("patient")["day"].diff().dropna() > pd.Timedelta(0)).all()
    unindexed = SequenceSynthesizer(config=SequenceConfig(steps=2), seed=0, progress=False).fit(tiny.drop(columns="day"), "patient")
    assert list(unindexed.sample(40, seed=0).columns) == ["patient", "sex", "age", "lab", "ward"]


def test_errors_are_synthgen_errors_without_rows(visits: pd.DataFrame) -> None:
    with pytest.raises(SynthgenError) as info:
        SequenceSynthesizer(config=SMALL, progress=False).fit(visits.assign(patient=np.nan), "patient", "day")
    assert "missing" in str(info.value)


# ---------------------------------------------------------------- evaluation
def test_split_by_patient_never_by_row(visits: pd.DataFrame) -> None:
    train, holdout = split_patients(visits, "patient", 0.2, seed=0)
    assert not set(train["patient"]) & set(holdout["patient"])
    assert len(train) + len(holdout) == len(visits)
    assert holdout["patient"].nunique() == 30


def test_static_consistency_catches_one_patient_changing_sex(visits: pd.DataFrame) -> None:
    hostile = visits.copy()
    rows = hostile.index[hostile["patient"] == hostile["patient"][hostile.groupby("patient")["patient"].transform("size") > 1].iloc[0]]
    hostile.loc[rows[-1], "sex"] = "M" if hostile.loc[rows[0], "sex"] == "F" else "F"
    assert static_consistency(hostile, "patient", ["sex", "age"]) == pytest.approx(1 - 1 / 150)


def test_lag1_and_aggregates_on_known_sequences() -> None:
    frame = pd.DataFrame({"id": [1, 1, 1, 2, 2, 2], "t": [3, 1, 2, 1, 2, 3], "x": [3.0, 1.0, 2.0, 6.0, 4.0, 2.0]})
    # consecutive pairs in index order: (1,2), (2,3), (6,4), (4,2)
    expected = np.corrcoef([1, 2, 6, 4], [2, 3, 4, 2])[0, 1]
    assert lag1_autocorrelation(frame, "id", "t", "x") == pytest.approx(expected)
    aggregates = patient_aggregates(frame, "id", "t", ["x"])
    assert aggregates.loc[1].tolist() == pytest.approx([1.0, 3.0, 2.0, 1.0])
    assert aggregates.loc[2].tolist() == pytest.approx([6.0, 2.0, 4.0, -2.0])
    assert length_ks(frame, frame[frame["id"] == 1], "id") == 0.0


def test_fidelity_of_real_patients_beats_shuffled_rows(visits: pd.DataFrame) -> None:
    """The measures tell whole patients from rows mixed across patients (what an i.i.d. model produces)."""
    train, holdout = split_patients(visits, "patient", 0.3, seed=1)
    shuffled = train.copy()
    rng = np.random.default_rng(0)
    for column in ("sex", "lab"):
        shuffled[column] = rng.permutation(shuffled[column].to_numpy())
    real = sequence_fidelity(train, holdout, "patient", "day", ["sex", "age"])["synthetic"]
    mixed = sequence_fidelity(shuffled, holdout, "patient", "day", ["sex", "age"])["synthetic"]
    assert real["static_consistency"] == 1.0 and mixed["static_consistency"] < 0.8
    assert real["lag1_max_gap"] < 0.05 < mixed["lag1_max_gap"]
    assert real["aggregate_shapes"] > mixed["aggregate_shapes"]


def _renamed(frame: pd.DataFrame, offset: int) -> pd.DataFrame:
    return frame.assign(patient=frame["patient"] + offset)


@pytest.fixture(scope="module")
def three_groups() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Training, holdout and fresh patients: 100 each, all from one population."""
    everyone = make_visits(300, seed=5)
    ids = everyone["patient"].drop_duplicates().to_numpy()
    return tuple(everyone[everyone["patient"].isin(ids[k::3])].reset_index(drop=True) for k in range(3))


def _privacy(train: pd.DataFrame, synthetic: pd.DataFrame, holdout: pd.DataFrame) -> dict[str, Score]:
    result = patient_privacy(train, synthetic, holdout, "patient", "day", ["sex", "age"],
                             rng=np.random.default_rng(0), sensitive=["lab.last"])
    return {score.metric: score for score in result.scores}


def test_patient_privacy_flags_patients_copied_whole(three_groups) -> None:
    """An attacker's release: the training patients themselves under new ids. Every patient is
    one copied record, so the DCR share and the membership attack are far above the null."""
    train, holdout, _ = three_groups
    copied = _privacy(train, _renamed(train, 10**6), holdout)
    assert copied["DCR share"].value > 0.95 and copied["DCR share"].p_value < 0.01
    assert copied["MIA AUC (distance)"].value > 0.9 and copied["MIA AUC (distance)"].p_value < 0.01
    # Lab values nudged by a little noise: no patient is an exact copy, each is still its own.
    jitter = np.random.default_rng(1).normal(0, 0.1, len(train))
    nudged = _privacy(train, _renamed(train, 10**6).assign(lab=train["lab"] + jitter), holdout)
    assert nudged["Exact copies"].value == 0
    assert nudged["DCR share"].value > 0.9 and nudged["DCR share"].p_value < 0.01
    assert nudged["MIA AUC (distance)"].value > 0.8 and nudged["MIA AUC (distance)"].p_value < 0.01


def test_patient_privacy_does_not_flag_fresh_patients(three_groups) -> None:
    """Real patients the model never saw, released as synthetic: what an ideal model does."""
    train, holdout, fresh = three_groups
    scores = _privacy(train, _renamed(fresh, 10**6), holdout)
    assert 0.35 < scores["DCR share"].value < 0.65 and scores["DCR share"].p_value > 0.05
    assert scores["MIA AUC (distance)"].value < 0.65 and scores["MIA AUC (distance)"].p_value > 0.05


def test_patient_privacy_counts_patients_not_visits(three_groups) -> None:
    """One summary row per patient: static columns, visit count and per-visit aggregates."""
    train, _, _ = three_groups
    summary = patient_summaries(train, "patient", "day", ["sex", "age"], ["lab", "ward"])
    assert len(summary) == train["patient"].nunique() == 100
    assert {"sex", "age", "patient.visits", "lab.first", "lab.last", "lab.mean", "lab.slope", "ward.last"} <= set(summary)
    assert summary["patient.visits"].sum() == len(train)


def test_patient_privacy_refuses_a_holdout_sharing_patients(three_groups) -> None:
    train, holdout, _ = three_groups
    with pytest.raises(InvalidDataError, match="both in the training and the holdout"):
        patient_privacy(train, train, pd.concat([holdout, train.head(3)]), "patient", "day", ["sex", "age"],
                        rng=np.random.default_rng(0))


def test_sticky_categories_let_a_drawn_category_persist() -> None:
    """A generator whose visit head outputs nothing but whose learned stickiness is high keeps the
    category drawn at the first visit; without stickiness each visit draws afresh (1/3 stay)."""
    static_layout, visit_layout = layouts([Span(1, "tanh")], [Span(1, "tanh"), Span(3, "softmax"), STOP_SPAN])
    stays = {}
    for sticky in (True, False):
        net = SequenceGenerator(static_layout, visit_layout, 6, replace(SMALL, residual_visits=True, sticky_categories=sticky))
        with torch.no_grad():
            net.head.weight.zero_()
            net.head.bias.zero_()
            if sticky:
                net.stickiness.fill_(50.0)
        rng = torch.Generator().manual_seed(0)
        _, visits, _ = net(*net.noise(500, rng, torch.device("cpu")), rng, hard=True)
        category = visits[:, :, 1:4].argmax(dim=2)
        stays[sticky] = float((category[:, 1:] == category[:, :-1]).float().mean())
    assert stays[True] > 0.99
    assert 0.25 < stays[False] < 0.42


def test_model_is_as_long_as_the_longest_patient(visits: pd.DataFrame) -> None:
    """max_length is a cap: patients of at most 3 visits under a cap of 8 give a 3-visit model (no
    unrolled visit that no patient has) that never samples a 4th visit."""
    short = visits[visits.groupby("patient").cumcount() < 3]
    short = short[short["patient"] < 1040]
    model = SequenceSynthesizer(max_length=8, config=SequenceConfig(steps=2), seed=0, progress=False).fit(short, "patient", "day")
    assert model.schema_.max_length == model.generator_.max_length == 3
    assert model.sample(200, seed=0).groupby("patient").size().max() <= 3


def test_steps_and_learning_rate_scale_with_the_patients() -> None:
    """750 passes over the patients, at most 1,500 steps; fewer steps get a higher rate (cgd's 102
    patients: 750 steps at twice the rate); steps or a rate given are kept."""
    config = SequenceConfig(batch_size=128)
    small, medium, large = config.scaled(102), config.scaled(250), config.scaled(100_000)
    assert (small.steps, small.learning_rate) == (750, pytest.approx(2 * large.learning_rate))
    assert medium.steps == -(-750 * 250 // 128) and medium.learning_rate == pytest.approx(large.learning_rate * 1500 / medium.steps)
    assert large.steps == 1500
    assert SequenceConfig(steps=40).scaled(102).steps == 40
    assert SequenceConfig(steps=40).scaled(102).learning_rate == large.learning_rate
    assert SequenceConfig(learning_rate=3e-3).scaled(102).learning_rate == 3e-3
    # a fit stores and trains what it resolved
    model = SequenceSynthesizer(config=SequenceConfig(steps=2), seed=0, progress=False)
    model.fit(make_visits(12), "patient", "day")
    assert model.config_.steps == model.training_["steps"] == 2 and model.config_.learning_rate == large.learning_rate


def test_category_gains_start_from_the_training_patients_recurrence() -> None:
    """A ward kept from visit to visit 90% of the time gets the gain that gives that recurrence at its
    marginal (logit P(stay) - logit P(ward)), computed here from the rows; the lab value's mixture
    modes keep the configured gain."""
    rng = np.random.default_rng(1)
    frame = make_visits(200, seed=1)
    wards = []
    for _, group in frame.groupby("patient", sort=False):
        current = rng.choice(["a", "b", "c"])
        for _ in range(len(group)):
            current = current if rng.random() < 0.9 else rng.choice(["a", "b", "c"])
            wards.append(current)
    frame["ward"] = wards
    model = SequenceSynthesizer(config=SequenceConfig(steps=1, learning_rate=1e-9), seed=0, progress=False)
    model.fit(frame, "patient", "day")
    previous = frame.groupby("patient")["ward"].shift(1)
    assert model.schema_.visit_columns[:2] == ["lab", "ward"]
    start = sum(span.width for span in model.visit_table_.spans_[:2])  # after lab's value and modes
    gains = model.generator_.stickiness.detach().numpy()
    for offset, ward in enumerate(model.visit_table_.transformer("ward").categories):
        had = previous == ward
        recur = ((frame["ward"] == ward) & had).sum() + 1
        expected = np.log(recur / (had.sum() + 2 - recur)) - np.log((frame["ward"] == ward).mean() / (frame["ward"] != ward).mean())
        assert gains[start + offset] == pytest.approx(expected, abs=0.01)
    lab_modes = slice(1, model.visit_table_.spans_[1].width + 1)
    assert np.allclose(gains[lab_modes], SequenceConfig.stickiness, atol=1e-3)


def test_shared_fake_makes_one_generator_pass_a_step(visits: pd.DataFrame) -> None:
    """``shared_fake``: the generator step reuses the critic step's batch (one pass a step, not two)."""
    from synthgen.sequences import training

    tiny = visits[visits["patient"] < 1030]
    passes = {}
    for shared in (False, True):
        calls = []
        original = training.train_sequence_gan

        def counting(generator_net, *args, **kwargs):
            # one call of the layer that starts the visits' GRU per generator pass
            generator_net.initial.register_forward_hook(lambda *_: calls.append(1))
            return original(generator_net, *args, **kwargs)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("synthgen.sequences.synthesizer.train_sequence_gan", counting)
            SequenceSynthesizer(config=SequenceConfig(steps=4, shared_fake=shared), seed=0, progress=False).fit(tiny, "patient", "day")
        passes[shared] = len(calls)
    assert passes == {False: 8, True: 4}


def test_likely_modes_count_each_value_at_its_most_likely_mode() -> None:
    """``mode_gains_from_data`` counts a lab value at its most likely mixture mode, not at the mode
    the encoder drew from the posterior (which can be another for a value between modes)."""
    from synthgen.sequences.synthesizer import _likely_modes
    from synthgen.data.table import TableTransformer

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"lab": np.concatenate([rng.normal(0, 1, 300), rng.normal(6, 1, 300), [np.nan] * 10])})
    table = TableTransformer(Metadata.detect(frame)).fit(frame, rng)
    likely = _likely_modes(table, frame, table.transform(frame, rng))
    inner = table.transformer("lab").inner
    z = (frame["lab"].to_numpy()[:, None] - inner.means_) / inner.stds_
    expected = np.argmax(-0.5 * z**2 - np.log(inner.stds_) + np.log(inner.weights_), axis=1)
    modes = likely[:, 1:1 + len(inner.means_)]
    present = frame["lab"].notna().to_numpy()
    assert (modes[present].argmax(1) == expected[present]).all() and (modes[present].sum(1) == 1).all()
    assert (modes[~present] == 0).all()
    # the low and the high cluster land in different modes
    assert modes[:300].argmax(1).mean() != modes[300:600].argmax(1).mean()


def with_counting_columns(visits: pd.DataFrame) -> pd.DataFrame:
    """cgd's layout: an event number (1, 2, ...) and each interval's start, the previous visit's day (0 first)."""
    ordered = visits.sort_values(["patient", "day"]).reset_index(drop=True)
    ordered["event"] = ordered.groupby("patient").cumcount() + 1
    ordered["start"] = ordered.groupby("patient")["day"].shift(1).fillna(0).astype(np.int64)
    return ordered


def test_counting_columns_are_derived_and_hold_in_every_sampled_patient(visits: pd.DataFrame, tmp_path) -> None:
    table = with_counting_columns(visits)
    model = SequenceSynthesizer(seed=3, max_length=MAX_VISITS, config=replace(SMALL, steps=100), progress=False).fit(
        table, "patient", "day")
    assert model.schema_.derived == {"event": {"rule": "visit_number", "first": 1.0, "dtype": "integer"},
                                     "start": {"rule": "previous_index", "first": 0.0, "dtype": "integer"}}
    assert model.schema_.visit_columns == ["lab", "ward"]  # not learned
    sample = model.sample(400, seed=5)
    groups = sample.groupby("patient", sort=False)
    # a badly trained model (100 steps) breaks neither rule in any patient
    assert (sample["event"] == groups.cumcount() + 1).all()
    assert (sample["start"] == groups["day"].shift(1).fillna(0)).all()
    assert list(sample.columns) == list(table.columns) and sample["start"].dtype == np.int64
    loaded = synthgen.load(model.save(tmp_path / "m.sgz"))
    pd.testing.assert_frame_equal(loaded.sample(400, seed=5), sample)


def test_a_rule_broken_once_is_learned_not_derived(visits: pd.DataFrame) -> None:
    table = with_counting_columns(visits)
    later = table.index[table["event"] > 1]
    table.loc[later[7], "event"] += 1  # one visit numbered out of turn
    table.loc[later[9], "start"] -= 1  # one interval that does not start where the last one stopped
    model = SequenceSynthesizer(config=SequenceConfig(steps=2), progress=False).fit(table, "patient", "day")
    assert model.schema_.derived == {}
    assert {"event", "start"} <= set(model.schema_.visit_columns)


def test_derived_declarations(visits: pd.DataFrame) -> None:
    table = with_counting_columns(visits)
    metadata = Metadata.detect(table.drop(columns="patient"))
    metadata.columns["event"]["derived"] = False  # the user keeps it learned
    model = SequenceSynthesizer(metadata, config=SequenceConfig(steps=2), progress=False).fit(table, "patient", "day")
    assert list(model.schema_.derived) == ["start"] and "event" in model.schema_.visit_columns
    metadata.columns["lab"]["derived"] = True  # a claim the data contradict
    with pytest.raises(InvalidDataError, match="'lab' is declared derived"):
        SequenceSynthesizer(metadata, config=SequenceConfig(steps=2), progress=False).fit(table, "patient", "day")
    metadata.columns["lab"]["derived"] = "yes"
    with pytest.raises(MetadataError, match="'lab'.*true or false"):
        SequenceSynthesizer(metadata, config=SequenceConfig(steps=2), progress=False).fit(table, "patient", "day")


@pytest.mark.parametrize("rule", [{"rule": "copy_patient", "first": 0.0, "dtype": "integer"},
                                  {"rule": "visit_number", "first": "1", "dtype": "integer"},
                                  {"rule": "visit_number", "first": 1.0, "dtype": "object"}, "visit_number"])
def test_crafted_derived_rules_are_refused(visits: pd.DataFrame, rule, tmp_path) -> None:
    from synthgen.bundle import read_bundle, write_bundle

    table = with_counting_columns(visits)
    model = SequenceSynthesizer(config=SequenceConfig(steps=2), progress=False).fit(table, "patient", "day")
    manifest, tensors = read_bundle(model.save(tmp_path / "m.sgz"))
    manifest["sequence"]["derived"]["event"] = rule
    write_bundle(tmp_path / "bad.sgz", manifest, tensors)
    with pytest.raises(ModelFileError):
        synthgen.load(tmp_path / "bad.sgz")


def test_fill_gaps_forward_copies_the_patients_previous_present_value_into_its_gaps() -> None:
    """A missing cell's value encoding (ignored on decode) copies the patient's previous present visit
    (the next one's before the first present); on a persistent lab missing at 40% of visits the
    random fill broke the encoded channel's lag-1, which the critic then taught the generator."""
    from synthgen.data.table import TableTransformer
    from synthgen.sequences.synthesizer import _fill_gaps_forward

    rng = np.random.default_rng(0)
    lengths = np.array([6] * 200 + [3])
    level = np.repeat(rng.lognormal(5.5, 0.5, len(lengths)), lengths)
    lab = level * rng.lognormal(0, 0.05, len(level))
    lab[rng.random(len(lab)) < 0.4] = np.nan
    lab[-3:] = np.nan  # the last patient has no present value: left as encoded
    lab[0], lab[1] = np.nan, 200.0  # a leading gap takes the next present visit's
    frame = pd.DataFrame({"lab": lab})
    table = TableTransformer(Metadata.detect(frame)).fit(frame, rng)
    encoded = table.transform(frame, rng)
    filled = _fill_gaps_forward(table, frame, encoded, lengths)
    inner = slice(table.slices_["lab"].start, table.slices_["lab"].stop - 2)
    missing = np.isnan(lab)
    np.testing.assert_array_equal(filled[~missing], encoded[~missing])
    np.testing.assert_array_equal(filled[:, inner.stop:], encoded[:, inner.stop:])  # indicators
    np.testing.assert_array_equal(filled[0, inner], encoded[1, inner])
    np.testing.assert_array_equal(filled[-3:], encoded[-3:])
    patient = np.repeat(np.arange(len(lengths)), lengths)
    for row in np.flatnonzero(missing[:-3])[1:]:
        before = [r for r in range(row) if patient[r] == patient[row] and not missing[r]]
        source = before[-1] if before else next(r for r in range(row, len(lab)) if patient[r] == patient[row] and not missing[r])
        np.testing.assert_array_equal(filled[row, inner], encoded[source, inner])

    def lag1(values: np.ndarray) -> float:
        same = patient[1:] == patient[:-1]
        return float(np.corrcoef(values[:-1][same], values[1:][same])[0, 1])

    scalar = inner.start  # the mixture's offset channel (the value within its mode)
    assert lag1(filled[:, scalar]) > lag1(encoded[:, scalar]) + 0.1
