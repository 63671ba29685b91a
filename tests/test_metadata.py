"""Metadata detection, validation and the SDV-compatible JSON format."""
import json

import numpy as np
import pandas as pd
import pytest

from synthgen.errors import InvalidDataError, MetadataError
from synthgen.metadata import Metadata

N = 40


def sdtype_of(data: pd.DataFrame, column: str) -> dict:
    return Metadata.detect(data).columns[column]


# --- detect: kinds -------------------------------------------------------------------------------


def test_status_codes_0_1_2_are_categorical():
    data = pd.DataFrame({"status": np.arange(N) % 3})
    assert sdtype_of(data, "status") == {"sdtype": "categorical"}


def test_few_distinct_floats_are_categorical():
    data = pd.DataFrame({"edema": np.tile([0.0, 0.5, 1.0], N)})
    assert sdtype_of(data, "edema") == {"sdtype": "categorical"}


def test_integers_with_up_to_10_values_are_categorical_but_11_are_numerical():
    # Each value seen at least MIN_CATEGORY_COUNT times (else it is numbers: see the sparse-coded test).
    ten = pd.DataFrame({"stage": np.arange(100) % 10})
    eleven = pd.DataFrame({"stage": np.arange(100) % 11})
    assert sdtype_of(ten, "stage") == {"sdtype": "categorical"}
    assert sdtype_of(eleven, "stage") == {"sdtype": "numerical", "computer_representation": "Int64"}


def test_six_distinct_non_integer_floats_are_numerical():
    data = pd.DataFrame({"x": np.tile([0.5, 1.5, 2.5, 3.5, 4.5, 5.5], N)})
    assert sdtype_of(data, "x") == {"sdtype": "numerical", "computer_representation": "Float"}


def test_float_vs_int64_representation():
    rng = np.random.default_rng(0)
    data = pd.DataFrame({"bili": rng.normal(size=N), "age": rng.integers(20, 90, size=N)})
    metadata = Metadata.detect(data)
    assert metadata.columns["bili"] == {"sdtype": "numerical", "computer_representation": "Float"}
    assert metadata.columns["age"] == {"sdtype": "numerical", "computer_representation": "Int64"}


def test_numeric_columns_with_nan_keep_their_representation():
    whole = np.arange(N, dtype=float) * 7
    whole[::5] = np.nan  # whole numbers stored as float because of the gaps
    fractional = np.linspace(0.1, 9.9, N)
    fractional[::4] = np.nan
    data = pd.DataFrame({"chol": whole, "albumin": fractional})
    metadata = Metadata.detect(data)
    assert metadata.columns["chol"] == {"sdtype": "numerical", "computer_representation": "Int64"}
    assert metadata.columns["albumin"] == {"sdtype": "numerical", "computer_representation": "Float"}


def test_whole_floats_beyond_exact_integer_range_stay_float():
    data = pd.DataFrame({"copies": np.arange(1, N + 1) * 1e20})  # would overflow an Int64 cast
    assert sdtype_of(data, "copies") == {"sdtype": "numerical", "computer_representation": "Float"}


def test_nullable_integer_dtype_is_int64():
    data = pd.DataFrame({"age": pd.array(list(range(N - 1)) + [None], dtype="Int64")})
    assert sdtype_of(data, "age") == {"sdtype": "numerical", "computer_representation": "Int64"}


def test_yyyymmdd_integers_are_datetime():
    days = pd.date_range("1999-12-20", periods=N, freq="D")
    data = pd.DataFrame({"dob": days.strftime("%Y%m%d").astype(int)})
    assert sdtype_of(data, "dob") == {"sdtype": "datetime", "datetime_format": "%Y%m%d"}


def test_eight_digit_integers_that_are_not_dates_are_not_datetime():
    data = pd.DataFrame({"count": 20211301 + np.arange(N)})  # month 13
    assert sdtype_of(data, "count")["sdtype"] == "numerical"


