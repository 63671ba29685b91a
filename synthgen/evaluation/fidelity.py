"""Fidelity: how closely synthetic rows resemble the real training rows.

Each score is set next to the same score for the real holdout (what fresh real patients attain),
because shape and pair scores fall short of 1.0 even for real data. sdmetrics (pinned in
pyproject) computes the QualityReport and DiagnosticReport properties; they are not re-implemented
here. synthgen adds a detection test, ML utility and plot-ready aggregates. Nothing returned holds
a real record: scores, per-column and per-pair tables, binned histograms and association matrices.
"""
from __future__ import annotations

import itertools
import math
import warnings
from importlib.metadata import version
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from scipy.stats.contingency import association
from sdmetrics.reports import DiagnosticReport, QualityReport
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import accuracy_score, r2_score, roc_auc_score
from sklearn.model_selection import PredefinedSplit, cross_val_score
from threadpoolctl import threadpool_limits

from synthgen.errors import InvalidDataError, MetadataError
from synthgen.evaluation.scores import Score, SectionResult
from synthgen.metadata import Metadata

SECTION = "fidelity"

Specs = dict[str, dict[str, Any]]  # column name -> SDV column spec

_SCORED_SDTYPES = ("numerical", "datetime", "categorical", "boolean")
_CONTINUOUS = ("numerical", "datetime")
_TABLE = "table"  # sdmetrics' non-deprecated reports take a dict of tables
_THRESHOLDS_NOTE = "pairs scored only where the real |Pearson| > 0.5 or Cramér's V > 0.3 (sdmetrics defaults)"
_ALL_PAIRS_NOTE = "every pair scored (sdmetrics thresholds set to 0)"
_OVERFIT_MARGIN = 0.01
_OVERFIT_NOTE = "above the holdout: possible overfitting"
_FOLDS = 5
_MODEL_PARAMS = {"max_iter": 100}  # shared by detection, TSTR and TRTR so they stay comparable
_MAX_CATEGORIES = 255  # HistGradientBoosting's limit per categorical feature (max_bins)
_BINS = 30  # at most this many histogram bins, and categories shown
_TAIL = 0.01  # outer histogram edges at the 1st/99th percentiles: no patient's extreme value
_MIN_SHOWN = 5  # categories with fewer real rows are pooled, never named
_DECILES = np.linspace(0.1, 0.9, 9)
_DAY_NS = 86_400 * 10**9


def quality_scores(real: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata, all_pairs: bool = True) -> dict[str, float]:
    """sdmetrics QualityReport's Column Shapes and Column Pair Trends.

    sdmetrics 0.32 scores only pairs whose real data are strongly related (|Pearson| > 0.5 or
    Cramér's V > 0.3); with ``all_pairs`` the score over every pair is added as well.
    """
    specs = _scored_specs(metadata)
    scores, _, _ = _quality(_columns(real, specs), _columns(synthetic, specs), specs)
    if not all_pairs:
        del scores["Column Pair Trends (all pairs)"]
    return scores


