"""Patient histories under DP (synthgen.sequences.private), tested as an attacker would: neighbouring
tables that differ by one whole crafted patient, the released statistics it can move, and a fitted
model's file and output."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import write_two_tables

from synthgen.cli.main import main
from synthgen.dp.release import release_statistics
from synthgen.metadata import Metadata
from synthgen.sequences.private import LENGTH_COLUMN, HistoryParts, declared_schema, patient_rows, released_survival

# The neighbouring-dataset audit of tests/dp (epsilon_lower_bound, claimed_epsilon), reused as it is.
_spec = importlib.util.spec_from_file_location("dp_audit_helpers", Path(__file__).parents[1] / "dp" / "test_dp_audit.py")
audit = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(audit)

CAP = 6
#: Public bounds: one release round, so the audits measure the histograms alone. No sequence index
#: (visits in row order) and no static column: the fewer columns, the faster thousands of releases.
METADATA = Metadata.from_dict({"columns": {
    "patient": {"sdtype": "id", "computer_representation": "Int64"},
    "lab": {"sdtype": "numerical", "computer_representation": "Float", "public_bounds": [0.0, 10.0], "static": False},
}})


def _long(patients: int, seed: int) -> pd.DataFrame:
    """1-4 visits per patient (under the cap), lab values in [1, 5]."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 5, patients)
    visit = np.concatenate([np.arange(k) for k in lengths])
    return pd.DataFrame({"patient": np.repeat(np.arange(patients), lengths), "lab": rng.uniform(1.0, 5.0, len(visit)).round(2)})


def _crafted(visits: int, lab: float = 9.9) -> pd.DataFrame:
    """One patient with ``visits`` visits (more than the cap), every lab value at ``lab``."""
    return pd.DataFrame({"patient": np.full(visits, 10_000), "lab": lab})


def _parts(frame: pd.DataFrame) -> HistoryParts:
    return HistoryParts.of(frame, declared_schema(frame, METADATA, "patient", None, CAP), METADATA)


def _audit(statistic, runs: int) -> tuple[np.ndarray, np.ndarray]:
    """``statistic`` of ``runs`` releases of D and as many of D plus the crafted patient (3 times the cap)."""
    table = _long(60, 0)
    null_parts, alternative_parts = _parts(table), _parts(pd.concat([table, _crafted(3 * CAP)], ignore_index=True))
    null = np.array([statistic(null_parts) for _ in range(runs)])
    alternative = np.array([statistic(alternative_parts) for _ in range(runs)])
    return null, alternative


NOISE = 1.0


def _released(parts: HistoryParts):
    from synthgen.dp.entropy import PrivateRandom

    return parts.release(NOISE, 1, 1e-6, rows_hint=60, private=PrivateRandom())


def _top_lab_bin(release) -> float:
    transformer = release.transformers["lab"]
    return float(1.0 - getattr(transformer, "inner", transformer).cdf_[-2])


@pytest.fixture(scope="module")
def releases() -> tuple[np.ndarray, np.ndarray]:
    """(share of patients at the cap, mass of lab's top bin) of 2,000 releases of D and of D plus the
    crafted patient: both statistics of each release (one round releases both histograms)."""
    def both(parts: HistoryParts) -> tuple[float, float]:
        release = _released(parts)
        return float(released_survival(release, CAP)[-1]), _top_lab_bin(release)

    return _audit(both, 2_000)


def test_the_released_length_histogram_does_not_reveal_a_long_patient(releases):
    # D has no patient at the cap; the crafted one has three times the cap (cut to it).
    null, alternative = releases
    assert audit.epsilon_lower_bound(null[:, 0], alternative[:, 0]) < audit.claimed_epsilon(NOISE, 1)


def test_the_released_visit_statistics_do_not_reveal_a_patient_with_many_extreme_visits(releases):
    null, alternative = releases
    assert audit.epsilon_lower_bound(null[:, 1], alternative[:, 1]) < audit.claimed_epsilon(NOISE, 1)


def test_the_visit_audit_catches_a_release_of_every_visit_at_one_patient_s_noise():
    # The flaw the one-visit-per-patient bounding prevents: every visit released with noise for one
    # row. The crafted patient's CAP visits then move the top bin by CAP, and the audit proves it.
    def every_visit(parts: HistoryParts) -> float:
        metadata = Metadata({"lab": parts.patient_metadata.columns["lab"]})
        return _top_lab_bin(release_statistics(parts.visits[["lab"]], metadata, NOISE, 1, 1e-6, rows_hint=60))

    assert audit.epsilon_lower_bound(*_audit(every_visit, 1_000)) > audit.claimed_epsilon(NOISE, 1)  # 3.7-4.5 in 12 audits


