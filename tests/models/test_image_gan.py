"""The conditional image GAN's networks, augmentation, losses and EMA, at toy size."""
from __future__ import annotations

import copy

import pytest
import torch

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