def fidelity_section(
    train: pd.DataFrame,
    synthetic: pd.DataFrame,
    holdout: pd.DataFrame | None,
    metadata: Metadata,
    *,
    rng: np.random.Generator,
    target: str | None = None,
    max_rows: int = 50_000,
) -> SectionResult:
    """Fidelity of ``synthetic`` to ``train``, each score referenced to the real ``holdout``.

    Scores: sdmetrics' Column Shapes and Column Pair Trends (at its thresholds and over all
    pairs), Data Validity and Data Structure, a real-vs-synthetic detection ROC AUC and, given a
    ``target``, ML utility (train on synthetic, test on the holdout). id columns are left out.
    Every frame is capped at ``max_rows`` random rows; all sampling draws from ``rng``.
    """
    specs = _scored_specs(metadata)
    if target is not None:
        _check_target(metadata, target)
    _check_columns(specs, train=train, synthetic=synthetic, holdout=holdout)
    notes = []
    excluded = [name for name in metadata.columns if name not in specs]
    if excluded:
        notes.append(f"left out (id or unscored columns): {', '.join(map(repr, excluded))}")
    train, synthetic, holdout = (
        _capped(frame, name, max_rows, rng, notes)
        for name, frame in (("train", train), ("synthetic", synthetic), ("holdout", holdout))
    )
    diagnostic_synthetic = synthetic.drop(columns=excluded, errors="ignore")  # extra columns cost Data Structure
    train, synthetic = _columns(train, specs), _columns(synthetic, specs)
    holdout = None if holdout is None else _columns(holdout, specs)

    scored, reference = synthetic, holdout
    if holdout is not None:
        size = min(len(holdout), len(synthetic))
        scored, reference = _subsample(synthetic, size, rng), _subsample(holdout, size, rng)
        notes.append(
            f"QualityReport scores depend on sample size, so synthetic and holdout are scored at one "
            f"size, {size:,} rows (a random subsample of the larger), against {len(train):,} training rows"
        )
    else:
        notes.append("no holdout: no score has a reference (what fresh real patients attain)")
    quality, shapes, pairs = _quality(train, scored, specs)
    if reference is not None:
        reference_quality, reference_shapes, reference_pairs = _quality(train, reference, specs)
        shapes = _with_holdout(shapes, reference_shapes, ["Column"])
        pairs = _with_holdout(pairs, reference_pairs, ["Column 1", "Column 2"])
    else:
        reference_quality = dict.fromkeys(quality)
        shapes["HoldoutScore"] = pairs["HoldoutScore"] = np.nan
    method = f"sdmetrics {version('sdmetrics')}"
    scores = [
        _quality_score(name, quality[name], reference_quality[name], f"{method} QualityReport", note)
        for name, note in (
            ("Column Shapes", ""),
            ("Column Pair Trends", _THRESHOLDS_NOTE),
            ("Column Pair Trends (all pairs)", _ALL_PAIRS_NOTE),
        )
    ]
    diagnostic, validity = _diagnostic(train, diagnostic_synthetic, specs)
    scores += [
        Score(SECTION, name, value, ideal="1", method=f"{method} DiagnosticReport")
        for name, value in diagnostic.items()
    ]

    # One OpenMP thread: on a busy machine HistGradientBoosting's spinning threads ran ~50x slower.
    with threadpool_limits(limits=1, user_api="openmp"):
        scores += _detection_scores(train, synthetic, holdout, specs, rng, notes)
        if target is not None and holdout is None:
            notes.append(f"ML utility for target {target!r} needs a holdout: not scored")
        elif target is not None:
            scores += _utility(train, synthetic, holdout, specs, target, rng, notes)

    matched = _subsample(synthetic, len(train), rng)
    notes.append(
        "association matrices: Pearson between numerical/datetime columns, Cramér's V otherwise "
        f"(numbers cut at training deciles), on {len(train):,} training and {len(matched):,} synthetic rows"
    )
    return SectionResult(
        scores=scores,
        tables={"column_shapes": shapes, "column_pair_trends": pairs, "data_validity": validity},
        figures={
            "marginals": {name: _marginal(train[name], synthetic[name], spec) for name, spec in specs.items()},
            "correlation_real": _associations(train, train, specs),
            "correlation_synthetic": _associations(matched, train, specs),
        },
        notes=notes,
    )


def _scored_specs(metadata: Metadata) -> Specs:
    """The columns sdmetrics and the models score, as minimal SDV specs; id columns excluded."""
    specs = {
        name: {key: spec[key] for key in ("sdtype", "datetime_format") if key in spec}
        for name, spec in metadata.columns.items()
        if spec["sdtype"] in _SCORED_SDTYPES
    }
    if not specs:
        raise MetadataError("the metadata has no numerical, categorical, boolean or datetime column to score")
    return specs


def _check_target(metadata: Metadata, target: str) -> None:
    if target not in metadata.columns:
        raise MetadataError(f"target column {target!r} is not in the metadata")
    sdtype = metadata.columns[target]["sdtype"]
    if sdtype not in ("numerical", "categorical", "boolean"):
        raise MetadataError(
            f"target column {target!r} is {sdtype}; ML utility needs a numerical, categorical or boolean target"
        )


def _check_columns(specs: Specs, **frames: pd.DataFrame | None) -> None:
    for name, frame in frames.items():
        missing = [] if frame is None else [column for column in specs if column not in frame.columns]
        if missing:
            raise InvalidDataError(f"the {name} table lacks the metadata's columns {', '.join(map(repr, missing))}")


def _columns(frame: pd.DataFrame, specs: Specs) -> pd.DataFrame:
    return frame[list(specs)].reset_index(drop=True)


