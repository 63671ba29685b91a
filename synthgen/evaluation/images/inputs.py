"""The image sets an evaluation takes, checked and brought to the training images' size and window."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from synthgen.errors import InvalidArgumentError, InvalidDataError
from synthgen.evaluation.images.metrics import K
from synthgen.images.types import ImageSet

logger = logging.getLogger(__name__)

MIN_IMAGES = K + 1


def checked_pixels(name: str, images: ImageSet, like: ImageSet | None = None) -> np.ndarray:
    """The images of ``images``, checked; brought to the size and intensity window of ``like`` when given."""
    if not isinstance(images, ImageSet):
        raise InvalidArgumentError(f"the {name} images must be an ImageSet, not {type(images).__name__}")
    if len(images) < MIN_IMAGES:
        raise InvalidDataError(f"the {name} set has {len(images)} images; the evaluation needs at least {MIN_IMAGES}")
    array = images.images
    if not np.isfinite(array).all():
        raise InvalidDataError(f"the {name} images contain NaN or infinite values")
    if like is None:
        return array
    if array.shape[1] != like.images.shape[1]:
        raise InvalidDataError(f"the {name} images have {array.shape[1]} channel(s) and the real training images {like.images.shape[1]}")
    ours, theirs = images.mapping, like.mapping
    if ours.unit != theirs.unit:
        raise InvalidDataError(
            f"the {name} images are in {ours.unit!r} units and the real training images in {theirs.unit!r}; "
            "read both the same way (e.g. both as DICOM) so that their intensities compare"
        )
    if (ours.low, ours.high) != (theirs.low, theirs.high):
        logger.info("mapping the %s images from [%g, %g] to [%g, %g] %s", name, ours.low, ours.high, theirs.low, theirs.high, ours.unit)
        array = theirs.to_unit(images.physical())
    side = like.images.shape[-1]
    if array.shape[-1] != side:
        logger.info("resizing the %s images from %d to %d px", name, array.shape[-1], side)
        array = resize(torch.from_numpy(array), side).numpy()
    return array


def classes_of(name: str, labels: np.ndarray) -> list[str]:
    """The label classes to classify, or [] when there are fewer than two (then the rotation task is used)."""
    blank = labels == ""
    if blank.any() and not blank.all():
        raise InvalidDataError(f"{int(blank.sum())} of the {len(labels)} {name} images have no label; label all of them or none")
    classes = sorted(set(labels.tolist()) - {""})
    return classes if len(classes) > 1 else []


def requested_labels(name: str, images: ImageSet, classes: list[str]) -> np.ndarray | None:
    """The labels of ``images`` when they can be scored against ``classes``; None when unlabelled."""
    labels = np.asarray(images.labels, dtype=object)
    if not classes or (labels == "").all():
        return None
    unknown = sorted(set(labels.tolist()) - set(classes))
    if unknown:
        raise InvalidDataError(f"the {name} labels {unknown[:5]} are not classes of the real images ({', '.join(classes)})")
    return labels


def codes(labels: np.ndarray, classes: list[str]) -> np.ndarray:
    """Each label's position in ``classes``."""
    codes = pd.Categorical(labels, categories=classes).codes.astype(np.int64)
    if (codes < 0).any():
        unknown = sorted(set(labels[codes < 0].tolist()))
        raise InvalidDataError(f"the labels {unknown[:5]} are not among the classes to learn ({', '.join(classes)})")
    return codes


def resize(images: torch.Tensor, side: int) -> torch.Tensor:
    if images.shape[-1] == side:
        return images
    return F.interpolate(images, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
