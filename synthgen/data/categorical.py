"""One-hot encodings of discrete columns: categorical codes and booleans.

Both declare their one softmax span conditional, so the generator can be asked for rows of a given
level (CTGAN's training-by-sampling). Missing values are a level of their own and round-trip.
"""
from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd

from synthgen.choices import MIN_CATEGORY_COUNT
from synthgen.data.base import ColumnTransformer, Span
from synthgen.data.continuous import int_option
from synthgen.errors import InvalidDataError, UnknownCategoryError

logger = logging.getLogger(__name__)

#: Strings a caller (the CLI) may use to ask for the missing level.
MISSING_WORDS = frozenset({"nan", "none", "null", "na", "<na>", "nat"})
#: How many known levels an UnknownCategoryError lists.
SHOWN_LEVELS = 20
#: Most levels a categorical column keeps by default: its one-hot span is as wide as its levels, and
#: the generator, critic and condition vector grow with it (5,000 levels over 30k rows: 3,580 kept at
#: min_category_count 5, 20 steps in 62 s and a 63 MB model). Less frequent levels are pooled.
MAX_CATEGORIES = 500
BOOLEAN_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def category_keys(column: pd.Series) -> pd.Series:
    """Cells as text, whole numbers without ".0" (1, 1.0 and "1" are one category), so a category
    reads the same in every table; missing cells stay missing."""
    missing = column.isna().to_numpy()
    if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
        numbers = column.astype("Float64")
        if (numbers.dropna() % 1 == 0).all():
            column = numbers.astype("Int64")
    return column.astype(str).mask(missing)


