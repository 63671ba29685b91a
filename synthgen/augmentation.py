"""Augment a real table with synthetic rows for a prediction target, and check whether it helps.

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

``check_augmentation`` measures whether augmentation helps a classifier (or regressor) on the
user's real test set: real-only against real+synthetic, repeated over seeds, with a paired
comparison; see its docstring for the verdict rule.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from synthgen.errors import InvalidArgumentError, InvalidDataError, MetadataError, NotFittedError, UnknownCategoryError
from synthgen.metadata import Metadata
from synthgen.choices import CLASSIFIERS, DEFAULT_CHUNK_ROWS, SYNTHETIC_FLAG
from synthgen.synthesizer import TabularSynthesizer

logger = logging.getLogger(__name__)

#: Default name of the boolean column marking synthetic rows (True) in ``augment``'s output.
#: Fewest real rows a class needs before ``augment`` will generate more of it.
MIN_CLASS_ROWS = 2
#: Rounds of replacing synthetic rows that turned out to be exact copies of real rows.
REPLACE_ROUNDS = 5
#: Models ``check_augmentation`` can train (for a numerical target: the regressor of that family).
#: What ``check_augmentation`` can conclude.
VERDICTS = ("helped", "hurt", "no measurable effect")
#: Key of ``DataFrame.attrs`` under which ``augment`` records what it added.
ATTRS_KEY = "synthgen_augment"

_DEFAULT_MIN_CATEGORY_COUNT = 5  # TabularSynthesizer's default


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
    base_seed = seed if seed is not None else int(np.random.SeedSequence().entropy % 2**63)

    real = data.reset_index(drop=True)
    synthetic, added, dropped = _generate(model, real, target, task, requested, base_seed)
    # Counted again on the final rows with the evaluation report's definition (0 by construction).
    copies = int(_exact_copy_mask(real, synthetic, model.metadata_).sum()) if len(synthetic) else 0
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
    if task == "regression":
        return {None: round(ratio * n_rows) - n_rows}
    if balance:
        majority = int(counts.max())
        return {label: majority - int(count) for label, count in counts.items()}
    extra = round(ratio * n_rows) - n_rows
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
    default = _DEFAULT_MIN_CATEGORY_COUNT if min_category_count is None else min_category_count
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
    threshold = _DEFAULT_MIN_CATEGORY_COUNT if requested is None else requested
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
        copies = _exact_copy_mask(real, batch, model.metadata_)
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


def _exact_copy_mask(real: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata) -> np.ndarray:
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


def _category_keys(column: pd.Series) -> pd.Series:
    """Labels as text, whole numbers without ".0" (the privacy report's keys), so 1 and 1.0 are one class."""
    from synthgen.evaluation.privacy import _category_keys as keys

    return keys(column)


def _native(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


# ---------------------------------------------------------------------------------------- check
@dataclass(frozen=True)
class Interval:
    """A mean over seeds with its 95% t-interval (NaN bounds when it cannot be computed)."""

    mean: float
    low: float
    high: float

    @classmethod
    def of(cls, values: np.ndarray) -> "Interval":
        values = np.asarray(values, dtype=float)
        n = len(values)
        if n == 0 or np.isnan(values).any():
            return cls(math.nan, math.nan, math.nan)
        mean = float(values.mean())
        if n < 2:
            return cls(mean, math.nan, math.nan)
        from scipy import stats

        half = float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n))
        return cls(mean, mean - half, mean + half)

    def __str__(self) -> str:
        if math.isnan(self.mean):
            return "n/a"
        if math.isnan(self.low):
            return f"{self.mean:.3f}"
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"


@dataclass(frozen=True)
class MetricComparison:
    """One metric on the real test set: real-only, real+synthetic, and their paired difference."""

    metric: str
    real: Interval
    augmented: Interval
    difference: Interval


@dataclass(frozen=True)
class CheckResult:
    """What ``check_augmentation`` measured, and its verdict (one of :data:`VERDICTS`)."""

    task: str
    classifier: str
    seeds: int
    train_rows: int
    test_rows: int
    minority_class: Any
    metrics: list[MetricComparison]
    verdict: str

    def metric(self, name: str) -> MetricComparison:
        return next(m for m in self.metrics if m.metric == name)

    def to_frame(self) -> pd.DataFrame:
        rows = []
        for m in self.metrics:
            rows.append({"metric": m.metric, **{f"{side}_{part}": getattr(getattr(m, side), part)
                                                 for side in ("real", "augmented", "difference")
                                                 for part in ("mean", "low", "high")}})
        return pd.DataFrame(rows)

    def table(self) -> str:
        """A plain-text table: mean [95% interval] over seeds, then the verdict."""
        header = ("metric", "real only", "real + synthetic", "difference (paired)")
        rows = [(m.metric, str(m.real), str(m.augmented), _signed(m.difference)) for m in self.metrics]
        widths = [max(len(r[j]) for r in [header, *rows]) for j in range(4)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in [header, *rows]]
        return "\n".join(lines + [f"Verdict: {self.verdict}"])


