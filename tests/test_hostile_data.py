"""Input a hostile or careless user gives synthgen (issue 18, data half): every case is met where the
user meets it, on the command line: the right kind or a one-line error naming the column or value,
exit code 1, and no output file left behind."""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from synthgen import Metadata, TabularSynthesizer, load
from synthgen.cli.main import main
from synthgen.data.table import TableTransformer

N = 60
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-")


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def refused(result, folder: Path, *words: str) -> None:
    """Exit 1 with one line naming ``words``; nothing but the inputs left in ``folder``."""
    assert result.exit_code == 1, result.output
    assert not isinstance(result.exception, SystemExit) or result.exception.code == 1
    message = result.output.strip()
    assert message.startswith("Error: ") and "\n" not in message and "Traceback" not in message, message
    for word in words:
        assert word in message, (word, message)
    assert not [p.name for p in folder.iterdir() if p.suffix in (".sgz", ".json", ".parquet", ".partial")
                or p.name.endswith(".partial") or p.name.startswith("out")]


def base(n: int = N, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"age": rng.integers(20, 90, n), "sex": rng.choice(["F", "M"], n)})


def detected(folder: Path, csv: Path) -> dict[str, dict]:
    out = folder / "meta.json"
    result = run("metadata", csv, "-o", out)
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())["columns"]


def fit_and_sample(folder: Path, csv: Path, *extra: str, rows: int = 200) -> pd.DataFrame:
    model, out = folder / "m.sgz", folder / "s.csv"
    result = run("fit", csv, "-o", model, "--steps", "5", "--seed", "1", "--quiet", *extra)
    assert result.exit_code == 0, result.output
    result = run("sample", model, "-n", rows, "-o", out, "--seed", "2", "--quiet")
    assert result.exit_code == 0, result.output
    return pd.read_csv(out, keep_default_na=True)


def warnings_about(caplog, column: str) -> str:
    return " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and repr(column) in r.getMessage())


# ---------------------------------------------------------------- 1. unsure detection says so
def test_dates_in_mixed_formats_stay_dates(tmp_path: Path, caplog) -> None:
    days = pd.date_range("2020-01-01", periods=N, freq="D")
    visit = [d.strftime("%Y-%m-%d") if i % 2 else d.strftime("%d/%m/%Y") for i, d in enumerate(days)]
    csv = tmp_path / "mixed.csv"
    base().assign(visit=visit).to_csv(csv, index=False)
    with caplog.at_level(logging.WARNING):
        spec = detected(tmp_path, csv)["visit"]
    assert spec["sdtype"] == "datetime", spec
    assert "%Y-%m-%d" in warnings_about(caplog, "visit") and "%d/%m/%Y" in warnings_about(caplog, "visit")
    sample = fit_and_sample(tmp_path, csv)["visit"]
    assert not sample.astype(str).str.match(UUID).any()
    parsed = pd.to_datetime(sample, format=spec["datetime_format"], errors="coerce")
    assert parsed.notna().all() and parsed.between(days[0], days[-1]).all()


def test_iso_dates_with_one_bad_cell_are_dates_with_a_warning(tmp_path: Path, caplog) -> None:
    visit = list(pd.date_range("2020-01-01", periods=N, freq="D").strftime("%Y-%m-%d"))
    visit[5] = "not a date"
    csv = tmp_path / "iso.csv"
    base().assign(visit=visit).to_csv(csv, index=False)
    with caplog.at_level(logging.WARNING):
        spec = detected(tmp_path, csv)["visit"]
    assert spec == {"sdtype": "datetime", "datetime_format": "%Y-%m-%d"}
    said = warnings_about(caplog, "visit")
    assert "1 of 60" in said and "missing" in said and "not a date" not in said  # cells are not shown
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        sample = fit_and_sample(tmp_path, csv)["visit"]
    assert "1 of 60" in warnings_about(caplog, "visit")
    present = sample.dropna()
    assert len(present) > 0 and pd.to_datetime(present, format="%Y-%m-%d", errors="coerce").notna().all()


def test_numbers_with_one_stray_string_are_numbers_with_a_warning(tmp_path: Path, caplog) -> None:
    lab = [f"{v:.2f}" for v in np.random.default_rng(1).normal(100, 10, N)]
    lab[3] = "n/a?"
    csv = tmp_path / "lab.csv"
    base().assign(lab=lab).to_csv(csv, index=False)
    with caplog.at_level(logging.WARNING):
        spec = detected(tmp_path, csv)["lab"]
    assert spec == {"sdtype": "numerical", "computer_representation": "Float"}
    said = warnings_about(caplog, "lab")
    assert "1 of 60" in said and "missing" in said
    sample = fit_and_sample(tmp_path, csv)["lab"]
    assert pd.api.types.is_float_dtype(sample) and sample.dropna().between(50, 150).all()


def test_a_column_mostly_not_numbers_stays_categorical(tmp_path: Path) -> None:
    words = np.random.default_rng(2).choice(["low", "high", "7"], N)
    csv = tmp_path / "words.csv"
    base().assign(level=words).to_csv(csv, index=False)
    assert detected(tmp_path, csv)["level"] == {"sdtype": "categorical"}


