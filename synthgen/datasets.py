"""Example tables that ship inside installed packages, so demos and tests never download."""
from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from synthgen.choices import EXAMPLE_TABLES


def _breast_cancer() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).frame


def _diabetes() -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    return load_diabetes(as_frame=True, scaled=False).frame


EXAMPLES: dict[str, Callable[[], pd.DataFrame]] = dict(zip(EXAMPLE_TABLES, (_breast_cancer, _diabetes)))


def load_example(name: str, seed: int = 0, holdout: float = 0.2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training split, holdout split) of an example table."""
    from sklearn.model_selection import train_test_split

    frame = EXAMPLES[name]()
    train, test = train_test_split(frame, test_size=holdout, random_state=seed)
    return train.reset_index(drop=True), test.reset_index(drop=True)