def _signed(interval: Interval) -> str:
    if math.isnan(interval.mean):
        return "n/a"
    if math.isnan(interval.low):
        return f"{interval.mean:+.3f}"
    return f"{interval.mean:+.3f} [{interval.low:+.3f}, {interval.high:+.3f}]"


def check_augmentation(
    train: pd.DataFrame,
    test: pd.DataFrame,
    target: str,
    *,
    augmented_factory: Callable[[int], pd.DataFrame],
    classifier: str = "hist_gradient_boosting",
    seeds: int = 5,
    metadata: Metadata | None = None,
) -> CheckResult:
    """Does training on ``augmented_factory(seed)`` beat training on ``train`` alone, on ``test``?

    For each of ``seeds`` repeats ``i`` the same model (``classifier`` with ``random_state=i``)
    is trained on the real rows and on ``augmented_factory(i)`` (real + synthetic rows; columns
    not in ``train``, such as the flag column, are dropped), and both are scored on ``test`` only:
    the real test set, never synthetic rows. Classification reports ROC AUC (macro one-vs-rest
    for several classes), balanced accuracy and the recall of the class rarest in ``train``;
    regression reports R². Each is a mean over repeats with a 95% t-interval, and the paired
    difference (augmented - real) with its own interval gives the verdict: "helped" when the
    balanced-accuracy difference interval lies above 0 and the AUC one is not entirely below 0;
    "hurt" when the balanced-accuracy or AUC difference interval lies entirely below 0; else
    "no measurable effect". For regression R² plays both parts.

    Features: id columns dropped, dates as days since the epoch, numbers median-imputed (and
    standardised for the linear model), categories one-hot encoded (missing is a category).
    ``classifier="logistic_regression"`` means ridge regression for a numerical target.
    """
    if classifier not in CLASSIFIERS:
        raise InvalidArgumentError(f"classifier must be one of {', '.join(CLASSIFIERS)}, got {classifier!r}")
    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 2:
        raise InvalidArgumentError(f"seeds must be an integer >= 2 (an interval needs repeats), got {seeds!r}")
    metadata = metadata if metadata is not None else Metadata.detect(train)
    for name, frame in (("training", train), ("test", test)):
        if target not in frame.columns:
            raise InvalidDataError(f"the {name} table has no column {target!r}")
        if frame[target].isna().any():
            missing = int(frame[target].isna().sum())
            raise InvalidDataError(f"target {target!r} is missing in {missing} row(s) of the {name} table")
    try:
        metadata.validate(train)
        metadata.validate(test)
    except MetadataError as exc:
        raise MetadataError(f"the training and test tables must have the same columns: {exc}") from exc
    task = "regression" if metadata.columns[target].get("sdtype") == "numerical" else "classification"
    minority = None
    if task == "classification":
        train_keys = _category_keys(train[target])
        counts = train_keys.value_counts()
        if len(counts) < 2:
            raise InvalidDataError(f"target {target!r} has a single class in the training table")
        unseen = set(_category_keys(test[target])) - set(counts.index)
        if unseen:
            raise InvalidDataError(
                f"the test table has {len(unseen)} class(es) of {target!r} that the training table lacks"
            )
        minority = sorted(counts.index[counts == counts.min()])[0]
    overlap = int(_exact_copy_mask(train, test, metadata).sum())
    if overlap:
        logger.warning("%d test row(s) are identical to a training row: the test set should hold patients the "
                       "models never saw", overlap)
    real_runs, augmented_runs = [], []
    for seed in range(seeds):
        augmented = augmented_factory(seed)
        if not isinstance(augmented, pd.DataFrame) or any(c not in augmented.columns for c in train.columns):
            raise InvalidDataError("augmented_factory must return a DataFrame with the training table's columns")
        augmented = augmented[list(train.columns)]
        # One OpenMP thread, as in the evaluation's ML utility: on a busy machine HistGradientBoosting's
        # spinning threads ran ~50x slower (measured here: 0.3 s against 15 s for one --check).
        with threadpool_limits(limits=1, user_api="openmp"):
            real_runs.append(score_model(train, test, target, task=task, classifier=classifier, seed=seed,
                                         metadata=metadata, minority=minority))
            augmented_runs.append(score_model(augmented, test, target, task=task, classifier=classifier,
                                              seed=seed, metadata=metadata, minority=minority))
    metrics, verdict = compare_runs(real_runs, augmented_runs, task)
    return CheckResult(task, classifier, seeds, len(train), len(test), minority, metrics, verdict)


