"""Property: any small table, however odd, goes through detect → fit → save → load → sample →
evaluate, or stops with a synthgen error (a :class:`SynthgenError`), never another exception.

Tables are 1-5 rows of mixed kinds with gaps, extreme floats (±1e300, inf, subnormal), text that
spells numbers, dates or ``Other``, and odd column names. The example count is bounded for CI.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synthgen import Metadata, TabularSynthesizer, evaluate, load
from synthgen.errors import SynthgenError

FLOATS = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from([np.nan, 1e300, -1e300, np.inf, -np.inf, 5e-324, 0.0, -0.0, 1e100, 2.0**53]),
)
TEXT = st.one_of(
    st.sampled_from(["Other", "a", "b", "", " ", "n/a", "1", "2.5", "2021-03-04", "04/03/2021", "x=y", "é"]),
    st.text(max_size=4),
)
CELLS = {
    "int": st.integers(-(2**40), 2**40),
    "small_int": st.integers(0, 8),
    "float": FLOATS,
    "text": st.one_of(TEXT, st.none()),
    "bool": st.one_of(st.booleans(), st.none()),
    "date": st.one_of(st.dates().map(lambda d: d.strftime("%Y-%m-%d")), st.none(), st.just("soon")),
    "mixed": st.one_of(st.integers(0, 3), TEXT),
}
NAMES = st.one_of(st.sampled_from(["id", "x=y", " ", "a.1", "Unnamed: 0", "Other", "patient_id", "日付"]),
                  st.text(min_size=1, max_size=6))


@st.composite
def tables(draw) -> pd.DataFrame:
    rows = draw(st.integers(1, 5))
    names = draw(st.lists(NAMES, min_size=1, max_size=4, unique=True))
    columns = {}
    for name in names:
        kind = draw(st.sampled_from(sorted(CELLS)))
        cells = draw(st.lists(CELLS[kind], min_size=rows, max_size=rows))
        columns[name] = pd.Series(cells, dtype=object if kind in ("text", "date", "mixed", "bool") else None)
    return pd.DataFrame(columns)


def _pipeline(table: pd.DataFrame, min_category_count: int) -> None:
    metadata = Metadata.detect(table)
    model = TabularSynthesizer(metadata, seed=0, steps=2, progress=False, min_category_count=min_category_count).fit(table)
    with tempfile.TemporaryDirectory() as folder:
        model.save(Path(folder) / "m.sgz")
        model = load(Path(folder) / "m.sgz")
    sample = model.sample(6, seed=1, chunk_rows=4)
    assert list(sample.columns) == list(table.columns) and len(sample) == 6
    evaluate(table, sample, metadata=metadata, progress=False)


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(tables(), st.sampled_from([1, 5]))
def test_any_small_table_fits_or_fails_with_a_synthgen_error(table: pd.DataFrame, min_category_count: int) -> None:
    try:
        _pipeline(table, min_category_count)
    except SynthgenError:
        pass
