"""Augment a real table with synthetic rows for a prediction target.

``augment`` fits a :class:`TabularSynthesizer` on the real rows (or reuses a fitted one) and adds
synthetic rows through the model's native conditioning on the target (``sample(k, conditions=
{target: label})``): never by generating and filtering, so a rare class costs no more than a
common one.

- ``balance=True`` tops every class up to the majority class's count.
- ``ratio=r`` (> 1) grows the table to ``round(r * len(data))`` rows keeping the class mix: the
  added rows are split in proportion to the real class counts (largest remainders, so the counts
  sum exactly). For a numerical target (regression) the added rows are sampled unconditionally;
  ``balance`` has no meaning there and is refused.

Rare classes. The model pools categories seen fewer than ``min_category_count`` times (default 5)
into one "Other" level and cannot generate them. When ``augment`` fits the model itself and the
caller did not choose ``min_category_count``, it lowers the threshold to the smallest class count
(never below :data:`MIN_CLASS_ROWS`) so that every class stays generable, and logs a warning: the
threshold applies to every categorical column, so other rare categories are then learned too (a
privacy trade-off the caller can refuse by passing ``min_category_count``). A class with a single
row, or one the given model pooled, is an error that names how many classes are affected (never
which ones: a rare class can single out a patient).

Exact copies. Synthetic rows identical to a real row in every non-id column (the definition of the
evaluation report's "Exact copies" score, computed by the same code) are dropped and replaced by
fresh samples, up to :data:`REPLACE_ROUNDS` rounds; rows still copies after that are dropped (a
shortfall, logged as a warning). The output never holds an exact copy of a row of ``data``. Rows
are never logged; only counts are.

Whether the rows help a classifier is measured by ``synthgen.augmentation.check``.
"""
from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd

from synthgen.errors import InvalidArgumentError, InvalidDataError, MetadataError, NotFittedError, UnknownCategoryError
from synthgen.metadata import Metadata
from synthgen.choices import DEFAULT_CHUNK_ROWS, MIN_CATEGORY_COUNT, SYNTHETIC_FLAG
from synthgen.synthesizers.base import draw_seed
from synthgen.synthesizers.tabular import TabularSynthesizer

logger = logging.getLogger(__name__)

#: Fewest real rows a class needs before ``augment`` will generate more of it.
MIN_CLASS_ROWS = 2
#: Rounds of replacing synthetic rows that turned out to be exact copies of real rows.
REPLACE_ROUNDS = 5
#: Key of ``DataFrame.attrs`` under which ``augment`` records what it added.
ATTRS_KEY = "synthgen_augment"



