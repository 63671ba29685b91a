"""Column transformers: a contract every registered transformer must meet, then behaviour tests.

The contract runs over whatever ``synthgen.registry.column_transformers()`` discovers, in the style of
scikit-learn's ``parametrize_with_checks``: one test per (transformer, check). A plugin author adds
an example column for their transformer to ``SAMPLE_COLUMNS`` to have it checked too.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import pytest

from synthgen.data.base import ColumnTransformer
from synthgen.data.categorical import BooleanTransformer, CategoricalTransformer
from synthgen.data.continuous import ContinuousTransformer
from synthgen.data.datetime import DatetimeTransformer
from synthgen.data.identifier import IdentifierTransformer
from synthgen.data.missing import MissingIndicator
from synthgen.errors import InvalidDataError, NotFittedError, UnknownCategoryError
from synthgen.registry import column_transformers

#: Small mixtures keep the Gaussian-mixture fits fast.
#: Built-in transformers of numbers and dates, which clip decoded values to inner bounds.
CLIPS_EXTREMES = {"numerical", "quantile", "datetime", "missing[numerical]", "missing[datetime]", "log_numerical"}
OPTIONS = {"max_modes": 5, "gmm_max_rows": 500, "min_category_count": 5, "rare_label": "Other"}
CONDITIONAL_TRANSFORMERS = {"categorical", "boolean"}


@dataclass
class Sample:
    """An example column, its metadata spec, and how its round trip is judged.

    ``check``: "exact" (decoded equals ``expected``), "close" (numbers within 1e-6 relative, same
    dtype, inside the observed range) or "fresh" (new values of the same type, as for IDs).
    """

    column: pd.Series
    spec: dict[str, Any]
    check: Literal["exact", "close", "fresh"]
    expected: pd.Series | None = field(default=None)


def _numerical(rng: np.random.Generator) -> Sample:
    values = np.concatenate([rng.normal(10, 1, 150), rng.normal(60, 3, 150)])
    spec = {"sdtype": "numerical", "computer_representation": "Float"}
    return Sample(pd.Series(rng.permutation(values)), spec, "close")


def _categorical(rng: np.random.Generator) -> Sample:
    values = np.array(["I10"] * 40 + ["E11"] * 30 + ["J45"] * 10 + ["Q87.4"] * 2 + [None] * 8, dtype=object)
    column = pd.Series(rng.permutation(values))
    return Sample(column, {"sdtype": "categorical"}, "exact", column.replace("Q87.4", "Other"))


def _boolean(rng: np.random.Generator) -> Sample:
    values = rng.choice(np.array([True, False, None], dtype=object), size=60, p=[0.5, 0.4, 0.1])
    return Sample(pd.Series(values, dtype=object), {"sdtype": "boolean"}, "exact")


def _datetime(rng: np.random.Generator) -> Sample:
    days = pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 3000, size=200), unit="D")
    spec = {"sdtype": "datetime", "datetime_format": "%Y-%m-%d"}
    return Sample(pd.Series(days.strftime("%Y-%m-%d"), dtype=object), spec, "exact")


def _identifier(rng: np.random.Generator) -> Sample:
    return Sample(pd.Series(np.arange(1000, 1100)), {"sdtype": "id"}, "fresh")


def _missing_numerical(rng: np.random.Generator) -> Sample:
    values = pd.Series(rng.integers(40, 120, size=200), dtype="Int64")
    values[rng.random(200) < 0.2] = pd.NA
    return Sample(values, {"sdtype": "numerical", "computer_representation": "Int64"}, "close")


def _missing_datetime(rng: np.random.Generator) -> Sample:
    days = pd.Series(pd.Timestamp("2020-06-01") + pd.to_timedelta(rng.integers(0, 500, size=200), unit="D"))
    days[rng.random(200) < 0.25] = pd.NaT
    return Sample(days, {"sdtype": "datetime", "datetime_format": None}, "exact")


def _log_numerical(rng: np.random.Generator) -> Sample:
    """For the example plugin in plugins/synthgen-lognormal (checked when it is installed)."""
    spec = {"sdtype": "numerical", "computer_representation": "Float", "transformer": "log_numerical"}
    return Sample(pd.Series(rng.lognormal(0.5, 0.8, 300)), spec, "close")


def _quantile(rng: np.random.Generator) -> Sample:
    spec = {"sdtype": "numerical", "computer_representation": "Float", "transformer": "quantile"}
    return Sample(pd.Series(rng.gamma(2.0, 3.0, 400)), spec, "close")


#: Example columns by transformer name; "missing[x]" is x wrapped in a MissingIndicator.
SAMPLE_COLUMNS: dict[str, Callable[[np.random.Generator], Sample]] = {
    "numerical": _numerical,
    "categorical": _categorical,
    "boolean": _boolean,
    "datetime": _datetime,
    "id": _identifier,
    "missing[numerical]": _missing_numerical,
    "missing[datetime]": _missing_datetime,
    "log_numerical": _log_numerical,
    "quantile": _quantile,
}


def sample_column(name: str, rng: np.random.Generator) -> Sample:
    """The example column for transformer ``name``; skips transformers nobody gave one."""
    if name not in SAMPLE_COLUMNS:
        pytest.skip(f"no example column for transformer {name!r}: add one to SAMPLE_COLUMNS")
    return SAMPLE_COLUMNS[name](rng)


def build(name: str, spec: dict[str, Any]) -> ColumnTransformer:
    """An unfitted transformer as the table would build it (wrapped for ``missing[...]``)."""
    wrapped = re.fullmatch(r"missing\[(\w+)\]", name)
    if wrapped:
        return MissingIndicator(column_transformers()[wrapped.group(1)].from_metadata(spec, OPTIONS))
    return column_transformers()[name].from_metadata(spec, OPTIONS)


def fitted(name: str, seed: int = 0) -> tuple[ColumnTransformer, Sample]:
    sample = sample_column(name, np.random.default_rng(123))
    return build(name, sample.spec).fit(sample.column, np.random.default_rng(seed)), sample


# --- contract checks -------------------------------------------------------------------------


def _emittable(column: pd.Series) -> pd.Series:
    """Training values as a decoder of numbers or dates may emit them: an extreme held by fewer than
    min_category_count rows comes back as the k-th smallest/largest value (no rare extreme leaks)."""
    present = column.dropna().sort_values()
    k = max(1, min(OPTIONS["min_category_count"], (len(present) + 1) // 2))
    return column.clip(present.iloc[k - 1], present.iloc[-k]) if len(present) else column


def check_round_trip(name: str) -> None:
    transformer, sample = fitted(name)
    column = sample.column.reset_index(drop=True)
    decoded = transformer.inverse(transformer.transform(column, np.random.default_rng(1)), np.random.default_rng(2))
    assert len(decoded) == len(column)
    if name in CLIPS_EXTREMES:
        column = _emittable(column)
    if sample.check == "exact":
        expected = column if sample.expected is None else sample.expected.reset_index(drop=True)
        pd.testing.assert_series_equal(decoded, expected, check_names=False)
    elif sample.check == "close":
        assert decoded.dtype == column.dtype
        missing = column.isna().to_numpy()
        np.testing.assert_array_equal(decoded.isna().to_numpy(), missing)
        original = column[~missing].to_numpy(dtype=np.float64)
        values = decoded[~missing].to_numpy(dtype=np.float64)
        spread = original.max() - original.min()
        np.testing.assert_allclose(values, original, rtol=1e-6, atol=1e-6 * spread)
        assert original.min() <= values.min() and values.max() <= original.max()
    else:
        assert decoded.dtype == column.dtype
        assert decoded.is_unique


def check_layout(name: str) -> None:
    transformer, sample = fitted(name)
    encoded = transformer.transform(sample.column, np.random.default_rng(1))
    assert encoded.dtype == np.float32
    assert encoded.shape == (len(sample.column), transformer.output_width)
    assert sum(span.width for span in transformer.spans) == encoded.shape[1]
    start = 0
    for span in transformer.spans:
        block = encoded[:, start : start + span.width]
        if span.activation == "softmax":
            assert set(np.unique(block)) <= {0.0, 1.0}
            np.testing.assert_array_equal(block.sum(axis=1), 1.0)
        else:
            assert np.all(np.abs(block) <= 1.0)
        start += span.width


def check_state_round_trip(name: str) -> None:
    transformer, sample = fitted(name)
    text = json.dumps(transformer.get_state(), allow_nan=False)
    restored = type(transformer).from_state(json.loads(text))
    assert json.dumps(restored.get_state(), allow_nan=False) == text
    assert restored.spans == transformer.spans
    encoded = transformer.transform(sample.column, np.random.default_rng(1))
    np.testing.assert_array_equal(restored.transform(sample.column, np.random.default_rng(1)), encoded)
    pd.testing.assert_series_equal(
        restored.inverse(encoded, np.random.default_rng(2)), transformer.inverse(encoded, np.random.default_rng(2))
    )


def check_determinism(name: str) -> None:
    first, _ = fitted(name, seed=0)
    second, _ = fitted(name, seed=0)
    assert json.dumps(first.get_state()) == json.dumps(second.get_state())


def check_not_fitted(name: str) -> None:
    sample = sample_column(name, np.random.default_rng(0))
    transformer = build(name, sample.spec)
    rng = np.random.default_rng(0)
    for use in (
        lambda: transformer.transform(sample.column, rng),
        lambda: transformer.inverse(np.zeros((3, 1), dtype=np.float32), rng),
        lambda: transformer.spans,
        transformer.get_state,
    ):
        with pytest.raises(NotFittedError):
            use()


def check_conditional_spans(name: str) -> None:
    transformer, _ = fitted(name)
    conditional = [span for span in transformer.spans if span.conditional]
    if name not in CONDITIONAL_TRANSFORMERS:
        assert conditional == []
        return
    assert conditional == transformer.spans and len(conditional) == 1
    assert conditional[0].width == len(transformer.categories)
    for position, label in enumerate(transformer.categories):
        assert transformer.condition_index(label) == position


CHECKS = [
    check_round_trip,
    check_layout,
    check_state_round_trip,
    check_determinism,
    check_not_fitted,
    check_conditional_spans,
]
CASES = [*sorted(column_transformers()), "missing[numerical]", "missing[datetime]"]


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
@pytest.mark.parametrize("name", CASES)
def test_transformer_contract(name: str, check: Callable[[str], None]) -> None:
    check(name)


def test_builtin_transformers_are_registered() -> None:
    assert {"numerical", "categorical", "boolean", "datetime", "id"} <= set(column_transformers())


# --- continuous ------------------------------------------------------------------------------


def test_multimodal_column_gets_several_modes_and_decodes_in_range() -> None:
    rng = np.random.default_rng(0)
    column = pd.Series(np.concatenate([rng.normal(0, 1, 400), rng.normal(1000, 5, 400)]))
    transformer = ContinuousTransformer.from_metadata({"sdtype": "numerical"}, OPTIONS).fit(column, rng)
    assert len(transformer.means_) >= 2
    n_modes = len(transformer.means_)
    random_block = np.column_stack([rng.uniform(-1, 1, 1000), rng.dirichlet(np.ones(n_modes), 1000)])
    decoded = transformer.inverse(random_block, rng)
    assert decoded.min() >= column.min() and decoded.max() <= column.max()
    # each far-apart cluster is encoded by its own modes
    encoded = transformer.transform(column, rng)
    low_modes = set(np.argmax(encoded[:400, 1:], axis=1))
    high_modes = set(np.argmax(encoded[400:, 1:], axis=1))
    assert low_modes.isdisjoint(high_modes)


def test_integer_column_decodes_to_int64_within_range() -> None:
    rng = np.random.default_rng(0)
    column = pd.Series(rng.integers(18, 90, size=300))
    transformer = ContinuousTransformer.from_metadata({"sdtype": "numerical"}, OPTIONS).fit(column, rng)
    decoded = transformer.inverse(transformer.transform(column, rng), rng)
    assert decoded.dtype == np.int64
    pd.testing.assert_series_equal(decoded, _emittable(column))


def test_constant_column_has_one_mode_and_round_trips() -> None:
    rng = np.random.default_rng(0)
    column = pd.Series([37.5] * 50)
    transformer = ContinuousTransformer().fit(column, rng)
    assert [span.width for span in transformer.spans] == [1, 1]
    pd.testing.assert_series_equal(transformer.inverse(transformer.transform(column, rng), rng), column)


def test_continuous_fit_ignores_nan_but_transform_rejects_it() -> None:
    rng = np.random.default_rng(0)
    column = pd.Series([1.0, 2.0, np.nan, 4.0] * 20)
    transformer = ContinuousTransformer(max_modes=3).fit(column, rng)
    assert (transformer.min_, transformer.max_) == (1.0, 4.0)
    with pytest.raises(InvalidDataError):
        transformer.transform(column, rng)


# --- categorical and boolean -----------------------------------------------------------------


def test_rare_categories_are_pooled_and_never_stored() -> None:
    rng = np.random.default_rng(0)
    column = pd.Series(["flu"] * 20 + ["asthma"] * 10 + ["rare_dx_fop"] * 2 + ["rare_dx_pku"] * 4)
    transformer = CategoricalTransformer.from_metadata({"sdtype": "categorical"}, OPTIONS).fit(column, rng)
    assert transformer.categories == ["flu", "asthma", "Other"]
    decoded = transformer.inverse(transformer.transform(column, rng), rng)
    assert decoded.tolist() == ["flu"] * 20 + ["asthma"] * 10 + ["Other"] * 6
    state_text = json.dumps(transformer.get_state())
    assert "rare_dx" not in state_text
    with pytest.raises(UnknownCategoryError, match=r"rare_dx_fop.*fewer than 5 times.*'Other'"):
        transformer.condition_index("rare_dx_fop")
    restored = CategoricalTransformer.from_state(json.loads(state_text))
    assert restored.inverse(restored.transform(pd.Series(["rare_dx_pku"]), rng), rng).tolist() == ["Other"]


def test_a_genuine_other_level_keeps_its_name_and_the_pool_gets_another() -> None:
    rng = np.random.default_rng(0)
    column = pd.Series(["flu"] * 20 + ["Other"] * 10 + ["Other (pooled)"] * 6 + ["rare_dx"] * 2)
    transformer = CategoricalTransformer.from_metadata({"sdtype": "categorical"}, OPTIONS).fit(column, rng)
    assert transformer.categories == ["flu", "Other", "Other (pooled)", "Other (pooled 2)"]
    decoded = transformer.inverse(transformer.transform(column, rng), rng)
    assert decoded.tolist() == column.replace("rare_dx", "Other (pooled 2)").tolist()
    restored = CategoricalTransformer.from_state(json.loads(json.dumps(transformer.get_state())))
    assert restored.categories == transformer.categories and restored.condition_index("Other") == 1


def test_rare_numeric_codes_merge_into_the_nearest_kept_code() -> None:
    rng = np.random.default_rng(0)
    column = pd.Series([0] * 3 + [1] * 10 + [2] * 8 + [3] * 6 + [4] * 2 + [7] * 1, dtype="int64")
    transformer = CategoricalTransformer.from_metadata({"sdtype": "categorical"}, OPTIONS).fit(column, rng)
    assert sorted(transformer.categories) == [1, 2, 3]  # 0 bottom-coded into 1; 4 and 7 top-coded into 3
    decoded = transformer.inverse(transformer.transform(column, rng), rng)
    assert decoded.dtype == np.int64
    assert decoded.tolist() == [1] * 13 + [2] * 8 + [3] * 9
    state = transformer.get_state()
    assert 0 not in state["levels"] and 7 not in state["levels"] and 4 not in state["levels"]
    with pytest.raises(UnknownCategoryError, match="nearest"):
        transformer.condition_index(7)


def test_states_from_dp_releases_and_older_files_still_load() -> None:
    # synthgen/dp/release.py builds states without the newer keys, with the string rare level.
    state = {"min_category_count": 1, "rare_label": "Other", "levels": [1, 2], "has_missing": False,
             "rare": True, "dtype": "int64", "kind": "int"}
    transformer = CategoricalTransformer.from_state(state)
    assert transformer.categories == [1, 2, "Other"]
    rng = np.random.default_rng(0)
    assert transformer.inverse(np.eye(3, dtype=np.float32), rng).tolist() == [1, 2, "Other"]


def test_missing_level_round_trips_at_the_observed_rate() -> None:
    rng = np.random.default_rng(0)
    column = pd.Series(rng.choice(np.array(["A", "B", "C"], dtype=object), size=1000))
    column[rng.permutation(1000)[:200]] = np.nan
    transformer = CategoricalTransformer().fit(column, rng)
    assert transformer.categories[-1] is None
    encoded = transformer.transform(column, rng)
    assert encoded[:, transformer.condition_index(None)].mean() == pytest.approx(0.2)
    decoded = transformer.inverse(encoded, rng)
    np.testing.assert_array_equal(decoded.isna().to_numpy(), column.isna().to_numpy())
    assert decoded.dropna().tolist() == column.dropna().tolist()


def test_condition_index_matches_cli_strings_numerically() -> None:
    rng = np.random.default_rng(0)
    codes = CategoricalTransformer().fit(pd.Series([4] * 10 + [7] * 6), rng)
    assert codes.condition_index("4") == codes.categories.index(4)
    assert codes.condition_index(np.int64(7)) == codes.categories.index(7)
    fractions = CategoricalTransformer().fit(pd.Series([0.5] * 10 + [1.5] * 6), rng)
    assert fractions.condition_index("0.5") == fractions.categories.index(0.5)
    with pytest.raises(UnknownCategoryError, match="'tuberculosis'"):
        codes.condition_index("tuberculosis")


def test_categorical_keeps_integer_and_category_dtypes() -> None:
    rng = np.random.default_rng(0)
    ints = pd.Series([3] * 10 + [1] * 8)
    transformer = CategoricalTransformer().fit(ints, rng)
    pd.testing.assert_series_equal(transformer.inverse(transformer.transform(ints, rng), rng), ints)
    nullable = pd.Series([3] * 10 + [None] * 5, dtype="Int64")
    transformer = CategoricalTransformer().fit(nullable, rng)
    pd.testing.assert_series_equal(transformer.inverse(transformer.transform(nullable, rng), rng), nullable)
    stages = pd.Series(pd.Categorical(["I", "II", "III"] * 6, categories=["I", "II", "III"], ordered=True))
    transformer = CategoricalTransformer().fit(stages, rng)
    pd.testing.assert_series_equal(transformer.inverse(transformer.transform(stages, rng), rng), stages)


def test_unseen_category_without_pooling_is_an_error_naming_it() -> None:
    rng = np.random.default_rng(0)
    transformer = CategoricalTransformer().fit(pd.Series(["a"] * 10 + ["b"] * 10), rng)
    with pytest.raises(UnknownCategoryError, match="'zebra'"):
        transformer.transform(pd.Series(["a", "zebra"]), rng)


def test_boolean_condition_index_accepts_words() -> None:
    rng = np.random.default_rng(0)
    transformer = BooleanTransformer().fit(pd.Series([True, False] * 10), rng)
    assert transformer.categories == [False, True]
    for word, position in [("true", 1), ("FALSE", 0), ("Yes", 1), ("no", 0), ("1", 1), ("0", 0), (True, 1)]:
        assert transformer.condition_index(word) == position
    with pytest.raises(UnknownCategoryError, match="'maybe'"):
        transformer.condition_index("maybe")
    decoded = transformer.inverse(transformer.transform(pd.Series([True, False]), rng), rng)
    assert decoded.dtype == bool


# --- datetime --------------------------------------------------------------------------------


def test_yyyymmdd_integers_round_trip_as_integers() -> None:
    rng = np.random.default_rng(0)
    column = pd.Series([20210304, 19991231, 20200229, 20150101] * 25)
    transformer = DatetimeTransformer.from_metadata({"sdtype": "datetime", "datetime_format": "%Y%m%d"}, OPTIONS)
    transformer.fit(column, rng)
    pd.testing.assert_series_equal(transformer.inverse(transformer.transform(column, rng), rng), column)


def test_date_strings_round_trip_as_strings() -> None:
    rng = np.random.default_rng(0)
    column = pd.Series(["2021-03-04", "1999-12-31", "2020-02-29", "2015-01-01"] * 25, dtype=object)
    transformer = DatetimeTransformer(datetime_format="%Y-%m-%d").fit(column, rng)
    pd.testing.assert_series_equal(transformer.inverse(transformer.transform(column, rng), rng), column)


def test_zoned_timestamps_keep_zone_and_seconds() -> None:
    rng = np.random.default_rng(0)
    stamps = pd.Timestamp("2022-03-20 08:00:00") + pd.to_timedelta(rng.integers(0, 20 * 86_400, size=200), unit="s")
    column = pd.Series(stamps).dt.tz_localize("UTC").dt.tz_convert("Europe/Berlin")  # spans a DST change
    transformer = DatetimeTransformer().fit(column, rng)
    assert transformer.unit_ == "s"
    decoded = transformer.inverse(transformer.transform(column, rng), rng)
    assert decoded.dtype == column.dtype
    assert (decoded - _emittable(column)).abs().max() <= pd.Timedelta(seconds=1)


def test_zoned_dates_round_to_local_midnight_across_dst() -> None:
    rng = np.random.default_rng(0)
    column = pd.Series(pd.date_range("2022-03-01", "2022-04-30", freq="D", tz="Europe/Berlin"))
    transformer = DatetimeTransformer().fit(column, rng)
    assert transformer.unit_ == "D"
    pd.testing.assert_series_equal(transformer.inverse(transformer.transform(column, rng), rng), _emittable(column))


def test_integer_datetime_without_format_is_rejected() -> None:
    with pytest.raises(InvalidDataError, match="datetime_format"):
        DatetimeTransformer().fit(pd.Series([20210304, 20210305]), np.random.default_rng(0))


# --- missing values --------------------------------------------------------------------------


def test_missing_indicator_restores_nan_and_nat_at_the_same_positions() -> None:
    rng = np.random.default_rng(0)
    floats = pd.Series(rng.normal(5, 1, 300))
    floats[rng.random(300) < 0.3] = np.nan
    dates = pd.Series(pd.date_range("2020-01-01", periods=300, freq="D"))
    dates[rng.random(300) < 0.3] = pd.NaT
    for column, inner in [(floats, ContinuousTransformer(max_modes=3)), (dates, DatetimeTransformer(max_modes=3))]:
        transformer = MissingIndicator(inner).fit(column, rng)
        assert transformer.missing_rate_ == pytest.approx(column.isna().mean())
        decoded = transformer.inverse(transformer.transform(column, rng), rng)
        assert decoded.dtype == column.dtype
        np.testing.assert_array_equal(decoded.isna().to_numpy(), column.isna().to_numpy())


def test_integer_column_with_gaps_comes_back_as_nullable_int() -> None:
    rng = np.random.default_rng(0)
    column = pd.Series([1.0, 2.0, np.nan, 4.0, 5.0] * 20)  # how a CSV reader loads integers with gaps
    inner = ContinuousTransformer.from_metadata({"sdtype": "numerical", "computer_representation": "Int64"}, OPTIONS)
    transformer = MissingIndicator(inner).fit(column, rng)
    decoded = transformer.inverse(transformer.transform(column, rng), rng)
    assert decoded.dtype == "Int64"
    pd.testing.assert_series_equal(decoded, column.astype("Int64"))


def test_missing_indicator_encodes_an_all_missing_batch() -> None:
    rng = np.random.default_rng(0)
    transformer = MissingIndicator(ContinuousTransformer(max_modes=3)).fit(pd.Series([1.0, 2.0, np.nan] * 10), rng)
    decoded = transformer.inverse(transformer.transform(pd.Series([np.nan, np.nan]), rng), rng)
    assert decoded.isna().all()


# --- identifiers -----------------------------------------------------------------------------


def test_fresh_integer_ids_are_unique_int64() -> None:
    rng = np.random.default_rng(0)
    training = pd.Series(np.arange(1, 5001))
    transformer = IdentifierTransformer().fit(training, rng)
    assert transformer.spans == [] and transformer.transform(training, rng).shape == (5000, 0)
    fresh = transformer.inverse(np.zeros((5000, 0), dtype=np.float32), rng)
    assert fresh.dtype == np.int64 and fresh.is_unique and (fresh > 0).all()


def test_fresh_string_ids_are_unique_uuid4_without_training_prefix() -> None:
    rng = np.random.default_rng(0)
    training = pd.Series([f"PAT-{i:05d}" for i in range(1000)])
    transformer = IdentifierTransformer().fit(training, rng)
    assert "PAT" not in json.dumps(transformer.get_state())
    fresh = transformer.inverse(np.zeros((1000, 0), dtype=np.float32), rng)
    assert fresh.dtype == object and fresh.is_unique
    uuid4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
    assert all(uuid4.fullmatch(value) for value in fresh)