def _subsample(frame: pd.DataFrame, size: int, rng: np.random.Generator) -> pd.DataFrame:
    """At most ``size`` rows drawn without replacement, in their original order."""
    if len(frame) <= size:
        return frame
    return frame.iloc[np.sort(rng.choice(len(frame), size, replace=False))].reset_index(drop=True)


def _capped(
    frame: pd.DataFrame | None, name: str, max_rows: int, rng: np.random.Generator, notes: list[str]
) -> pd.DataFrame | None:
    if frame is None or len(frame) <= max_rows:
        return frame
    notes.append(f"{name}: {max_rows:,} random rows of {len(frame):,} (max_rows)")
    return _subsample(frame, max_rows, rng)


def _generate(
    report: QualityReport | DiagnosticReport, real: pd.DataFrame, synthetic: pd.DataFrame, specs: Specs
) -> QualityReport | DiagnosticReport:
    """Run an sdmetrics report on one table; rows were already capped with the seeded rng."""
    report.num_rows_subsample = None  # sdmetrics' own subsampling is unseeded
    metadata = {"tables": {_TABLE: {"columns": specs}}}
    with warnings.catch_warnings():  # e.g. an all-missing synthetic column: its score is NaN in the tables
        warnings.simplefilter("ignore")
        report.generate({_TABLE: real}, {_TABLE: synthetic}, metadata, verbose=False)
    return report


def _properties(report: QualityReport | DiagnosticReport) -> dict[str, float]:
    return {row.Property: float(row.Score) for row in report.get_properties().itertuples()}


def _details(report: QualityReport | DiagnosticReport, name: str) -> pd.DataFrame:
    return report.get_details(name).drop(columns="Table").reset_index(drop=True)


def _quality(
    real: pd.DataFrame, synthetic: pd.DataFrame, specs: Specs
) -> tuple[dict[str, float], pd.DataFrame, pd.DataFrame]:
    """QualityReport scores at sdmetrics' thresholds and over all pairs, with their breakdowns.

    The pairs table scores every pair; "Meets Threshold?" marks those in the default score.
    """
    default = _generate(QualityReport(), real, synthetic, specs)
    every = QualityReport()
    every.real_correlation_threshold = 0
    every.real_association_threshold = 0
    _generate(every, real, synthetic, specs)
    scores = _properties(default)
    scores["Column Pair Trends (all pairs)"] = _properties(every)["Column Pair Trends"]
    keys = ["Column 1", "Column 2"]
    pairs = _details(every, "Column Pair Trends").drop(columns=["Real Association", "Meets Threshold?"])
    thresholded = _details(default, "Column Pair Trends")[[*keys, "Real Association", "Meets Threshold?"]]
    return scores, _details(default, "Column Shapes"), pairs.merge(thresholded, on=keys, how="left")


def _with_holdout(details: pd.DataFrame, reference: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    holdout = reference[[*keys, "Score"]].rename(columns={"Score": "HoldoutScore"})
    return details.merge(holdout, on=keys, how="left")


def _quality_score(name: str, value: float, reference: float | None, method: str, note: str) -> Score:
    notes = [note] if note else []
    if math.isnan(value):
        notes.append("no pair is related strongly enough in the real data to be scored")
    if reference is not None and math.isnan(reference):
        reference = None
    if reference is not None and value > reference + _OVERFIT_MARGIN:
        notes.append(_OVERFIT_NOTE)
    return Score(SECTION, name, value, reference=reference, ideal="1", method=method, note="; ".join(notes))


def _diagnostic(real: pd.DataFrame, synthetic: pd.DataFrame, specs: Specs) -> tuple[dict[str, float], pd.DataFrame]:
    """DiagnosticReport's Data Validity and Data Structure, and the per-column validity table."""
    report = _generate(DiagnosticReport(), real, synthetic, specs)
    properties = _properties(report)
    scores = {name: properties[name] for name in ("Data Validity", "Data Structure")}
    return scores, _details(report, "Data Validity")


def _numbers(column: pd.Series, spec: dict[str, Any]) -> np.ndarray:
    """A numerical or datetime column as floats (datetimes in days since 1970), NaN where missing."""
    if spec["sdtype"] == "numerical":
        return pd.to_numeric(column, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    stamps = pd.to_datetime(column, format=spec.get("datetime_format"), errors="coerce")
    stamps = stamps.to_numpy("datetime64[ns]")
    days = stamps.astype("int64") / _DAY_NS
    days[np.isnat(stamps)] = np.nan
    return days


def _codes(column: pd.Series) -> np.ndarray:
    """Category codes by frequency, the rarest pooled into one code (255 at most); NaN if missing."""
    kept = column.value_counts().index[: _MAX_CATEGORIES - 1]
    codes = pd.Categorical(column, categories=kept).codes.astype("float64")
    codes[codes < 0] = len(kept)
    codes[column.isna().to_numpy()] = np.nan
    return codes


def _encode(frames: list[pd.DataFrame], specs: Specs) -> tuple[list[np.ndarray], np.ndarray]:
    """Feature matrices for HistGradientBoosting, coded alike across frames, and its categorical mask."""
    both = pd.concat(frames, ignore_index=True)
    matrix = np.column_stack([
        _numbers(both[name], spec) if spec["sdtype"] in _CONTINUOUS else _codes(both[name])
        for name, spec in specs.items()
    ])
    categorical = np.array([spec["sdtype"] not in _CONTINUOUS for spec in specs.values()])
    return np.split(matrix, np.cumsum([len(frame) for frame in frames])[:-1]), categorical


def _trainable(x: np.ndarray) -> np.ndarray:
    """``x`` with all-missing features set to 0: HistGradientBoosting fails on them, ignores constants."""
    return np.where(np.isnan(x).all(axis=0), 0.0, x)


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2**31 - 1))


