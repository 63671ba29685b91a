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