# ---------------------------------------------------------------- 2. CSV reading
@pytest.mark.parametrize("separator", [";", "\t", "|"])
def test_other_separators_are_sniffed(tmp_path: Path, separator: str, caplog) -> None:
    csv = tmp_path / "table.csv"
    table = base().assign(score=np.linspace(0, 1, N))
    table.to_csv(csv, sep=separator, index=False)
    with caplog.at_level(logging.WARNING):
        columns = detected(tmp_path, csv)
    assert list(columns) == ["age", "sex", "score"]
    assert repr(separator) in " ".join(r.getMessage() for r in caplog.records)
    assert fit_and_sample(tmp_path, csv).shape == (200, 3)


def test_a_comma_csv_with_semicolons_in_its_text_is_read_by_commas(tmp_path: Path) -> None:
    csv = tmp_path / "notes.csv"
    base().assign(note=np.random.default_rng(3).choice(["a;b", "c;d;e"], N)).to_csv(csv, index=False)
    assert list(detected(tmp_path, csv)) == ["age", "sex", "note"]


def test_duplicate_header_names_are_refused(tmp_path: Path) -> None:
    csv = tmp_path / "dup.csv"
    csv.write_text("a,a,b\n" + "".join(f"{i},{2 * i},x{i % 3}\n" for i in range(30)))
    refused(run("fit", csv, "-o", tmp_path / "m.sgz", "--steps", "2", "--quiet"), tmp_path, "'a'", "duplicate")
    refused(run("metadata", csv, "-o", tmp_path / "meta.json"), tmp_path, "'a'", "duplicate")


@pytest.mark.parametrize("header", [",a,b", "a,,b", "a, ,b"])
def test_empty_header_names_are_refused(tmp_path: Path, header: str) -> None:
    csv = tmp_path / "blank.csv"
    csv.write_text(header + "\n" + "".join(f"{i},{2 * i},x{i % 3}\n" for i in range(30)))
    position = [name.strip() for name in header.split(",")].index("") + 1
    refused(run("fit", csv, "-o", tmp_path / "m.sgz", "--steps", "2", "--quiet"), tmp_path, f"column {position}", "name")


# ---------------------------------------------------------------- 3. rare levels
def test_a_genuine_other_category_is_not_merged_with_the_pooled_values(tmp_path: Path) -> None:
    group = np.random.default_rng(4).choice(["A", "B", "Other"], N, p=[0.4, 0.3, 0.3]).astype(object)
    group[:2] = "Zebra"  # rare: pooled
    csv = tmp_path / "other.csv"
    base().assign(grp=group).to_csv(csv, index=False)
    fit_and_sample(tmp_path, csv)
    categories = load(tmp_path / "m.sgz").table_.transformer("grp").categories
    assert categories.count("Other") == 1 and len(categories) == 4 and "Zebra" not in categories
    out = tmp_path / "only_other.csv"
    result = run("sample", tmp_path / "m.sgz", "-n", "50", "-c", "grp=Other", "-o", out, "--seed", "1", "--quiet")
    assert result.exit_code == 0, result.output
    assert (pd.read_csv(out)["grp"] == "Other").all()


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_a_numeric_coded_column_keeps_its_type(tmp_path: Path, suffix: str) -> None:
    stays = np.random.default_rng(5).choice(np.arange(6), N)
    stays[:3] = [6, 7, 8]  # each seen once: top-coded into 5, never the string 'Other'
    csv = tmp_path / "stays.csv"
    base().assign(stay=stays).to_csv(csv, index=False)
    model, out = tmp_path / "m.sgz", tmp_path / f"s{suffix}"
    assert run("fit", csv, "-o", model, "--steps", "5", "--seed", "1", "--quiet").exit_code == 0
    result = run("sample", model, "-n", "300", "-o", out, "--seed", "2", "--quiet")
    assert result.exit_code == 0, result.output
    sample = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out)
    assert sample["stay"].dtype == np.int64
    assert set(sample["stay"]) <= set(range(6))


def test_float_codes_with_a_rare_level_keep_their_type() -> None:
    column = pd.Series(np.r_[np.repeat([1.0, 2.0, 3.0], 10), 9.5, np.nan, np.nan])
    table = base(len(column)).assign(code=column)
    metadata = Metadata.detect(table)
    assert metadata.columns["code"]["sdtype"] == "categorical"
    transformer = TableTransformer(metadata).fit(table, np.random.default_rng(0)).transformer("code")
    decoded = transformer.inverse(transformer.transform(column, np.random.default_rng(0)), np.random.default_rng(0))
    assert decoded.dtype == np.float64
    assert decoded.iloc[30] == 3.0 and decoded.iloc[31:].isna().all()  # 9.5 top-coded into 3.0


