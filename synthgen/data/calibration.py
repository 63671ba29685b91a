"""Marginal calibration of decoded numeric columns: the generator's quantiles mapped onto the data's.

A GAN trained for a few thousand steps gets each column's dependencies right before it gets its
exact shape (measured on breast-cancer and diabetes at 1,500 steps: Column Shapes 0.88 and 0.87
against the real holdout's 0.91 and 0.91). Each numeric column is therefore passed, after decoding,
through one monotone piecewise-linear map from the generator's own quantiles onto the training
column's quantiles. A monotone map keeps every row's rank within its column, so the dependencies
the generator learned stay as they were (Column Pair Trends unchanged in the same measurement) while
the marginals come out right (0.92 and 0.91). Missing values are left alone.

The stored training quantiles (100 levels by default) are column summaries like the encoders'
ranges: they hold no row. Their ends would be the training minimum and maximum, a real patient's
exact value and the one that singles a patient out most easily, so the target knots are clipped
onto [k-th smallest, k-th largest] training value (k = ``min_count``, the model's
``min_category_count``): a calibrated column reaches its training extreme only when that value
is shared by at least k training rows, and a column with fewer than 2k observed values is not
calibrated. Differentially private models use ``MarginalCalibration`` instead, whose
targets come from released statistics only.

Per level of a category (:meth:`ValueCalibration.with_levels`). Where a category column explains a
numeric column's ranks (flchain's follow-up time by death, breast-cancer's sizes by the diagnosis),
one global map leaves each level's shape as the generator made it, and a strong detector reads the
difference. Such a column (of at least ``MIN_LEVEL_DISTINCT`` distinct values) is mapped, within
each level that holds at least ``MIN_LEVEL_ROWS`` training and generated rows, from the generator's
quantiles in that level onto the training quantiles of that level (clipped between the level's
k-th and (k+1)-th smallest and largest values, within the global clip); rows of other levels, or
without a level, keep the global map. The map is monotone within a level, so ranks within a level
stay as generated.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from synthgen.choices import MIN_CATEGORY_COUNT
from synthgen.data.categorical import category_keys
from synthgen.data.quantile import piecewise_cdf

#: Quantile levels per column: a knot every 1% of the rows.
DEFAULT_LEVELS = 100
#: A level of a category gets a map of its own when it holds this many training and generated rows.
#: Quantiles every 1% of a smaller level are estimated from too few rows: on pbc (levels of 100-185
#: rows) maps per level from 100 rows on moved the detection AUC by -0.009 and the DCR share by
#: +0.010 (3 seeds; benchmarks/README, "calibration per level"), where levels of 170 rows and more
#: (breast-cancer, flchain) gained 0.025-0.04.
MIN_LEVEL_ROWS = 150
#: ... and when the category explains at least this share of the numeric column's rank variance.
MIN_RANK_SHARE = 0.05
#: Columns of fewer distinct training values (scores, small counts) are not calibrated per level: a
#: level's quantiles are then a few training values, and mapping onto them concentrates a level's
#: rows on those values, which completes training rows on tables of mostly categories (indo_rct's
#: 10-valued risk score by sphincterotomy: copies of training rows 9 → 11 in one seed's draws).
MIN_LEVEL_DISTINCT = 20

Map = tuple[np.ndarray, np.ndarray]  # (generated quantiles, target quantiles), both sorted


@dataclass
class LevelMaps:
    """A numeric column's maps per level of the category column ``by`` (levels keyed as text)."""

    by: str
    maps: dict[str, Map]