def _is_missing_scalar(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def _native(value: Any) -> Any:
    """A numpy scalar as the equivalent Python scalar, so levels are JSON-serialisable."""
    return value.item() if isinstance(value, np.generic) else value


def _as_number(value: Any) -> float | None:
    """``value`` as a float when it is (or spells) a finite non-boolean number, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return None if math.isnan(number) else number


class _LevelTransformer(ColumnTransformer):
    """One-hot over ``categories`` with a single conditional softmax span.

    Subclasses set ``levels_`` (the non-missing labels, in position order) and ``has_missing_``;
    the missing level follows the labels, and ``categories`` may append more (the rare level).
    """

    handles_missing = True

    @property
    def spans(self) -> list[Span]:
        return [Span(len(self.categories), "softmax", conditional=True)]

    def _one_hot(self, codes: np.ndarray) -> np.ndarray:
        encoded = np.zeros((codes.size, len(self.categories)), dtype=np.float32)
        encoded[np.arange(codes.size), codes] = 1.0
        return encoded

    def _decode(self, data: np.ndarray) -> np.ndarray:
        """The label of each row's arg-max position, as an object array."""
        labels = np.empty(len(self.categories), dtype=object)
        labels[:] = self.categories
        return labels[np.argmax(np.asarray(data), axis=1)]

    def with_missing(self, data: np.ndarray, missing: np.ndarray) -> np.ndarray | None:
        """The missing level where ``missing``; elsewhere the arg-max among the other levels."""
        if not self.has_missing_:
            return None
        forced = np.array(data, dtype=np.float32, copy=True)
        position = self._missing_index()
        forced[missing] = 0.0
        forced[missing, position] = 1.0
        forced[~missing, position] = forced[~missing].min(axis=1, initial=0.0) - 1.0
        return forced

    def _missing_index(self) -> int:
        """Position of the missing level; raises when training saw no missing values."""
        if not self.has_missing_:
            raise UnknownCategoryError("missing values were not seen in training, so they cannot be encoded")
        return len(self.levels_)


class CategoricalTransformer(_LevelTransformer):
    """One-hot encode a categorical column, pooling rare categories.

    Levels are ordered by frequency (descending) then by their string form, so fits are
    deterministic. Categories seen fewer than ``min_category_count`` times are rare, and so are the
    least frequent ones beyond ``max_categories`` levels; rare values are never stored, because a
    rare diagnosis identifies a patient. In a text column they are pooled into one level named
    ``rare_label`` (made distinct from every kept level, so a genuine ``Other`` stays itself). In a
    numeric column (codes, counts) each is merged into the nearest kept value, as top/bottom-coding
    does, so the column keeps its numbers and dtype.
    """

    name = "categorical"

    def __init__(self, min_category_count: int = MIN_CATEGORY_COUNT, rare_label: str = "Other",
                 max_categories: int = MAX_CATEGORIES) -> None:
        self.min_category_count = min_category_count
        self.rare_label = rare_label
        self.max_categories = max_categories

    @classmethod
    def from_metadata(cls, column: dict[str, Any], options: dict[str, Any]) -> CategoricalTransformer:
        source = column if "max_categories" in column else options  # a column may raise its own cap
        return cls(
            min_category_count=int_option(options, "min_category_count", 5),
            rare_label=str(options.get("rare_label", "Other")),
            max_categories=int_option(source, "max_categories", MAX_CATEGORIES),
        )

    def fit(self, column: pd.Series, rng: np.random.Generator) -> CategoricalTransformer:
        if len(column) == 0:
            raise InvalidDataError("cannot fit a categorical column with no rows")
        counts = column.value_counts(dropna=True, sort=False)
        counts = counts[counts > 0]  # a category dtype lists unused categories with count 0
        threshold = self.min_category_count
        frequent = np.sort(counts.to_numpy())[::-1]
        if (frequent >= threshold).sum() > self.max_categories:
            # Raise the bar to the count above the first level past the cap: levels seen equally
            # often are kept or pooled together, never split by their names.
            threshold = int(frequent[self.max_categories]) + 1
            logger.warning(
                "a categorical column has %d levels seen at least %d times; only the %d seen at least %d "
                "times are kept (max_categories %d), the rest are pooled (%d of %d rows)",
                int((frequent >= self.min_category_count).sum()), self.min_category_count,
                int((frequent >= threshold).sum()), threshold, self.max_categories,
                int(frequent[frequent < threshold].sum()), len(column),
            )
        rare = counts.to_numpy() < threshold
        kept = counts[~rare]
        order = np.lexsort((kept.index.astype(str).to_numpy(), -kept.to_numpy()))
        levels = [_native(value) for value in kept.index[order]]
        unsupported = {type(level).__name__ for level in levels if not isinstance(level, (str, int, float))}
        if unsupported:
            raise InvalidDataError(
                f"a categorical column holds values of type {', '.join(sorted(unsupported))}; "
                "convert them to strings or numbers first"
            )
        infinite = [level for level in levels if isinstance(level, float) and math.isinf(level)]
        if infinite:
            raise InvalidDataError(f"a categorical column holds {infinite[0]!r}, which cannot be stored; "
                                   "replace infinite values")
        kind = _dtype_kind(column.dtype)
        merge = bool(rare.any()) and kind in ("int", "float")
        if merge and not levels:
            raise InvalidDataError(
                f"no value of this numeric-coded column is seen {self.min_category_count} times, so none can "
                "be generated; lower min_category_count or declare the column numerical in the metadata"
            )
        self.levels_ = levels
        self.has_missing_ = bool(column.isna().any())
        self.rare_ = bool(rare.any()) and not merge
        self.merge_rare_ = merge
        self.rare_label_ = _distinct_label(self.rare_label, levels)
        self.dtype_ = str(column.dtype)
        self.kind_ = kind
        if isinstance(column.dtype, pd.CategoricalDtype):
            kept_levels = set(levels)
            self.category_order_ = [_native(value) for value in column.cat.categories if value in kept_levels]
            self.ordered_ = bool(column.cat.ordered)
        return self

    @property
    def categories(self) -> list[Any]:
        self._check_fitted("levels_")
        return (
            list(self.levels_)
            + ([self._missing_marker()] if self.has_missing_ else [])
            + ([self.rare_label_] if self.rare_ else [])
        )

    def _missing_marker(self) -> Any:
        return float("nan") if self.kind_ in ("int", "float") else None

    def _is_missing_position(self, index: int) -> bool:
        return self.has_missing_ and index == len(self.levels_)

    def condition_index(self, value: Any) -> int:
        """Position of ``value``: exact match, then same string form, then same number."""
        self._check_fitted("levels_")
        value = _native(value)
        if _is_missing_scalar(value):
            return self._missing_index()
        labels = [(i, label) for i, label in enumerate(self.categories) if not self._is_missing_position(i)]
        number = _as_number(value)
        for matches in (
            lambda label: type(label) is type(value) and label == value,
            lambda label: str(label) == str(value),
            lambda label: number is not None and not isinstance(label, str) and _as_number(label) == number,
        ):
            found = [i for i, label in labels if matches(label)]
            if found:
                return found[0]
        if isinstance(value, str) and value.strip().lower() in MISSING_WORDS and self.has_missing_:
            return len(self.levels_)
        shown = ", ".join(repr(level) for level in self.categories[:SHOWN_LEVELS])
        more = ", ..." if len(self.categories) > SHOWN_LEVELS else ""
        pooled = (
            f"; values seen fewer than {self.min_category_count} times in training were pooled into "
            f"{self.rare_label_!r}"
            if self.rare_
            else f"; values seen fewer than {self.min_category_count} times in training were merged into "
            "the nearest frequent value"
            if self.merge_rare_
            else ""
        )
        raise UnknownCategoryError(f"unknown category {value!r}; known categories: {shown}{more}{pooled}")

    def transform(self, column: pd.Series, rng: np.random.Generator) -> np.ndarray:
        """One-hot codes; values not among the levels go to the rare level, or raise without one."""
        self._check_fitted("levels_")
        missing = column.isna().to_numpy()
        codes = pd.Index(self.levels_, dtype=object).get_indexer(column.astype(object))
        unknown = (codes < 0) & ~missing
        if unknown.any() and self.merge_rare_:
            codes[unknown] = self._nearest(column[unknown])
        elif unknown.any():
            if not self.rare_:
                example = column[unknown].iloc[0]
                raise UnknownCategoryError(
                    f"{int(unknown.sum())} value(s) were not seen in training, e.g. {example!r}"
                )
            codes[unknown] = len(self.categories) - 1
        if missing.any():
            codes[missing] = self._missing_index()
        return self._one_hot(codes)

    def _nearest(self, values: pd.Series) -> np.ndarray:
        """Position of the kept level nearest each (numeric) value; ties go to the smaller level."""
        numbers = pd.to_numeric(values.astype(object), errors="coerce").to_numpy(dtype=np.float64)
        if np.isnan(numbers).any():
            example = values[np.isnan(numbers)].iloc[0]
            raise UnknownCategoryError(f"value {example!r} was not seen in training and is not a number")
        levels = np.array(self.levels_, dtype=np.float64)
        order = np.argsort(levels, kind="stable")
        ordered = levels[order]
        right = np.clip(np.searchsorted(ordered, numbers), 0, len(ordered) - 1)
        left = np.clip(right - 1, 0, len(ordered) - 1)
        take_left = np.abs(numbers - ordered[left]) <= np.abs(ordered[right] - numbers)
        return order[np.where(take_left, left, right)]

    def inverse(self, data: np.ndarray, rng: np.random.Generator) -> pd.Series:
        """Arg-max level, in the training column's dtype where the levels allow it."""
        self._check_fitted("levels_")
        values = pd.Series(self._decode(data), dtype=object)
        if self.kind_ == "category":
            categories = self.category_order_ + ([self.rare_label_] if self.rare_ else [])
            return pd.Series(pd.Categorical(values, categories=categories, ordered=self.ordered_))
        if self.rare_ and self.kind_ in ("int", "float", "bool"):
            return values  # a pooled level's label is a string (models from DP releases): numbers cannot hold it
        return values.astype(self.dtype_)

    def get_state(self) -> dict[str, Any]:
        self._check_fitted("levels_")
        state = {
            "min_category_count": self.min_category_count,
            "rare_label": self.rare_label_,
            "max_categories": self.max_categories,
            "levels": list(self.levels_),
            "has_missing": self.has_missing_,
            "rare": self.rare_,
            "merge_rare": self.merge_rare_,
            "dtype": self.dtype_,
            "kind": self.kind_,
        }
        if self.kind_ == "category":
            state |= {"category_order": list(self.category_order_), "ordered": self.ordered_}
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CategoricalTransformer:
        transformer = cls(min_category_count=state["min_category_count"], rare_label=state["rare_label"],
                          max_categories=state.get("max_categories", MAX_CATEGORIES))
        transformer.levels_ = list(state["levels"])
        transformer.has_missing_ = bool(state["has_missing"])
        transformer.rare_ = bool(state["rare"])
        # States written before rare numeric codes were merged (and DP releases) have neither key.
        transformer.merge_rare_ = bool(state.get("merge_rare", False))
        transformer.rare_label_ = state["rare_label"]
        transformer.dtype_ = state["dtype"]
        transformer.kind_ = state["kind"]
        if transformer.kind_ == "category":
            transformer.category_order_ = list(state["category_order"])
            transformer.ordered_ = bool(state["ordered"])
        return transformer


def _distinct_label(label: str, levels: list[Any]) -> str:
    """``label``, or ``label (pooled)``, ``label (pooled 2)``... : the first not spelled like a kept level."""
    taken = {str(level) for level in levels}
    candidate, n = label, 1
    while candidate in taken:
        candidate = f"{label} (pooled)" if n == 1 else f"{label} (pooled {n})"
        n += 1
    return candidate


def _dtype_kind(dtype: Any) -> str:
    """Coarse kind of a column dtype: what the decoded column must be able to hold."""
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    return "object"


class BooleanTransformer(_LevelTransformer):
    """One-hot encode a True/False column (plus a missing level when training had gaps)."""

    name = "boolean"

    def fit(self, column: pd.Series, rng: np.random.Generator) -> BooleanTransformer:
        if len(column) == 0:
            raise InvalidDataError("cannot fit a boolean column with no rows")
        self._codes(column)  # validates the values
        self.levels_ = [False, True]
        self.has_missing_ = bool(column.isna().any())
        self.nullable_ = isinstance(column.dtype, pd.BooleanDtype)
        return self

    @property
    def categories(self) -> list[Any]:
        self._check_fitted("levels_")
        return [False, True] + ([None] if self.has_missing_ else [])

    def condition_index(self, value: Any) -> int:
        """Position of True/False, also spelled ``"true"``, ``"yes"``, ``"1"`` ... (any case)."""
        self._check_fitted("levels_")
        value = _native(value)
        if _is_missing_scalar(value):
            return self._missing_index()
        if isinstance(value, (bool, int)) and value in (0, 1):
            return int(value)
        if isinstance(value, str):
            word = value.strip().lower()
            if word in BOOLEAN_WORDS:
                return int(BOOLEAN_WORDS[word])
            if word in MISSING_WORDS:
                return self._missing_index()
        known = ", ".join(repr(level) for level in self.categories)
        raise UnknownCategoryError(f"unknown boolean value {value!r}; known: {known}")

    @staticmethod
    def _codes(column: pd.Series) -> np.ndarray:
        """0 for False, 1 for True, 2 for missing; rejects anything else."""
        missing = column.isna().to_numpy()
        present = column[~missing]
        if not present.isin([True, False]).all():
            raise InvalidDataError("a boolean column holds values other than True/False")
        codes = np.full(len(column), 2, dtype=np.int64)
        codes[~missing] = present.astype(bool).to_numpy(dtype=np.int64)
        return codes

    def transform(self, column: pd.Series, rng: np.random.Generator) -> np.ndarray:
        self._check_fitted("levels_")
        codes = self._codes(column)
        if (codes == 2).any():
            self._missing_index()  # raises when training saw no missing values
        return self._one_hot(codes)

    def inverse(self, data: np.ndarray, rng: np.random.Generator) -> pd.Series:
        """bool when training had no gaps; otherwise object (or ``boolean`` if it was nullable)."""
        self._check_fitted("levels_")
        values = pd.Series(self._decode(data), dtype=object)
        if self.nullable_:
            return values.astype("boolean")
        return values if self.has_missing_ else values.astype(bool)

    def get_state(self) -> dict[str, Any]:
        self._check_fitted("levels_")
        return {"has_missing": self.has_missing_, "nullable": self.nullable_}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BooleanTransformer:
        transformer = cls()
        transformer.levels_ = [False, True]
        transformer.has_missing_ = bool(state["has_missing"])
        transformer.nullable_ = bool(state["nullable"])
        return transformer
