"""Where DP utility is lost before any training: the released marginals and the pair selection.

Two measurements on a table from ``dp.py`` (same split, metadata and public values), with the
plan a default DP fit at ``--epsilon`` would make (its true row count stands in for the coarse
noisy one, which only sizes the plan):

1. **marginals**: each numeric column's KSComplement between draws from its released (noisy)
   histogram and the real holdout, mean over ``--repeats`` fresh releases, next to what the real
   training column scores against the same holdout;
2. **pair selection**: the true (noise-free) dependence score of every pair next to the score
   noise, and the pairs the noisy selection kept next to the forest the true scores would keep.

A diagnosis, not a benchmark of the product: it trains nothing and prints real-data statistics of
public benchmark tables only. Example: ``python benchmarks/dp_diagnose.py --table pbc --epsilon 3``.
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
from scipy.stats import ks_2samp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dp as dp_bench  # noqa: E402

from synthgen.data.table import TableTransformer, readable_table  # noqa: E402
from synthgen.dp import pairs as pair_release  # noqa: E402
from synthgen.dp.accounting import DPSettings, plan_privacy  # noqa: E402
from synthgen.dp.entropy import PrivateRandom  # noqa: E402
from synthgen.dp.release import _random_encoding, release_rounds, release_statistics  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--table", default="pbc", choices=sorted(dp_bench.PUBLIC_VALUES))
    parser.add_argument("--epsilon", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=10, help="fresh releases averaged for the marginals")
    args = parser.parse_args()

    train, holdout = dp_bench._split(args.table)
    metadata = dp_bench.dp_metadata(args.table, train)
    rows = float(len(train))
    rounds = release_rounds(metadata) + pair_release.pair_rounds(metadata)
    plan = plan_privacy(DPSettings(epsilon=args.epsilon), rows, min(500, len(train)), 3000, rounds, shorten=True)
    data = readable_table(metadata, train)
    print(f"{args.table}: {len(train)} training rows, eps {args.epsilon}: release noise multiplier "
          f"{plan.release_noise:.3g} over {plan.release_rounds} rounds, DP-SGD noise {plan.noise_multiplier:.3g}")

    rng = np.random.default_rng(0)
    numeric = [name for name, spec in metadata.columns.items() if spec.get("sdtype") == "numerical"]
    released: dict[str, list[float]] = {name: [] for name in numeric}
    for _ in range(args.repeats):
        release = release_statistics(data, metadata, plan.release_noise, plan.release_rounds, plan.threshold_delta,
                                     rows_hint=rows, private=PrivateRandom())
        for name in numeric:
            inner = getattr(release.transformers[name], "inner", release.transformers[name])
            draws = inner.inverse(_random_encoding(inner, 5000, rng), rng).astype(float)
            released[name].append(1 - ks_2samp(draws, holdout[name].dropna().astype(float)).statistic)
    print(f"\n1. marginals (KSComplement against the holdout; per-bin count noise {release.record['noise_std_per_count']:.3g} rows)")
    print(f"{'column':12s} {'released':>9s} {'real train':>10s}  bins")
    for name in numeric:
        real = 1 - ks_2samp(train[name].dropna().astype(float), holdout[name].dropna().astype(float)).statistic
        print(f"{name:12s} {np.mean(released[name]):9.3f} {real:10.3f}  {release.record['columns'][name].get('histogram bins')}")

    table = TableTransformer.from_fitted(metadata, {"min_category_count": 1}, release.transformers)
    filled = release.fill_unreleased_gaps(data, rng)
    encoded = release.fill_encoded_gaps(filled, table.transform(filled, rng), table.slices_, rng)
    columns = pair_release.column_cells(table, release.category_counts, pair_release.pair_bins(len(train)))
    noisy = pair_release.release_pairs(encoded, columns, plan.release_noise, rows=release.rows)
    codes = [column.codes(encoded) for column in columns]
    candidates = list(itertools.combinations(range(len(columns)), 2))
    utility = np.array([pair_release._dependence(pair_release._counts(codes, columns, p), columns, p, rows) for p in candidates])
    # The tree a choice without noise would build: the exponential mechanism at an ε so large it is arg-max.
    forest = pair_release._select_tree(utility, candidates, len(columns), 1e9, PrivateRandom())
    name = lambda pair: f"{columns[pair[0]].name}~{columns[pair[1]].name}"  # noqa: E731
    epsilon = noisy.record["epsilon_per_selection"]
    gumbel_sd = 2 * pair_release._DEPENDENCE_SENSITIVITY / epsilon * np.pi / np.sqrt(6)
    print(f"\n2. pair selection ({len(candidates)} pairs; exponential mechanism, ε {epsilon:.3g} per choice, "
          f"Gumbel sd {gumbel_sd:.3g} rows)")
    print(f"true utilities: median {np.median(utility):.0f}, max {utility.max():.0f}, above 0: {int((utility > 0).sum())}")
    kept = [tuple(pair) for pair in noisy.record["pairs released"]]
    truth = [(columns[a].name, columns[b].name) for a, b in forest]
    hits = sum(pair in truth or pair[::-1] in truth for pair in kept)
    print(f"noisy selection kept {len(kept)} pairs, {hits} of them in the noise-free tree of {len(truth)}")
    print("noise-free tree:", ", ".join(name(p) for p in forest))

if __name__ == "__main__":
    main()