class _FixedChoice:
    """PrivateRandom's uniform draws, fixed: every patient contributes its middle visit."""

    def uniform(self, size: int) -> np.ndarray:
        return np.full(size, 0.5)


def test_a_patient_with_many_visits_moves_the_released_rows_by_one():
    table = _long(60, 1)
    crafted = _crafted(50, lab=9.9)  # patient 10,000: sorts last
    before, after = _parts(table), _parts(pd.concat([table, crafted], ignore_index=True))
    rows_before = patient_rows(before.static, before.visits, before.lengths, _FixedChoice())
    rows_after = patient_rows(after.static, after.visits, after.lengths, _FixedChoice())
    # Exactly one row more, the other patients' rows unchanged: every histogram moves by one count.
    assert len(rows_after) == len(rows_before) + 1
    crafted_row = rows_after.iloc[-1]
    pd.testing.assert_frame_equal(rows_after.iloc[:-1].reset_index(drop=True), rows_before)
    assert crafted_row[LENGTH_COLUMN] == CAP and crafted_row["lab"] == 9.9
    edges = np.linspace(0.0, 10.0, 21)
    moved = np.abs(np.histogram(rows_after["lab"], edges)[0] - np.histogram(rows_before["lab"], edges)[0]).sum()
    assert moved == 1
    lengths_moved = np.abs(np.bincount(rows_after[LENGTH_COLUMN], minlength=CAP + 1)
                           - np.bincount(rows_before[LENGTH_COLUMN], minlength=CAP + 1)).sum()
    assert lengths_moved == 1
    # and the visits DP-SGD reads stop at the cap
    assert after.lengths.max() == CAP and len(after.visits) == len(before.visits) + CAP


# ----------------------------------------------------------------------------- end to end (CLI)

PLANTED = 4_321.5


def _histories() -> pd.DataFrame:
    """90 patients of 1-5 visits; one planted patient with every lab value at an extreme; one whose
    'static' sex changes between visits and whose visit number breaks its rule (declared anyway)."""
    rng = np.random.default_rng(7)
    lengths = rng.integers(1, 6, 90)
    visit = np.concatenate([np.arange(k) for k in lengths])
    frame = pd.DataFrame({
        "patient": np.repeat(np.arange(90) + 100, lengths),
        "day": visit * 30 + 1,
        "visit": visit + 1,
        "sex": np.repeat(rng.choice(["F", "M"], 90), lengths),
        "lab": (np.repeat(rng.normal(5, 1, 90), lengths) + 0.3 * visit).round(2),
    })
    frame.loc[frame["patient"] == 100, "lab"] = PLANTED
    odd = frame.index[frame["patient"] == 101]
    frame.loc[odd, "sex"] = ["F", "M", "F", "M", "F"][: len(odd)]
    frame.loc[odd, "visit"] = np.arange(len(odd)) * 3 + 1
    return frame


def _metadata(**overrides) -> dict:
    columns = {
        "patient": {"sdtype": "id", "computer_representation": "Int64"},
        "day": {"sdtype": "numerical", "computer_representation": "Int64"},
        "visit": {"sdtype": "numerical", "computer_representation": "Int64", "static": False, "derived": True,
                  "rule": "visit_number", "first": 1},
        "sex": {"sdtype": "categorical", "static": True},
        "lab": {"sdtype": "numerical", "computer_representation": "Float", "static": False},
    }
    columns.update(overrides)
    return {"columns": columns}


def run(*args) -> object:
    return CliRunner().invoke(main, [str(arg) for arg in args])


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("dp_histories")
    data, metadata, model = folder / "visits.csv", folder / "metadata.json", folder / "model.sgz"
    _histories().to_csv(data, index=False)
    metadata.write_text(json.dumps(_metadata()))
    result = run("fit", data, "-o", model, "--entity-column", "patient", "--sequence-index", "day", "--metadata", metadata,
                 "--max-length", "8", "--dp-epsilon", "3", "--dp-delta", "1e-4", "--steps", "20", "--seed", "1",
                 "--holdout", "0.25", "--quiet")
    assert result.exit_code == 0, result.output
    assert "Privacy unit: one patient = all rows of one value of 'patient'" in result.output
    return folder, model


