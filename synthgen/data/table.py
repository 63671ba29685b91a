"""The whole table as one encoded matrix: one fitted column transformer per column, side by side."""
from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from synthgen.choices import DEFAULT_CHUNK_ROWS, MIN_CATEGORY_COUNT
from synthgen.data.base import ColumnTransformer, Span
from synthgen.data.compact import CompactTable
from synthgen.data.continuous import ContinuousTransformer
from synthgen.data.missing import MissingIndicator
from synthgen.data.rules import CategoryRule, GapRule, RuleFinder
from synthgen.errors import InvalidDataError, MetadataError, NotFittedError, UnknownCategoryError
from synthgen.metadata import MAX_UNREADABLE_SHARE, Metadata, unreadable_cells
from synthgen.registry import column_transformers, transformer_for

logger = logging.getLogger(__name__)

#: Fewer training rows than this cannot be learned (the generator normalises over a batch), and a
#: model of one row could only copy that patient.
MIN_ROWS = 2
#: Column kinds whose transformers may be fitted on a sample of rows (see :meth:`TableTransformer.fit`).
SAMPLED_SDTYPES = ("numerical", "datetime")
#: Column kinds that may be derived from numeric columns by a rule (:mod:`synthgen.data.rules`).
DISCRETE_SDTYPES = ("categorical", "boolean")


class _ColumnPrefix(logging.Filter):
    def __init__(self, column: str) -> None:
        super().__init__()
        self.column = column

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = f"column {self.column!r}: {record.msg}"
        return True


@contextmanager
def _naming(column: str, transformer: ColumnTransformer | None = None) -> Iterator[None]:
    """Prefix a transformer's data errors and warnings with the column they are about.

    Transformers see one column, unnamed; their module loggers get a prefixing filter meanwhile.
    """
    loggers = []
    if transformer is not None:
        modules = {type(transformer).__module__, type(getattr(transformer, "inner", transformer)).__module__}
        loggers = [logging.getLogger(module) for module in sorted(modules)]
    prefix = _ColumnPrefix(column)
    for module_logger in loggers:
        module_logger.addFilter(prefix)
    try:
        yield
    except (InvalidDataError, UnknownCategoryError) as exc:
        raise type(exc)(f"column {column!r}: {exc}") from exc
    finally:
        for module_logger in loggers:
            module_logger.removeFilter(prefix)


def readable_column(name: str, spec: dict[str, Any], column: pd.Series, *, warn: bool) -> pd.Series:
    """``column`` with the few text cells that do not read as its numbers or dates made missing.

    Detection calls a column numerical or datetime when at most ``MAX_UNREADABLE_SHARE`` of its
    values are not; more than that is an error naming the column (the metadata is wrong).
    """
    bad = unreadable_cells(column, spec)
    if bad is None or not bad.any():
        return column
    n_bad, n_present = int(bad.sum()), int(column.notna().sum())
    kind = "numbers" if spec.get("sdtype") == "numerical" else "dates in its format"
    if n_bad > MAX_UNREADABLE_SHARE * n_present:
        raise InvalidDataError(
            f"column {name!r} is declared {spec.get('sdtype')}, but {n_bad} of {n_present} values are not {kind}; "
            "fix the cells or the column's sdtype in the metadata"
        )
    if warn:
        logger.warning("column %r: %d of %d values are not %s and are read as missing", name, n_bad, n_present, kind)
    return column.where(~bad, None)


def readable_table(metadata: Metadata, data: pd.DataFrame) -> pd.DataFrame:
    """``data`` with :func:`readable_column` applied to every column (for code that reads the table
    before a :class:`TableTransformer` does, such as the DP release)."""
    columns = {name: readable_column(name, spec, data[name], warn=True) for name, spec in metadata.columns.items()
               if name in data.columns}
    return data.assign(**columns) if columns else data


@dataclass(frozen=True)
class ConditionalColumn:
    """A column the model can be conditioned on: where its one-hot span sits in the encoding."""

    name: str
    data_offset: int
    width: int


