"""ImageSynthesizer: fit, sample, save and load, at toy size (16 px, tens of images, tens of steps)."""
from __future__ import annotations


import numpy as np
import pytest
import torch

import synthgen
from synthgen.images.types import ImageSet, IntensityMapping
from synthgen.errors import ConditionError, InvalidArgumentError, InvalidDataError, ModelFileError, NotFittedError
from synthgen.synthesizers.images import ImageSynthesizer
from synthgen.models.image_gan import (
    ImageGANConfig,
    ImageGenerator,
    init_weights,
)

MAPPING = IntensityMapping(low=0.0, high=255.0, unit="pixel")
#: Small networks and a high learning rate, so 60 steps on one core learn the class signal.
FAST = ImageGANConfig(base_width=16, lr_g=1e-3, lr_d=1e-3, batch_size=20)


def toy_set(n: int = 40, size: int = 16, seed: int = 0, labels: tuple[str, ...] = ("bright", "dark")) -> ImageSet:
    """Class "dark" ≈ -0.8, "bright" ≈ +0.8, with pixel noise; alternating labels."""
    rng = np.random.default_rng(seed)
    names = np.array([labels[i % len(labels)] for i in range(n)], dtype=object)
    level = np.where(names == "dark", -0.8, 0.8)[:, None, None, None]
    images = np.clip(level + 0.1 * rng.standard_normal((n, 1, size, size)), -1, 1).astype(np.float32)
    return ImageSet(images, names, MAPPING, label_name="brightness", sources=[f"img{i:03d}.png" for i in range(n)])


@pytest.fixture(scope="module")
def fitted() -> ImageSynthesizer:
    return ImageSynthesizer(seed=11, steps=60, config=FAST, progress=False).fit(toy_set())


# ---------------------------------------------------------------------------------------------- synthesizer
def _class_means(generator_net: ImageGenerator, n: int = 64) -> list[float]:
    with torch.inference_mode():
        noise = torch.randn(n, generator_net.linear.in_features, generator=torch.Generator().manual_seed(0))
        return [generator_net.eval()(noise, torch.full((n,), k)).mean().item() for k in range(2)]


def test_training_learns_the_class_intensity(fitted: ImageSynthesizer) -> None:
    def meets(dark: float, bright: float) -> bool:
        return dark < -0.3 and bright > 0.3

    # classes_ are sorted: 0 = "bright", 1 = "dark"
    assert fitted.classes_ == ["bright", "dark"]
    dark = fitted.sample(64, condition="dark", seed=1).images.mean()
    bright = fitted.sample(64, condition="bright", seed=1).images.mean()
    assert meets(dark, bright), (dark, bright)
    # The criterion can fail: the same networks before training do not meet it.
    untrained = ImageGenerator(fitted.config_)
    init_weights(untrained, torch.Generator().manual_seed(fitted.seed_))
    bright_before, dark_before = _class_means(untrained)
    assert not meets(dark_before, bright_before)
    assert fitted.training_["steps"] == 60 and fitted.training_["images"] == 40


def test_conditional_and_unconditional_sampling(fitted: ImageSynthesizer) -> None:
    conditioned = fitted.sample(30, condition="bright", seed=0)
    assert list(conditioned.labels) == ["bright"] * 30
    assert conditioned.images.shape == (30, 1, 16, 16) and conditioned.images.dtype == np.float32
    assert conditioned.mapping == MAPPING and conditioned.label_name == "brightness"
    mixed = fitted.sample(300, seed=0)  # crosses a chunk boundary
    assert set(mixed.labels) == {"bright", "dark"}
    assert 0.4 < np.mean(mixed.labels == "dark") < 0.6  # training frequency: 20 of 40
    assert -1 <= mixed.images.min() and mixed.images.max() <= 1


def test_unknown_condition_names_the_label_and_the_known_ones(fitted: ImageSynthesizer) -> None:
    with pytest.raises(ConditionError, match=r"'nodule'.*'bright', 'dark'"):
        fitted.sample(5, condition="nodule")
    with pytest.raises(InvalidArgumentError):
        fitted.sample(0)


def test_same_seed_same_samples(fitted: ImageSynthesizer) -> None:
    first, again = fitted.sample(10, seed=4), fitted.sample(10, seed=4)
    assert np.array_equal(first.images, again.images) and list(first.labels) == list(again.labels)
    assert not np.array_equal(first.images, fitted.sample(10, seed=5).images)


def test_same_fit_seed_same_model() -> None:
    data = toy_set(n=8)
    a = ImageSynthesizer(seed=3, steps=3, config=FAST, progress=False).fit(data)
    b = ImageSynthesizer(seed=3, steps=3, config=FAST, progress=False).fit(data)
    assert np.array_equal(a.sample(4, seed=0).images, b.sample(4, seed=0).images)


