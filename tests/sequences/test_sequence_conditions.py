"""Patient histories conditioned on static columns natively (issue 15): the static generator takes a
condition vector over the static categorical columns, as the tabular model does."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp
import torch

import synthgen
from synthgen.bundle import read_bundle, write_bundle
from synthgen.errors import ConditionError, ModelFileError
from synthgen.sequences import SequenceSynthesizer
from synthgen.sequences import synthesizer as sequences
from synthgen.sequences.model import SequenceConfig

PATIENTS, RARE = 160, 8  # the rare group: 5% of the patients
SHARES = {"A": 96 / PATIENTS, "B": 56 / PATIENTS, "R": RARE / PATIENTS}
MAX_VISITS = 6
CONFIG = SequenceConfig(noise_dim=16, static_dims=(64,), hidden_dim=32, critic_dims=(64, 64), steps=400, learning_rate=2e-3)


def make_groups(seed: int = 0) -> pd.DataFrame:
    """1-6 visits per patient; a static group (A 60%, B 35%, R 5%) that sets the level of a lab value,
    and a static age (40-59, a number)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, MAX_VISITS + 1, PATIENTS)
    group = np.repeat(rng.permutation(np.array(["R"] * RARE + ["B"] * 56 + ["A"] * 96)), lengths)
    level = np.select([group == "A", group == "B"], [2.0, 5.0], 9.0) + np.repeat(rng.normal(0, 0.5, PATIENTS), lengths)
    visit = np.concatenate([np.arange(k) for k in lengths])
    return pd.DataFrame({"patient": np.repeat(np.arange(PATIENTS) + 500, lengths), "visit": visit, "group": group,
                         "age": np.repeat(rng.integers(40, 60, PATIENTS), lengths),
                         "lab": (level + 0.3 * visit + rng.normal(0, 0.2, len(visit))).round(2)})


@pytest.fixture(scope="module")
def groups() -> pd.DataFrame:
    return make_groups()


@pytest.fixture(scope="module")
def model(groups: pd.DataFrame) -> SequenceSynthesizer:
    return SequenceSynthesizer(seed=0, max_length=MAX_VISITS, config=CONFIG, progress=False).fit(groups, "patient", "visit")


@pytest.fixture
def generated(monkeypatch) -> list[int]:
    """Patients unrolled through the visit network, counted at its GRU cell (every pass, whatever calls it)."""
    count = [0]
    real_forward = torch.nn.GRUCell.forward

    def counting(self, inputs, hidden=None):
        count[0] += inputs.shape[0]
        return real_forward(self, inputs, hidden)

    monkeypatch.setattr(torch.nn.GRUCell, "forward", counting)
    return count