def _detection(
    real: pd.DataFrame, other: pd.DataFrame, specs: Specs, rng: np.random.Generator
) -> tuple[float, float, float]:
    """Cross-validated ROC AUC of a classifier telling ``other`` rows from ``real`` ones, with its 95% interval.

    Classes are balanced by subsampling the larger one. Folds are drawn per distinct row: were a
    copied row and its original split between training and test folds, the classifier would learn
    the copy's label and score the original wrongly, pushing the AUC of copied data far below 0.5.
    """
    size = min(len(real), len(other))
    (x_real, x_other), categorical = _encode([_subsample(real, size, rng), _subsample(other, size, rng)], specs)
    rows = _trainable(np.vstack([x_real, x_other]))
    groups = pd.factorize(pd.util.hash_pandas_object(pd.DataFrame(rows), index=False))[0]
    folds = PredefinedSplit(rng.permutation(groups.max() + 1)[groups] % _FOLDS)
    model = HistGradientBoostingClassifier(**_MODEL_PARAMS, categorical_features=categorical, random_state=_seed(rng))
    aucs = cross_val_score(model, rows, np.repeat([0, 1], size), cv=folds, scoring="roc_auc")
    half_width = 1.96 * aucs.std(ddof=1) / math.sqrt(_FOLDS)
    return float(aucs.mean()), float(aucs.mean() - half_width), float(aucs.mean() + half_width)


def _detection_scores(
    train: pd.DataFrame, synthetic: pd.DataFrame, holdout: pd.DataFrame | None, specs: Specs,
    rng: np.random.Generator, notes: list[str],
) -> list[Score]:
    size = min(len(train), len(synthetic))
    if size < 2 * _FOLDS:
        notes.append(f"detection needs at least {2 * _FOLDS} training and synthetic rows: not scored")
        return []
    auc, low, high = _detection(train, synthetic, specs, rng)
    reference = None
    if holdout is not None and min(len(train), len(holdout)) >= 2 * _FOLDS:
        reference = _detection(train, holdout, specs, rng)[0]
    notes.append(
        f"detection: {size:,} training and {size:,} synthetic rows, {_FOLDS}-fold CV keeping identical "
        "rows in one fold; the reference tells holdout from training rows the same way"
    )
    return [Score(
        SECTION, "Detection ROC AUC", auc, low=low, high=high, reference=reference, ideal="0.5",
        method=f"scikit-learn {sklearn.__version__} HistGradientBoostingClassifier, {_FOLDS}-fold CV",
        note="how well a classifier tells synthetic from training rows; 95% interval over folds",
    )]


