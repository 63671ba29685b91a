"""Augmenting a labelled image set: synthetic images for chosen classes, and whether they help.

The image counterpart of ``augmentation/tables.py`` and ``check.py``: the same modes (``balance``: every class up
to the majority count; ``ratio``: the whole set grown by a factor, class mix kept), generation
through the model's conditioning on the label, exact copies of real images replaced, and a check
that trains the same classifier on real and on real+synthetic images and scores both on real
test images only. The classifier is the evaluation's small CNN (``FeatureExtractor``).
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from synthgen.augmentation.check import CheckResult, compare_runs, macro_roc_auc
from synthgen.augmentation.tables import REPLACE_ROUNDS
from synthgen.errors import InvalidArgumentError, InvalidDataError
from synthgen.images.types import ImageSet
from synthgen.synthesizers.base import draw_seed
from synthgen.synthesizers.images import ImageSynthesizer

logger = logging.getLogger(__name__)

#: Images are compared for exact copies at the 8-bit precision they are usually stored with.
_COPY_LEVELS = 255


@dataclass
class ImageAugmentation:
    """The real images followed by the synthetic ones, and what was added."""

    images: ImageSet
    synthetic: np.ndarray  # bool, one per image
    added: dict[str, int]
    exact_copies_dropped: int
    shortfall: int


def plan(labels: np.ndarray, *, balance: bool, ratio: float | None) -> dict[str, int]:
    """Synthetic images to add per class."""
    if balance == (ratio is not None):
        raise InvalidArgumentError("choose exactly one of balance and ratio")
    classes, counts = np.unique(np.asarray(labels, dtype=str), return_counts=True)
    if ratio is None:  # balance: exactly one of the two was given
        if len(classes) < 2:
            raise InvalidArgumentError("balance needs at least two labelled classes; use ratio to grow the set")
        return {str(c): int(counts.max() - k) for c, k in zip(classes, counts)}
    if not ratio > 1:
        raise InvalidArgumentError(f"ratio must be above 1 (2 doubles the set), got {ratio}")
    wanted = (ratio - 1) * counts
    extra = np.floor(wanted).astype(int)
    # Largest remainders get the rounding, so the total is exactly (ratio - 1) * n.
    short = int(round((ratio - 1) * counts.sum())) - int(extra.sum())
    extra[np.argsort(-(wanted - extra), kind="stable")[:short]] += 1
    return {str(c): int(k) for c, k in zip(classes, extra)}


def _quantised(pixels: np.ndarray) -> np.ndarray:
    return np.rint((pixels + 1) * (_COPY_LEVELS / 2)).astype(np.uint8).reshape(len(pixels), -1)


def augment_images(
    images: ImageSet,
    *,
    balance: bool = False,
    ratio: float | None = None,
    model: ImageSynthesizer | None = None,
    seed: int | None = None,
    steps: int | None = None,
    progress: bool = True,
) -> ImageAugmentation:
    """``images`` followed by synthetic images, per :func:`plan`; fits a model on ``images`` unless given."""
    requested = plan(images.labels, balance=balance, ratio=ratio)
    if model is None:
        model = ImageSynthesizer(seed=seed, steps=steps, progress=progress).fit(images)
    unknown = sorted(label for label, k in requested.items() if k and label not in model.classes_)
    if unknown:
        raise InvalidDataError(f"the model cannot generate label(s) {', '.join(map(repr, unknown))}: it knows "
                               f"{', '.join(map(repr, model.classes_))}")
    if model.image_size_ != images.images.shape[-1] or model.channels_ != images.images.shape[1]:
        raise InvalidDataError(
            f"the model makes {model.image_size_} px images with {model.channels_} channel(s); these are "
            f"{images.images.shape[-1]} px with {images.images.shape[1]}: read them with --image-size {model.image_size_}"
        )
    base_seed = draw_seed(seed)
    real_keys = {row.tobytes() for row in _quantised(images.images)}
    blocks, labels, dropped = [], [], 0
    for index, (label, count) in enumerate(sorted(requested.items())):
        kept: list[np.ndarray] = []
        for round_ in range(REPLACE_ROUNDS):
            missing = count - sum(len(b) for b in kept)
            if missing <= 0:
                break
            drawn = model.sample(missing, condition=label,
                                 seed=base_seed + 1_000 * index + round_).images
            copies = np.array([row.tobytes() in real_keys for row in _quantised(drawn)], dtype=bool)
            dropped += int(copies.sum())
            kept.append(drawn[~copies])
        block = np.concatenate(kept) if kept else np.zeros((0, *images.images.shape[1:]), np.float32)
        blocks.append(block)
        labels += [label] * len(block)
    synthetic = np.concatenate(blocks) if blocks else np.zeros((0, *images.images.shape[1:]), np.float32)
    made = Counter(labels)
    added = {label: int(made[label]) for label in requested}
    shortfall = sum(requested.values()) - len(synthetic)
    if shortfall:
        logger.warning("%d requested synthetic image(s) were not added: they stayed identical to a real image", shortfall)
    combined = ImageSet(
        np.concatenate([images.images, synthetic.astype(np.float32)]),
        np.concatenate([np.asarray(images.labels, dtype=object), np.asarray(labels, dtype=object)]),
        images.mapping, images.label_name,
    )
    flags = np.concatenate([np.zeros(len(images), bool), np.ones(len(synthetic), bool)])
    return ImageAugmentation(combined, flags, added, dropped, int(shortfall))


def check_image_augmentation(
    train: ImageSet,
    test: ImageSet,
    *,
    augmented_factory: Callable[[int], ImageSet],
    seeds: int = 5,
    steps: int | None = None,
) -> CheckResult:
    """Does the small CNN trained on ``augmented_factory(i)`` beat it trained on ``train``, on ``test``?

    Same protocol and verdict as :func:`synthgen.augmentation.check.check_augmentation`: per repeat the
    classifier (seed ``i``) learns from the real images and from real + synthetic images, and both
    are scored on the real ``test`` images only (ROC AUC, balanced accuracy, recall of the class
    rarest in ``train``).
    """
    from sklearn.metrics import balanced_accuracy_score, recall_score

    from synthgen.evaluation.images.features import FeatureExtractor

    if seeds < 2:
        raise InvalidArgumentError(f"seeds must be >= 2 (an interval needs repeats), got {seeds}")
    classes, counts = np.unique(np.asarray(train.labels, dtype=str), return_counts=True)
    if len(classes) < 2:
        raise InvalidDataError("the check needs at least two labelled classes in the training images")
    unseen = set(np.asarray(test.labels, dtype=str)) - set(classes)
    if unseen:
        raise InvalidDataError(f"the test images have label(s) the training images lack: {', '.join(sorted(unseen))}")
    minority = str(classes[np.argmin(counts)])
    y_test = np.asarray(test.labels, dtype=str)

    def score(images: ImageSet, seed: int) -> dict[str, float]:
        classifier = FeatureExtractor.fit(images, classes=[str(c) for c in classes], steps=steps, seed=seed)
        proba = classifier.predict_proba(test.images)
        predicted = np.asarray(classifier.classes, dtype=object)[proba.argmax(1)].astype(str)
        return {
            "ROC AUC": macro_roc_auc(y_test, proba, classifier.classes),
            "balanced accuracy": float(balanced_accuracy_score(y_test, predicted)),
            f"minority recall ({minority})": float(recall_score(y_test, predicted, labels=[minority], average="macro",
                                                               zero_division=0)),
        }

    real_runs, augmented_runs = [], []
    for seed in range(seeds):
        real_runs.append(score(train, seed))
        augmented_runs.append(score(augmented_factory(seed), seed))
    metrics, verdict = compare_runs(real_runs, augmented_runs, "classification")
    return CheckResult("classification", "small CNN", seeds, len(train), len(test), minority, metrics, verdict)