# ---------------------------------------------------------------- 4. extreme values, one row
@pytest.mark.parametrize("value, shown", [(1e300, "1e+300"), (-1e300, "-1e+300"), (float("inf"), "inf")])
def test_extreme_values_are_refused_before_training(tmp_path: Path, value: float, shown: str) -> None:
    x = np.random.default_rng(6).normal(0, 1, N)
    x[7] = value
    csv = tmp_path / "extreme.csv"
    base().assign(x=x).to_csv(csv, index=False)
    refused(run("fit", csv, "-o", tmp_path / "m.sgz", "--steps", "2", "--quiet"), tmp_path, "'x'", shown)


def test_a_one_row_table_is_refused_before_training(tmp_path: Path) -> None:
    csv = tmp_path / "one.csv"
    base(1).to_csv(csv, index=False)
    refused(run("fit", csv, "-o", tmp_path / "m.sgz", "--steps", "2", "--quiet"), tmp_path, "1 row")


# ---------------------------------------------------------------- 5. chunking does not change the rows
@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> Path:
    from conftest import make_patients

    folder = tmp_path_factory.mktemp("chunks")
    make_patients(300).to_csv(folder / "patients.csv", index=False)
    result = run("fit", folder / "patients.csv", "-o", folder / "m.sgz", "--steps", "5", "--seed", "3", "--quiet")
    assert result.exit_code == 0, result.output
    return folder / "m.sgz"


@pytest.mark.parametrize("condition, rows, chunks", [
    ([], 9_000, ["1000", "4096", "100000"]),  # more than one 8,192-row block
    (["-c", "sex=F"], 500, ["1", "37", "100000"]),
    (["-c", "age=60"], 200, ["7", "100000"]),  # rejection over several blocks
])
def test_sample_does_not_depend_on_chunk_rows(small_model: Path, tmp_path: Path, condition: list[str], rows: int,
                                              chunks: list[str]) -> None:
    outputs = []
    for chunk in chunks:
        out = tmp_path / f"s{chunk}.csv"
        result = run("sample", small_model, "-n", rows, "-o", out, "--seed", "5", "--chunk-rows", chunk, "--quiet", *condition)
        assert result.exit_code == 0, result.output
        outputs.append(out.read_bytes())
    assert all(o == outputs[0] for o in outputs[1:])
    sample = pd.read_csv(tmp_path / f"s{chunks[-1]}.csv")
    assert len(sample) == rows and sample.drop_duplicates().shape[0] > rows // 2


def test_a_negative_sampling_seed_is_refused(small_model: Path, tmp_path: Path) -> None:
    refused(run("sample", small_model, "-n", "10", "-o", tmp_path / "out.csv", "--seed", "-1", "--quiet"), tmp_path, "-1")


# ---------------------------------------------------------------- 6. many levels
def _many_levels(n: int, levels: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return base(n, seed).assign(code=[f"L{i:04d}" for i in rng.integers(0, levels, n)])


def test_a_column_of_thousands_of_levels_has_a_bounded_encoding(caplog) -> None:
    table = _many_levels(30_000, 5_000)
    with caplog.at_level(logging.WARNING):
        encoded = TableTransformer(Metadata.detect(table)).fit(table, np.random.default_rng(0))
    kept = len(encoded.transformer("code").categories)
    assert 100 <= kept <= 501  # ~3,600 levels are seen 5+ times; the encoding keeps the most frequent
    said = warnings_about(caplog, "code")
    assert "500" in said and "pooled" in said


def test_a_native_condition_is_met_without_rejection() -> None:
    table = _many_levels(3_000, 300, seed=1)
    model = TabularSynthesizer(seed=0, steps=1, progress=False, calibrate=False).fit(table)
    level = model.table_.transformer("code").categories[-5]
    generated = []
    forward = model.generator_.forward
    model.generator_.forward = lambda noise, cond: generated.append(len(noise)) or forward(noise, cond)
    sample = model.sample(500, conditions={"code": level}, seed=0)
    assert (sample["code"] == level).all() and len(sample) == 500
    assert sum(generated) < 2 * 1024  # the rows asked for, in network-sized pieces: nothing rejected


def test_the_generator_trains_on_a_batch_of_one_row() -> None:
    # DP's Poisson sampling can draw a batch of one row: BatchNorm has no batch statistics then.
    import torch

    from synthgen.models.tabular_gan import Generator

    generator = Generator(4, 2, (8, 8), 3).train()
    before = [block.norm.running_mean.clone() for block in generator.body]
    out = generator(torch.randn(1, 4), torch.zeros(1, 2))
    out.sum().backward()
    assert out.shape == (1, 3) and torch.isfinite(out).all()
    assert all(torch.equal(b, block.norm.running_mean) for b, block in zip(before, generator.body))


def test_readable_table_makes_the_stray_cells_missing_for_code_that_reads_the_table_first() -> None:
    from synthgen.data.table import readable_table

    table = base(30).assign(lab=[str(v) for v in range(29)] + ["<5"])
    read = readable_table(Metadata.detect(table), table)
    assert read["lab"].isna().tolist() == [False] * 29 + [True] and read["lab"][3] == "3"
    assert table["lab"].iloc[-1] == "<5"  # the caller's table is left as it was