def _utility(
    train: pd.DataFrame, synthetic: pd.DataFrame, holdout: pd.DataFrame, specs: Specs, target: str,
    rng: np.random.Generator, notes: list[str],
) -> list[Score]:
    """Train on synthetic, test on the holdout (TSTR), against train on real, test on the holdout (TRTR).

    Both models see as many rows and the same hyper-parameters; rows missing the target are dropped.
    """
    features = {name: spec for name, spec in specs.items() if name != target}
    if not features:
        notes.append(f"ML utility: no column besides {target!r} to predict it from")
        return []
    train, synthetic, holdout = (
        frame[frame[target].notna()].reset_index(drop=True) for frame in (train, synthetic, holdout)
    )
    size = min(len(train), len(synthetic))
    train, synthetic = _subsample(train, size, rng), _subsample(synthetic, size, rng)
    notes.append(
        f"ML utility: target {target!r}; models trained on {size:,} rows each, tested on {len(holdout):,} holdout rows"
    )
    (x_train, x_synthetic, x_holdout), categorical = _encode([train, synthetic, holdout], features)
    seed = _seed(rng)
    method = f"scikit-learn {sklearn.__version__} HistGradientBoosting"
    note = "train on synthetic, test on the holdout; reference: train on real training rows"
    if specs[target]["sdtype"] == "numerical":
        y_train, y_synthetic, y_holdout = (
            _numbers(frame[target], specs[target]) for frame in (train, synthetic, holdout)
        )
        trtr, tstr = (
            r2_score(y_holdout, HistGradientBoostingRegressor(
                **_MODEL_PARAMS, categorical_features=categorical, random_state=seed
            ).fit(_trainable(x), y).predict(x_holdout))
            for x, y in ((x_train, y_train), (x_synthetic, y_synthetic))
        )
        return [Score(
            SECTION, "TSTR R2", float(tstr), reference=float(trtr), ideal="1", method=f"{method}Regressor", note=note
        )]
    labels = _codes(pd.concat([train[target], synthetic[target], holdout[target]], ignore_index=True))
    y_train, y_synthetic, y_holdout = np.split(labels, np.cumsum([len(train), len(synthetic)]))
    classes = np.unique(y_holdout)
    if len(classes) < 2:
        notes.append(f"ML utility: the holdout's {target!r} has a single class, so no ROC AUC is scored")
        return []
    trtr, tstr = (
        _classify(x, y, x_holdout, y_holdout, classes, categorical, seed)
        for x, y in ((x_train, y_train), (x_synthetic, y_synthetic))
    )
    return [
        Score(SECTION, f"TSTR {metric}", tstr[i], reference=trtr[i], ideal="1", method=f"{method}Classifier", note=note)
        for i, metric in enumerate(("ROC AUC", "accuracy"))
    ]


def _classify(
    x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, classes: np.ndarray,
    categorical: np.ndarray, seed: int,
) -> tuple[float, float]:
    """Macro one-vs-rest ROC AUC over the test ``classes`` and accuracy; one training class predicts its prior."""
    model = (
        HistGradientBoostingClassifier(**_MODEL_PARAMS, categorical_features=categorical, random_state=seed)
        if len(np.unique(y)) > 1 else DummyClassifier(strategy="prior")
    ).fit(_trainable(x), y)
    scores = np.zeros((len(x_test), len(classes)))  # classes the model never saw score 0
    scores[:, np.isin(classes, model.classes_)] = model.predict_proba(x_test)[:, np.isin(model.classes_, classes)]
    auc = np.mean([roc_auc_score(y_test == label, scores[:, j]) for j, label in enumerate(classes)])
    return float(auc), float(accuracy_score(y_test, model.predict(x_test)))


def _marginal(real: pd.Series, synthetic: pd.Series, spec: dict[str, Any]) -> dict[str, Any]:
    """Plot-ready histogram (numerical, datetime) or category shares of one column.

    Histograms have up to 30 bins at quantiles of the real column, the outer edges at its 1st and
    99th percentiles (the tails are counted in the outer bins), so no patient's extreme value is
    shown. Values are densities: share of non-missing rows per unit (per day for datetimes, whose
    edges are ISO-8601 strings). "missing" gives each side's share of missing values.
    """
    if spec["sdtype"] in _CONTINUOUS:
        real_values, synthetic_values = _numbers(real, spec), _numbers(synthetic, spec)
        edges = _quantiles(real_values, np.linspace(_TAIL, 1 - _TAIL, _BINS + 1))
        if len(edges) > 1:
            bins = edges.tolist()
            if spec["sdtype"] == "datetime":
                bins = pd.to_datetime(edges * _DAY_NS).strftime("%Y-%m-%dT%H:%M:%S").tolist()
            return {
                "kind": "numeric",
                "bins": bins,
                "real": _densities(real_values, edges),
                "synthetic": _densities(synthetic_values, edges),
                "missing": {
                    "real": float(np.isnan(real_values).mean()),
                    "synthetic": float(np.isnan(synthetic_values).mean()),
                },
            }
    return _category_shares(real, synthetic)  # also a constant number or date