def test_a_dp_history_model_states_its_guarantee_per_patient(fitted):
    _, model = fitted
    details = json.loads(run("info", model, "--json").output)
    privacy = details["training"]["privacy"]
    assert 0 < privacy["epsilon"] <= 3 and privacy["epsilon_target"] == 3 and privacy["delta"] == 1e-4
    assert privacy["privacy_unit"].startswith("one patient = all rows of one value of 'patient'")
    assert privacy["steps"] == 20 and privacy["noise_multiplier"] > 0
    text = run("info", model).output
    assert "-DP" in text and "Privacy unit: one patient" in text and "no differential privacy" not in text
    # The model is as long as the declared cap (8), not the longest patient (5); counts are released ones.
    assert details["sequence"]["max_length"] == 8
    assert "about" in text and details["training"].get("table_entities") is None


def test_a_dp_history_model_never_outputs_the_planted_patient_and_keeps_its_declared_rules(fitted, tmp_path):
    _, model = fitted
    out = tmp_path / "sample.csv"
    assert run("sample", model, "-n", "400", "-o", out, "--seed", "3").exit_code == 0
    sample = pd.read_csv(out)
    assert sample["patient"].nunique() == 400
    assert not np.isclose(sample["lab"], PLANTED).any() and sample["lab"].max() < PLANTED / 10
    # Declared static and derived columns hold by construction (one patient's data broke both).
    # (a gap counts as a value: whether sex has gaps is a noisy count, so some releases keep a missing level)
    assert (sample.groupby("patient")["sex"].nunique(dropna=False) == 1).all()
    assert (sample.groupby("patient")["visit"].apply(lambda v: list(v) == list(range(1, len(v) + 1)))).all()
    assert sample.groupby("patient").size().max() <= 8
    assert sample["day"].notna().all() and sample["day"].min() >= 0  # every patient has a start


def test_the_report_of_a_dp_history_model_states_its_guarantee(fitted, tmp_path):
    folder, model = fitted
    out, report = tmp_path / "sample.csv", tmp_path / "report.json"
    assert run("sample", model, "-n", "60", "-o", out, "--seed", "3").exit_code == 0
    result = run("evaluate", model, "--real", folder / "visits.csv", "--synthetic", out, "--json", report)
    assert result.exit_code != 1 and report.exists(), result.output  # the gates' verdict is not at stake here
    statement = json.loads(report.read_text())["context"]["dp statement"]
    assert "-DP" in statement and "Privacy unit: one patient = all rows of one value of 'patient'" in statement


@pytest.mark.parametrize("metadata, message", [
    (None, "takes its schema only from metadata you declare"),
    (_metadata(lab={"sdtype": "numerical", "computer_representation": "Float"}),
     "column 'lab': a differentially private fit needs \"static\": true or false"),
    (_metadata(visit={"sdtype": "numerical", "static": False, "derived": True}),
     "column 'visit' is declared derived: under DP its rule is declared"),
])
def test_a_dp_history_fit_without_a_declared_schema_is_refused(fitted, tmp_path, metadata, message):
    folder, _ = fitted
    output = tmp_path / "model.sgz"
    options = []
    if metadata is not None:
        (tmp_path / "metadata.json").write_text(json.dumps(metadata))
        options = ["--metadata", tmp_path / "metadata.json"]
    result = run("fit", folder / "visits.csv", "-o", output, "--entity-column", "patient", "--sequence-index", "day",
                 *options, "--dp-epsilon", "3", "--dp-delta", "1e-4", "--steps", "5", "--quiet")
    assert result.exit_code == 1 and message in result.output, result.output
    assert "Traceback" not in result.output and not output.exists()


class _Levels:
    """A released length column's transformer, as far as released_survival reads it."""

    def get_state(self) -> dict:
        return {"levels": [1, 2, 3, 4, 5, 6]}


def test_the_released_survival_is_held_to_the_released_patient_count():
    from synthgen.dp.release import Release

    # 80 patients, none longer than 2, and noise of +5 on each empty length: clipped alone, the four
    # empty lengths would hold 20 of 100 patients.
    release = Release({LENGTH_COLUMN: _Levels()}, {LENGTH_COLUMN: np.array([60.0, 20.0, 5.0, 5.0, 5.0, 5.0])}, 80.0)
    survival = released_survival(release, 6).numpy()
    # One constant c comes off every count: 100 - 6c = 80, so each empty length keeps 5 - c = 5/3 of 80.
    assert survival[0] == 1.0 and np.all(np.diff(survival) <= 0)
    assert survival[2] == pytest.approx(4 * (5 - 20 / 6) / 80, abs=1e-6)
    assert survival[2] < 20 / 100


