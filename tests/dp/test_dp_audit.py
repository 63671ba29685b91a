"""Audits of the DP release mechanisms, run the way an attacker would.

Each audit runs one mechanism thousands of times on a table D and on D plus one crafted row, picks a
distinguishing threshold on a first share of the runs, and bounds the privacy loss it achieves on the
rest from below with Clopper-Pearson intervals. A mechanism whose lower bound exceeds the ε it claims
(at the audit's δ) is broken. The claimed ε is the accountant's for the whole round the mechanism
belongs to, at the noise the test sets.

The seed-replay audit plays the attacker who holds a DP model file and its recorded seed.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import beta

from synthgen.data.table import TableTransformer
from synthgen.dp.accounting import spent_epsilon
from synthgen.dp.pairs import column_cells, release_pairs
from synthgen.dp.release import release_statistics
from synthgen.metadata import Metadata

#: δ at which the audits measure ε: large enough for thousands of runs to have power, and every
#: mechanism claims its ε(δ) at every δ.
AUDIT_DELTA = 1e-2
#: One-sided confidence of each Clopper-Pearson bound (two bounds per audit).
CONFIDENCE = 0.999


def _clopper_pearson_epsilon(false: int, nulls: int, true: int, alternatives: int, delta: float) -> float:
    """ε proven by ``false`` of ``nulls`` and ``true`` of ``alternatives`` runs over a threshold."""
    tail = 1.0 - CONFIDENCE
    false_high = beta.ppf(1 - tail, false + 1, nulls - false) if false < nulls else 1.0
    true_low = beta.ppf(tail, true, alternatives - true + 1) if true > 0 else 0.0
    return float(np.log((true_low - delta) / false_high)) if true_low > delta else 0.0


def epsilon_lower_bound(null: np.ndarray, alternative: np.ndarray, delta: float = AUDIT_DELTA,
                        calibration_share: float = 0.25) -> float:
    """A high-confidence lower bound on the ε that telling ``alternative`` runs from ``null`` runs proves.

    The threshold and its direction are chosen on the first ``calibration_share`` of each sample (the
    one whose bound is highest there) and judged on the rest, so choosing them does not inflate the bound.
    """
    split0, split1 = int(len(null) * calibration_share), int(len(alternative) * calibration_share)
    best, best_bound = (np.inf, 1), -1.0
    for sign in (1, -1):
        calibration_null, calibration_alternative = sign * null[:split0], sign * alternative[:split1]
        pooled = np.concatenate([calibration_null, calibration_alternative])
        for threshold in np.unique(np.quantile(pooled, np.linspace(0.0, 1.0, 401))):
            false, true = int(np.sum(calibration_null > threshold)), int(np.sum(calibration_alternative > threshold))
            bound = _clopper_pearson_epsilon(false, split0, true, split1, delta)
            if bound > best_bound:
                best, best_bound = (threshold, sign), bound
    threshold, sign = best
    null_rest, alternative_rest = sign * null[split0:], sign * alternative[split1:]
    false, true = int(np.sum(null_rest > threshold)), int(np.sum(alternative_rest > threshold))
    return max(0.0, _clopper_pearson_epsilon(false, len(null_rest), true, len(alternative_rest), delta))


def claimed_epsilon(noise: float, rounds: int, delta: float = AUDIT_DELTA) -> float:
    return spent_epsilon([(noise, 1.0, rounds)], delta)[0]


def _release(table: pd.DataFrame, metadata: Metadata, noise: float, rows_hint: float):
    return release_statistics(table, metadata, noise, 1, 1e-6, rows_hint=rows_hint)


def _runs(statistic, table: pd.DataFrame, crafted: pd.DataFrame, runs: int, encode=None) -> tuple[np.ndarray, np.ndarray]:
    neighbour = pd.concat([table, crafted], ignore_index=True)
    if encode is not None:  # a per-row deterministic encoding, outside the mechanism under audit
        table, neighbour = encode(table), encode(neighbour)
    null = np.array([statistic(table) for _ in range(runs)])
    alternative = np.array([statistic(neighbour) for _ in range(runs)])
    return null, alternative


def test_the_bound_finds_a_mechanism_that_adds_no_noise_and_clears_one_that_adds_enough():
    rng = np.random.default_rng(0)
    assert epsilon_lower_bound(np.zeros(4_000), np.ones(4_000)) > 5
    null, alternative = rng.normal(0, 1, 20_000), rng.normal(1, 1, 20_000)
    assert epsilon_lower_bound(null, alternative) < claimed_epsilon(1.0, 1)


def test_the_coarse_row_count_does_not_reveal_a_patient():
    from synthgen.dp.entropy import PrivateRandom
    from synthgen.dp.release import release_row_count

    private, noise = PrivateRandom(), 1.0
    null = np.array([release_row_count(50, noise, private) for _ in range(8_000)])
    alternative = np.array([release_row_count(51, noise, private) for _ in range(8_000)])
    assert epsilon_lower_bound(null, alternative) < claimed_epsilon(noise, 1)


def test_the_pooled_rare_names_count_does_not_reveal_a_rare_name():
    # Every name in D is common, so all are released; the crafted patient's name is unique and never
    # released. The weight of the pooled level must not tell whether that patient is in the table.
    table = pd.DataFrame({"diagnosis": ["asthma"] * 40 + ["copd"] * 40})
    metadata = Metadata.from_dict({"columns": {"diagnosis": {"sdtype": "categorical"}}})
    crafted = pd.DataFrame({"diagnosis": ["kuru"]})
    noise = 1.0

    def pooled_share(frame: pd.DataFrame) -> float:
        release = _release(frame, metadata, noise, rows_hint=80)
        counts = release.category_counts["diagnosis"]
        return float(counts[-1] / counts.sum())

    null, alternative = _runs(pooled_share, table, crafted, 3_000)
    assert epsilon_lower_bound(null, alternative) < claimed_epsilon(noise, 1)


def test_a_numeric_histogram_does_not_reveal_an_outlying_patient():
    table = pd.DataFrame({"albumin": np.linspace(1.0, 5.0, 60)})
    metadata = Metadata.from_dict({"columns": {"albumin": {"sdtype": "numerical", "computer_representation": "Float",
                                                           "public_bounds": [0.0, 10.0]}}})
    crafted = pd.DataFrame({"albumin": [9.9]})
    noise = 1.0

    def top_bin_mass(frame: pd.DataFrame) -> float:
        transformer = _release(frame, metadata, noise, rows_hint=60).transformers["albumin"]
        cdf = getattr(transformer, "inner", transformer).cdf_
        return float(1.0 - cdf[-2])

    null, alternative = _runs(top_bin_mass, table, crafted, 3_000)
    assert epsilon_lower_bound(null, alternative) < claimed_epsilon(noise, 1)


def test_the_released_bounds_do_not_reveal_an_outlying_patient():
    table = pd.DataFrame({"copper": np.linspace(10.0, 200.0, 60)})
    metadata = Metadata.from_dict({"columns": {"copper": {"sdtype": "numerical", "computer_representation": "Float"}}})
    crafted = pd.DataFrame({"copper": [2.0**30]})
    noise = 0.5

    def upper_bound(frame: pd.DataFrame) -> float:
        release = release_statistics(frame, metadata, noise, 2, 1e-6, rows_hint=60)
        transformer = release.transformers["copper"]
        return float(np.log2(getattr(transformer, "inner", transformer).edges_[-1]))

    null, alternative = _runs(upper_bound, table, crafted, 2_000)
    assert epsilon_lower_bound(null, alternative) < claimed_epsilon(noise, 2)


def _pair_inputs(table: pd.DataFrame, metadata: Metadata):
    # Public domains: names are not at stake. A missing level is released when its noisy count clears
    # 2σ (10% of the rows where that is lower; not at this noise), which noise alone does in 1 release
    # of 40: draw until the levels match the
    # data, so that the audit's setting is the same on every run.
    gaps = {name: bool(table[name].isna().any()) for name in table}
    release = next(r for r in (_release(table, metadata, 1e-3, rows_hint=len(table)) for _ in range(100))
                   if all(r.transformers[name].has_missing_ == gaps[name] for name in table))
    fitted = TableTransformer.from_fitted(metadata, {"min_category_count": 1}, release.transformers)
    # The released marginals, fixed for the pair rounds (a missing level too, where there are gaps).
    uniform = {name: np.ones(len(fitted.transformer(name).categories)) for name in table}
    return fitted, column_cells(fitted, uniform, bins=4)


def _encoder(fitted: TableTransformer):
    return lambda frame: fitted.transform(frame, np.random.default_rng(0))


def _selection_audit(runs: int) -> tuple[float, float]:
    """Whether the pair (a, b) is chosen, on D and on D plus one row that moves its utility across "stop".

    b copies a in 20 of 90 rows: (a, b)'s utility is just above 0 on D and just below with the
    crafted row, the case where a choice without noise would flip. Returns (lower bound, claim).
    """
    metadata = Metadata.from_dict({"columns": {name: {"sdtype": "categorical", "public_values": [0, 1, 2]}
                                               for name in ("a", "b", "c")}})
    rng = np.random.default_rng(4)
    a = rng.integers(0, 3, 90)
    table = pd.DataFrame({"a": a, "b": np.where(np.arange(90) < 20, a, rng.integers(0, 3, 90)), "c": rng.integers(0, 3, 90)})
    fitted, columns = _pair_inputs(table, metadata)
    crafted = pd.DataFrame({"a": [0], "b": [1], "c": [0]})
    noise = 1.0

    def chosen(encoded: np.ndarray) -> float:
        return float((0, 1) in release_pairs(encoded, columns, noise, rows=90.0).pairs)

    null, alternative = _runs(chosen, table, crafted, runs, _encoder(fitted))
    # The choices are accounted as one Gaussian round's Rényi curve, by the RDP accountant.
    return epsilon_lower_bound(null, alternative), spent_epsilon([(noise, 1.0, 1)], AUDIT_DELTA, rdp_only=True)[0]


def test_the_pair_choices_do_not_reveal_a_patient():
    bound, claim = _selection_audit(3_000)
    assert bound < claim


def test_the_pair_choice_audit_catches_a_choice_made_without_noise(monkeypatch):
    from synthgen.dp.entropy import PrivateRandom

    monkeypatch.setattr(PrivateRandom, "exponential", lambda self, utility, epsilon, sensitivity=1.0: int(np.argmax(utility)))
    bound, claim = _selection_audit(600)
    assert bound > claim


def test_the_pair_tables_do_not_reveal_a_patient():
    metadata = Metadata.from_dict({"columns": {name: {"sdtype": "categorical", "public_values": [0, 1, 2]}
                                               for name in ("a", "b")}})
    rng = np.random.default_rng(4)
    a = rng.integers(0, 3, 90)
    table = pd.DataFrame({"a": a, "b": np.where(rng.random(90) < 0.9, a, rng.integers(0, 3, 90))})
    fitted, columns = _pair_inputs(table, metadata)
    crafted = pd.DataFrame({"a": [0], "b": [2]})
    noise = 1.0

    def cell(encoded: np.ndarray) -> float:
        released = release_pairs(encoded, columns, noise, rows=90.0)
        return float(released.tables[0][0, 2] * 90.0) if released.pairs else 0.0

    null, alternative = _runs(cell, table, crafted, 3_000, _encoder(fitted))
    assert epsilon_lower_bound(null, alternative) < claimed_epsilon(noise, 2)


def test_the_missingness_patterns_do_not_reveal_a_patient():
    # In D, a and b are missing together or present together; the crafted patient misses a only.
    metadata = Metadata.from_dict({"columns": {name: {"sdtype": "categorical", "public_values": [0, 1, 2]}
                                               for name in ("a", "b")}})
    rng = np.random.default_rng(5)
    both = rng.integers(0, 3, 60).astype(float)
    both[:20] = np.nan
    table = pd.DataFrame({"a": both, "b": both})
    fitted, columns = _pair_inputs(table, metadata)
    assert [c.missing for c in columns] == [3, 3]  # the audit exercises the patterns
    crafted = pd.DataFrame({"a": [np.nan], "b": [1.0]})
    noise = 1.0

    def lone_pattern_share(encoded: np.ndarray) -> float:
        released = release_pairs(encoded, columns, noise, rows=60.0)
        found = [share for pattern, share in zip(released.patterns.tolist(), released.pattern_shares) if pattern == [1.0, 0.0]]
        return float(found[0]) if found else 0.0

    null, alternative = _runs(lone_pattern_share, table, crafted, 3_000, _encoder(fitted))
    assert epsilon_lower_bound(null, alternative) < claimed_epsilon(noise, 1)


def test_the_seed_in_a_dp_model_file_does_not_replay_its_noise(tmp_path):
    """The attacker reads the seed, the row count and the noise scale from the model file, regenerates
    the release noise from the seed and subtracts it from the stored counts."""
    from synthgen import TabularSynthesizer, load
    from synthgen.dp.accounting import DPSettings

    truth = {"A": 140, "B": 60}
    table = pd.DataFrame({"group": ["A"] * truth["A"] + ["B"] * truth["B"], "age": np.linspace(20, 80, 200)})
    metadata = Metadata.from_dict({"columns": {
        "group": {"sdtype": "categorical", "public_values": ["A", "B"]},
        "age": {"sdtype": "numerical", "computer_representation": "Float", "public_bounds": [0, 100]},
    }})
    path = TabularSynthesizer(metadata, seed=11, steps=2, progress=False, calibrate=False,
                              dp=DPSettings(epsilon=3.0)).fit(table).save(tmp_path / "dp.sgz")
    model = load(path)
    record = model.privacy_
    sigma = record["release"]["noise_std_per_count"]
    stored = model.sampler_.counts.double().numpy()[:2]
    floor = (stored.sum() - stored.sum() / (1 + 1e-3)) / 2  # undo the floor that made counts weights
    attempts = []
    for rows in {model.training_.get("table_rows"), model.training_["rows"], None}:
        replay = np.random.default_rng(model.seed_)
        if rows is not None:
            replay.permutation(rows)  # fit's holdout draw came first on earlier versions
        attempts.append(np.round(stored - floor - replay.normal(0.0, sigma, 2)).tolist())
    assert [truth["A"], truth["B"]] not in attempts
