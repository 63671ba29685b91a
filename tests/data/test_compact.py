"""The compact encoded table: the same dense rows as the dense encoding, in a fraction of the bytes."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from synthgen.data.base import Span
from synthgen.data.compact import CompactRows, CompactTable, code_dtype
from synthgen.data.missing import MissingIndicator
from synthgen.data.table import TableTransformer
from synthgen.metadata import Metadata
from synthgen.models.tabular_gan import ConditionSampler, SpanLayout


def _table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "age": rng.normal(60, 12, n).round(),
        "lab": np.where(rng.random(n) < 0.1, np.nan, rng.lognormal(1, 0.5, n)),
        "sex": rng.choice(["F", "M"], n),
        "ward": rng.choice([f"w{i}" for i in range(300)], n),  # 300 levels: an int16 code
        "smoker": rng.random(n) < 0.3,
        "admitted": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D"),
    })
    return frame


def _fitted(frame: pd.DataFrame) -> TableTransformer:
    return TableTransformer(Metadata.detect(frame), {"min_category_count": 1}).fit(frame, np.random.default_rng(1))


def test_expansion_is_the_dense_encoding_bit_for_bit_in_any_chunking() -> None:
    frame = _table(1_000)
    table = _fitted(frame)
    dense = table.transform(frame, np.random.default_rng(2))
    compact = CompactTable(table.spans_, len(frame))
    for start in range(0, len(frame), 77):
        compact.put(start, dense[start: start + 77])
    assert compact.dense_spans == []
    assert compact.to_dense().tobytes() == dense.tobytes()
    rows = torch.randint(len(frame), (256,), generator=torch.Generator().manual_seed(0))
    batch = CompactRows.from_table(compact).index_select(0, rows)
    assert batch.dtype == torch.float32 and batch.numpy().tobytes() == dense[rows.numpy()].tobytes()


def test_a_table_within_one_chunk_encodes_as_transform_does() -> None:
    frame = _table(500)
    table = _fitted(frame)
    dense = table.transform(frame, np.random.default_rng(3))
    compact = table.transform_compact(frame, np.random.default_rng(3), chunk_rows=500)
    assert compact.to_dense().tobytes() == dense.tobytes()


def test_transform_compact_never_encodes_more_than_a_chunk_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = _table(1_000)
    table = _fitted(frame)
    seen: list[int] = []
    original = TableTransformer.transform
    monkeypatch.setattr(TableTransformer, "transform", lambda self, data, rng: seen.append(len(data)) or original(self, data, rng))
    compact = table.transform_compact(frame, np.random.default_rng(3), chunk_rows=300)
    assert seen == [300, 300, 300, 100] and compact.complete


def test_bytes_per_row_are_the_codes_and_the_floats_not_the_dense_width() -> None:
    frame = _table(1_000)
    table = _fitted(frame)
    compact = table.transform_compact(frame, np.random.default_rng(0))
    tanh = sum(s.width for s in table.spans_ if s.activation == "tanh")
    code_bytes = sum(code_dtype(s.width).itemsize for s in table.spans_ if s.activation == "softmax")
    assert compact.nbytes == len(frame) * (4 * tanh + code_bytes)
    dense_bytes = 4 * table.width_
    assert compact.nbytes / len(frame) < dense_bytes / 20  # 300 wards alone are 1,200 dense bytes a row
    assert {m.dtype for m in compact.code_matrices()} == {np.dtype(np.uint8), np.dtype(np.int16)}


@pytest.mark.parametrize(("width", "dtype"), [(2, np.uint8), (256, np.uint8), (257, np.int16), (2**15, np.int16),
                                              (2**15 + 1, np.int32)])
def test_code_dtype_is_the_narrowest_that_numbers_the_span(width: int, dtype: type) -> None:
    assert code_dtype(width) == np.dtype(dtype)


def test_a_softmax_span_that_is_not_one_hot_is_kept_as_floats_exactly() -> None:
    spans = [Span(1, "tanh"), Span(3, "softmax"), Span(2, "softmax", True)]
    dense = np.zeros((10, 6), dtype=np.float32)
    dense[:, 0] = np.linspace(-1, 1, 10)
    dense[np.arange(10), 1 + np.arange(10) % 3] = 1
    dense[np.arange(10), 4 + np.arange(10) % 2] = 1
    dense[7, 1:4] = [0.2, 0.5, 0.3]  # a soft label in the second chunk
    compact = CompactTable(spans, 10)
    compact.put(0, dense[:5])
    compact.put(5, dense[5:])
    assert compact.dense_spans == [1]
    assert compact.to_dense().tobytes() == dense.tobytes()
    assert compact.nbytes == 10 * (4 * 1 + 4 * 3 + 1 + 1)  # the unused code column is still allocated


def test_chunks_out_of_order_are_refused() -> None:
    compact = CompactTable([Span(2, "softmax")], 4)
    with pytest.raises(ValueError, match="does not follow row 0"):
        compact.put(2, np.eye(2, dtype=np.float32))


def test_condition_sampler_from_compact_rows_equals_the_dense_one() -> None:
    frame = _table(2_000)
    table = _fitted(frame)
    compact = table.transform_compact(frame, np.random.default_rng(0))
    layout = SpanLayout(table.spans_, [c.data_offset for c in table.conditional_columns_])
    assert len(layout.cond_widths) >= 3
    from_dense = ConditionSampler.from_data(layout, torch.from_numpy(compact.to_dense()))
    from_compact = ConditionSampler.from_data(layout, CompactRows.from_table(compact))
    assert torch.equal(from_dense.counts, from_compact.counts)
    assert torch.equal(from_dense.rows_by_category, from_compact.rows_by_category)
    assert from_compact.rows_by_category.dtype == torch.int32
    draws = [s.for_training(512, torch.Generator().manual_seed(4)) for s in (from_dense, from_compact)]
    assert all(torch.equal(a, b) for a, b in zip(draws[0], draws[1]))


def test_a_share_of_rows_expands_to_the_same_rows() -> None:
    frame = _table(301)
    table = _fitted(frame)
    compact = table.transform_compact(frame, np.random.default_rng(0))
    share = CompactRows.from_table(compact, slice(1, None, 2))
    assert share.shape == (150, table.width_)
    dense = compact.to_dense()
    assert share.index_select(0, torch.arange(150)).numpy().tobytes() == dense[1::2].tobytes()


def test_sampled_fit_learns_numbers_from_the_sample_and_levels_and_gaps_from_every_row() -> None:
    frame = _table(2_000)
    sample = np.arange(100)
    frame.loc[1_500, "sex"] = "X"  # a level, and a gap, only outside the sample
    frame.loc[1_501, "age"] = np.nan
    table = TableTransformer(Metadata.detect(frame), {"min_category_count": 1}).fit(
        frame, np.random.default_rng(1), sample_rows=sample)
    assert "X" in table.transformer("sex").categories
    assert isinstance(table.transformer("age"), MissingIndicator)
    lab = table.transformer("lab").inner
    assert (lab.min_, lab.max_) == (frame["lab"].iloc[sample].min(), frame["lab"].iloc[sample].max())
    assert lab.max_ < frame["lab"].max()
    assert table.transform_compact(frame, np.random.default_rng(2)).complete


def test_span_codes_of_a_span_kept_dense_are_its_arg_max() -> None:
    spans = [Span(1, "tanh"), Span(3, "softmax", True)]
    dense = np.zeros((4, 4), dtype=np.float32)
    dense[:, 1:] = [[0, 1, 0], [0.1, 0.2, 0.7], [1, 0, 0], [0, 0, 1]]
    compact = CompactTable(spans, 4)
    compact.put(0, dense)
    assert compact.dense_spans == [1]
    assert CompactRows.from_table(compact).span_codes(1, 3).tolist() == [1, 2, 0, 2]
