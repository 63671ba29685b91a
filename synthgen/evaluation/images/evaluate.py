"""Scoring synthetic images against real ones, offline: fidelity, utility and memorisation.

No Inception weights can be downloaded, so the features come from a small CNN (three blocks of a
3x3 convolution with 16, 32 and 64 channels, ReLU and 2x2 max-pooling; each block's output
averaged over the image: 112 features) trained here on the real training images, resized to 16-32 px: as a
classifier of their labels or, for unlabelled images, on the self-supervised rotation task
(Gidaris et al. 2018: by which of 0/90/180/270 degrees was an image turned). Its features,
standardised on the training images, feed the Fréchet distance, KID, precision/recall and density/coverage;
the same classifier scores synthetic images for their requested label, and a fresh copy trained
on the synthetic images gives the train-on-synthetic, test-on-real accuracy. With a local
torchvision Inception v3 weights file the Inception FID is computed too.

Every score is set against the holdout (real images the generator never saw) scored the same way
against the training images: what fresh real images achieve. The default gates
(:data:`IMAGE_GATES`) are privacy gates on memorisation only, since fidelity targets depend on
the data set: a synthetic image may be a near-duplicate of a training image no more often than a
holdout image is, and at most 10 % of synthetic images (lower 95 % bound) may sit closer to a
training image than 95 % of holdout images do, by pixel or by feature distance (ideal: 5 %).
"""
from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from synthgen.evaluation.gates import Gate
from synthgen.evaluation.images.features import FeatureExtractor
from synthgen.evaluation.images.grids import samples_grid
from synthgen.evaluation.images.inception import check_inception, inception_fid
from synthgen.evaluation.images.inputs import checked_pixels, classes_of, requested_labels
from synthgen.images.types import ImageSet
from synthgen.evaluation.images.sections import fidelity_section, memorisation_section, utility_section
from synthgen.evaluation.report import KNOWN_LIMITS, Report, Wording

IMAGE_GATES: list[Gate] = [
    Gate.parse(text)
    for text in ("near_duplicate_share<=holdout", "memorisation_share_pixels_lower<=0.1", "memorisation_share_features_lower<=0.1")
]

IMAGE_WORDING = Wording(
    headline=(
        ("fd", "FD"), ("kid", "KID"), ("inception_fid", "Inception FID"), ("precision", "Precision"), ("recall", "Recall"),
        ("sample_accuracy", "Sample accuracy"), ("tstr_accuracy", "TSTR accuracy"),
        ("memorisation_share", "Memorisation share"), ("near_duplicate_share", "Near-duplicate share"),
    ),
    summary=(
        "An evaluation of synthetic images against the real images they were generated from. It contains scores, "
        "per-class summaries, distance histograms and grids of synthetic images."
    ),
    attacker_model=(
        "The memorisation check assumes an attacker who holds the synthetic images and looks for a training "
        "patient's image reproduced, or nearly so, among them. The holdout (real images the generator never saw) "
        "plays the control: a synthetic image only counts as memorised when it sits closer to a training image "
        "than fresh real images do."
    ),
    known_limits=(
        *KNOWN_LIMITS[:3],
        "Features come from a small CNN trained on these real images, not from Inception: FD and KID compare "
        "runs on the same data and settings, not published FIDs.",
        "The memorisation check compares pixels and features; a training image reproduced with a shift, flip or "
        "intensity change escapes the pixel distance and is caught by the features only as far as they ignore it.",
        "One image is assumed to be one patient: slices or images of one patient split between training and "
        "holdout make the holdout reference too lenient.",
    ),
)


def evaluate_images(
    real: ImageSet,
    synthetic: ImageSet,
    *,
    holdout: ImageSet | None = None,
    seed: int = 0,
    feature_steps: int | None = None,
    inception_weights: Path | None = None,
    gates: list[Gate] | None = None,
    show_real_images: bool = True,
    device: str | None = None,
    progress: bool = True,
    context: dict[str, Any] | None = None,
) -> Report:
    """Score ``synthetic`` images against the ``real`` training images they were generated from.

    ``holdout`` (real images the generator never saw, ideally as many as the synthetic ones)
    gives every score its reference and is needed for TSTR and the memorisation shares.
    ``feature_steps`` sets the feature CNN's training steps (default: 5 epochs, at least 100).
    ``inception_weights`` is a local torchvision Inception v3 state dict (e.g.
    ``inception_v3_google-0cc3c7bd.pth``); it needs torchvision. ``gates`` default to
    :data:`IMAGE_GATES`. ``show_real_images=False`` leaves the real training images out of the
    closest-pairs grid, so the report holds no real pixels. Synthetic and holdout images of
    another size than the training images are resized to theirs, and those in another intensity
    window of the same unit (e.g. another HU window) are mapped onto the training images' window.
    """
    if inception_weights is not None:
        check_inception(Path(inception_weights))
    train = checked_pixels("real", real)
    syn = checked_pixels("synthetic", synthetic, real)
    hold = checked_pixels("holdout", holdout, real) if holdout is not None else None
    side, channels = train.shape[-1], train.shape[1]
    classes = classes_of("real", np.asarray(real.labels, dtype=object))
    syn_labels = requested_labels("synthetic", synthetic, classes)
    hold_labels = requested_labels("holdout", holdout, classes) if holdout is not None else None
    rng = np.random.default_rng(seed)
    stages = 4 + (inception_weights is not None)
    with tqdm(total=stages, desc="evaluating images", unit="stage", disable=not progress, leave=False) as bar:
        extractor = FeatureExtractor.fit(real, classes=classes, steps=feature_steps, seed=seed, device=device)
        holdout_accuracy = None if hold is None or (classes and hold_labels is None) else extractor.accuracy(hold, hold_labels)
        description = extractor.describe(holdout_accuracy)
        features = {"train": extractor.features(train), "synthetic": extractor.features(syn)}
        if hold is not None:
            features["holdout"] = extractor.features(hold)
        bar.update()
        fidelity = fidelity_section(features, rng, description)
        fidelity.figures["synthetic_samples"] = samples_grid(syn, syn_labels, classes)
        bar.update()
        if inception_weights is not None:
            fidelity.scores.append(inception_fid(Path(inception_weights), train, syn, hold, extractor.device))
            bar.update()
        utility = utility_section(extractor, holdout_accuracy, synthetic, syn, syn_labels, hold, hold_labels, seed)
        bar.update()
        privacy = memorisation_section(train, syn, hold, features, rng, show_real_images)
        bar.update()
    about = {
        "split": {"real (training)": len(train), "holdout": None if hold is None else len(hold), "synthetic": len(syn)},
        "images": f"{side}×{side} px, {channels} channel{'s' if channels > 1 else ''}, values in [-1, 1]",
        "classes": classes or "none (unlabelled, or one class)",
        "privacy unit": "one image = one patient (assumed; the memorisation shares are per image)",
        "feature extractor": description,
        "evaluation seed": seed,
        "versions": {name: version(name) for name in ("synthgen", "torch", "scipy", "pillow")},
        **(context or {}),
    }
    sections = {"fidelity": fidelity, "utility": utility, "privacy": privacy}
    return Report(sections=sections, context=about, gates=list(IMAGE_GATES if gates is None else gates), wording=IMAGE_WORDING)