def compare_runs(real_runs: list[dict[str, float]], augmented_runs: list[dict[str, float]],
                 task: str) -> tuple[list[MetricComparison], str]:
    """Per-metric intervals over paired runs (same seed, same test set) and the verdict."""
    names = list(real_runs[0])
    metrics = []
    for name in names:
        real = np.array([run[name] for run in real_runs])
        augmented = np.array([run[name] for run in augmented_runs])
        metrics.append(MetricComparison(name, Interval.of(real), Interval.of(augmented), Interval.of(augmented - real)))
    differences = {m.metric: m.difference for m in metrics}
    if task == "regression":
        main = auc = differences["R²"]
    else:
        main, auc = differences["balanced accuracy"], differences["ROC AUC"]
    if main.high < 0 or auc.high < 0:
        verdict = "hurt"
    elif main.low > 0 and not auc.high < 0:
        verdict = "helped"
    else:
        verdict = "no measurable effect"
    return metrics, verdict


def score_model(
    train: pd.DataFrame, test: pd.DataFrame, target: str, *, task: str, classifier: str, seed: int,
    metadata: Metadata, minority: str | None = None,
) -> dict[str, float]:
    """Fit ``classifier`` on ``train`` and score it on ``test`` (the only rows it predicts)."""
    from sklearn.metrics import balanced_accuracy_score, r2_score, recall_score

    x_train, x_test = _features(train, metadata, target), _features(test, metadata, target)
    model = _model(x_train, task, classifier, seed)
    if task == "regression":
        y_train = pd.to_numeric(train[target]).to_numpy(float)
        model.fit(x_train, y_train)
        return {"R²": float(r2_score(pd.to_numeric(test[target]).to_numpy(float), model.predict(x_test)))}
    y_train, y_test = _category_keys(train[target]).to_numpy(str), _category_keys(test[target]).to_numpy(str)
    model.fit(x_train, y_train)
    proba = model.predict_proba(x_test)
    classes = list(model.classes_)
    predicted = np.asarray(classes, dtype=object)[proba.argmax(1)].astype(str)
    scores = {
        "ROC AUC": macro_roc_auc(y_test, proba, classes),
        "balanced accuracy": float(balanced_accuracy_score(y_test, predicted)),
    }
    if minority is not None:
        scores[f"minority recall ({minority})"] = float(
            recall_score(y_test, predicted, labels=[minority], average="macro", zero_division=0)
        )
    return scores


def macro_roc_auc(y: np.ndarray, proba: np.ndarray, classes: list[str]) -> float:
    """Binary ROC AUC, or the macro one-vs-rest mean over the classes present in ``y``."""
    from sklearn.metrics import roc_auc_score

    columns = [1] if len(classes) == 2 else range(len(classes))
    aucs = []
    for j in columns:
        positive = y == classes[j]
        if positive.any() and not positive.all():
            aucs.append(roc_auc_score(positive, proba[:, j]))
    return float(np.mean(aucs)) if aucs else math.nan


def _features(frame: pd.DataFrame, metadata: Metadata, target: str) -> pd.DataFrame:
    """The model's inputs: numbers as floats (NaN kept for the imputer), categories as text."""
    columns = {}
    for name, spec in metadata.columns.items():
        sdtype = spec.get("sdtype")
        if name == target or sdtype == "id":
            continue
        column = frame[name]
        if sdtype == "numerical":
            columns[name] = pd.to_numeric(column, errors="coerce").astype(float).to_numpy()
        elif sdtype == "datetime":
            if not pd.api.types.is_datetime64_any_dtype(column.dtype):
                if pd.api.types.is_numeric_dtype(column.dtype):
                    column = column.astype("Int64").astype(str)
                column = pd.to_datetime(column, format=spec.get("datetime_format"), errors="coerce")
            stamps = pd.DatetimeIndex(column)
            if stamps.tz is not None:
                stamps = stamps.tz_localize(None)
            columns[name] = np.where(stamps.isna(), np.nan, stamps.as_unit("s").asi8 / 86_400.0)
        else:
            columns[name] = _category_keys(column).fillna("(missing)").to_numpy(dtype=object)
    return pd.DataFrame(columns, index=range(len(frame)))


def _model(x: pd.DataFrame, task: str, classifier: str, seed: int):
    """sklearn Pipeline: median-impute numbers (scaled for the linear model), one-hot categories."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c in x.columns if x[c].dtype.kind == "f"]
    categorical = [c for c in x.columns if c not in numeric]
    linear = classifier == "logistic_regression"
    numbers = make_pipeline(SimpleImputer(strategy="median"), *([StandardScaler()] if linear else []))
    prepare = ColumnTransformer(
        [("numbers", numbers, numeric),
         ("categories", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical)],
        remainder="drop",
    )
    if task == "regression":
        estimator = Ridge() if linear else HistGradientBoostingRegressor(random_state=seed)
    else:
        estimator = (LogisticRegression(max_iter=5000, random_state=seed) if linear
                     else HistGradientBoostingClassifier(random_state=seed))
    return Pipeline([("prepare", prepare), ("model", estimator)])