def test_iso_date_strings_are_datetime():
    days = pd.date_range("2021-03-04", periods=N, freq="D").strftime("%Y-%m-%d")
    data = pd.DataFrame({"visit": days})
    assert sdtype_of(data, "visit") == {"sdtype": "datetime", "datetime_format": "%Y-%m-%d"}


@pytest.mark.parametrize(
    "fmt", ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y/%m/%d", "%d.%m.%Y", "%Y%m%d"]
)
def test_other_date_string_formats(fmt):
    times = pd.date_range("2021-01-01 08:30", periods=N, freq="37h").strftime(fmt)
    data = pd.DataFrame({"t": list(times)})
    assert sdtype_of(data, "t") == {"sdtype": "datetime", "datetime_format": fmt}


def test_ambiguous_slash_dates_are_day_first_unless_a_value_says_otherwise():
    day_first = pd.DataFrame({"d": ["03/04/2021"] * 5 + ["25/04/2021"]})
    month_first = pd.DataFrame({"d": ["03/04/2021"] * 5 + ["04/25/2021"]})
    assert sdtype_of(day_first, "d") == {"sdtype": "datetime", "datetime_format": "%d/%m/%Y"}
    assert sdtype_of(month_first, "d") == {"sdtype": "datetime", "datetime_format": "%m/%d/%Y"}


def test_date_strings_failing_beyond_the_first_1000_are_not_dates():
    values = ["2021-03-04"] * 1000 + ["soon", "later"] * 250
    assert sdtype_of(pd.DataFrame({"d": values}), "d") == {"sdtype": "categorical"}


def test_date_strings_with_one_bad_cell_beyond_the_first_1000_are_dates_with_a_warning(caplog):
    values = ["2021-03-04"] * 1500 + ["soon"]
    with caplog.at_level("WARNING", logger="synthgen.metadata"):
        assert sdtype_of(pd.DataFrame({"d": values}), "d") == {"sdtype": "datetime", "datetime_format": "%Y-%m-%d"}
    assert "'d'" in caplog.text and "1 of 1501" in caplog.text and "missing" in caplog.text
    assert "soon" not in caplog.text


def test_six_digit_strings_are_not_yyyymmdd_dates():
    data = pd.DataFrame({"month": ["202111", "202112"] * 3})
    assert sdtype_of(data, "month") == {"sdtype": "categorical"}


def test_native_datetimes_including_tz_aware_have_no_format():
    days = pd.date_range("2021-01-01", periods=N, freq="D")
    data = pd.DataFrame({"naive": days, "aware": days.tz_localize("Europe/Berlin")})
    metadata = Metadata.detect(data)
    assert metadata.columns["naive"] == {"sdtype": "datetime"}
    assert metadata.columns["aware"] == {"sdtype": "datetime"}


def test_unique_strings_are_id_and_primary_key():
    data = pd.DataFrame({"x": np.arange(N) * 1.5, "code": [f"P{i:04d}" for i in range(N)]})
    metadata = Metadata.detect(data)
    assert metadata.columns["code"] == {"sdtype": "id"}
    assert metadata.primary_key == "code"


def test_repeated_or_few_strings_are_categorical():
    repeated = pd.DataFrame({"sex": ["f", "m", None, "f"] * 10})
    nine_unique = pd.DataFrame({"code": [f"P{i}" for i in range(9)]})
    assert sdtype_of(repeated, "sex") == {"sdtype": "categorical"}
    assert sdtype_of(nine_unique, "code") == {"sdtype": "categorical"}


def test_string_dtype_is_treated_like_object_strings():
    data = pd.DataFrame({"sex": pd.array(["f", "m"] * N, dtype="string")})
    assert sdtype_of(data, "sex") == {"sdtype": "categorical"}


@pytest.mark.parametrize(
    "name", ["id", "ID", "patient_id", "Patient ID", "record-id", "patientId", "SubjectID", "mrn",
             "patient", "index", "case_no", "visit_number", "row_key"],
)
def test_unique_integers_with_an_identifier_name_are_id(name):
    data = pd.DataFrame({name: np.arange(1000, 1000 + N), "x": np.linspace(0, 1, N)})
    metadata = Metadata.detect(data)
    assert metadata.columns[name] == {"sdtype": "id"}
    assert metadata.primary_key == name


