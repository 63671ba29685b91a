"""Privacy scores: how much the synthetic rows reveal about the patients the model was trained on.

Each distance score and attack is run twice, against the training rows and, identically, against
a holdout of real patients the model never saw; the holdout's result is what chance looks like on
this data, so a score means "more than fresh patients would" rather than an absolute threshold.
Outputs are aggregates only (shares, rates, distances, per-column counts): never cells or records.

Every gated score also carries a one-sided test against the null "the synthetic rows are fresh
real rows, never trained on" (``Score.observed``, ``null``, ``p_value``, ``test``). Under that
null the training rows and the (equal-sized) holdout rows are exchangeable, so:

- exact copies and the DCR share are compared with their permutation distribution over random
  relabellings of the pooled training and holdout rows (what the train/holdout split alone does);
- the membership attacks score training against holdout targets: a one-sided Mann-Whitney test
  of AUC > 0.5 (ties corrected);
- linkability and attribute inference compare their success on training targets with that on
  holdout targets: a one-sided hypergeometric (Fisher) test, and attribute inference, run on
  every column (or the sensitive ones), corrects for the number of columns (Holm);
- singling out compares, predicate by predicate, isolating a training row with isolating a
  holdout row: a one-sided sign test on the discordant predicates.

A test on too little data (fewer than 20 predicates, fewer than 30 targets per side) says so in
``Score.evidence``, and its gate is inconclusive.

Rows are compared with a Gower-like distance (Gower 1971): each non-id column contributes a value
in [0, 1] (numbers and dates |a - b| / range of the real rows, clipped; categories 0 or 1; a cell missing
on one side 1, on both 0) and the distance is their mean. Rows are embedded so that this is their
Manhattan distance, and nearest neighbours are exact: scikit-learn's brute-force search for the
DCR (on 10,000 x 15 mixed rows it took 0.5 s where the ball tree took 2.3 s and the k-d tree
2.9 s) and scipy's cdist for the attacks, which share one distance matrix.
"""
from __future__ import annotations

import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.spatial.distance import cdist
from scipy.stats import binom, hypergeom, mannwhitneyu, norm
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.neighbors import NearestNeighbors

from synthgen._version import __version__
from synthgen.data.categorical import category_keys
from synthgen.errors import InvalidArgumentError, InvalidDataError
from synthgen.evaluation.scores import Score, SectionResult
from synthgen.metadata import Metadata

SECTION = "privacy"
_METHOD = f"synthgen {__version__}"
_ANONYMETER = "after anonymeter (Giomi et al. 2023, PoPETs; Article 29 WP Opinion 05/2014)"
_Z95 = float(norm.ppf(0.975))
_MIN_HOLDOUT = 20  # fewer holdout rows cannot calibrate attacks
_MAX_CATEGORIES = 100  # per column in the distance; rarer ones share one point (1-hot width bound)
_N_BOOTSTRAP = 200
_N_PERMUTATIONS = 999  # relabellings of train/holdout for the copy and DCR nulls (smallest p 1/1000)
_DISTANCE_ROWS = 5_000  # synthetic and holdout rows whose nearest-record distances are measured
_TIES = 10  # nearest pooled rows searched for ties in the DCR share
_FPR = 0.01
_RANK_TOLERANCE = 0.025  # a numeric guess within 2.5 percentiles (of the real column) counts as right
_MIN_TARGETS = 30  # fewer targets per side: the attacks' tests are inconclusive
_MIN_PREDICATES = 20  # fewer singling-out predicates: inconclusive
_SELECT_ALPHA = 0.002  # the default gates' alpha: which secret column attribute inference reports
_EPS = 1e-9  # added to distances before the DOMIAS log ratio (an exact match has distance 0)
_CHUNK = 256  # targets per distance matrix in the attacks (256 x 20,000 floats: 40 MB)
_ISNA, _EQ, _LE, _GE = range(4)  # singling-out predicate operators


@dataclass(frozen=True)
class _Columns:
    """The non-id columns and what the distance needs to scale them."""

    names: list[str]
    numeric: np.ndarray  # per column: numbers or dates (True) or categories (False)
    low: np.ndarray  # real (train and holdout) minimum of each numeric column
    span: np.ndarray  # real range of each numeric column (1 where it is 0 or undefined)
    n_codes: np.ndarray  # distinct categories of each categorical column over all tables