class ValueCalibration:
    """Per numeric column, ``value -> target_quantiles(generated_cdf(value))``; per level of a
    category where ``levels`` has that column."""

    def __init__(self, maps: dict[str, Map], levels: dict[str, LevelMaps] | None = None) -> None:
        self.maps = maps
        self.levels = levels or {}

    @classmethod
    def fit(cls, generated: pd.DataFrame, real: pd.DataFrame, columns: list[str],
            levels: int = DEFAULT_LEVELS, min_count: int = MIN_CATEGORY_COUNT) -> "ValueCalibration":
        """Maps for ``columns`` from a large generator draw and the training rows.

        Targets stay within the ``min_count``-th smallest and largest training values (see the
        module doc), so no output equals a training extreme held by fewer than ``min_count`` rows.
        """
        grid = np.linspace(0.0, 1.0, levels + 1)
        maps = {}
        for name in columns:
            drawn = _present(generated[name])
            observed = np.sort(_present(real[name]))
            if drawn.size < 2 or observed.size < 2 * min_count:
                continue
            # Point masses (values clipped onto the observed range) repeat knots; piecewise_cdf
            # spreads them over the probability they hold.
            target = np.clip(np.quantile(observed, grid), observed[min_count - 1], observed[-min_count])
            maps[name] = (np.quantile(drawn, grid), target)
        return cls(maps)

    def apply(self, frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        """``frame`` with its calibrated columns mapped; integer columns stay integers."""
        frame = frame.copy()
        # Each category's levels as text once (only numeric columns change here): opt maps 18 columns by one.
        keys_of = {by: level_keys(frame[by]).to_numpy() for by in {level.by for level in self.levels.values()}}
        for name, (source, target) in self.maps.items():
            column = frame[name]
            values = column.to_numpy(dtype=np.float64, na_value=np.nan)
            present = ~np.isnan(values)
            mapped = values.copy()
            grid = np.linspace(0.0, 1.0, len(source))
            mapped[present] = np.interp(piecewise_cdf(values[present], source, grid, rng), grid, target)
            by_level = self.levels.get(name)
            if by_level is not None:
                for key, (level_source, level_target) in by_level.maps.items():
                    rows = present & (keys_of[by_level.by] == key)
                    if rows.any():  # from the generator's own values, as the level's quantiles were measured
                        level_grid = np.linspace(0.0, 1.0, len(level_source))
                        mapped[rows] = np.interp(piecewise_cdf(values[rows], level_source, level_grid, rng), level_grid,
                                                 level_target)
            if pd.api.types.is_integer_dtype(column.dtype):
                mapped[present] = np.rint(mapped[present])
                frame[name] = pd.array(mapped, dtype=column.dtype) if column.dtype == "Int64" else mapped.astype(column.dtype)
            else:
                frame[name] = mapped
        return frame

    def with_levels(self, generated: pd.DataFrame, real: pd.DataFrame, categories: list[str],
                    min_count: int = MIN_CATEGORY_COUNT) -> "ValueCalibration":
        """This calibration with maps per level (see the module doc) for each calibrated column that
        one of ``categories`` explains: the one explaining most of its ranks in ``real`` (the
        training rows), counting only levels that get a map (many small levels would explain ranks
        by chance). ``generated`` is the generator's own draw, as for :meth:`fit`."""
        if not self.maps:
            return self
        grid = np.linspace(0.0, 1.0, len(next(iter(self.maps.values()))[0]))
        least = max(MIN_LEVEL_ROWS, 2 * min_count)
        # Row positions of each level large enough for a map, per category, found once.
        positions: dict[str, tuple[pd.Series, dict[str, tuple[np.ndarray, np.ndarray]]]] = {}
        for by in categories:
            real_keys, drawn_keys = level_keys(real[by]), level_keys(generated[by])
            counts = real_keys.value_counts()
            large = [str(key) for key in counts.index[counts >= least]]
            if len(large) >= 2:
                drawn_rows = drawn_keys.groupby(drawn_keys.to_numpy()).indices
                real_rows = real_keys.groupby(real_keys.to_numpy()).indices
                positions[by] = (real_keys, {key: (real_rows[key], drawn_rows.get(key, np.zeros(0, dtype=np.int64)))
                                             for key in large})
        levels: dict[str, LevelMaps] = {}
        for name, (_, global_target) in self.maps.items():
            observed_all, drawn_all = _numbers(real[name]), _numbers(generated[name])
            if len(np.unique(_present_values(observed_all))) < MIN_LEVEL_DISTINCT:
                continue
            best: tuple[float, str, dict[str, Map]] | None = None
            for by, (real_keys, rows) in positions.items():
                maps: dict[str, Map] = {}
                for key, (real_rows, drawn_rows) in rows.items():
                    observed = np.sort(_present_values(observed_all[real_rows]))
                    drawn = _present_values(drawn_all[drawn_rows])
                    if len(observed) >= least and len(drawn) >= MIN_LEVEL_ROWS:
                        # Ends midway between the k-th and (k+1)-th values, not on them: every value
                        # past the draw's range lands on an end, and one end per level would make that
                        # many training values frequent outputs (and whole training rows, with a few
                        # categories beside them).
                        low = (observed[min_count - 1] + observed[min_count]) / 2
                        high = (observed[-min_count] + observed[-min_count - 1]) / 2
                        target = np.clip(np.quantile(observed, grid), low, high)
                        maps[key] = (np.quantile(drawn, grid), np.clip(target, global_target[0], global_target[-1]))
                if len(maps) < 2:
                    continue
                share = rank_share(observed_all, real_keys.where(real_keys.isin(list(maps))))
                if share >= MIN_RANK_SHARE and (best is None or share > best[0]):
                    best = (share, by, maps)
            if best is not None:
                levels[name] = LevelMaps(best[1], best[2])
        return ValueCalibration(self.maps, levels)

    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {}
        for name, (source, target) in self.maps.items():
            state[name] = {"generated": source.tolist(), "target": target.tolist()}
            if name in self.levels:
                by_level = self.levels[name]
                state[name]["by"] = by_level.by
                state[name]["levels"] = {key: {"generated": s.tolist(), "target": t.tolist()}
                                         for key, (s, t) in by_level.maps.items()}
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any], columns: list[str] | None = None) -> "ValueCalibration":
        """The calibration a model file stores; ``ValueError`` when it is malformed (a crafted file):
        maps of unequal or unsorted knots, or levels of a column not in ``columns``."""
        maps: dict[str, Map] = {}
        levels: dict[str, LevelMaps] = {}
        for name, m in state.items():
            maps[name] = _map(m)
            if "levels" in m or "by" in m:
                by, level_state = m.get("by"), m.get("levels")
                if not isinstance(by, str) or (columns is not None and by not in columns) or not isinstance(level_state, dict):
                    raise ValueError(f"the calibration of {name!r} per level is malformed")
                levels[name] = LevelMaps(by, {str(key): _map(value) for key, value in level_state.items()})
        return cls(maps, levels)