@pytest.mark.parametrize("name", ["age", "lipid", "paid", "covid", "COVID"])
def test_unique_integers_with_other_names_are_numerical(name):
    data = pd.DataFrame({name: np.arange(1000, 1000 + N)})
    assert sdtype_of(data, name) == {"sdtype": "numerical", "computer_representation": "Int64"}


def test_identifier_name_with_repeated_values_is_not_id():
    data = pd.DataFrame({"patient_id": np.arange(N) // 2})
    assert sdtype_of(data, "patient_id")["sdtype"] == "numerical"


def test_booleans():
    data = pd.DataFrame({
        "flag": [True, False] * N,
        "object_flag": pd.Series([True, None, False, True] * (N // 2), dtype=object),
    })
    metadata = Metadata.detect(data)
    assert metadata.columns["flag"] == {"sdtype": "boolean"}
    assert metadata.columns["object_flag"] == {"sdtype": "boolean"}


def test_pandas_categorical_dtype_is_categorical():
    data = pd.DataFrame({"grade": pd.Categorical(np.arange(N) % 20)})
    assert sdtype_of(data, "grade") == {"sdtype": "categorical"}


def test_object_column_of_python_numbers_is_numeric():
    data = pd.DataFrame({"dose": pd.Series([i + 0.25 for i in range(N)], dtype=object)})
    assert sdtype_of(data, "dose") == {"sdtype": "numerical", "computer_representation": "Float"}


def test_primary_key_is_none_without_id_columns():
    assert Metadata.detect(pd.DataFrame({"x": np.linspace(0, 1, N)})).primary_key is None


def test_breast_cancer_features_are_float_and_target_categorical():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    frame = sklearn_datasets.load_breast_cancer(as_frame=True).frame
    metadata = Metadata.detect(frame)
    features = [name for name in frame.columns if name != "target"]
    assert len(features) == 30
    for name in features:
        assert metadata.columns[name] == {"sdtype": "numerical", "computer_representation": "Float"}, name
    assert metadata.columns["target"] == {"sdtype": "categorical"}
    assert repr(metadata) == "Metadata(31 columns: 30 numerical, 1 categorical)"


# --- detect: errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [pd.DataFrame(), pd.DataFrame({"a": []}), pd.DataFrame(index=[0, 1])])
def test_empty_table_is_rejected(data):
    with pytest.raises(InvalidDataError, match="table is empty"):
        Metadata.detect(data)


def test_all_missing_column_is_rejected_by_name():
    data = pd.DataFrame({"ok": [1.0, 2.0], "ghost": [np.nan, np.nan]})
    with pytest.raises(InvalidDataError, match="column 'ghost' is entirely missing; drop it or fill it"):
        Metadata.detect(data)


def test_mixed_python_types_name_column_types_and_first_minority_row():
    data = pd.DataFrame({"dose": [1, 2, "three", 4, 5]}, index=[10, 11, 12, 13, 14])
    with pytest.raises(InvalidDataError) as raised:
        Metadata.detect(data)
    message = str(raised.value)
    assert "'dose'" in message
    assert "int" in message and "str" in message
    assert "row 12" in message


def test_numeric_strings_with_a_few_text_values_are_numbers_with_a_warning(caplog):
    values = [str(v) for v in range(50)]
    values[7], values[30] = "<5", "unknown"
    data = pd.DataFrame({"bili": values})
    with caplog.at_level("WARNING", logger="synthgen.metadata"):
        metadata = Metadata.detect(data)
    assert metadata.columns["bili"] == {"sdtype": "numerical", "computer_representation": "Int64"}
    assert "'bili'" in caplog.text and "2 of 50" in caplog.text and "missing" in caplog.text
    assert "unknown" not in caplog.text and "<5" not in caplog.text  # cells are not logged


def test_mostly_text_with_some_numbers_is_categorical():
    data = pd.DataFrame({"drug": ["placebo", "D-penicillamine", "1"] * 10})
    assert sdtype_of(data, "drug") == {"sdtype": "categorical"}


def test_duplicate_column_names_are_rejected():
    data = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(InvalidDataError, match="duplicate column names: 'a'"):
        Metadata.detect(data)


def test_non_string_column_names_are_rejected():
    with pytest.raises(InvalidDataError, match="column names must be strings"):
        Metadata.detect(pd.DataFrame(np.zeros((3, 2))))


def test_unsupported_dtype_is_rejected_by_name():
    data = pd.DataFrame({"wait": pd.to_timedelta(np.arange(N), unit="D")})
    with pytest.raises(InvalidDataError, match="column 'wait' has dtype"):
        Metadata.detect(data)


# --- JSON ----------------------------------------------------------------------------------------


def sample_metadata() -> Metadata:
    return Metadata(
        {
            "patient_id": {"sdtype": "id", "regex_format": "P[0-9]{4}"},
            "age": {"sdtype": "numerical", "computer_representation": "Int64", "transformer": "my_plugin"},
            "visit": {"sdtype": "datetime", "datetime_format": "%Y-%m-%d"},
            "sex": {"sdtype": "categorical", "transformer": "rare_pooling", "options": {"min_count": 3}},
            "smoker": {"sdtype": "boolean"},
            "icd10": {"sdtype": "icd10_code"},  # a plugin sdtype
        },
        primary_key="patient_id",
    )


def test_save_load_round_trip_keeps_extra_keys(tmp_path):
    original = sample_metadata()
    path = tmp_path / "metadata.json"
    original.save(path)
    loaded = Metadata.load(str(path))
    assert loaded == original
    assert loaded.columns["sex"]["options"] == {"min_count": 3}
    assert loaded.columns["icd10"] == {"sdtype": "icd10_code"}


def test_detected_metadata_round_trips(tmp_path):
    data = pd.DataFrame({"id": np.arange(N), "x": np.linspace(0, 1, N), "s": ["a", "b"] * (N // 2)})
    detected = Metadata.detect(data)
    detected.save(tmp_path / "m.json")
    assert Metadata.load(tmp_path / "m.json") == detected


def test_to_dict_is_sdv_single_table_format():
    d = sample_metadata().to_dict()
    assert list(d) == ["METADATA_SPEC_VERSION", "primary_key", "columns"]
    assert d["METADATA_SPEC_VERSION"] == "SINGLE_TABLE_V1"
    assert d["primary_key"] == "patient_id"
    assert "primary_key" not in Metadata({"x": {"sdtype": "boolean"}}).to_dict()


def test_to_dict_is_a_copy():
    metadata = sample_metadata()
    metadata.to_dict()["columns"]["sex"]["options"]["min_count"] = 99
    assert metadata.columns["sex"]["options"] == {"min_count": 3}


def test_reads_sdv_multi_table_file_with_one_table(tmp_path):
    path = tmp_path / "sdv.json"
    path.write_text(json.dumps({
        "METADATA_SPEC_VERSION": "V1",
        "tables": {"pbc": {
            "primary_key": "id",
            "columns": {
                "id": {"sdtype": "id"},
                "bili": {"sdtype": "numerical", "computer_representation": "Float"},
                "dob": {"sdtype": "datetime", "datetime_format": "%Y%m%d"},
            },
        }},
        "relationships": [],
    }))
    metadata = Metadata.load(path)
    assert metadata.primary_key == "id"
    assert metadata.columns["dob"] == {"sdtype": "datetime", "datetime_format": "%Y%m%d"}
    assert list(metadata.columns) == ["id", "bili", "dob"]


def test_rejects_multi_table_file_with_two_tables():
    d = {
        "METADATA_SPEC_VERSION": "V1",
        "tables": {"patients": {"columns": {}}, "visits": {"columns": {}}},
        "relationships": [],
    }
    with pytest.raises(MetadataError, match="one table") as raised:
        Metadata.from_dict(d)
    assert "'patients'" in str(raised.value) and "'visits'" in str(raised.value)


def test_sdv_pii_sdtypes_are_read_as_id_and_round_trip(tmp_path):
    metadata = Metadata.from_dict({
        "METADATA_SPEC_VERSION": "SINGLE_TABLE_V1",
        "columns": {
            "email": {"sdtype": "email", "pii": True},
            "phone": {"sdtype": "phone_number"},
            "company": {"sdtype": "company", "pii": True},  # a Faker function SDV marks PII
            "city": {"sdtype": "city", "pii": False},  # SDV learns non-PII values
        },
    })
    assert metadata.columns["email"] == {"sdtype": "id", "pii": True, "pii_sdtype": "email"}
    assert metadata.columns["phone"] == {"sdtype": "id", "pii_sdtype": "phone_number"}
    assert metadata.columns["company"]["sdtype"] == "id"
    assert metadata.columns["city"] == {"sdtype": "categorical", "pii": False, "pii_sdtype": "city"}
    metadata.save(tmp_path / "m.json")
    assert Metadata.load(tmp_path / "m.json") == metadata


def test_legacy_sdv_metadata_is_rejected_with_a_hint():
    with pytest.raises(MetadataError, match="legacy SDV 0.x"):
        Metadata.from_dict({"fields": {"age": {"type": "numerical"}}})


@pytest.mark.parametrize("spec", [{}, {"sdtype": None}, {"sdtype": 3}, {"sdtype": ""}, "numerical"])
def test_from_dict_rejects_bad_sdtype_naming_the_column(spec):
    with pytest.raises(MetadataError, match="'age'"):
        Metadata.from_dict({"columns": {"age": spec}})


def test_from_dict_rejects_unknown_primary_key_and_version():
    with pytest.raises(MetadataError, match="primary_key 'nope'"):
        Metadata.from_dict({"primary_key": "nope", "columns": {"a": {"sdtype": "id"}}})
    with pytest.raises(MetadataError, match="METADATA_SPEC_VERSION"):
        Metadata.from_dict({"METADATA_SPEC_VERSION": "V9", "columns": {}})


def test_load_missing_file_names_the_path(tmp_path):
    path = tmp_path / "absent.json"
    with pytest.raises(MetadataError, match="absent.json"):
        Metadata.load(path)


def test_load_invalid_json_names_path_and_position(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"columns": {\n  "a": {"sdtype": "id"},\n}}')
    with pytest.raises(MetadataError) as raised:
        Metadata.load(path)
    message = str(raised.value)
    assert "broken.json" in message
    assert "line 3 column 1" in message


def test_load_invalid_metadata_names_the_path(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"columns": {"a": {}}}')
    with pytest.raises(MetadataError, match=r"bad\.json.*'a'"):
        Metadata.load(path)


def test_save_unserialisable_extra_key_is_a_metadata_error(tmp_path):
    metadata = Metadata({"a": {"sdtype": "id", "made": pd.Timestamp("2021-01-01")}})
    with pytest.raises(MetadataError, match="JSON"):
        metadata.save(tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists()


# --- editing, validation, equality ---------------------------------------------------------------


def test_update_column_replaces_spec_when_sdtype_given_and_returns_self():
    metadata = sample_metadata()
    assert metadata.update_column("age", sdtype="categorical") is metadata
    assert metadata.columns["age"] == {"sdtype": "categorical"}


def test_update_column_without_sdtype_merges():
    metadata = sample_metadata()
    metadata.update_column("age", computer_representation="Float")
    assert metadata.columns["age"] == {
        "sdtype": "numerical", "computer_representation": "Float", "transformer": "my_plugin"
    }


def test_update_column_accepts_plugin_and_pii_sdtypes():
    metadata = sample_metadata()
    metadata.update_column("sex", sdtype="my_sdtype", level=2)
    metadata.update_column("patient_id", sdtype="email")
    assert metadata.columns["sex"] == {"sdtype": "my_sdtype", "level": 2}
    assert metadata.columns["patient_id"] == {"sdtype": "id", "pii_sdtype": "email"}


@pytest.mark.parametrize("spec", [{"sdtype": None}, {"sdtype": 1}, {"sdtype": ""}])
def test_update_column_rejects_bad_sdtype(spec):
    metadata = sample_metadata()
    with pytest.raises(MetadataError, match="'age'"):
        metadata.update_column("age", **spec)
    assert metadata.columns["age"]["sdtype"] == "numerical"


def test_update_column_rejects_bad_representation_format_and_unknown_column():
    metadata = sample_metadata()
    with pytest.raises(MetadataError, match="computer_representation"):
        metadata.update_column("age", computer_representation="int")
    with pytest.raises(MetadataError, match="datetime_format"):
        metadata.update_column("visit", datetime_format="YYYY-MM-DD")
    with pytest.raises(MetadataError, match="no column 'weight'"):
        metadata.update_column("weight", sdtype="numerical")


def test_validate_accepts_matching_table():
    data = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})
    Metadata({"a": {"sdtype": "numerical"}, "b": {"sdtype": "categorical"}}).validate(data)


def test_validate_lists_every_missing_and_extra_column():
    metadata = sample_metadata()
    data = pd.DataFrame({"patient_id": [1], "age": [30], "height": [170], "weight": [70]})
    with pytest.raises(MetadataError) as raised:
        metadata.validate(data)
    message = str(raised.value)
    for missing in ("'visit'", "'sex'", "'smoker'", "'icd10'"):
        assert missing in message
    assert "'height'" in message and "'weight'" in message
    assert "4 columns in the metadata but not in the table" in message
    assert "2 columns in the table but not in the metadata" in message


def test_equality_and_repr():
    assert sample_metadata() == sample_metadata()
    assert sample_metadata() != sample_metadata().update_column("smoker", sdtype="categorical")
    assert sample_metadata() != Metadata(sample_metadata().columns)  # primary key differs
    assert repr(sample_metadata()) == (
        "Metadata(6 columns: 1 numerical, 1 categorical, 1 boolean, 1 datetime, 1 id, 1 icd10_code)"
    )
    assert repr(Metadata({"a": {"sdtype": "id"}})) == "Metadata(1 column: 1 id)"


def test_constructor_copies_specs():
    spec = {"sdtype": "categorical", "options": {"min_count": 3}}
    metadata = Metadata({"sex": spec})
    spec["options"]["min_count"] = 0
    assert metadata.columns["sex"]["options"] == {"min_count": 3}


def test_text_held_as_numpy_strings_is_detected_like_text():
    rng = np.random.default_rng(0)
    rows = [{"ward": rng.choice(["icu", "surgery"]), "visit": str(rng.choice(["2021-01-02", "2021-03-04"]))}
            for _ in range(60)]
    frame = pd.DataFrame(rows)
    assert isinstance(frame["ward"].iloc[0], np.str_)
    metadata = Metadata.detect(frame)
    assert metadata.columns["ward"]["sdtype"] == "categorical"
    assert metadata.columns["visit"]["sdtype"] == "datetime"


def test_a_sparse_coded_column_is_detected_as_numbers_and_fits() -> None:
    """A numeric column with few distinct values is a coded category, unless no value is seen often
    enough to be kept: every level would be pooled away and the fit refused (medicaldata::opt's
    BL.Drks.Day has 9 values in 658 rows)."""
    from synthgen.synthesizers.tabular import TabularSynthesizer

    rng = np.random.default_rng(0)
    sparse = pd.Series(np.nan, index=range(300))
    sparse[:9] = [1, 2, 3, 4, 2, 6, 7, 3, 1]
    table = pd.DataFrame({"drinks": sparse, "stage": rng.integers(1, 4, 300), "lab": rng.normal(5, 1, 300)})
    columns = Metadata.detect(table).columns
    assert columns["drinks"]["sdtype"] == "numerical" and columns["stage"]["sdtype"] == "categorical"
    sample = TabularSynthesizer(seed=0, steps=20, progress=False).fit(table).sample(200, seed=1)
    assert sample["drinks"].isna().mean() > 0.5  # mostly gaps, as in the table
