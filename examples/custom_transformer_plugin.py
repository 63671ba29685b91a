"""Write your own column transformer, and plug it into synthgen as a third party would.

A column transformer turns one column into a block of model inputs and back (the contract is
``synthgen.data.base.ColumnTransformer``: fit / transform / inverse / spans / get_state /
from_state; randomness passed in, state as plain JSON so model files need no pickle). Part 1
below writes a tiny one in this file and uses it directly, no installation needed.

To make synthgen *use* a transformer when it fits a table, ship it as a package that registers
it in the ``synthgen.transformers`` entry-point group, as synthgen's own built-ins do. A real
example lives in ``plugins/synthgen-lognormal`` (read its ``pyproject.toml`` and
``src/synthgen_lognormal/__init__.py``): it registers ``log_numerical``, which models positive,
right-skewed lab values on the log scale. Install it with

    pip install -e plugins/synthgen-lognormal

and a metadata column selects it by its ``"transformer"`` key:
``{"sdtype": "numerical", "transformer": "log_numerical"}``. Part 2 does that when the plugin is
installed, and otherwise shows the error a user gets.

    python examples/custom_transformer_plugin.py --out plugin-demo

Writes ``minmax_state.json`` (part 1) and, with the plugin installed, ``lognormal_model.sgz`` and
``lognormal_sample.csv`` (part 2) into ``--out``.
"""
from __future__ import annotations

import argparse
import json
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer

import synthgen
from synthgen.data.base import ColumnTransformer, Span
from synthgen.errors import SynthgenError

PLUGIN = "log_numerical"


class MinMaxTransformer(ColumnTransformer):
    """A numeric column scaled onto [-1, 1]: one ``tanh`` output, clipped back into the seen range."""

    name = "minmax"  # the entry-point name it would register under
    handles_missing = False  # synthgen wraps it in a missing-value indicator when a column has gaps

    def fit(self, column: pd.Series, rng: np.random.Generator) -> MinMaxTransformer:
        values = pd.to_numeric(column).to_numpy(dtype=np.float64)
        self.low_, self.high_ = float(values.min()), float(values.max())  # learned state ends with "_"
        return self

    def transform(self, column: pd.Series, rng: np.random.Generator) -> np.ndarray:
        self._check_fitted("low_")
        values = pd.to_numeric(column).to_numpy(dtype=np.float64)
        scaled = 2 * (values - self.low_) / max(self.high_ - self.low_, 1e-12) - 1
        return scaled.astype(np.float32).reshape(-1, 1)

    def inverse(self, data: np.ndarray, rng: np.random.Generator) -> pd.Series:
        self._check_fitted("low_")
        unit = np.clip(np.asarray(data, dtype=np.float64)[:, 0], -1, 1)  # the generator may overshoot
        return pd.Series(self.low_ + (unit + 1) / 2 * (self.high_ - self.low_))

    @property
    def spans(self) -> list[Span]:
        self._check_fitted("low_")
        return [Span(1, "tanh")]  # not conditional: only one-hot category spans can be conditions

    def get_state(self) -> dict[str, Any]:
        self._check_fitted("low_")
        return {"low": self.low_, "high": self.high_}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> MinMaxTransformer:
        transformer = cls()
        transformer.low_, transformer.high_ = float(state["low"]), float(state["high"])
        return transformer


def part1_contract(table: pd.DataFrame, out: Path, seed: int) -> None:
    """Fit, encode, decode and reload the in-file transformer: what synthgen does with every column."""
    rng = np.random.default_rng(seed)
    column = table["mean area"]
    transformer = MinMaxTransformer().fit(column, rng)
    encoded = transformer.transform(column, rng)
    assert encoded.shape == (len(column), transformer.output_width) and encoded.dtype == np.float32
    state = json.loads(json.dumps(transformer.get_state()))  # what a model file stores: plain JSON
    (out / "minmax_state.json").write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    decoded = MinMaxTransformer.from_state(state).inverse(encoded, rng)
    error = float(np.max(np.abs(decoded.to_numpy() - column.to_numpy()) / column.abs().max()))
    print(f"Part 1: {type(transformer).__name__} encodes {column.name!r} as {transformer.spans}; "
          f"round trip through JSON state, max relative error {error:.1e} (float32)")
    if error > 1e-6:
        raise SystemExit(f"the round trip lost precision: {error}")


def part2_plugin(table: pd.DataFrame, out: Path, steps: int, seed: int) -> None:
    """Select the installed plugin for one column through metadata, fit, save, reload, sample."""
    installed = {entry.name: entry.value for entry in entry_points(group="synthgen.transformers")}
    metadata = synthgen.Metadata.detect(table)
    metadata.update_column("mean area", transformer=PLUGIN)  # no sdtype: merged into the detected spec
    if PLUGIN not in installed:
        try:
            synthgen.TabularSynthesizer(metadata, seed=seed, steps=1, progress=False).fit(table)
        except SynthgenError as error:  # what a user sees when the metadata names a missing plugin
            print(f"Part 2: the plugin is not installed (pip install -e plugins/synthgen-lognormal); "
                  f"fitting with it says: {error}")
            return
        raise SystemExit(f"a fit naming the uninstalled transformer {PLUGIN!r} did not fail")
    print(f"Part 2: {PLUGIN!r} is installed ({installed[PLUGIN]}); selected for 'mean area' by metadata")
    model = synthgen.TabularSynthesizer(metadata, seed=seed, steps=steps).fit(table)
    path = model.save(out / "lognormal_model.sgz")
    reloaded = synthgen.load(path)  # the model file names the transformer; loading finds it again
    sample = reloaded.sample(len(table), seed=seed)
    sample.to_csv(out / "lognormal_sample.csv", index=False)
    area = sample["mean area"]
    print(f"  {path.name}: 'mean area' spec {reloaded.metadata_.columns['mean area']}; sampled {len(sample)} rows, "
          f"'mean area' {area.min():.0f}..{area.max():.0f} (real {table['mean area'].min():.0f}.."
          f"{table['mean area'].max():.0f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("custom-transformer-plugin"), help="output folder (created)")
    parser.add_argument("--steps", type=int, default=300, help="training steps of part 2's quick fit")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same CPU: the same model and rows")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    # A few columns keep the demo quick: 'mean area' is the positive, right-skewed one.
    table = load_breast_cancer(as_frame=True).frame[["mean radius", "mean area", "mean smoothness", "target"]]
    part1_contract(table, args.out, args.seed)
    part2_plugin(table, args.out, args.steps, args.seed)


if __name__ == "__main__":
    try:
        main()
    except SynthgenError as error:  # bad input or options: one line naming it, not a traceback
        raise SystemExit(f"error: {error}") from None
