"""Image GAN training: hinge loss, DiffAugment on both sides of the critic, an EMA of the generator."""
from __future__ import annotations

import itertools
import logging
import math

import torch

from synthgen.models.image_gan import (
    ImageDiscriminator,
    ImageGANConfig,
    ImageGenerator,
    augmentation_policy,
    diff_augment,
    discriminator_hinge_loss,
    ema_decay_at,
    generator_hinge_loss,
    update_ema,
)
from synthgen.training.loop import TrainingSummary, adversarial_loop, use_bfloat16

logger = logging.getLogger(__name__)



def default_image_steps(n_images: int, batch_size: int) -> int:
    """100 epochs in optimiser steps, at least 2,000 and at most 20,000.

    Small medical sets (tens to hundreds of images) need far more updates than 100 epochs give;
    DiffAugment is what keeps the discriminator from memorising them over that many steps.
    """
    return int(min(20_000, max(2_000, math.ceil(100 * n_images / batch_size))))


def train_image_gan(
    generator_net: ImageGenerator,
    discriminator: ImageDiscriminator,
    ema: ImageGenerator,
    images: torch.Tensor,
    labels: torch.Tensor,
    config: ImageGANConfig,
    rng: torch.Generator,
    *,
    progress: bool = True,
) -> TrainingSummary:
    """Train ``generator_net`` against ``discriminator`` with the hinge loss; ``ema`` follows it.

    ``images`` (N, C, H, W) in [-1, 1] and ``labels`` (N,) class indices are already on the training
    device; every batch is gathered there. Fake labels are drawn from the training labels, so
    classes are seen at their training frequency.
    """
    device = images.device
    n_images = images.shape[0]
    batch = min(config.batch_size, n_images)
    steps = config.steps or default_image_steps(n_images, batch)
    policy = augmentation_policy(config.diffaugment)
    g_optimiser = torch.optim.Adam(generator_net.parameters(), lr=config.lr_g, betas=tuple(config.betas))
    d_optimiser = torch.optim.Adam(discriminator.parameters(), lr=config.lr_d, betas=tuple(config.betas))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bfloat16(device, config.mixed_precision))
    ema_updates = itertools.count()

    def draw(size: int) -> torch.Tensor:
        return torch.randint(n_images, (size,), generator=rng, device=device)

    def discriminator_step() -> torch.Tensor:
        total = torch.zeros((), device=device)
        for _ in range(config.d_steps_per_g):
            rows, fake_labels = draw(batch), labels[draw(batch)]
            noise = torch.randn(batch, config.latent_dim, generator=rng, device=device)
            with autocast, torch.no_grad():
                fake = generator_net(noise, fake_labels)
            # Real and fake in one pass: one power iteration per step, one set of kernels.
            both = diff_augment(torch.cat([images[rows], fake.float()]), policy, rng)
            with autocast:
                scores = discriminator(both, torch.cat([labels[rows], fake_labels])).float()
            loss = discriminator_hinge_loss(scores[:batch], scores[batch:])
            d_optimiser.zero_grad(set_to_none=True)
            loss.backward()
            d_optimiser.step()
            total = total + loss.detach()
        return total / config.d_steps_per_g

    def generator_step() -> torch.Tensor:
        fake_labels = labels[draw(batch)]
        noise = torch.randn(batch, config.latent_dim, generator=rng, device=device)
        discriminator.requires_grad_(False)  # the generator's loss needs no discriminator gradients
        with autocast:
            fake = generator_net(noise, fake_labels)
            loss = generator_hinge_loss(discriminator(diff_augment(fake, policy, rng), fake_labels).float())
        g_optimiser.zero_grad(set_to_none=True)
        loss.backward()
        g_optimiser.step()
        discriminator.requires_grad_(True)
        update_ema(ema, generator_net, ema_decay_at(next(ema_updates), config.ema_decay))
        return loss.detach()

    generator_net.train()
    discriminator.train()
    ema.eval().requires_grad_(False)
    result = adversarial_loop(steps, discriminator_step, generator_step, progress=progress, description="training images")
    generator_net.eval()
    discriminator.eval()
    logger.info("trained the image GAN %d steps in %.1f s on %s", result.steps, result.seconds, device)
    return TrainingSummary.of(result, batch, device)