class TableTransformer:
    """Encode a DataFrame column by column, following its metadata, and decode it back.

    Columns with missing values whose transformer cannot encode gaps itself are wrapped in a
    :class:`MissingIndicator`, so NaN/NaT come back at the observed rate. Columns missing on exactly
    the same training rows (a lab panel not ordered, a visit not attended: medicaldata::opt's 135
    columns with gaps fall into 38 such sets) are decoded missing together, on the first one's gaps
    (:attr:`missing_groups_`): sampled independently, a quarter of opt's synthetic rows broke a set
    that no real row breaks, which a detector reads at once.
    """

    def __init__(self, metadata: Metadata, options: dict[str, Any] | None = None) -> None:
        self.metadata = metadata
        self.options = dict(options or {})

    def fit(self, data: pd.DataFrame, rng: np.random.Generator, *, sample_rows: np.ndarray | None = None) -> "TableTransformer":
        """Fit one transformer per column.

        ``sample_rows`` (positions in ``data``): numerical and datetime columns, whose transformers
        estimate a distribution (the mixture fit is the slow step on big tables), are fitted on those
        rows only. Every other column, and whether a column has gaps, is read in full: a category or
        a gap that the sample missed could not be encoded at all.
        """
        self.metadata.validate(data)
        return self.fit_columns((data[name] for name in self.metadata.columns), len(data), rng, sample_rows=sample_rows)

    def fit_columns(self, columns: Iterable[pd.Series], n_rows: int, rng: np.random.Generator, *,
                    sample_rows: np.ndarray | None = None) -> "TableTransformer":
        """:meth:`fit` from whole columns given one at a time, in metadata order, each named by its
        ``name`` and ``n_rows`` long (a file read a few columns at a time: the same draws, the same fit).
        The metadata is looked up as each column comes, so it may be completed meanwhile."""
        if n_rows < MIN_ROWS:
            raise InvalidDataError(
                f"the table has {n_rows} row{'' if n_rows == 1 else 's'} to train on; synthgen needs at "
                f"least {MIN_ROWS} (a model of one row could only copy that patient)"
            )
        fitted: dict[str, ColumnTransformer] = {}
        gaps: dict[bytes, list[str]] = {}  # columns by the rows they miss (packed bits of the whole column)
        least = int(self.options.get("min_category_count", MIN_CATEGORY_COUNT))
        finder = RuleFinder(n_rows) if self.options.get("category_rules", True) else None
        gap_masks: dict[bytes, np.ndarray] = {}  # each set's gaps at the rows the rule finder reads
        complete: dict[str, list[Any]] = {}  # category columns without gaps (they may decide gaps), with their levels
        for column in columns:
            name = str(column.name)
            spec = self.metadata.columns[name]
            column = readable_column(name, spec, column, warn=True)
            if finder is not None and spec.get("sdtype") == "numerical":
                finder.add_numeric(name, column)
            elif finder is not None and spec.get("sdtype") in DISCRETE_SDTYPES:
                finder.add_discrete(name, column)
            transformer = transformer_for(name, spec).from_metadata(spec, self.options)
            missing = column.isna().to_numpy()
            if not transformer.handles_missing and missing.any():
                transformer = MissingIndicator(transformer)
            if sample_rows is not None and spec.get("sdtype") in SAMPLED_SDTYPES:
                column = column.iloc[sample_rows]
            with _naming(name, transformer):
                fitted[name] = transformer.fit(column, rng)
            # A set is a rule only when enough rows miss it and enough do not: never a few patients' coincidence.
            if least <= missing.sum() <= len(missing) - least and _can_share_gaps(fitted[name]):
                key = np.packbits(missing).tobytes()
                gaps.setdefault(key, []).append(name)
                if finder is not None and key not in gap_masks:
                    gap_masks[key] = finder.subset(missing)
            elif not missing.any() and spec.get("sdtype") in DISCRETE_SDTYPES and (levels := _levels(fitted[name])):
                complete[name] = levels
        if list(fitted) != list(self.metadata.columns):
            raise ValueError(f"columns {list(fitted)} do not follow the metadata's {list(self.metadata.columns)}")
        rules = [] if finder is None else finder.find(least, {
            name: list(levels) for name in finder.discrete if (levels := _levels(fitted[name])) is not None})
        # A category derived from numbers is set after the gaps are decided, so it decides none.
        derived = {rule.column for rule in rules}
        gap_rules = [] if finder is None else finder.find_gap_rules(
            [(names[0], gap_masks[key]) for key, names in gaps.items()],
            {name: levels for name, levels in complete.items() if name not in derived})
        self._set_columns(fitted, [names for names in gaps.values() if len(names) > 1], rules, gap_rules)
        if self.missing_groups_:
            logger.info("%d sets of columns are missing on the same rows (%d columns): each set is sampled missing together",
                        len(self.missing_groups_), sum(map(len, self.missing_groups_)))
        return self

    @classmethod
    def from_fitted(cls, metadata: Metadata, options: dict[str, Any], fitted: dict[str, ColumnTransformer]) -> "TableTransformer":
        """A table of transformers fitted elsewhere (e.g. from DP-released statistics), in metadata order."""
        table = cls(metadata, options)
        table._set_columns({name: fitted[name] for name in metadata.columns})
        return table

    def _set_columns(self, fitted: dict[str, ColumnTransformer], missing_groups: list[list[str]] | None = None,
                     category_rules: list[CategoryRule] | None = None, gap_rules: list[GapRule] | None = None) -> None:
        self.column_transformers_ = fitted
        #: Sets of columns decoded missing together, each on its first column's gaps (metadata order).
        self.missing_groups_: list[list[str]] = missing_groups or []
        #: Category columns derived from numeric ones when decoding (:mod:`synthgen.data.rules`).
        self.category_rules_: list[CategoryRule] = category_rules or []
        #: Columns (with their set) missing exactly where a category column takes some levels.
        self.gap_rules_: list[GapRule] = gap_rules or []
        self.spans_: list[Span] = [span for t in fitted.values() for span in t.spans]
        self.slices_: dict[str, slice] = {}
        conditional: list[ConditionalColumn] = []
        offset = 0
        for name, transformer in fitted.items():
            start = offset
            for span in transformer.spans:
                if span.conditional:
                    if any(c.name == name for c in conditional):
                        raise MetadataError(f"column {name!r}: a transformer may declare at most one conditional span")
                    conditional.append(ConditionalColumn(name, offset, span.width))
                offset += span.width
            self.slices_[name] = slice(start, offset)
        self.conditional_columns_ = conditional
        self.width_ = offset

    def _fitted(self) -> dict[str, ColumnTransformer]:
        if not hasattr(self, "column_transformers_"):
            raise NotFittedError("TableTransformer must be fitted before use; call fit() first")
        return self.column_transformers_

    def transform(self, data: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
        """Encode ``data`` as a float32 matrix of width :attr:`width_`."""
        fitted = self._fitted()
        self.metadata.validate(data)
        blocks = []
        for name, transformer in fitted.items():
            column = readable_column(name, self.metadata.columns[name], data[name], warn=False)
            with _naming(name):
                blocks.append(transformer.transform(column, rng))
        return np.concatenate(blocks, axis=1).astype(np.float32, copy=False)

    def transform_compact(self, data: pd.DataFrame, rng: np.random.Generator, *,
                          chunk_rows: int = DEFAULT_CHUNK_ROWS) -> CompactTable:
        """Encode ``data`` ``chunk_rows`` rows at a time into a :class:`CompactTable`, so the dense
        matrix exists for one chunk only. A table of at most ``chunk_rows`` rows is encoded in one
        call, drawing exactly what :meth:`transform` draws (its expansion is the same bytes)."""
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
        chunks = (data.iloc[start: start + chunk_rows] for start in range(0, len(data), chunk_rows))
        return self.encode_chunks(chunks, len(data), rng)

    def encode_chunks(self, chunks: Iterable[pd.DataFrame], n_rows: int, rng: np.random.Generator, *,
                      share: tuple[int, int] = (0, 1), where: str | None = None) -> CompactTable:
        """Encode consecutive chunks of a table of ``n_rows`` rows into a :class:`CompactTable`.

        ``share`` (rank, ranks): only rows rank, rank + ranks, ... of the table are encoded and kept
        (one torchrun rank's rows), whatever the chunk edges. ``where`` (a file) makes a chunk's
        data error name it and the chunk's rows (its index holds row positions in the file).
        """
        self._fitted()
        rank, ranks = share
        compact = CompactTable(self.spans_, len(range(rank, n_rows, ranks)))
        start = kept = 0
        for chunk in chunks:
            own = chunk.iloc[(rank - start) % ranks:: ranks] if ranks > 1 else chunk
            start += len(chunk)
            if not len(own):
                continue
            try:
                dense = self.transform(own, rng)
            except (InvalidDataError, UnknownCategoryError) as exc:
                if where is None:
                    raise
                raise type(exc)(f"{where}, rows {chunk.index[0] + 1}-{chunk.index[-1] + 1}: {exc}") from exc
            compact.put(kept, dense)
            kept += len(own)
        if start != n_rows:
            raise ValueError(f"the chunks held {start} rows, not {n_rows}")
        return compact

    def inverse(self, encoded: np.ndarray, rng: np.random.Generator, *, deciding: Iterable[str] = (),
                rules: bool = True) -> pd.DataFrame:
        """Decode model output back into a DataFrame with the training columns, in order.

        A column (with its set of :attr:`missing_groups_`) that a rule of :attr:`gap_rules_` governs
        is missing exactly where the rule's category column takes the rule's levels, unless a
        condition (``deciding``) is on one of them. Every other set takes its gaps from one column:
        the first of ``deciding`` (a column a condition fixed) in the set, else the set's first column.
        ``rules=False`` leaves the derived categories to the caller (:meth:`apply_rules`), for one
        that changes the numbers afterwards.
        """
        fitted = self._fitted()
        wanted = list(deciding)
        overridden = self.overridden_gap_rules(wanted)
        columns: dict[str, pd.Series] = {}

        def decode(name: str, block: np.ndarray) -> pd.Series:
            columns[name] = fitted[name].inverse(block, rng).reset_index(drop=True)
            return columns[name]

        forced: dict[str, np.ndarray] = {}  # gaps set by a rule, by column
        for rule in self.gap_rules_:
            if rule in overridden:
                continue
            when = columns.get(rule.when)
            if when is None:
                when = decode(rule.when, encoded[:, self.slices_[rule.when]])
            gaps = when.isin(rule.levels).to_numpy()
            forced.update({name: gaps for name in self._gap_set(rule.missing)})
        decider_of = {}
        for names in self.missing_groups_:
            if names[0] in forced:
                continue
            decider = next((name for name in wanted if name in names), names[0])
            decider_of.update({name: decider for name in names if name != decider})
        deciders = set(decider_of.values())
        gaps_of: dict[str, np.ndarray] = {}
        for name in [*(n for n in fitted if n in deciders), *(n for n in fitted if n not in deciders)]:
            if name in columns:
                continue
            block = encoded[:, self.slices_[name]]
            if name in forced:
                block = fitted[name].with_missing(block, forced[name])
            elif name in decider_of:
                block = fitted[name].with_missing(block, gaps_of[decider_of[name]])
            decoded = decode(name, block)
            if name in deciders:
                gaps_of[name] = decoded.isna().to_numpy()
        frame = pd.DataFrame({name: columns[name] for name in fitted})
        if rules:
            self.apply_rules(frame)
        return frame

    def recorded_precisions(self) -> dict[str, ContinuousTransformer]:
        """The numeric columns whose sampled values are rounded as their training values were
        recorded (:meth:`ContinuousTransformer.round`), by name."""
        found = {}
        for name, transformer in self._fitted().items():
            inner = transformer.inner if isinstance(transformer, MissingIndicator) else transformer
            if isinstance(inner, ContinuousTransformer) and inner.rounds:
                found[name] = inner
        return found

    def drop_precisions(self) -> None:
        """Sample numbers unrounded (a DP fit, or a fit whose rounding would copy training rows)."""
        for transformer in self.recorded_precisions().values():
            transformer.drop_precision()

    def round_numbers(self, frame: pd.DataFrame) -> None:
        """Round ``frame``'s numeric columns (decoded, possibly calibrated) as the training values
        were recorded, in place: before :meth:`apply_rules`, which reads the numbers."""
        for name, transformer in self.recorded_precisions().items():
            frame[name] = transformer.round(frame[name])

    def apply_rules(self, frame: pd.DataFrame) -> None:
        """Derive each rule's category column from its (decoded, possibly calibrated) sources, in place."""
        for rule in self.category_rules_:
            rule.apply(frame)

    def _gap_set(self, column: str) -> list[str]:
        """``column``'s set of :attr:`missing_groups_`, or ``column`` alone."""
        return next((names for names in self.missing_groups_ if column in names), [column])

    def overridden_gap_rules(self, deciding: Iterable[str]) -> list[GapRule]:
        """The rules of :attr:`gap_rules_` whose set a condition on ``deciding`` decides instead (see :meth:`inverse`)."""
        wanted = set(deciding)
        return [rule for rule in self.gap_rules_ if wanted & set(self._gap_set(rule.missing))]

    @staticmethod
    def gaps_agree(frame: pd.DataFrame, rules: list[GapRule]) -> np.ndarray:
        """Rows of ``frame`` on which every one of ``rules`` holds."""
        keep = np.ones(len(frame), dtype=bool)
        for rule in rules:
            keep &= frame[rule.missing].isna().to_numpy() == frame[rule.when].isin(rule.levels).to_numpy()
        return keep

    def rule_for(self, column: str) -> CategoryRule | None:
        return next((rule for rule in self.category_rules_ if rule.column == column), None)

    def transformer(self, column: str) -> ColumnTransformer:
        return self._fitted()[column]

    def conditional_column(self, column: str) -> ConditionalColumn | None:
        return next((c for c in self.conditional_columns_ if c.name == column), None)

    def get_state(self) -> dict[str, Any]:
        return {
            "options": self.options,
            **({"missing_groups": self.missing_groups_} if self.missing_groups_ else {}),
            **({"category_rules": [rule.to_state() for rule in self.category_rules_]} if self.category_rules_ else {}),
            **({"gap_rules": [rule.to_state() for rule in self.gap_rules_]} if self.gap_rules_ else {}),
            "columns": [
                {"name": name, "transformer": t.name, "state": t.get_state()} for name, t in self._fitted().items()
            ],
        }

    @classmethod
    def from_state(cls, metadata: Metadata, state: dict[str, Any]) -> "TableTransformer":
        table = cls(metadata, state["options"])
        installed = column_transformers()
        fitted: dict[str, ColumnTransformer] = {}
        for column in state["columns"]:
            name = column["transformer"]
            if name == MissingIndicator.name:
                transformer_class: type[ColumnTransformer] = MissingIndicator
            elif name in installed:
                transformer_class = installed[name]
            else:
                raise MetadataError(
                    f"column {column['name']!r} was encoded by transformer {name!r}, which is not installed here"
                )
            fitted[column["name"]] = transformer_class.from_state(column["state"])
        groups = state.get("missing_groups", [])
        members = [name for names in groups for name in names] if isinstance(groups, list) else None
        if (members is None or not all(isinstance(names, list) and len(names) > 1 for names in groups)
                or len(set(members)) != len(members) or not all(name in fitted and _can_share_gaps(fitted[name]) for name in members)):
            raise ValueError("the sets of columns missing together are malformed")
        rules = state.get("category_rules", [])
        if not isinstance(rules, list):
            raise ValueError("the derived-category rules are malformed")
        numeric = {name for name, spec in metadata.columns.items() if spec.get("sdtype") == "numerical"}
        levels_of = {name: levels for name, t in fitted.items()
                     if metadata.columns[name].get("sdtype") in DISCRETE_SDTYPES and (levels := _levels(t)) is not None}
        parsed = [CategoryRule.from_state(rule, numeric, levels_of) for rule in rules]
        if len({rule.column for rule in parsed}) != len(parsed):
            raise ValueError("a column has two derived-category rules")
        derived = {rule.column for rule in parsed}
        complete = {name: levels for name, levels in levels_of.items()
                    if not getattr(fitted[name], "has_missing_", True) and name not in derived}
        gap_states = state.get("gap_rules", [])
        if not isinstance(gap_states, list):
            raise ValueError("the rules for gaps are malformed")
        heads = {names[0] for names in groups} | {name for name in fitted if name not in members}
        gap_rules = [GapRule.from_state(rule, {name for name in heads if _can_share_gaps(fitted[name])}, complete)
                     for rule in gap_states]
        if len({rule.missing for rule in gap_rules}) != len(gap_rules):
            raise ValueError("a column has two rules for its gaps")
        table._set_columns(fitted, groups, parsed, gap_rules)
        return table


def _levels(transformer: ColumnTransformer) -> list[Any] | None:
    """The values a category transformer decodes to (the missing marker included), or None for other kinds."""
    levels = getattr(transformer, "categories", None)
    return list(levels) if isinstance(levels, list) else None


def _can_share_gaps(transformer: ColumnTransformer) -> bool:
    """Whether ``transformer`` can be told where its column is missing (:meth:`ColumnTransformer.with_missing`)."""
    return transformer.with_missing(np.zeros((1, transformer.output_width), dtype=np.float32), np.ones(1, dtype=bool)) is not None