def test_save_and_load_give_identical_samples(fitted: ImageSynthesizer, tmp_path) -> None:
    path = fitted.save(tmp_path / "images.sgz")
    loaded = synthgen.load(path, device="cpu")
    assert isinstance(loaded, ImageSynthesizer)
    expected, got = fitted.sample(12, seed=9), loaded.sample(12, seed=9)
    assert np.array_equal(expected.images, got.images) and list(expected.labels) == list(got.labels)
    assert loaded.mapping_ == MAPPING and loaded.describe()["classes"] == ["bright", "dark"]
    # The model file holds no clock readings (same seed, same bytes): all but the training time.
    assert loaded.describe()["training"] == {k: v for k, v in fitted.describe()["training"].items() if k != "seconds"}


def test_model_file_without_a_key_is_refused(fitted: ImageSynthesizer) -> None:
    manifest = fitted.describe()
    tensors = {f"generator.{k}": v for k, v in fitted.generator_.state_dict().items()}
    tensors["holdout_indices"] = torch.zeros(0, dtype=torch.long)
    del manifest["classes"]
    with pytest.raises(ModelFileError, match="classes"):
        ImageSynthesizer.from_bundle(manifest, tensors)
    manifest = fitted.describe()
    del tensors["generator.linear.weight"]
    with pytest.raises(ModelFileError, match="linear.weight"):
        ImageSynthesizer.from_bundle(manifest, tensors)


def test_holdout_split_resize_and_unlabelled_sets() -> None:
    data = toy_set(n=40, size=32, labels=("",))
    model = ImageSynthesizer(image_size=16, seed=1, steps=2, config=FAST, progress=False).fit(data, holdout=0.25)
    assert model.classes_ == [""] and model.config_.n_classes == 1 and model.training_["images"] == 30
    train, holdout = model.split(data)
    assert len(train) == 30 and len(holdout) == 10 and train.images.shape[-1] == 16
    assert not set(train.sources) & set(holdout.sources)
    assert model.sample(3, seed=0).images.shape == (3, 1, 16, 16)
    assert set(model.sample(3, seed=0).labels) == {""}
    with pytest.raises(InvalidDataError, match="40 images"):
        model.split(toy_set(n=20, size=32))


def test_holdout_is_stratified_by_class() -> None:
    data = toy_set(n=40)
    model = ImageSynthesizer(seed=2, steps=1, config=FAST, progress=False).fit(data, holdout=0.2)
    _, holdout = model.split(data)
    assert sorted(holdout.labels) == ["bright"] * 4 + ["dark"] * 4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda x: x[:, :, :, :8], "square"),
        (lambda x: x * 2, r"\[-1, 1\].*img000.png"),
        (lambda x: np.where(np.arange(40)[:, None, None, None] == 3, np.nan, x).astype(np.float32), "image 3 .img003.png"),
        (lambda x: np.repeat(x, 2, axis=1), "1 or 3 channels"),
        (lambda x: x[:, :, :12, :12], "multiple of 8.*image_size"),
        (lambda x: (x * 100).astype(np.int16), "floats"),
    ],
)
def test_bad_image_sets_are_refused(change, message: str) -> None:
    bad = toy_set()
    bad.images = change(bad.images)  # ImageSet checks shapes when built; fit checks again what it is given
    with pytest.raises(InvalidDataError, match=message):
        ImageSynthesizer(steps=1, progress=False).fit(bad)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(InvalidDataError, match="ImageSet"):
        ImageSynthesizer().fit(np.zeros((4, 1, 16, 16), dtype=np.float32))
    with pytest.raises(InvalidArgumentError, match="multiple of 8"):
        ImageSynthesizer(image_size=20).fit(toy_set())
    with pytest.raises(InvalidArgumentError, match="holdout"):
        ImageSynthesizer().fit(toy_set(), holdout=0.9)
    with pytest.raises(NotFittedError):
        ImageSynthesizer().sample(3)
    with pytest.raises(InvalidArgumentError, match="translation, cutout"):
        ImageGANConfig(diffaugment="translation,color")


def test_colour_images_round_trip_through_fit_and_sample() -> None:
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (6, 3, 16, 16)).astype(np.float32)
    data = ImageSet(images, np.array(["a", "b"] * 3, dtype=object), IntensityMapping(0.0, 255.0, "pixel", photometric="RGB"))
    model = ImageSynthesizer(seed=0, steps=2, config=FAST, progress=False).fit(data)
    sample = model.sample(4, condition="b", seed=0)
    assert sample.images.shape == (4, 3, 16, 16) and sample.mapping.photometric == "RGB"


def test_mixed_precision_training_runs_the_gpu_code_path_on_cpu() -> None:
    """bfloat16 autocast is what CUDA training uses; forcing it on CPU checks that path without a GPU."""
    config = ImageGANConfig(base_width=8, batch_size=10, mixed_precision=True)
    model = ImageSynthesizer(seed=0, steps=10, config=config, progress=False).fit(toy_set(n=20))
    sample = model.sample(6, condition="dark", seed=0)
    assert sample.images.dtype == np.float32 and np.isfinite(sample.images).all()
    assert np.isfinite(model.training_["generator_loss"]) and np.isfinite(model.training_["discriminator_loss"])
