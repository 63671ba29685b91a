"""The image report's sections: fidelity (FD, KID, PRDC against the holdout's), utility (label accuracy,
train-on-synthetic), memorisation (pixel and feature nearest neighbours against the holdout's)."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import torch
from scipy.stats import binomtest

from synthgen._version import __version__
from synthgen.evaluation.images.features import FeatureExtractor
from synthgen.evaluation.images.grids import pairs_grid
from synthgen.evaluation.images.metrics import (
    K, frechet_distance, kernel_inception_distance, kth_distance, nearest, prdc_given_radius,
)
from synthgen.evaluation.scores import Score, SectionResult
from synthgen.images.types import ImageSet

METHOD = f"synthgen {__version__}"
_MAX_MANIFOLD = 10_000  # training images the k-NN manifold is built from
_FIDELITY_DRAWS = 5
_KID_SUBSETS, _KID_SUBSET_SIZE = 100, 1000
_QUANTILE = 0.05
_NEAR_DUPLICATE_RMS = 0.02  # about 2.5 grey levels of 255 on the [-1, 1] scale
_N_BOOTSTRAP = 500


def _draws(rng: np.random.Generator, n_total: int, n: int) -> list[np.ndarray]:
    """Up to _FIDELITY_DRAWS disjoint random subsets of ``n`` of ``n_total`` rows."""
    order = rng.permutation(n_total)
    return [order[i * n : (i + 1) * n] for i in range(min(_FIDELITY_DRAWS, n_total // n))]


def fidelity_section(features: dict[str, np.ndarray], rng: np.random.Generator, description: str) -> SectionResult:
    """FD, KID and precision/recall/density/coverage of synthetic and holdout features against the training features."""
    train, syn, hold = features["train"], features["synthetic"], features.get("holdout")
    # FD, recall and coverage depend on the sample size, so synthetic and holdout are scored at the
    # same size; averaging over disjoint draws uses more of the larger set.
    n = len(syn) if hold is None else min(len(syn), len(hold))
    manifold = train if len(train) <= _MAX_MANIFOLD else train[np.sort(rng.choice(len(train), _MAX_MANIFOLD, replace=False))]
    manifold_t = torch.from_numpy(manifold)
    radius = kth_distance(manifold_t, K)

    def measures(points: np.ndarray) -> dict[str, float]:
        values = [
            {"fd": frechet_distance(train, points[rows]), **prdc_given_radius(manifold_t, radius, torch.from_numpy(points[rows]), K)}
            for rows in _draws(rng, len(points), n)
        ]
        return {"draws": len(values)} | {key: float(np.mean([v[key] for v in values])) for key in values[0]}

    syn_values = measures(syn)
    hold_values = measures(hold) if hold is not None else {}
    kid, kid_std = kernel_inception_distance(train, syn, rng=rng)
    hold_kid, hold_kid_std = kernel_inception_distance(train, hold, rng=rng) if hold is not None else (None, None)
    features_method = "on the synthgen small-CNN features"
    knn = f"k={K} nearest-neighbour balls around {len(manifold)} training images"
    kid_note = f"± {kid_std:.3g} (std over {_KID_SUBSETS} subsets)" + ("" if hold_kid is None else f"; holdout ± {hold_kid_std:.3g}")
    scores = [
        Score("fidelity", "FD", syn_values["fd"], reference=hold_values.get("fd"), ideal="0",
              method=f"Fréchet distance (Heusel et al. 2017) {features_method}; {METHOD}", note="distance of the feature means and covariances to the training images'"),
        Score("fidelity", "KID", kid, reference=hold_kid, ideal="0",
              method=f"KID (Bińkowski et al. 2018): unbiased MMD², cubic polynomial kernel, subsets of ≤{_KID_SUBSET_SIZE} and ≤ half of each set, {features_method}", note=kid_note),
    ]
    for metric, paper, note in (
        ("Precision", "Kynkäänniemi et al. 2019", "share of synthetic images inside the training images' feature manifold"),
        ("Recall", "Kynkäänniemi et al. 2019", "share of training images inside the synthetic images' feature manifold"),
        ("Density", "Naeem et al. 2020", "synthetic images per training neighbourhood, 1 for matching distributions"),
        ("Coverage", "Naeem et al. 2020", "share of training neighbourhoods holding a synthetic image"),
    ):
        key = metric.lower()
        scores.append(Score("fidelity", metric, syn_values[key], reference=hold_values.get(key), ideal="1",
                            method=f"{paper}, {knn}, {features_method}", note=note))
    notes = [f"Feature extractor: {description}."]
    if hold is None:
        notes.append("No holdout was given: the scores have no reference (what fresh real images score).")
    else:
        notes.append(
            f"FD, precision, recall, density and coverage use {n} synthetic and {n} holdout images per draw (equal sizes, since "
            f"they depend on it), averaged over {syn_values['draws']} synthetic and {hold_values['draws']} holdout draw(s)."
        )
    if len(manifold) < len(train):
        notes.append(f"The k-NN manifolds use {len(manifold)} of the {len(train)} training images, drawn at random.")
    return SectionResult(scores, notes=notes)


def utility_section(
    extractor: FeatureExtractor,
    holdout_accuracy: float | None,
    synthetic: ImageSet,
    syn: np.ndarray,
    syn_labels: np.ndarray | None,
    hold: np.ndarray | None,
    hold_labels: np.ndarray | None,
    seed: int,
) -> SectionResult:
    """The classifier's accuracy on synthetic images for their requested label, and TSTR against TRTR."""
    result = SectionResult(scores=[])
    if not extractor.classes or syn_labels is None:
        reason = "the real images have fewer than two labels" if not extractor.classes else "the synthetic images carry no requested label"
        result.notes.append(f"Sample accuracy and TSTR need labelled images; not computed because {reason}.")
        return result
    correct = extractor.predict(syn) == syn_labels
    interval = binomtest(int(correct.sum()), len(correct)).proportion_ci(method="wilson")
    result.scores.append(Score(
        "utility", "Sample accuracy", float(correct.mean()), low=float(interval.low), high=float(interval.high),
        reference=holdout_accuracy, ideal="1", method=f"synthgen small-CNN classifier trained on the real training images; Wilson interval; {METHOD}",
        note="share of synthetic images classified as their requested label; reference: the classifier's accuracy on the holdout",
    ))
    hold_correct = extractor.predict(hold) == hold_labels if hold_labels is not None else None
    rows = []
    for label in extractor.classes:
        mask = syn_labels == label
        row = {"class": label, "synthetic images": int(mask.sum()), "synthetic accuracy": float(correct[mask].mean()) if mask.any() else np.nan}
        if hold_correct is not None:
            hold_mask = hold_labels == label
            row |= {"holdout images": int(hold_mask.sum()), "holdout accuracy": float(hold_correct[hold_mask].mean()) if hold_mask.any() else np.nan}
        rows.append(row)
    result.tables["accuracy_per_class"] = pd.DataFrame(rows).set_index("class")
    if hold_labels is None:
        result.notes.append("TSTR needs a labelled holdout to test on; not computed.")
        return result
    # Same architecture, steps and seed as the real-trained classifier, so only the training images differ.
    tstr_net = FeatureExtractor.fit(
        replace(synthetic, images=syn, labels=syn_labels), classes=extractor.classes, steps=extractor.steps, seed=seed,
        device=str(extractor.device),
    )
    result.scores.append(Score(
        "utility", "TSTR accuracy", tstr_net.accuracy(hold, hold_labels), reference=holdout_accuracy, ideal="1",
        method=f"synthgen small CNN, {extractor.steps} steps, seed {seed}; {METHOD}",
        note="trained on the synthetic images, tested on the holdout; reference: trained on the real training images (TRTR)",
    ))
    return result


