"""Does augmentation help? ``check_augmentation`` trains the same classifier (or regressor) on the real
rows alone and on real + synthetic rows, repeated over seeds, and scores both on the user's real test
rows only; ``compare_runs`` turns the paired runs into intervals and a verdict (see its docstring).
The image check (``augmentation/images.py``) shares the comparison.
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

from synthgen.augmentation.tables import category_keys, exact_copies
from synthgen.choices import CLASSIFIERS
from synthgen.errors import InvalidArgumentError, InvalidDataError, MetadataError
from synthgen.metadata import Metadata

logger = logging.getLogger(__name__)

#: What ``check_augmentation`` can conclude.
VERDICTS = ("helped", "hurt", "no measurable effect")


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
        train_keys = category_keys(train[target])
        counts = train_keys.value_counts()
        if len(counts) < 2:
            raise InvalidDataError(f"target {target!r} has a single class in the training table")
        unseen = set(category_keys(test[target])) - set(counts.index)
        if unseen:
            raise InvalidDataError(
                f"the test table has {len(unseen)} class(es) of {target!r} that the training table lacks"
            )
        minority = sorted(counts.index[counts == counts.min()])[0]
    overlap = int(exact_copies(train, test, metadata).sum())
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
    y_train, y_test = category_keys(train[target]).to_numpy(str), category_keys(test[target]).to_numpy(str)
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
            columns[name] = category_keys(column).fillna("(missing)").to_numpy(dtype=object)
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