def privacy_section(
    train: pd.DataFrame,
    synthetic: pd.DataFrame,
    holdout: pd.DataFrame | None,
    metadata: Metadata,
    *,
    rng: np.random.Generator,
    rare_k: int = 5,
    max_rows: int = 20_000,
    n_attacks: int = 1_000,
    sensitive: list[str] | None = None,
) -> SectionResult:
    """Privacy scores of ``synthetic`` (generated from ``train``), calibrated on ``holdout``.

    Without a holdout only exact copies and rare-category exposure are computed, with no test:
    the tests need real rows the model never saw. Distances and attacks use at most ``max_rows``
    rows of each table (train and holdout subsampled to equal sizes), up to ``n_attacks`` targets
    per attack, and attribute inference tries each column in ``sensitive`` (default: every non-id
    column) as the secret.
    """
    if rare_k < 1 or max_rows < 2 * _MIN_HOLDOUT or n_attacks < 1:
        raise InvalidArgumentError(
            f"rare_k must be at least 1, max_rows at least {2 * _MIN_HOLDOUT} and n_attacks at least 1; "
            f"got rare_k={rare_k}, max_rows={max_rows}, n_attacks={n_attacks}"
        )
    tables = {"train": train, **({"holdout": holdout} if holdout is not None else {}), "synthetic": synthetic}
    for name, table in tables.items():
        metadata.validate(table)
        if len(table) == 0:
            raise InvalidDataError(f"the {name} table has no rows")
    values, columns = _encode(list(tables.values()), metadata, n_real=len(tables) - 1)
    if not columns.names:
        raise InvalidDataError("the metadata has no column other than ids, so there is nothing to compare")
    unknown = [name for name in sensitive or [] if name not in columns.names]
    if unknown:
        raise InvalidArgumentError(f"sensitive column(s) {', '.join(map(repr, unknown))} are not among the table's non-id columns")

    real, syn = values[0], values[-1]
    control = values[1] if holdout is not None else None
    result = SectionResult(scores=[_exact_copies(real, syn, control)])
    rare_scores, result.tables["rare_categories"] = _rare_categories(real, syn, control, columns, rare_k)
    result.scores.extend(rare_scores)
    result.notes.append("Exact copies and rare-category exposure use every row of each table.")
    if control is None or len(control) < _MIN_HOLDOUT:
        reason = "No holdout was given" if control is None else f"The holdout has fewer than {_MIN_HOLDOUT} rows"
        result.notes.append(
            f"{reason}: the DCR share and percentile, NNDR, membership inference (distance, DOMIAS) and "
            "the singling-out, linkability and attribute-inference risks compare the training rows "
            "with real rows the model never saw, so they were not computed."
        )
        return result
    _holdout_scores(result, real, syn, control, columns, rng, max_rows, n_attacks, sensitive)
    return result