def memorisation_section(
    train: np.ndarray, syn: np.ndarray, hold: np.ndarray | None, features: dict[str, np.ndarray], rng: np.random.Generator, show_real: bool
) -> SectionResult:
    """Nearest training image of each synthetic (and holdout) image, by pixels and by features."""
    scale = math.sqrt(train[0].size)  # Euclidean distance / scale = root-mean-square pixel difference
    syn_pixel, syn_nearest = nearest(syn, train)
    syn_pixel /= scale
    syn_feature, _ = nearest(features["synthetic"], features["train"])
    result = SectionResult(scores=[], figures={"dcr_synthetic_to_train": syn_pixel})
    near = syn_pixel <= _NEAR_DUPLICATE_RMS
    exact = int(np.count_nonzero(syn_pixel == 0))
    hold_near = None
    rows = []
    if hold is None:
        result.notes.append(
            "No holdout was given: the memorisation shares compare synthetic images with how close fresh real images come "
            "to the training images, so they were not computed, and the near-duplicate share has no reference."
        )
        shares = {"pixels": [np.nan, None, None], "features": [np.nan, None, None]}
    else:
        hold_pixel = nearest(hold, train)[0] / scale
        hold_feature = nearest(features["holdout"], features["train"])[0]
        result.figures["dcr_synthetic_to_holdout"] = nearest(syn, hold)[0] / scale
        result.figures["dcr_holdout_to_train"] = hold_pixel
        hold_near = float(np.mean(hold_pixel <= _NEAR_DUPLICATE_RMS))
        shares: dict[str, list[float | None]] = {}
        for measure, syn_d, hold_d in (("pixels", syn_pixel, hold_pixel), ("features", syn_feature, hold_feature)):
            threshold, *shares[measure] = _share_below(syn_d, hold_d, rng)
            rows.append({
                "distance": measure, "threshold (holdout 5th percentile)": threshold, "synthetic median": float(np.median(syn_d)),
                "holdout median": float(np.median(hold_d)), "synthetic images below threshold": int(np.sum(syn_d < threshold)),
            })
        result.tables["memorisation"] = pd.DataFrame(rows).set_index("distance")
    for measure, (share, low, high) in shares.items():
        unit = "root-mean-square pixel difference" if measure == "pixels" else "Euclidean distance of the small-CNN features"
        result.scores.append(Score(
            "privacy", f"Memorisation share ({measure})", share, low=low, high=high, ideal="0.05",
            method=f"nearest training image by {unit}; bootstrap interval ({_N_BOOTSTRAP}); {METHOD}",
            note="share of synthetic images closer to a training image than 95% of holdout images are (by construction 5% for fresh real images)",
        ))
    result.scores.append(Score(
        "privacy", "Near-duplicate share", float(near.mean()), reference=hold_near, ideal="0",
        method=f"root-mean-square pixel difference to the nearest training image ≤ {_NEAR_DUPLICATE_RMS} on the [-1, 1] scale; {METHOD}",
        note=f"{int(near.sum())} of {len(syn)} synthetic images ({exact} identical to a training image)",
    ))
    result.figures["closest_pairs"] = pairs_grid(syn, train, syn_pixel, syn_nearest, show_real)
    result.notes.append(
        "Distances in the histogram are root-mean-square pixel differences on the [-1, 1] scale, at the training images' size."
    )
    return result


def _share_below(syn_d: np.ndarray, hold_d: np.ndarray, rng: np.random.Generator) -> tuple[float, float, float, float]:
    """The holdout's 5th percentile and the share of ``syn_d`` below it, with a bootstrap 95% interval over both sets.

    A resampled synthetic set's count below a threshold t is Binomial(n, share below t), so only
    the holdout is resampled explicitly.
    """
    ordered = np.sort(syn_d)
    threshold = float(np.quantile(hold_d, _QUANTILE))
    share = np.searchsorted(ordered, threshold) / len(syn_d)
    thresholds = np.quantile(rng.choice(hold_d, (_N_BOOTSTRAP, len(hold_d))), _QUANTILE, axis=1)
    shares = rng.binomial(len(syn_d), np.searchsorted(ordered, thresholds) / len(syn_d)) / len(syn_d)
    low, high = np.quantile(shares, [0.025, 0.975])
    return threshold, float(share), float(low), float(high)