def _quantiles(values: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """The distinct quantiles of the non-missing values (none when all are missing)."""
    return np.array([]) if np.isnan(values).all() else np.unique(np.nanquantile(values, levels))


def _densities(values: np.ndarray, edges: np.ndarray) -> list[float]:
    present = values[~np.isnan(values)]
    if len(present) == 0:
        return [0.0] * (len(edges) - 1)
    counts, _ = np.histogram(np.clip(present, edges[0], edges[-1]), edges)
    return (counts / (len(present) * np.diff(edges))).tolist()


def _category_shares(real: pd.Series, synthetic: pd.Series) -> dict[str, Any]:
    """Shares of the 30 most common real categories; those with fewer than 5 real rows are "(rare)".

    "(other)" holds the rest: categories beyond the 30 shown, or never seen in the real data.
    """
    codes, uniques = pd.factorize(pd.concat([real, synthetic], ignore_index=True))
    labels = pd.Series(np.append(uniques.astype(str), "(missing)")[codes])  # code -1 (missing) -> last
    real_labels, synthetic_labels = labels.iloc[: len(real)], labels.iloc[len(real):]
    counts = real_labels.value_counts()
    shown = counts.index[counts >= _MIN_SHOWN][:_BINS].tolist()
    rare = counts.index[counts < _MIN_SHOWN]

    def pooled(values: pd.Series) -> pd.Series:
        return values.where(values.isin(shown), np.where(values.isin(rare), "(rare)", "(other)"))

    real_shares, synthetic_shares = (
        pooled(values).value_counts(normalize=True) for values in (real_labels, synthetic_labels)
    )
    categories = shown + [label for label in ("(rare)", "(other)") if label in real_shares or label in synthetic_shares]
    return {
        "kind": "categorical",
        "categories": categories,
        "real": real_shares.reindex(categories, fill_value=0.0).tolist(),
        "synthetic": synthetic_shares.reindex(categories, fill_value=0.0).tolist(),
    }


def _associations(frame: pd.DataFrame, real: pd.DataFrame, specs: Specs) -> pd.DataFrame:
    """Pairwise association matrix: Pearson between numerical/datetime columns, Cramér's V otherwise.

    Pearson is signed (-1..1), Cramér's V is 0..1 and grows in small samples, so compare frames
    of similar size. For Cramér's V numbers are cut at the ``real`` deciles and missing values are
    a level of their own: sdmetrics' Column Pair Trends also compares mixed pairs by contingency.
    """
    numbers = {name: _numbers(frame[name], spec) for name, spec in specs.items() if spec["sdtype"] in _CONTINUOUS}
    pearson = pd.DataFrame(numbers).corr()
    levels = {}
    for name, spec in specs.items():
        if name in numbers:
            cuts = _quantiles(_numbers(real[name], spec), _DECILES)
            levels[name] = np.where(np.isnan(numbers[name]), len(cuts) + 1, np.digitize(numbers[name], cuts))
        else:
            codes = pd.factorize(frame[name])[0]
            levels[name] = np.where(codes < 0, codes.max() + 1, codes)
    matrix = pd.DataFrame(np.eye(len(specs)), index=list(specs), columns=list(specs))
    for a, b in itertools.combinations(specs, 2):
        value = pearson.loc[a, b] if a in numbers and b in numbers else _cramers_v(levels[a], levels[b])
        matrix.loc[a, b] = matrix.loc[b, a] = value
    return matrix


def _cramers_v(a: np.ndarray, b: np.ndarray) -> float:
    """Cramér's V (scipy's, as sdmetrics uses) of two columns of non-negative integer levels."""
    width = b.max() + 1
    table = np.bincount(a * width + b, minlength=(a.max() + 1) * width).reshape(-1, width)
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    return float(association(table, method="cramer")) if min(table.shape) > 1 else float("nan")