def _holdout_scores(
    result: SectionResult,
    real: np.ndarray,
    syn: np.ndarray,
    control: np.ndarray,
    columns: _Columns,
    rng: np.random.Generator,
    max_rows: int,
    n_attacks: int,
    sensitive: list[str] | None,
) -> None:
    """Add the scores that compare training rows with holdout rows to ``result``."""
    if len(control) < len(real) / 2:
        result.notes.append(
            f"The holdout ({len(control)} rows) is less than half the size of the training data "
            f"({len(real)} rows); it should be about as large: a smaller control set makes every "
            "comparison noisier and inflates the singling-out risk."
        )
    n = min(len(real), len(control), max_rows)
    if n < len(real) or n < len(control):
        result.notes.append(
            f"Distances and attacks use {n} training and {n} holdout rows drawn at random: equal "
            "sizes, so that nearest-record distances to either are comparable."
        )
    real = real[_subsample(rng, len(real), n)]
    control = control[_subsample(rng, len(control), n)]
    permutations = _Relabellings(int(rng.integers(2**63)), n)
    result.scores[0] = _copy_test(result.scores[0], real, control, syn, permutations)
    if len(syn) > max_rows:
        result.notes.append(f"Distances and attacks use {max_rows} of the {len(syn)} synthetic rows, drawn at random.")
        syn = syn[_subsample(rng, len(syn), max_rows)]
    (real_e, control_e, syn_e), blocks, lumped = _embed([real, control, syn], columns)
    if lumped:
        result.notes.append(
            f"In the distance, categories beyond the {_MAX_CATEGORIES - 1} most frequent of "
            f"{', '.join(repr(columns.names[j]) for j in lumped)} count as one category."
        )

    _distance_scores(result, real_e, control_e, syn_e, permutations, rng)

    # Half of the holdout is DOMIAS's reference; the other half supplies the non-members, which
    # are also the control targets of the linkability and attribute-inference attacks.
    order = rng.permutation(n)
    reference, outsiders = order[: n // 2], order[n // 2 :]
    m = min(n_attacks, len(outsiders))
    members = rng.choice(n, m, replace=False)
    outsiders = rng.choice(outsiders, m, replace=False)
    result.notes.append(
        f"Membership, linkability and attribute-inference attacks target {m} training rows and, as "
        f"controls, {m} holdout rows; DOMIAS's reference density is fit on the other {len(reference)} "
        "holdout rows, never used as targets."
    )
    targets = np.vstack([real[members], control[outsiders]])
    targets_e = np.vstack([real_e[members], control_e[outsiders]])
    labels = np.r_[np.ones(m), np.zeros(m)]
    p = len(columns.names)
    halves, secrets = [], []
    if p > 1:
        halves = np.array_split(rng.permutation(p), 2)
        secrets = [columns.names.index(name) for name in sensitive] if sensitive else list(range(p))
    excluded = [np.concatenate([blocks[j] for j in half]) for half in halves] + [blocks[j] for j in secrets]
    distance, nearest = _nearest_without(targets_e, syn_e, excluded)
    density = _domias_scores(distance, control_e[reference], targets_e)
    result.notes.append(
        "DOMIAS's densities are nearest-neighbour estimates: a target scores log(d_reference / d_synthetic), "
        "its distances to the nearest reference-holdout and synthetic rows (an exact copy scores highest)."
    )
    for name, scores in (("distance", -distance), ("DOMIAS", density)):
        result.scores.extend(_attack_scores(name, labels, scores, rng))
    result.scores.append(_singling_out(real, control, syn, columns, rng, n_attacks))
    if p < 2:
        result.notes.append("Linkability and attribute inference need at least two non-id columns.")
        return
    # Excluding one half leaves the other: the nearest rows on each half are nearest[1] and nearest[0].
    result.scores.append(_linkability(nearest[1] == nearest[0], m, [len(half) for half in halves]))
    pooled = np.vstack([real, control])
    score, result.tables["attribute_inference"] = _attribute_inference(targets, syn, nearest[2:], columns, secrets, m, pooled)
    result.scores.append(score)


def _encode(frames: list[pd.DataFrame], metadata: Metadata, n_real: int) -> tuple[list[np.ndarray], _Columns]:
    """Each table as one float matrix over the non-id columns; NaN marks a missing cell.

    Numbers stay numbers, dates become seconds, and every other sdtype (categorical, boolean, a
    plugin's) becomes an integer code shared by all tables, so 1, 1.0 and "1" are one category.
    The first ``n_real`` tables (train and holdout) set the numeric ranges: both sides of every
    comparison are scaled alike, and a holdout reaching past the training range (a later visit
    date) is not clipped onto it.
    """
    names = [name for name, spec in metadata.columns.items() if spec["sdtype"] != "id"]
    numeric = np.array([metadata.columns[name]["sdtype"] in ("numerical", "datetime") for name in names], dtype=bool)
    matrices = [np.empty((len(frame), len(names))) for frame in frames]
    n_codes = np.zeros(len(names), dtype=np.int64)
    for j, name in enumerate(names):
        spec = metadata.columns[name]
        if spec["sdtype"] == "datetime":
            cells = [_seconds(frame[name], spec.get("datetime_format")) for frame in frames]
        elif numeric[j]:
            cells = [pd.to_numeric(frame[name], errors="coerce").to_numpy(np.float64, na_value=np.nan) for frame in frames]
        else:
            codes, categories = pd.factorize(pd.concat([category_keys(frame[name]) for frame in frames], ignore_index=True))
            n_codes[j] = len(categories)
            cells = np.split(np.where(codes < 0, np.nan, codes.astype(np.float64)), np.cumsum([len(f) for f in frames])[:-1])
        for matrix, column in zip(matrices, cells):
            matrix[:, j] = np.where(np.isnan(column), np.nan, column + 0.0)  # one NaN, and no -0.0, for hashing
    ranged = np.where(numeric, np.vstack(matrices[:n_real]), np.nan)
    low = np.fmin.reduce(ranged, axis=0, initial=np.inf)  # fmin skips NaN; inf where all missing
    span = np.fmax.reduce(ranged, axis=0, initial=-np.inf) - low
    valid = np.isfinite(span) & (span > 0)
    return matrices, _Columns(names, numeric, np.where(np.isfinite(low), low, 0.0), np.where(valid, span, 1.0), n_codes)


def _seconds(column: pd.Series, datetime_format: str | None) -> np.ndarray:
    """A date column as seconds since the epoch (wall-clock time); unparseable cells are missing."""
    if not pd.api.types.is_datetime64_any_dtype(column.dtype):
        if pd.api.types.is_numeric_dtype(column.dtype):  # e.g. 20210304 with format %Y%m%d
            column = column.astype("Int64").astype(str)
        column = pd.to_datetime(column, format=datetime_format, errors="coerce")
    stamps = pd.DatetimeIndex(column)
    if stamps.tz is not None:
        stamps = stamps.tz_localize(None)
    return np.where(stamps.isna(), np.nan, stamps.as_unit("ns").asi8 / 1e9)


def _subsample(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """Sorted positions of ``size`` of ``n`` rows drawn without replacement (all when n <= size)."""
    return np.arange(n) if n <= size else np.sort(rng.choice(n, size, replace=False))


def _embed(tables: list[np.ndarray], columns: _Columns) -> tuple[list[np.ndarray], list[np.ndarray], list[int]]:
    """Rows as points whose Manhattan distance is their Gower-like distance (see the module doc).

    A number scaled by the real range to x in [0, 1] is one coordinate; in a column with a
    missing cell anywhere it is (x/2, (1-x)/2) and a missing cell (-1/4, -1/4), 1 away from every
    number. The k categories of a column (missing counts as one) are the points +-e_i/2 of
    ceil(k/2) coordinates, all 1 apart. Returns the embedded tables, each column's coordinates,
    and the columns whose rarest categories were merged to bound the width.
    """
    stacked = np.vstack(tables)
    rows = np.arange(len(stacked))
    parts, blocks, lumped, width = [], [], [], 0
    for j in range(len(columns.names)):
        cells = stacked[:, j]
        missing = np.isnan(cells)
        if columns.numeric[j]:
            x = np.clip((cells - columns.low[j]) / columns.span[j], 0.0, 1.0)
            part = np.where(missing[:, None], -0.25, np.column_stack([x / 2, (1 - x) / 2])) if missing.any() else x[:, None]
        else:
            codes = np.where(missing, columns.n_codes[j], cells).astype(np.int64)
            counts = np.bincount(codes)
            rank = np.empty(len(counts), dtype=np.int64)
            rank[np.argsort(-counts, kind="stable")] = np.arange(len(counts))
            codes = rank[codes]  # most frequent first: the k categories present take codes 0..k-1
            k = int(np.count_nonzero(counts))
            if k > _MAX_CATEGORIES:
                lumped.append(j)
                codes, k = np.minimum(codes, _MAX_CATEGORIES - 1), _MAX_CATEGORIES
            part = np.zeros((len(cells), (k + 1) // 2))
            part[rows, codes // 2] = np.where(codes % 2 == 0, 0.5, -0.5)
        parts.append(part)
        blocks.append(np.arange(width, width + part.shape[1]))
        width += part.shape[1]
    embedded = np.hstack(parts) / len(columns.names)
    return np.split(embedded, np.cumsum([len(table) for table in tables])[:-1]), blocks, lumped


def _nearest(reference: np.ndarray, queries: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Distances to, and positions of, each query's ``k`` nearest reference rows (exact search)."""
    search = NearestNeighbors(n_neighbors=k, algorithm="brute", metric="manhattan").fit(reference)
    return search.kneighbors(queries)


def _nearest_without(targets_e: np.ndarray, syn_e: np.ndarray, excluded: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Each target's distance to the nearest synthetic row, and its nearest row ignoring each coordinate set.

    The distance on the remaining coordinates is the full distance minus the excluded ones' share,
    so a chunk of targets is measured in full once for every attack (linkability halves, each
    inference secret) instead of once per attack. Chunks run on all cores (cdist releases the GIL).
    """
    distance = np.empty(len(targets_e))
    nearest = np.empty((len(excluded), len(targets_e)), dtype=np.int64)

    def measure(start: int) -> None:
        rows = slice(start, start + _CHUNK)
        full = cdist(targets_e[rows], syn_e, "cityblock")
        distance[rows] = full.min(axis=1)
        for i, dims in enumerate(excluded):
            rest = cdist(targets_e[rows, dims], syn_e[:, dims], "cityblock")
            nearest[i, rows] = np.subtract(full, rest, out=rest).argmin(axis=1)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(measure, range(0, len(targets_e), _CHUNK)))
    return distance, nearest


def _row_hashes(values: np.ndarray) -> np.ndarray:
    return pd.util.hash_pandas_object(pd.DataFrame(values), index=False).to_numpy()


def exact_copy_mask(real: pd.DataFrame, synthetic: pd.DataFrame, metadata: Metadata) -> np.ndarray:
    """Which synthetic rows equal a real row in every non-id column (the "Exact copies" definition)."""
    (real_values, synthetic_values), _ = _encode([real, synthetic], metadata, n_real=1)
    return np.isin(_row_hashes(synthetic_values), _row_hashes(real_values))


def _exact_copies(real: np.ndarray, syn: np.ndarray, control: np.ndarray | None) -> Score:
    """Share of synthetic rows equal to a training row; the holdout's share is the reference."""
    seen = _row_hashes(real)
    return Score(
        SECTION,
        "Exact copies",
        float(np.isin(_row_hashes(syn), seen).mean()),
        reference=float(np.isin(_row_hashes(control), seen).mean()) if control is not None else None,
        ideal="0",
        method=f"{_METHOD} share of rows equal to a training row in every non-id column (row hashes, "
        "missing equals missing); reference: holdout rows",
    )


@dataclass(frozen=True)
class _Relabellings:
    """The same random relabellings of the 2n pooled training + holdout rows on every pass: the
    positions called "training" in each (regenerated from the seed rather than held in memory)."""

    seed: int
    n: int

    def __len__(self) -> int:
        return _N_PERMUTATIONS

    def __iter__(self):
        rng = np.random.default_rng(self.seed)
        for _ in range(_N_PERMUTATIONS):
            yield rng.permutation(2 * self.n)[: self.n]


def _copy_test(score: Score, real: np.ndarray, control: np.ndarray, syn: np.ndarray,
               permutations: _Relabellings) -> Score:
    """``score`` (exact copies) with its permutation test on equal-sized training and holdout rows.

    The statistic is the share of synthetic rows equal to a training row minus the share equal to
    a holdout row (the null value: fresh real rows are matched by chance that often); its null distribution comes from relabelling the pooled rows at random (the
    synthetic rows matching a group of identical pooled rows count for the labels it receives).
    """
    n = len(real)
    pooled = _row_hashes(np.vstack([real, control]))
    groups, group_of = np.unique(pooled, return_inverse=True)
    hashes = _row_hashes(syn)
    found = np.minimum(np.searchsorted(groups, hashes), len(groups) - 1)
    matched = groups[found] == hashes
    copies = np.bincount(found[matched], minlength=len(groups)).astype(np.float64)  # synthetic rows per group
    rows = np.flatnonzero(copies[group_of] > 0)  # pooled rows some synthetic row equals
    size = np.bincount(group_of[rows], minlength=len(groups))

    def excess(training: np.ndarray) -> tuple[float, float]:
        in_training = np.bincount(group_of[rows], weights=training[rows], minlength=len(groups))
        return float(copies @ (in_training > 0)) / len(syn), float(copies @ (in_training < size)) / len(syn)

    labels = np.zeros(2 * n)
    labels[:n] = 1.0
    observed, held = excess(labels)
    null = []
    for chosen in permutations:
        labels[:] = 0.0
        labels[chosen] = 1.0
        null.append(excess(labels))
    null_excess = np.array([x - y for x, y in null])
    return dataclasses.replace(
        score, observed=observed, null=held,
        p_value=_permutation_p(null_excess, observed - held),
        test=f"permutation test ({len(permutations)} relabellings of {n} training + {n} holdout rows) of the share of "
             "synthetic rows equal to a training row minus the share equal to a holdout row",
    )


def _permutation_p(null: np.ndarray, observed: float) -> float:
    """One-sided permutation p-value, counting the observed labelling (never 0)."""
    return float((1 + np.count_nonzero(null >= observed - 1e-12)) / (len(null) + 1))


def _rare_categories(
    real: np.ndarray, syn: np.ndarray, control: np.ndarray | None, columns: _Columns, rare_k: int
) -> tuple[list[Score], pd.DataFrame]:
    """Categories seen in fewer than ``rare_k`` training rows that synthetic rows carry.

    Such a category can point to one patient, so the table counts them per column and never
    names them.
    """
    categorical = np.flatnonzero(~columns.numeric)
    counts = []
    carried = np.zeros(len(syn), dtype=bool)
    control_carried = np.zeros(0 if control is None else len(control), dtype=bool)
    for j in categorical:
        seen = _category_counts(real[:, j], columns.n_codes[j])
        rare = (seen > 0) & (seen < rare_k)
        counts.append(int(np.count_nonzero(rare & (_category_counts(syn[:, j], columns.n_codes[j]) > 0))))
        carried |= _carries(syn[:, j], rare)
        if control is not None:
            control_carried |= _carries(control[:, j], rare)
    method = f"{_METHOD} categories seen in 1 to {rare_k - 1} training rows"
    scores = [
        Score(SECTION, "Rare categories exposed", float(sum(counts)), ideal="0",
              method=f"{method}: (column, category) pairs present in the synthetic data"),
        Score(SECTION, "Rare-category rows", float(carried.mean()),
              reference=float(control_carried.mean()) if control is not None else None, ideal="0",
              method=f"{method}: share of rows carrying one; reference: holdout rows"),
    ]
    return scores, pd.DataFrame({"column": [columns.names[j] for j in categorical], "count": counts})


def _category_counts(cells: np.ndarray, n_codes: int) -> np.ndarray:
    return np.bincount(cells[~np.isnan(cells)].astype(np.int64), minlength=n_codes)


def _carries(cells: np.ndarray, flagged: np.ndarray) -> np.ndarray:
    """Per row, whether its category code is one of the ``flagged`` ones (missing never is)."""
    return np.append(flagged, False)[np.where(np.isnan(cells), len(flagged), cells).astype(np.int64)]


def _distance_scores(result: SectionResult, real_e: np.ndarray, control_e: np.ndarray, syn_e: np.ndarray,
                     permutations: _Relabellings, rng: np.random.Generator) -> None:
    """DCR share (with its permutation test), DCR 5th percentile and NNDR, with the holdout's own distances as reference."""
    # Distances are summaries (a share, percentiles, histograms) whose null varies with the
    # train/holdout split far more than with the number of rows measured: 5,000 synthetic and
    # 5,000 holdout rows estimate them well and halve the section's time on 10,000-row tables.
    if max(len(control_e), len(syn_e)) > _DISTANCE_ROWS:
        result.notes.append(f"The DCR share, DCR 5th percentile and NNDR measure at most {_DISTANCE_ROWS} synthetic "
                            f"and {_DISTANCE_ROWS} holdout rows, drawn at random.")
    control_to_train = _nearest(real_e, control_e[_subsample(rng, len(control_e), _DISTANCE_ROWS)], k=2)[0]
    syn_e = syn_e[_subsample(rng, len(syn_e), _DISTANCE_ROWS)]
    # One search of the pooled training + holdout rows serves the synthetic side: its nearest
    # training rows and holdout row are the first of each among the pooled neighbours. The pool
    # is searched in random order: ties beyond the _TIES found would otherwise go to the rows
    # listed first (the training rows).
    n = len(real_e)
    order = rng.permutation(2 * n)
    near, which = _nearest(np.vstack([real_e, control_e])[order], syn_e, k=min(_TIES, 2 * n))
    which = order[which]
    to_train = np.column_stack([_nth_of(near, which < n, rank) for rank in (1, 2)])
    to_control = _nth_of(near, which >= n, 1)
    # All _TIES neighbours on one side (rare): search the other side directly.
    if (missing := np.isnan(to_train).any(axis=1)).any():
        to_train[missing] = _nearest(real_e, syn_e[missing], k=2)[0]
    if (missing := np.isnan(to_control)).any():
        to_control[missing] = _nearest(control_e, syn_e[missing])[0][:, 0]
    # Each synthetic row's unit of "nearest" goes to its nearest pooled row, shared among ties;
    # the share is then the training rows' part, and relabelling the pool gives its null.
    tied = near <= near[:, :1] + 1e-12
    weight = np.bincount(which[tied], weights=(tied / tied.sum(axis=1, keepdims=True))[tied], minlength=2 * n)
    closer = float(weight[:n].sum() / len(syn_e))
    null = np.array([weight[chosen].sum() / len(syn_e) for chosen in permutations])
    centre, error = _wilson(closer * len(syn_e), len(syn_e))
    gower = "Gower-like mean over non-id columns (Gower 1971), exact nearest neighbours"
    result.scores += [
        Score(SECTION, "DCR share", closer, float(centre - error), float(centre + error), ideal="0.5",
              method=f"{_METHOD} share of synthetic rows nearer a training than a holdout row, ties "
              f"shared (Platzer & Reutterer 2021); {gower}; Wilson 95% CI over synthetic rows (the "
              "train/holdout split adds its own variation: the test's null includes it)",
              observed=closer, null=float(null.mean()), p_value=_permutation_p(null, closer),
              test=f"permutation test ({len(permutations)} relabellings of {n} training + {n} holdout rows)"),
        Score(SECTION, "DCR 5th percentile", float(np.percentile(to_train[:, 0], 5)),
              reference=float(np.percentile(control_to_train[:, 0], 5)), ideal=">= reference",
              method=f"{_METHOD} 5th percentile of the distance to the closest training row; {gower}; "
              "reference: holdout rows"),
        Score(SECTION, "NNDR median", float(np.median(_nndr(to_train))),
              reference=float(np.median(_nndr(control_to_train))), ideal=">= reference",
              method=f"{_METHOD} median ratio of the distances to the nearest and second-nearest training "
              f"rows, 0 for an exact match; {gower}; reference: holdout rows"),
    ]
    result.figures["dcr_synthetic_to_train"] = to_train[:, 0]
    result.figures["dcr_synthetic_to_holdout"] = to_control
    result.figures["dcr_holdout_to_train"] = control_to_train[:, 0]


def _nth_of(distances: np.ndarray, mask: np.ndarray, rank: int) -> np.ndarray:
    """Per row, the distance of the ``rank``-th neighbour where ``mask`` holds (NaN when fewer do)."""
    hit = mask & (np.cumsum(mask, axis=1) == rank)
    found = hit.any(axis=1)
    return np.where(found, distances[np.arange(len(distances)), hit.argmax(axis=1)], np.nan)


def _nndr(distances: np.ndarray) -> np.ndarray:
    """Nearest / second-nearest distance; 0 for an exact match even when the second is one too."""
    nearest, second = distances[:, 0], distances[:, 1]
    return np.divide(nearest, second, out=np.zeros_like(nearest), where=nearest > 0)


def _wilson(successes: float, n: int) -> tuple[float, float]:
    """Wilson score centre and half-width of a rate at 95% (Wilson 1927), as anonymeter does."""
    z2 = _Z95**2
    centre = (successes + z2 / 2) / (n + z2)
    return centre, _Z95 / (n + z2) * np.sqrt(successes * (n - successes) / n + z2 / 4)


def _attack_scores(name: str, labels: np.ndarray, scores: np.ndarray, rng: np.random.Generator) -> list[Score]:
    """ROC AUC (bootstrap 95% CI) and TPR at 1% FPR of a membership attack's scores."""
    low, high = np.percentile(_bootstrap_auc(labels, scores, rng), [2.5, 97.5])
    fpr, tpr, _ = roc_curve(labels, scores)
    last = np.r_[fpr[1:] != fpr[:-1], True]  # the highest TPR at each FPR, for interpolation
    attack = {
        "distance": "score -distance to the nearest synthetic row (Gower-like)",
        "DOMIAS": "score p_synthetic(x) / p_reference(x) (van Breugel et al. 2023, DOMIAS) with 1-nearest-neighbour "
                  "densities: log(d_reference / d_synthetic)",
    }[name]
    method = f"{_METHOD} membership inference, training rows vs unseen holdout rows; {attack}"
    members, outsiders = scores[labels == 1], scores[labels == 0]
    auc = float(roc_auc_score(labels, scores))
    p_value = float(mannwhitneyu(members, outsiders, alternative="greater", method="asymptotic").pvalue)
    return [
        Score(SECTION, f"MIA AUC ({name})", auc, float(low), float(high),
              ideal="0.5", method=f"{method}; ROC AUC, {_N_BOOTSTRAP}-resample bootstrap 95% CI",
              observed=auc, null=0.5, p_value=p_value,
              test=f"one-sided Mann-Whitney U (tie-corrected normal approximation), {len(members)} training vs "
                   f"{len(outsiders)} holdout targets",
              evidence=_too_few_targets(len(members))),
        Score(SECTION, f"MIA TPR@1%FPR ({name})", float(np.interp(_FPR, fpr[last], tpr[last])),
              ideal="0.01", method=f"{method}; ROC curve interpolated at 1% FPR"),
    ]


def _bootstrap_auc(labels: np.ndarray, scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """ROC AUCs of stratified bootstrap resamples, all at once as weighted Mann-Whitney statistics.

    A resample's draw counts weight the scores: AUC = sum_i w_i (W[neg < s_i] + W[neg = s_i] / 2)
    / (n_pos n_neg), with the W from cumulative weights over the sorted non-member scores.
    """
    positive, negative = scores[labels == 1], np.sort(scores[labels == 0])
    n_pos, n_neg = len(positive), len(negative)
    w_pos = rng.multinomial(n_pos, np.full(n_pos, 1 / n_pos), size=_N_BOOTSTRAP)
    w_neg = rng.multinomial(n_neg, np.full(n_neg, 1 / n_neg), size=_N_BOOTSTRAP)
    cumulative = np.hstack([np.zeros((_N_BOOTSTRAP, 1)), np.cumsum(w_neg, axis=1)])
    below = cumulative[:, np.searchsorted(negative, positive, "left")]
    up_to = cumulative[:, np.searchsorted(negative, positive, "right")]
    return (w_pos * (below + up_to) / 2).sum(axis=1) / (n_pos * n_neg)


def _domias_scores(to_synthetic: np.ndarray, reference_e: np.ndarray, targets_e: np.ndarray) -> np.ndarray:
    """log p_synthetic(x) - log p_reference(x) per target (van Breugel et al. 2023, DOMIAS).

    Densities are nearest-neighbour estimates (p ~ 1 / d^dims, the dimension cancelling in the
    rank order), so the score is log(d_reference / d_synthetic). Gaussian KDEs on principal
    components, used before, smoothed an exact copy away on duplicate-heavy tables (flchain: AUC
    0.58 for a copy); a nearest-neighbour density keeps a copy's zero distance as the top score.
    """
    to_reference = _nearest(reference_e, targets_e)[0][:, 0]
    return np.log(to_reference + _EPS) - np.log(to_synthetic + _EPS)


def _too_few_targets(m: int) -> str:
    return f"{m} targets per side, fewer than {_MIN_TARGETS}" if m < _MIN_TARGETS else ""


def _fisher_p(successes: int, control_successes: int, n: int) -> float:
    """One-sided p of at least ``successes`` of all successes falling on the n training targets (of 2n)."""
    return float(hypergeom.sf(successes - 1, 2 * n, successes + control_successes, n))


def _residual_risk(successes: int, control_successes: int, n: int) -> tuple[float, float, float]:
    """Anonymeter's risk (a - c) / (1 - c) and 95% CI, clipped to [0, 1].

    a and c are the Wilson-estimated success rates on training and control targets; their Wilson
    errors are propagated to first order, as anonymeter does.
    """
    attack, attack_error = _wilson(successes, n)
    control, control_error = _wilson(control_successes, n)
    risk = (attack - control) / (1 - control)
    error = np.hypot(attack_error / (1 - control), control_error * (attack - 1) / (1 - control) ** 2)
    value, low, high = np.clip([risk, risk - error, risk + error], 0.0, 1.0)
    return float(value), float(low), float(high)


def _singling_out(real: np.ndarray, control: np.ndarray, syn: np.ndarray, columns: _Columns,
                  rng: np.random.Generator, n_attacks: int) -> Score:
    """Univariate singling-out risk: predicates isolating one synthetic row, tried on patients.

    As anonymeter's univariate mode: on de-duplicated rows, "column is missing" (when exactly one
    cell is), "column <= min" and "column >= max" for numbers, and "column == v" for every value
    seen once, kept when they single out one synthetic row; at most ``n_attacks`` at random. An
    attack succeeds when its predicate matches exactly one training row; the control rate counts
    the same on the holdout rows (as many before de-duplication).
    """
    syn, real, control = (_unique_rows(rows) for rows in (syn, real, control))
    predicates = []
    for j in range(syn.shape[1]):
        cells = syn[:, j]
        distinct, counts = np.unique(cells[~np.isnan(cells)], return_counts=True)
        predicates.append((j, _EQ, distinct[counts == 1]))
        if np.count_nonzero(np.isnan(cells)) == 1:
            predicates.append((j, _ISNA, np.array([np.nan])))
        if columns.numeric[j] and len(distinct):
            predicates += [(j, _LE, distinct[:1]), (j, _GE, distinct[-1:])]
    col = np.concatenate([np.full(len(values), j) for j, _, values in predicates])
    op = np.concatenate([np.full(len(values), kind) for _, kind, values in predicates])
    value = np.concatenate([values for _, _, values in predicates])
    chosen = rng.permutation(np.flatnonzero(_match_counts(syn, col, op, value) == 1))[:n_attacks]
    col, op, value = col[chosen], op[chosen], value[chosen]
    method = (f"{_METHOD} univariate singling out {_ANONYMETER}: risk (a - c)/(1 - c) of the rates at "
              "which predicates built from synthetic rows isolate one training (a) or holdout (c) row, "
              "Wilson 95% CI propagated")
    test = "one-sided sign test on the predicates isolating a training row but not a holdout row, or the reverse"
    evidence = f"{len(chosen)} predicates single out a synthetic row, fewer than {_MIN_PREDICATES}" if len(chosen) < _MIN_PREDICATES else ""
    if not len(chosen):
        return Score(SECTION, "Singling-out risk", float("nan"), ideal="0", method=method,
                     note="no predicate singles out a synthetic row", test=test, evidence=evidence)
    on_train, on_control = (_match_counts(rows, col, op, value) == 1 for rows in (real, control))
    successes = [int(np.count_nonzero(on_train)), int(np.count_nonzero(on_control))]
    risk, low, high = _residual_risk(*successes, len(chosen))
    only_train, only_control = int(np.count_nonzero(on_train & ~on_control)), int(np.count_nonzero(on_control & ~on_train))
    p_value = float(binom.sf(only_train - 1, only_train + only_control, 0.5)) if only_train + only_control else 1.0
    return Score(SECTION, "Singling-out risk", risk, low, high, ideal="0", method=method,
                 note=f"{len(chosen)} predicates", observed=successes[0] / len(chosen),
                 null=successes[1] / len(chosen), p_value=p_value, test=test, evidence=evidence)


def _unique_rows(values: np.ndarray) -> np.ndarray:
    return values[np.sort(np.unique(_row_hashes(values), return_index=True)[1])]


def _match_counts(rows: np.ndarray, col: np.ndarray, op: np.ndarray, value: np.ndarray) -> np.ndarray:
    """How many of ``rows`` each predicate "column op value" matches, by sorted-column lookups."""
    counts = np.zeros(len(col), dtype=np.int64)
    for j in np.unique(col):
        pick = col == j
        cells = rows[:, j]
        present = np.sort(cells[~np.isnan(cells)])
        left, right = (np.searchsorted(present, value[pick], side) for side in ("left", "right"))
        kind = op[pick]
        counts[pick] = np.select([kind == _ISNA, kind == _EQ, kind == _LE], [len(cells) - len(present), right - left, right], len(present) - left)
    return counts


def _linkability(linked: np.ndarray, m: int, sizes: list[int]) -> Score:
    """Linkability risk: do both halves of a patient's columns lead to the same synthetic row?

    The columns are split at random into two halves, as if an attacker held two datasets sharing
    no column; a target is ``linked`` when its nearest synthetic row on each half is the same row.
    The first ``m`` targets are training rows, the rest holdout controls.
    """
    successes, control_successes = int(np.count_nonzero(linked[:m])), int(np.count_nonzero(linked[m:]))
    risk, low, high = _residual_risk(successes, control_successes, m)
    return Score(SECTION, "Linkability risk", risk, low, high, ideal="0",
                 observed=successes / m, null=control_successes / m, p_value=_fisher_p(successes, control_successes, m),
                 test="one-sided hypergeometric (Fisher) test of the linked share of training vs holdout targets",
                 evidence=_too_few_targets(m),
                 method=f"{_METHOD} linkability {_ANONYMETER}: columns split at random in two halves, "
                 "linked when both halves' nearest synthetic rows (Gower-like) coincide; risk (a - c)/(1 - c), "
                 "Wilson 95% CI propagated",
                 note=f"{m} training and {m} holdout targets; halves of {sizes[0]} and {sizes[1]} columns")


def _attribute_inference(
    targets: np.ndarray, syn: np.ndarray, nearest: np.ndarray, columns: _Columns, secrets: list[int], m: int,
    pooled: np.ndarray,
) -> tuple[Score, pd.DataFrame]:
    """Attribute-inference risk: knowing every other column, guess the secret from the nearest synthetic row.

    ``nearest[i]`` holds each target's nearest synthetic row on all columns but ``secrets[i]``. A
    guess is right when it equals the secret (categories, and any value in a missing cell) or, for
    numbers and dates, when guess and secret lie within 2.5 percentiles of each other in the real
    (``pooled`` training and holdout) column, ties at their mid-rank: chance is then about 5% for
    every shape of column, where "within 5% of the range" was near-certain on a skewed column.
    The first ``m`` targets are training rows, the rest holdout controls. Each column gets a
    one-sided Fisher test, Holm-corrected over the columns; the score reports the column with the
    largest excess among those significant at 0.002, else the one with the smallest corrected p.
    """
    rows = []
    for j, rows_nearest in zip(secrets, nearest):
        guess = syn[rows_nearest, j]
        truth = targets[:, j]
        if columns.numeric[j]:
            real = np.sort(pooled[:, j][~np.isnan(pooled[:, j])])
            rank = [(np.searchsorted(real, v, "left") + np.searchsorted(real, v, "right")) / (2 * max(len(real), 1)) for v in (guess, truth)]
            right = np.abs(rank[0] - rank[1]) <= _RANK_TOLERANCE
        else:
            right = guess == truth
        right = np.where(np.isnan(guess) | np.isnan(truth), np.isnan(guess) & np.isnan(truth), right)
        successes, control_successes = int(np.count_nonzero(right[:m])), int(np.count_nonzero(right[m:]))
        rows.append((columns.names[j], successes / m, control_successes / m, (successes - control_successes) / m,
                     _fisher_p(successes, control_successes, m), *_residual_risk(successes, control_successes, m)))
    table = pd.DataFrame(rows, columns=["secret", "attack_rate", "control_rate", "excess", "p_value", "risk", "ci_low", "ci_high"])
    table.insert(5, "p_holm", _holm(table["p_value"].to_numpy()))
    significant = table[table["p_holm"] < _SELECT_ALPHA]
    worst = significant.loc[significant["excess"].idxmax()] if len(significant) else table.sort_values(["p_holm", "excess"], ascending=[True, False]).iloc[0]
    score = Score(SECTION, "Attribute inference risk", float(worst["risk"]), float(worst["ci_low"]), float(worst["ci_high"]),
                  ideal="0",
                  method=f"{_METHOD} attribute inference {_ANONYMETER}: secret guessed from the nearest synthetic "
                  f"row (Gower-like) on all other columns; right if equal (categories, missing) or, for numbers and "
                  f"dates, within {_RANK_TOLERANCE * 100:g} percentiles of the real column; risk (a - c)/(1 - c), "
                  "Wilson 95% CI propagated",
                  note=f"column {worst['secret']!r} of {len(table)} secret column(s)",
                  observed=float(worst["attack_rate"]), null=float(worst["control_rate"]), p_value=float(worst["p_holm"]),
                  test=f"one-sided hypergeometric (Fisher) test per secret column of the right guesses on training vs "
                       f"holdout targets, Holm-corrected over {len(table)} columns",
                  evidence=_too_few_targets(m))
    return score, table


def _holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control over the columns)."""
    order = np.argsort(p_values)
    k = len(p_values)
    adjusted = np.minimum(1.0, np.maximum.accumulate(p_values[order] * (k - np.arange(k))))
    out = np.empty(k)
    out[order] = adjusted
    return out
