"""augment_images: how many images each class gets, and that copies of real images never pass."""
from __future__ import annotations

import numpy as np
import pytest

from synthgen.images.types import ImageSet, IntensityMapping
from synthgen.errors import InvalidArgumentError, InvalidDataError
from synthgen.augmentation.images import augment_images, plan

MAPPING = IntensityMapping(low=0.0, high=255.0, unit="pixel")


def _images(labels: list[str], seed: int = 0) -> ImageSet:
    rng = np.random.default_rng(seed)
    return ImageSet(rng.uniform(-1, 1, (len(labels), 1, 16, 16)).astype(np.float32), np.array(labels, dtype=object),
                    MAPPING, "finding")


class _Model:
    """Stands in for a fitted ImageSynthesizer: returns given images, or fresh noise."""

    classes_ = ["a", "b"]
    label_name_ = "finding"
    image_size_ = 16
    channels_ = 1

    def __init__(self, source: np.ndarray | None = None) -> None:
        self.source = source

    def sample(self, n: int, *, condition: str | None = None, seed: int | None = None) -> ImageSet:
        rng = np.random.default_rng(seed)
        pixels = self.source[rng.integers(0, len(self.source), n)] if self.source is not None else \
            rng.uniform(-1, 1, (n, 1, 16, 16)).astype(np.float32)
        return ImageSet(pixels, np.array([condition] * n, dtype=object), MAPPING, "finding")


def test_plan_balances_to_the_majority_and_ratio_keeps_the_mix_exactly():
    labels = np.array(["a"] * 7 + ["b"] * 3)
    assert plan(labels, balance=True, ratio=None) == {"a": 0, "b": 4}
    grown = plan(labels, balance=False, ratio=1.5)
    assert sum(grown.values()) == 5 and grown["a"] >= grown["b"]
    assert plan(labels, balance=False, ratio=3.0) == {"a": 14, "b": 6}
    with pytest.raises(InvalidArgumentError, match="exactly one"):
        plan(labels, balance=True, ratio=2.0)
    with pytest.raises(InvalidArgumentError, match="at least two labelled classes"):
        plan(np.array(["a"] * 4), balance=True, ratio=None)


def test_augmented_set_lists_real_images_first_and_flags_the_synthetic_ones():
    real = _images(["a"] * 6 + ["b"] * 2)
    result = augment_images(real, balance=True, model=_Model(), seed=0)
    assert len(result.images) == 12 and result.synthetic.tolist() == [False] * 8 + [True] * 4
    np.testing.assert_array_equal(result.images.images[:8], real.images)
    assert list(result.images.labels[8:]) == ["b"] * 4 and result.added == {"a": 0, "b": 4}


def test_synthetic_images_that_copy_a_real_image_are_dropped_not_kept():
    real = _images(["a"] * 6 + ["b"] * 2)
    copier = _Model(source=real.images)  # a memorising model: every draw is a real image
    result = augment_images(real, balance=True, model=copier, seed=0)
    assert result.synthetic.sum() == 0 and result.shortfall == 4 and result.exact_copies_dropped >= 4


def test_a_model_of_another_size_or_without_the_label_is_refused():
    real = _images(["a", "a", "c"])  # "c" needs one image the model cannot make
    with pytest.raises(InvalidDataError, match="cannot generate label"):
        augment_images(real, balance=True, model=_Model())
    small = ImageSet(np.zeros((2, 1, 8, 8), np.float32), np.array(["a", "b"], dtype=object), MAPPING, "finding")
    with pytest.raises(InvalidDataError, match="--image-size 16"):
        augment_images(small, ratio=2.0, model=_Model())