def level_keys(column: pd.Series) -> pd.Series:
    """A category's levels as text (:func:`category_keys`), by position."""
    return category_keys(column).reset_index(drop=True)


def rank_share(values: np.ndarray, groups: pd.Series) -> float:
    """Share of the variance of ``values``' ranks that ``groups`` explains (the correlation ratio
    of the ranks); rows missing either side are left out."""
    present = ~np.isnan(values) & groups.notna().to_numpy()
    if present.sum() < 2:
        return 0.0
    ranks = pd.Series(values[present]).rank().to_numpy()
    means = pd.Series(ranks).groupby(groups[present].to_numpy()).transform("mean").to_numpy()
    total = ((ranks - ranks.mean()) ** 2).sum()
    return float(((means - ranks.mean()) ** 2).sum() / total) if total else 0.0


def _map(state: Any) -> Map:
    if not isinstance(state, dict):
        raise ValueError("a calibration map is malformed")
    source, target = (np.asarray(state.get(key), dtype=np.float64) for key in ("generated", "target"))
    if (source.ndim != 1 or source.shape != target.shape or len(source) < 2 or not np.isfinite(source).all()
            or not np.isfinite(target).all() or (np.diff(source) < 0).any() or (np.diff(target) < 0).any()):
        raise ValueError("a calibration map is malformed: knots must be finite, sorted and as many on each side")
    return source, target


def _numbers(column: pd.Series) -> np.ndarray:
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _present_values(values: np.ndarray) -> np.ndarray:
    return values[~np.isnan(values)]


def _present(column: pd.Series) -> np.ndarray:
    return _present_values(_numbers(column))