# ---------------------------------------------------------------------------------------- augment
def augment(
    data: pd.DataFrame,
    target: str,
    *,
    balance: bool = False,
    ratio: float | None = None,
    model: TabularSynthesizer | None = None,
    seed: int | None = None,
    flag_column: str | None = SYNTHETIC_FLAG,
    steps: int | None = None,
    min_category_count: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """``data``'s rows followed by synthetic rows for ``target``, marked by ``flag_column``.

    Choose exactly one of ``balance`` (every class topped up to the majority count) and ``ratio``
    (grow to ``ratio * len(data)`` rows keeping the class mix). ``model`` is a synthesizer already
    fitted on a table with ``data``'s columns; without it one is fitted here with ``seed``,
    ``steps`` and ``min_category_count`` (``None``: 5, lowered when a class is rarer; see the
    module docstring). ``seed`` also fixes the sampling. ``flag_column=None`` adds no marker
    column. What was added is recorded in ``result.attrs["synthgen_augment"]``: per-class counts
    ``added`` (and ``requested``), ``exact_copies`` in the output (0), ``exact_copies_dropped`` (generated
    rows dropped, and resampled, for being identical to a real row) and ``shortfall``.
    """
    task, counts, metadata = _validate(data, target, balance, ratio, model, flag_column, steps, min_category_count)
    requested = _plan(counts, len(data), balance, ratio, task)
    if model is None:
        model = _fit(data, target, metadata, task, counts, seed=seed, steps=steps,
                     min_category_count=min_category_count, progress=progress)
    elif task == "classification":
        _check_generable(model, target, [label for label, k in requested.items() if k > 0], counts)
    base_seed = draw_seed(seed)

    real = data.reset_index(drop=True)
    synthetic, added, dropped = _generate(model, real, target, task, requested, base_seed)
    # Counted again on the final rows with the evaluation report's definition (0 by construction).
    copies = int(exact_copies(real, synthetic, model.metadata_).sum()) if len(synthetic) else 0
    shortfall = sum(requested.values()) - len(synthetic)
    if shortfall:
        logger.warning(
            "%d requested synthetic row(s) were not added: after %d rounds they were still identical to a real "
            "row (a table with few distinct rows leaves the model little room)", shortfall, REPLACE_ROUNDS,
        )
    result = _assemble(real, synthetic, flag_column)
    result.attrs[ATTRS_KEY] = {
        "target": target,
        "task": task,
        "mode": "balance" if balance else "ratio",
        "ratio": ratio,
        "real_rows": len(real),
        "synthetic_rows": len(synthetic),
        "requested": {_native(k): int(v) for k, v in requested.items()} if task == "classification" else {},
        "added": {_native(k): int(v) for k, v in added.items()} if task == "classification" else {},
        "exact_copies": copies,
        "exact_copies_dropped": dropped,
        "shortfall": int(shortfall),
        "min_category_count": int(model.min_category_count),
        "seed": int(base_seed),
        "flag_column": flag_column,
    }
    logger.info("augment: %d real + %d synthetic rows (%d exact copies dropped and resampled)",
                len(real), len(synthetic), dropped)
    return result


def fit_for_augmentation(
    data: pd.DataFrame,
    target: str,
    *,
    seed: int | None = None,
    steps: int | None = None,
    min_category_count: int | None = None,
    progress: bool = True,
) -> TabularSynthesizer:
    """The synthesizer ``augment`` would fit on ``data`` for ``target`` (same rare-class rule).

    Fit once and pass it as ``model`` to several ``augment`` calls (e.g. the repeats of
    :func:`check_augmentation`); :func:`check_request` first refuses a bad request cheaply.
    """
    task, counts, metadata = _validate(data, target, False, None, None, None, steps, min_category_count,
                                       mode_required=False)
    return _fit(data, target, metadata, task, counts, seed=seed, steps=steps,
                min_category_count=min_category_count, progress=progress)


def check_request(
    data: pd.DataFrame,
    target: str,
    *,
    balance: bool = False,
    ratio: float | None = None,
    model: TabularSynthesizer | None = None,
    flag_column: str | None = SYNTHETIC_FLAG,
    steps: int | None = None,
    min_category_count: int | None = None,
) -> None:
    """Raise what :func:`augment` would raise for these arguments, before anything is fitted."""
    task, counts, _ = _validate(data, target, balance, ratio, model, flag_column, steps, min_category_count)
    if model is not None and task == "classification":
        requested = _plan(counts, len(data), balance, ratio, task)
        _check_generable(model, target, [label for label, k in requested.items() if k > 0], counts)


def _validate(
    data: pd.DataFrame, target: str, balance: bool, ratio: float | None, model: TabularSynthesizer | None,
    flag_column: str | None, steps: int | None, min_category_count: int | None, *, mode_required: bool = True,
) -> tuple[str, pd.Series, Metadata]:
    """Check every argument before anything is fitted; returns (task, class counts, metadata)."""
    if not isinstance(data, pd.DataFrame):
        raise InvalidDataError(f"augment expects a pandas DataFrame, got {type(data).__name__}")
    if data.empty:
        raise InvalidDataError("the table is empty: it needs at least one row and one column")
    if target not in data.columns:
        columns = ", ".join(map(str, data.columns))
        raise InvalidArgumentError(f"target {target!r} is not a column of the table (columns: {columns})")
    if mode_required:
        _check_mode(balance, ratio, len(data))
    if flag_column is not None:
        if not isinstance(flag_column, str) or not flag_column:
            raise InvalidArgumentError(f"flag_column must be a non-empty column name or None, got {flag_column!r}")
        if flag_column in data.columns:
            raise InvalidArgumentError(
                f"the table already has a column named {flag_column!r}; choose another flag column name "
                "(CLI: --flag-column NAME)"
            )
    if model is not None:
        if not isinstance(model, TabularSynthesizer):
            raise InvalidArgumentError(f"model must be a TabularSynthesizer, got {type(model).__name__}")
        if not hasattr(model, "table_"):
            raise NotFittedError("the model given to augment is not fitted; fit it or load a model file")
        if steps is not None or min_category_count is not None:
            raise InvalidArgumentError(
                "steps and min_category_count apply when augment fits a model, not to a given model"
            )
        try:
            model.metadata_.validate(data)
        except MetadataError as exc:
            raise MetadataError(f"the model was fitted on a table with other columns: {exc}") from exc
        metadata = model.metadata_
    else:
        if min_category_count is not None and (isinstance(min_category_count, bool) or min_category_count < 1):
            raise InvalidArgumentError(f"min_category_count must be >= 1, got {min_category_count!r}")
        if steps is not None and steps < 1:
            raise InvalidArgumentError(f"steps must be >= 1, got {steps}")
        metadata = Metadata.detect(data)
    task = _task(metadata, model, target)
    if balance and task == "regression":
        raise InvalidArgumentError(
            f"cannot balance target {target!r}: it is numerical (a regression target) and has no classes; "
            "use ratio to add rows, or pass a model fitted with metadata that marks it categorical"
        )
    missing = int(data[target].isna().sum())
    if missing:
        raise InvalidDataError(
            f"target {target!r} is missing in {missing} row(s); drop those rows first (a row without a target "
            "cannot be assigned a class)"
        )
    counts = data[target].value_counts(sort=True) if task == "classification" else pd.Series(dtype="int64")
    counts = counts[counts > 0]  # a pandas Categorical lists unused categories with count 0
    if balance and len(counts) < 2:
        raise InvalidArgumentError(f"target {target!r} has a single class: there is nothing to balance")
    if model is None:
        _min_category_count(target, metadata, task, counts, min_category_count)  # raises before any fitting
    return task, counts, metadata


def _check_mode(balance: bool, ratio: float | None, n_rows: int) -> None:
    """Exactly one of balance and ratio, and a ratio that adds rows."""
    if balance and ratio is not None:
        raise InvalidArgumentError("choose either balance or ratio, not both")
    if ratio is not None:
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not math.isfinite(ratio) or ratio <= 1:
            raise InvalidArgumentError(f"ratio must be a number greater than 1 (2 doubles the table), got {ratio!r}")
        if round(ratio * n_rows) <= n_rows:
            raise InvalidArgumentError(f"ratio {ratio} adds no row to a table of {n_rows} rows; use a larger ratio")
    elif not balance:
        raise InvalidArgumentError(
            "choose what to add: balance=True (top every class up to the majority count) or ratio=R "
            "(grow the table to R times its rows, keeping the class mix)"
        )


def _task(metadata: Metadata, model: TabularSynthesizer | None, target: str) -> str:
    """"classification" for a target the model conditions on natively, "regression" for a number."""
    sdtype = metadata.columns[target].get("sdtype")
    if model is not None:
        conditional = model.table_.conditional_column(target) is not None
    else:
        conditional = sdtype in ("categorical", "boolean")
    if conditional:
        return "classification"
    if sdtype == "numerical":
        return "regression"
    raise InvalidArgumentError(
        f"target {target!r} is a {sdtype} column: augment needs a categorical or boolean target "
        "(classes) or a numerical one (regression)"
    )


def _plan(counts: pd.Series, n_rows: int, balance: bool, ratio: float | None, task: str) -> dict[Any, int]:
    """Synthetic rows to add per class (classification) or in all, under the key None (regression)."""
    if balance and task != "regression":
        majority = int(counts.max())
        return {label: majority - int(count) for label, count in counts.items()}
    if ratio is None:
        raise InvalidArgumentError("choose exactly one of balance and ratio")
    extra = round(ratio * n_rows) - n_rows
    if task == "regression":
        return {None: extra}
    quotas = counts.to_numpy(dtype=float) * extra / n_rows
    rows = np.floor(quotas).astype(int)
    # Largest remainders get the rows rounding left over, ties to the larger class (counts' order).
    order = np.argsort(-(quotas - rows), kind="stable")
    rows[order[: extra - rows.sum()]] += 1
    return {label: int(k) for label, k in zip(counts.index, rows)}


def _fit(
    data: pd.DataFrame, target: str, metadata: Metadata, task: str, counts: pd.Series, *, seed: int | None,
    steps: int | None, min_category_count: int | None, progress: bool,
) -> TabularSynthesizer:
    """Fit the synthesizer, lowering min_category_count (with a warning) so every class is generable."""
    threshold = _min_category_count(target, metadata, task, counts, min_category_count)
    default = MIN_CATEGORY_COUNT if min_category_count is None else min_category_count
    if threshold < default:
        logger.warning(
            "%d class(es) of target %r have fewer than %d rows (the smallest has %d): min_category_count is "
            "lowered to %d so every class can be generated. This applies to every categorical column, so "
            "categories seen %d-%d times are learned and can appear in synthetic rows (a privacy trade-off; "
            "pass min_category_count / --min-category-count to choose)",
            int((counts < default).sum()), target, default, threshold, threshold, threshold, default - 1,
        )
    return TabularSynthesizer(
        metadata, seed=seed, steps=steps, min_category_count=threshold, progress=progress
    ).fit(data)


def _min_category_count(
    target: str, metadata: Metadata, task: str, counts: pd.Series, requested: int | None
) -> int:
    """The threshold to fit with: ``requested``, or 5 lowered to the smallest class; raises when none works."""
    threshold = MIN_CATEGORY_COUNT if requested is None else requested
    if task != "classification" or metadata.columns[target].get("sdtype") != "categorical":
        return threshold
    smallest = int(counts.min())
    if smallest < MIN_CLASS_ROWS:
        singles = int((counts < MIN_CLASS_ROWS).sum())
        raise InvalidDataError(
            f"{singles} class(es) of target {target!r} have a single row: no model can learn a class from one "
            "patient without copying them; drop or merge those rows first"
        )
    if smallest >= threshold:
        return threshold
    if requested is not None:
        rare = int((counts < threshold).sum())
        raise InvalidDataError(
            f"{rare} class(es) of target {target!r} have fewer than min_category_count={threshold} rows "
            f"(the smallest has {smallest}), so the model would pool them as rare and could not generate "
            f"them; lower min_category_count to {smallest} (CLI: --min-category-count {smallest}) or "
            "drop those rows"
        )
    return smallest


def _check_generable(model: TabularSynthesizer, target: str, labels: list[Any], counts: pd.Series) -> None:
    """Raise when the model pooled (or never saw) a class it is asked to generate."""
    transformer = model.table_.transformer(target)
    categories = transformer.categories
    pooled = []
    for label in labels:
        try:
            index = transformer.condition_index(label)
        except UnknownCategoryError:
            pooled.append(label)
            continue
        if getattr(transformer, "rare_", False) and index == len(categories) - 1:
            pooled.append(label)
    if pooled:
        sizes = [int(counts[label]) for label in pooled]
        raise InvalidDataError(
            f"{len(pooled)} class(es) of target {target!r} (with {min(sizes)} to {max(sizes)} real rows) were pooled "
            f"as rare by the model (categories seen fewer than {model.min_category_count} times are not learned) or "
            f"were not in its training data, so no rows of them can be generated; refit with min_category_count="
            f"{max(min(sizes), MIN_CLASS_ROWS)} (CLI: --min-category-count) or without --model"
        )


def _generate(
    model: TabularSynthesizer, real: pd.DataFrame, target: str, task: str, requested: dict[Any, int], base_seed: int
) -> tuple[pd.DataFrame, dict[Any, int], int]:
    """The synthetic rows, class by class, with exact copies of real rows replaced.

    Returns (rows, rows added per class, generated rows dropped as copies).
    """
    labels = list(requested)
    kept: dict[int, list[pd.DataFrame]] = {i: [] for i in range(len(labels))}
    pending = {i: requested[label] for i, label in enumerate(labels) if requested[label] > 0}
    dropped = 0
    for round_ in range(REPLACE_ROUNDS + 1):
        if not pending:
            break
        frames, owners = [], []
        for i, k in pending.items():
            conditions = {target: labels[i]} if task == "classification" else None
            seed = int(np.random.SeedSequence([base_seed, round_, i]).generate_state(1)[0])
            frames.append(model.sample(k, conditions=conditions, seed=seed,
                                       chunk_rows=min(DEFAULT_CHUNK_ROWS, max(256, k))))
            owners.append(np.full(k, i))
        batch = pd.concat(frames, ignore_index=True)
        owner = np.concatenate(owners)
        copies = exact_copies(real, batch, model.metadata_)
        if copies.any():
            dropped += int(copies.sum())
            logger.info("round %d: %d synthetic row(s) identical to a real row dropped", round_ + 1, int(copies.sum()))
        pending = {}
        for i in np.unique(owner):
            rows = (owner == i) & ~copies
            kept[int(i)].append(batch[rows])
            if (missing := int(((owner == i) & copies).sum())) > 0:
                pending[int(i)] = missing
    parts = [frame for i in range(len(labels)) for frame in kept[i]]
    synthetic = pd.concat(parts, ignore_index=True) if parts else real.iloc[:0].copy()
    added = {label: sum(len(frame) for frame in kept[i]) for i, label in enumerate(labels)}
    return synthetic, added, dropped


def exact_copies(real: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata) -> np.ndarray:
    # Imported on use: the evaluation package pulls in sdmetrics and scipy, seconds at import time.
    from synthgen.evaluation.privacy import exact_copy_mask

    return exact_copy_mask(real, synthetic, metadata)


def _assemble(real: pd.DataFrame, synthetic: pd.DataFrame, flag_column: str | None) -> pd.DataFrame:
    """Real rows then synthetic rows, synthetic columns in the real dtypes where they fit."""
    synthetic = synthetic[list(real.columns)].copy()
    for name in real.columns:
        if synthetic[name].dtype != real[name].dtype:
            try:
                synthetic[name] = synthetic[name].astype(real[name].dtype)
            except (TypeError, ValueError):
                pass
    if flag_column is not None:
        real = real.assign(**{flag_column: False})
        synthetic = synthetic.assign(**{flag_column: True})
    if not len(synthetic):
        return real.copy()
    return pd.concat([real, synthetic], ignore_index=True)


def category_keys(column: pd.Series) -> pd.Series:
    """Labels as text, whole numbers without ".0" (the privacy report's keys), so 1 and 1.0 are one class."""
    from synthgen.data.categorical import category_keys as keys

    return keys(column)


def _native(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