def test_the_released_marginals_loss_is_zero_at_the_released_distribution():
    import torch
    from synthgen.data.quantile import QuantileTransformer
    from synthgen.data.table import TableTransformer
    from synthgen.sequences.private import ReleasedMarginals

    table = _long(200, 2).assign(ward=lambda f: np.where(np.arange(len(f)) % 5 == 0, "b", "a"))
    metadata = Metadata.from_dict({"columns": {**METADATA.to_dict()["columns"],
                                               "ward": {"sdtype": "categorical", "public_values": ["a", "b"], "static": False}}})
    parts = HistoryParts.of(table, declared_schema(table, metadata, "patient", None, CAP), metadata)
    from synthgen.dp.entropy import PrivateRandom
    release = parts.release(1e-3, 1, 1e-6, rows_hint=200, private=PrivateRandom())  # nearly no noise
    visits = TableTransformer.from_fitted(parts.visit_metadata, {"min_category_count": 1},
                                          {n: release.transformers[n] for n in parts.visit_metadata.columns})
    marginals = ReleasedMarginals(visits, release, torch.device("cpu"))
    rows = 1_000
    share_a = float(release.category_counts["ward"][visits.transformer("ward").categories.index("a")]
                    / release.category_counts["ward"].sum())
    lab = torch.from_numpy(QuantileTransformer.encoded_quantiles((np.arange(rows) + 0.5) / rows)).float()[:, None]
    ward = torch.zeros(rows, 2)
    ward[: round(share_a * rows), 0] = 1.0
    ward[round(share_a * rows):, 1] = 1.0
    weights = torch.full((rows,), 1.0 / rows)
    assert float(marginals(torch.cat([lab, ward], 1), weights)) < 0.01
    # every visit in one category, every lab value at the top: the distance is the share moved and more
    off = torch.cat([torch.ones(rows, 1), torch.tensor([[1.0, 0.0]]).repeat(rows, 1)], 1)
    assert float(marginals(off, weights)) > 2 * (1 - share_a)


class _HighNoise:
    """Every noise draw at +5 of its scale: each column's noisy count of gaps clears the threshold."""

    def normal(self, loc=0.0, scale=1.0, size=None):
        return loc + 5 * scale if size is None else np.full(size, loc + 5 * scale)

    def uniform(self, size: int) -> np.ndarray:
        return np.full(size, 0.5)


def test_noise_never_gives_the_sequence_index_gaps():
    # The index has no gaps by construction; noise that puts a missing level on every column must
    # not put one on its start or gaps (a patient without a start decoded to garbage days).
    from synthgen.data.missing import MissingIndicator
    from synthgen.sequences.frames import START_COLUMN

    table = _long(60, 3).assign(day=lambda f: f.groupby("patient").cumcount() * 7)
    metadata = Metadata.from_dict({"columns": {**METADATA.to_dict()["columns"],
                                               "day": {"sdtype": "numerical", "computer_representation": "Int64"}}})
    parts = HistoryParts.of(table, declared_schema(table, metadata, "patient", "day", CAP), metadata)
    release = parts.release(NOISE, 2, 1e-6, rows_hint=60, private=_HighNoise())
    assert isinstance(release.transformers["lab"], MissingIndicator)  # the noise did what it should
    assert not any(isinstance(release.transformers[name], MissingIndicator) for name in (START_COLUMN, "__sequence_gap__"))


def test_adding_a_patient_moves_no_other_patient_in_or_out_of_a_dp_fit_s_holdout(fitted):
    # Neighbouring tables must give training sets that differ by that patient alone: a split that
    # reshuffles everyone when one patient joins would make DP-SGD and the releases read tables
    # that differ by many patients.
    from synthgen.sequences.private import split_held_out

    table = _histories()
    extra = table[table["patient"] == 150].assign(patient=99_999)
    for seed in range(5):
        before = set(split_held_out(table, "patient", 0.25, seed)[1]["patient"])
        after = set(split_held_out(pd.concat([extra, table], ignore_index=True), "patient", 0.25, seed)[1]["patient"])
        assert after - {99_999} == before
    # and the DP model finds its held-out patients again the same way
    import synthgen

    model = synthgen.load(fitted[1])
    assert set(model.split(table)[1]["patient"]) == set(split_held_out(table, "patient", 0.25, model.seed_)[1]["patient"])


# ----------------------------------------------------------------------------- two tables under DP

