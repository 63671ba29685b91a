"""The conditional image GAN and ImageSynthesizer, at toy size (16 px, tens of images, tens of steps)."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import synthgen
from synthgen.images.types import ImageSet, IntensityMapping
from synthgen.errors import ConditionError, InvalidArgumentError, InvalidDataError, ModelFileError, NotFittedError
from synthgen.synthesizers.images import ImageSynthesizer
from synthgen.models.image_gan import (
    ImageDiscriminator,
    ImageGANConfig,
    ImageGenerator,
    diff_augment,
    discriminator_hinge_loss,
    ema_decay_at,
    generator_hinge_loss,
    init_weights,
    update_ema,
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


def _networks(size: int, channels: int, n_classes: int = 2) -> tuple[ImageGenerator, ImageDiscriminator]:
    config = ImageGANConfig(image_size=size, channels=channels, n_classes=n_classes, base_width=8)
    generator_net, critic = ImageGenerator(config), ImageDiscriminator(config)
    rng = torch.Generator().manual_seed(0)
    init_weights(generator_net, rng)
    init_weights(critic, rng)
    return generator_net, critic


# ---------------------------------------------------------------------------------------------- networks
@pytest.mark.parametrize("size", [16, 24, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_network_shapes_and_range(size: int, channels: int) -> None:
    generator_net, critic = _networks(size, channels)
    labels = torch.tensor([0, 1, 1, 0])
    images = generator_net(torch.randn(4, 128, generator=torch.Generator().manual_seed(1)), labels)
    assert images.shape == (4, channels, size, size)
    assert images.min() >= -1 and images.max() <= 1 and images.std() > 0.01
    scores = critic(images, labels)
    assert scores.shape == (4,) and torch.isfinite(scores).all()


def test_init_is_reproducible_from_the_seed() -> None:
    a_generator, a_critic = _networks(16, 1)
    b_generator, b_critic = _networks(16, 1)
    for a, b in ((a_generator, b_generator), (a_critic, b_critic)):  # critic: spectral-norm vectors too
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_discriminator_is_spectrally_normalised() -> None:
    _, critic = _networks(16, 1)
    critic.train()
    for _ in range(30):  # power iterations converge over forward passes
        critic(torch.zeros(2, 1, 16, 16), torch.tensor([0, 1]))
    conv = critic.blocks[1].conv1
    sigma = torch.linalg.matrix_norm(conv.weight.flatten(1), ord=2)
    assert sigma.item() == pytest.approx(1.0, abs=0.05)


def test_diff_augment_keeps_shape_and_is_reproducible() -> None:
    images = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    policy = ("translation", "cutout")
    global_state = torch.random.get_rng_state()
    first = diff_augment(images, policy, torch.Generator().manual_seed(5))
    assert torch.equal(torch.random.get_rng_state(), global_state)
    assert first.shape == images.shape
    assert torch.equal(first, diff_augment(images, policy, torch.Generator().manual_seed(5)))
    assert not torch.equal(first, diff_augment(images, policy, torch.Generator().manual_seed(6)))


def test_translation_shifts_by_at_most_an_eighth_and_cutout_zeroes_a_half_side_square() -> None:
    ones = torch.ones(64, 1, 16, 16)
    shifted = diff_augment(ones, ("translation",), torch.Generator().manual_seed(0))
    assert torch.equal(shifted[:, :, 2:-2, 2:-2], ones[:, :, 2:-2, 2:-2])  # 16 / 8 = 2 px at most
    assert (shifted == 0).any()
    holes = (diff_augment(ones, ("cutout",), torch.Generator().manual_seed(0)) == 0).sum(dim=(1, 2, 3))
    assert holes.min() >= 16 and holes.max() == 64  # an 8×8 square, partly outside at the edges
    ramp = (torch.arange(16.0) + 1).repeat(1, 1, 16, 1)  # column j holds j + 1; zero is padding
    for seed in range(10):
        row = diff_augment(ramp, ("translation",), torch.Generator().manual_seed(seed))[0, 0, 8, 2:-2]
        offsets = (ramp[0, 0, 8, 2:-2] - row).unique()
        assert len(offsets) == 1 and abs(offsets.item()) <= 2


def test_diff_augment_passes_gradients() -> None:
    images = torch.randn(4, 1, 16, 16, requires_grad=True)
    diff_augment(images, ("translation", "cutout"), torch.Generator().manual_seed(0)).sum().backward()
    assert images.grad is not None and set(images.grad.unique().tolist()) <= {0.0, 1.0}


def test_hinge_losses_on_known_scores() -> None:
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    # real: relu(1 - [2, .5]) = [0, .5]; fake: relu(1 + [-2, 0]) = [0, 1]
    assert discriminator_hinge_loss(real, fake).item() == pytest.approx(0.25 + 0.5)
    assert generator_hinge_loss(fake).item() == pytest.approx(1.0)


def test_ema_moves_toward_the_generator_and_copies_batchnorm_statistics() -> None:
    generator_net, _ = _networks(16, 1)
    ema = copy.deepcopy(generator_net)
    start = [p.clone() for p in ema.parameters()]
    with torch.no_grad():
        for p in generator_net.parameters():
            p.add_(1.0)
    generator_net.out_norm.running_mean.fill_(0.5)
    update_ema(ema, generator_net, decay=0.9)
    for before, now in zip(start, ema.parameters()):
        torch.testing.assert_close(now, before + 0.1)
    assert torch.equal(ema.out_norm.running_mean, generator_net.out_norm.running_mean)
    assert ema_decay_at(0, 0.999) == pytest.approx(0.1)
    assert ema_decay_at(100_000, 0.999) == 0.999


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