def patients_of(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.groupby("patient", sort=False).first()


def test_a_rare_static_value_costs_one_generation_per_patient(model: SequenceSynthesizer, generated: list[int]) -> None:
    """5% of the patients are in group R: rejection generated ~20 patients (whole blocks of 1,024) per
    patient kept; through the condition vector each generated patient is one kept."""
    sample = model.sample(100, {"group": "R"}, seed=4)
    assert sample["patient"].nunique() == 100
    assert set(sample["group"]) == {"R"}
    assert generated[0] / MAX_VISITS <= 105  # patients generated; rejection needed >= 1,024 here


def test_every_patient_meets_conditions_and_the_visits_follow_them(model: SequenceSynthesizer) -> None:
    """The requested level reaches the visits: group R's lab values sit far above group A's."""
    rare = model.sample(200, {"group": "R"}, seed=1)
    common = model.sample(200, {"group": "A"}, seed=1)
    assert set(rare["group"]) == {"R"} and set(common["group"]) == {"A"}
    assert rare["patient"].nunique() == common["patient"].nunique() == 200
    # 7 units in the training patients; model seeds 0-3 give 2.8-6.1 here, unconditioned (before) 1.0
    assert rare["lab"].mean() - common["lab"].mean() > 1.5


def test_an_unknown_value_is_refused_before_any_generation(model: SequenceSynthesizer, generated: list[int]) -> None:
    with pytest.raises(ConditionError, match=r"group='Q': unknown category 'Q'; known categories: .*'R'"):
        model.sample(5, {"group": "Q"}, seed=0)
    assert generated[0] == 0
    with pytest.raises(ConditionError, match="'lab' is a per-visit column"):
        model.sample(5, {"lab": 3.0}, seed=0)


def test_a_numeric_static_condition_is_met_by_rejection(model: SequenceSynthesizer, generated: list[int]) -> None:
    """No condition vector for a number: whole blocks are generated and the matching patients kept,
    alongside a categorical condition met natively."""
    sample = model.sample(20, {"group": "R", "age": 45}, seed=6)
    assert sample["patient"].nunique() == 20
    assert set(sample["group"]) == {"R"} and set(sample["age"]) == {45}
    assert generated[0] / MAX_VISITS >= 1_024


def test_unconditioned_samples_keep_the_static_frequencies(model: SequenceSynthesizer) -> None:
    """Each group's share of 4,000 patients within 3 standard errors of its training share plus 0.01 (the
    generator may leave its condition now and then): A 0.60 ± 0.033, B 0.35 ± 0.032, R 0.05 ± 0.020.
    Unconditioned at 400 steps, seeds 0-2 made 0.6-1.8% of R and 62-67% of A."""
    shares = patients_of(model.sample(4_000, seed=5))["group"].value_counts(normalize=True)
    for level, share in SHARES.items():
        assert abs(shares.get(level, 0.0) - share) <= 3 * np.sqrt(share * (1 - share) / 4_000) + 0.01, (level, shares)


def test_a_patient_that_does_not_match_is_never_output(model: SequenceSynthesizer, monkeypatch) -> None:
    """The decoded values are checked after generation: patients decoded to another group are dropped
    (and made up for), even when the condition vector asked for the right one."""
    real_decode = sequences._decode

    def corrupting(table, encoded, rng, **options):
        frame = real_decode(table, encoded, rng, **options)
        if "group" in frame.columns:
            frame.loc[frame.index[::3], "group"] = "B"
        return frame

    monkeypatch.setattr(sequences, "_decode", corrupting)
    sample = model.sample(60, {"group": "R"}, seed=2)
    assert sample["patient"].nunique() == 60 and set(sample["group"]) == {"R"}


def test_conditioned_sampling_repeats_with_the_seed(model: SequenceSynthesizer, tmp_path) -> None:
    first = model.sample(50, {"group": "B"}, seed=9)
    pd.testing.assert_frame_equal(model.sample(50, {"group": "B"}, seed=9), first)
    loaded = synthgen.load(model.save(tmp_path / "m.sgz"))
    assert loaded.describe()["conditional_columns"] == ["group"]
    pd.testing.assert_frame_equal(loaded.sample(50, {"group": "B"}, seed=9), first)


def test_same_seed_same_model_bytes(groups: pd.DataFrame, tmp_path) -> None:
    """Training by sampling draws its conditions from the seeded stream: two fits write the same file."""
    fits = [SequenceSynthesizer(seed=2, max_length=MAX_VISITS, config=replace(CONFIG, steps=5), progress=False)
            .fit(groups, "patient", "visit").save(tmp_path / f"m{number}.sgz") for number in range(2)]
    assert fits[0].read_bytes() == fits[1].read_bytes()
    assert "condition_counts" in read_bundle(fits[0])[1]


def test_a_model_file_without_conditions_loads_unconditioned(groups: pd.DataFrame, tmp_path) -> None:
    """A file written before conditioning (no setting, no counts) has an unconditioned generator: it
    loads as one, and its static conditions are met by rejection."""
    config = replace(CONFIG, steps=5, conditional_statics=False)
    old = SequenceSynthesizer(seed=1, max_length=MAX_VISITS, config=config, progress=False).fit(groups, "patient", "visit")
    manifest, tensors = read_bundle(old.save(tmp_path / "old.sgz"))
    assert manifest["conditional_columns"] == [] and "condition_counts" not in tensors
    del manifest["config"]["conditional_statics"]
    write_bundle(tmp_path / "before.sgz", manifest, tensors)
    loaded = synthgen.load(tmp_path / "before.sgz")
    assert loaded.config_.conditional_statics is False and loaded.generator_.cond_dim == 0
    pd.testing.assert_frame_equal(loaded.sample(40, seed=3), old.sample(40, seed=3))
    assert set(loaded.sample(10, {"group": "B"}, seed=3)["group"]) == {"B"}


@pytest.mark.parametrize("tamper", ["counts shape", "negative counts", "no counts", "columns"])
def test_crafted_condition_records_are_refused(model: SequenceSynthesizer, tamper: str, tmp_path) -> None:
    manifest, tensors = read_bundle(model.save(tmp_path / "m.sgz"))
    if tamper == "counts shape":
        tensors["condition_counts"] = tensors["condition_counts"][:2]
    elif tamper == "negative counts":
        tensors["condition_counts"] = -tensors["condition_counts"]
    elif tamper == "no counts":
        del tensors["condition_counts"]
    else:
        manifest["conditional_columns"] = ["lab"]
    write_bundle(tmp_path / "bad.sgz", manifest, tensors)
    with pytest.raises(ModelFileError, match="inconsistent"):
        synthgen.load(tmp_path / "bad.sgz")


def make_lengths_by_group(seed: int = 0) -> pd.DataFrame:
    """The length follows the static group: A (60%) 1-2 visits, B (35%) 3-4, the rare R (5%) always 6."""
    rng = np.random.default_rng(seed)
    group = rng.permutation(np.array(["R"] * RARE + ["B"] * 56 + ["A"] * 96))
    lengths = np.select([group == "A", group == "B"], [rng.integers(1, 3, PATIENTS), rng.integers(3, 5, PATIENTS)], MAX_VISITS)
    visit = np.concatenate([np.arange(k) for k in lengths])
    return pd.DataFrame({"patient": np.repeat(np.arange(PATIENTS) + 500, lengths), "visit": visit,
                         "group": np.repeat(group, lengths),
                         "lab": (2.0 + 0.3 * visit + rng.normal(0, 0.2, len(visit))).round(2)})


def test_unconditioned_samples_keep_the_lengths_that_follow_a_rare_static_value() -> None:
    """Training by sampling shows the critic the rare group at log frequency (R 20% of the draws
    against 5% of the patients); sampling must draw the conditions at the training frequencies, so
    the length distribution of 4,000 unconditioned patients is the training one (KS within 0.035;
    model seeds 0-3: 0.017-0.022) and the rare group's 6-visit patients keep their 5% (3.7-4.1%).
    Drawing them at log frequency made it 0.17 and 16-18%; the generator without the condition
    vector (before native conditions) lost them: KS 0.045-0.050, 0-0.4% of 6-visit patients, and R
    asked for by rejection got 3.1-3.3 visits on average."""
    frame = make_lengths_by_group()
    trained = frame.groupby("patient").size().to_numpy()
    model = SequenceSynthesizer(seed=0, max_length=MAX_VISITS, config=CONFIG, progress=False).fit(frame, "patient", "visit")
    lengths = model.sample(4_000, seed=5).groupby("patient").size().to_numpy()
    assert ks_2samp(lengths, trained).statistic <= 0.035
    assert abs(np.mean(lengths == MAX_VISITS) - RARE / PATIENTS) <= 3 * np.sqrt(0.05 * 0.95 / 4_000) + 0.01
    assert model.sample(300, {"group": "R"}, seed=5).groupby("patient").size().mean() >= 5.0
