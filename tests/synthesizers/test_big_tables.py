"""Big-table settings of the tabular fit: transformers fitted on a recorded sample of rows."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synthgen.errors import InvalidArgumentError
from synthgen.synthesizers.tabular import TabularSynthesizer


def _frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.normal(size=n), "group": rng.choice(["a", "b", "c"], n)})


def test_a_table_above_the_sample_size_records_it_and_a_smaller_one_does_not() -> None:
    sampled = TabularSynthesizer(seed=1, steps=2, progress=False, calibrate=False, transformer_sample_rows=200)
    assert sampled.fit(_frame(600)).training_["transformer_sample_rows"] == 200
    whole = TabularSynthesizer(seed=1, steps=2, progress=False, calibrate=False, transformer_sample_rows=600)
    assert "transformer_sample_rows" not in whole.fit(_frame(600)).training_
    assert len(sampled.sample(50, seed=2)) == 50


def test_a_sample_size_below_one_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="transformer_sample_rows must be >= 1"):
        TabularSynthesizer(seed=1, steps=2, progress=False, transformer_sample_rows=0).fit(_frame(50))


def test_fit_trains_on_compact_rows_not_a_dense_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    import synthgen.synthesizers.tabular as tabular
    from synthgen.data.compact import CompactRows

    seen = []
    train = tabular.train_gan
    monkeypatch.setattr(tabular, "train_gan", lambda *args, **kwargs: seen.append(args[3]) or train(*args, **kwargs))
    model = TabularSynthesizer(seed=1, steps=2, progress=False, calibrate=False).fit(_frame(300))
    (data,) = seen
    assert isinstance(data, CompactRows) and data.shape == (300, model.table_.width_)
    assert data.nbytes == 300 * (4 + 2)  # x: one float32 value and a mode code; group: one code