def _two_dp_tables(folder: Path, extra_patient: bool = False) -> tuple[Path, Path, Path]:
    """_histories() as a parent table (sex, age; the planted patient's age extreme too) and a child
    table (visit, lab, dose), with SDV multi-table metadata that declares kinds and representations
    but not "static": the layout says it. ``dose`` is constant within every patient, so a fit that
    read the schema from the rows would make it static; ``extra_patient`` adds one whose dose varies."""
    long = _histories()
    long["dose"] = long["patient"] % 3 * 10.0
    if extra_patient:
        visits = pd.DataFrame({"patient": 99_999, "day": [1, 31, 61], "visit": [1, 2, 3], "sex": "F",
                               "lab": [5.0, 5.5, 6.0], "dose": [10.0, 20.0, 30.0]})
        long = pd.concat([long, visits], ignore_index=True)
    parents = long.drop_duplicates("patient")[["patient", "sex"]].rename(columns={"patient": "id"})
    parents["age"] = np.where(parents["id"] == 100, PLANTED, 30 + parents["id"] % 50)
    children = long[["patient", "visit", "lab", "dose"]].rename(columns={"patient": "patient_id"})
    return write_two_tables(folder, parents, children, {
        "patients": {"primary_key": "id", "columns": {
            "id": {"sdtype": "id", "computer_representation": "Int64"}, "sex": {"sdtype": "categorical"},
            "age": {"sdtype": "numerical", "computer_representation": "Float"}}},
        "visits": {"sequence_index": "visit", "columns": {
            "patient_id": {"sdtype": "id"}, "visit": {"sdtype": "numerical", "computer_representation": "Int64"},
            "lab": {"sdtype": "numerical", "computer_representation": "Float"},
            "dose": {"sdtype": "numerical", "computer_representation": "Float"}}},
    })


def _fit_two_dp_tables(folder: Path, *extra: object, extra_patient: bool = False) -> tuple[object, Path]:
    parents, children, metadata = _two_dp_tables(folder, extra_patient)
    model = folder / "model.sgz"
    return run("fit", parents, children, "--metadata", metadata, "-o", model, "--max-length", "6", "--dp-epsilon", "3",
               "--dp-delta", "1e-4", "--steps", "20", "--seed", "1", "--quiet", *extra), model


def test_two_tables_train_under_dp_with_one_parent_row_and_its_child_rows_as_the_unit(tmp_path):
    result, model = _fit_two_dp_tables(tmp_path)
    assert result.exit_code == 0, result.output
    assert "Privacy unit: one patient = all rows of one value of 'patient_id'" in result.output
    details = json.loads(run("info", model, "--json").output)
    assert details["training"]["privacy"]["epsilon"] <= 3 and details["training"].get("table_entities") is None
    out = tmp_path / "out"
    assert run("sample", model, "-n", "300", "-o", out, "--seed", "2").exit_code == 0
    parents, children = pd.read_csv(out / "patients.csv"), pd.read_csv(out / "visits.csv")
    assert list(parents.columns) == ["id", "sex", "age"] and list(children.columns) == ["patient_id", "visit", "lab", "dose"]
    assert len(parents) == 300 and parents["id"].is_unique and set(children["patient_id"]) == set(parents["id"])
    assert pd.api.types.is_integer_dtype(parents["id"])  # the key's declared representation, not UUIDs
    # The planted patient's extreme age and lab values are never output.
    assert parents["age"].max() < PLANTED / 10 and children["lab"].max() < PLANTED / 10
    assert children.groupby("patient_id").size().max() <= 6


def test_a_dp_two_table_schema_comes_from_the_layout_not_from_one_patient_s_rows(tmp_path):
    # dose is constant within every patient in D and varies for the one patient added in D': a schema
    # read from the rows would store dose as static in one model and per visit in the other.
    import synthgen

    schemas = []
    for extra_patient in (False, True):
        folder = tmp_path / str(extra_patient)
        folder.mkdir()
        result, model = _fit_two_dp_tables(folder, extra_patient=extra_patient)
        assert result.exit_code == 0, result.output
        schemas.append(synthgen.load(model).schema_)
    assert schemas[0] == schemas[1]
    assert schemas[0].static_columns == ["sex", "age"] and schemas[0].visit_columns == ["lab", "dose"]
    assert schemas[0].entity_kind == "integer" and schemas[0].max_length == 6


def test_two_tables_refuse_the_one_table_dp_options_and_write_nothing(tmp_path):
    result, model = _fit_two_dp_tables(tmp_path, "--dp-unit-column", "id")
    assert result.exit_code == 1 and "--dp-unit-column" in result.output and "Traceback" not in result.output
    assert not model.exists()
