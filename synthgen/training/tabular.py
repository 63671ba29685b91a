"""Tabular GAN training: CTGAN-style WGAN-GP steps, and the automatic batch, learning rate and length."""
from __future__ import annotations

import logging
import math
from dataclasses import replace

import torch

from synthgen.models.tabular_gan import ConditionSampler, Discriminator, GANConfig, Generator, SpanLayout
from synthgen.training.checkpoint import Checkpointing, load_checkpoint, save_checkpoint
from synthgen.training.loop import TrainingSummary, adam_pair, adversarial_loop, use_bfloat16

logger = logging.getLogger(__name__)

#: Below this many rows a table trains in small batches at a higher learning rate (see GANConfig).
SMALL_TABLE_ROWS = 2_500
SMALL_BATCH, SMALL_BATCH_LEARNING_RATE = 128, 5e-4
LARGE_BATCH, LARGE_BATCH_LEARNING_RATE = 500, 2e-4
MIN_STEPS, MAX_STEPS = 1_500, 10_000


def default_steps(n_rows: int) -> int:
    """CTGAN's 300 epochs (at its batch of 500) in optimiser steps, at least 1,500 and at most 10,000."""
    return int(min(MAX_STEPS, max(MIN_STEPS, round(300 * n_rows / LARGE_BATCH))))


def resolve_config(config: GANConfig, n_rows: int) -> GANConfig:
    """``config`` with its automatic settings (batch size, learning rate, steps) decided for ``n_rows`` rows."""
    batch = config.batch_size or (SMALL_BATCH if n_rows < SMALL_TABLE_ROWS else LARGE_BATCH)
    batch = effective_batch_size(replace(config, batch_size=batch), n_rows)
    learning_rate = config.learning_rate or (SMALL_BATCH_LEARNING_RATE if batch < 256 else LARGE_BATCH_LEARNING_RATE)
    return replace(config, batch_size=batch, learning_rate=learning_rate, steps=config.steps or default_steps(n_rows))


def effective_batch_size(config: GANConfig, n_rows: int) -> int:
    """The configured batch, shrunk for tiny tables and rounded to a whole number of packs."""
    batch = min(config.batch_size, max(n_rows, config.pac))
    return max(config.pac, batch - batch % config.pac)

def gradient_penalty(critic: Discriminator, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """WGAN-GP on pack-level interpolates (one mixing weight per pack, as PacGAN scores packs)."""
    pac = critic.pac
    alpha = torch.rand(real.shape[0] // pac, 1, 1, generator=generator, device=real.device)
    alpha = alpha.expand(-1, pac, real.shape[1]).reshape(real.shape)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    scores = critic(mixed, generator)
    (grads,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    grads = grads.reshape(-1, pac * real.shape[1])
    return ((grads.norm(2, dim=1) - 1) ** 2).mean()


def discriminator_step(generator_net, critic, plain_critic, layout, sampler, data, config, optimiser, rng, batch, autocast):
    """One critic update; ``critic`` may be the DDP wrapper of ``plain_critic`` (the penalty's second
    pass through the plain module still backpropagates into the same, synchronised, parameters)."""
    cond, _, _, rows = sampler.for_training(batch, rng)
    noise = torch.randn(batch, config.embedding_dim, generator=rng, device=data.device)
    with autocast:  # one context per step: autocast caches its weight casts only within a context
        with torch.no_grad():
            fake = layout.activate(generator_net(noise, cond), config.gumbel_tau, rng)
        real = torch.cat([data.index_select(0, rows), cond], dim=1)
        fake = torch.cat([fake, cond], dim=1)
        # Real and fake packs in one pass (batch is a whole number of packs, so none mixes them).
        scores = critic(torch.cat([fake, real]), rng).float()
        loss = scores[: batch // plain_critic.pac].mean() - scores[batch // plain_critic.pac :].mean()
        penalty = gradient_penalty(plain_critic, real, fake, rng)
    optimiser.zero_grad(set_to_none=True)
    (loss + config.gradient_penalty * penalty).backward()
    optimiser.step()
    return loss.detach()


def generator_step(generator_net, critic, layout, sampler, config, optimiser, rng, batch, device, autocast):
    cond, column, category, _ = sampler.for_training(batch, rng)
    noise = torch.randn(batch, config.embedding_dim, generator=rng, device=device)
    critic.requires_grad_(False)  # the generator's loss needs no critic weight gradients
    with autocast:
        raw = generator_net(noise, cond)
        fake = layout.activate(raw, config.gumbel_tau, rng)
        loss = -critic(torch.cat([fake, cond], dim=1), rng).float().mean()
        if column is not None:
            loss = loss + layout.condition_loss(raw, column, category)
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    critic.requires_grad_(True)
    return loss.detach()


def _synchronised(network: torch.nn.Module) -> torch.nn.Module:
    """``network`` in DistributedDataParallel, set for small networks and one all-reduce per backward.

    The networks are a few MB: one bucket holding every gradient (DDP's default first bucket of
    1 MB split the generator's in two), each gradient a view into it (no copy in or out), and no
    broadcast of rank 0's buffers (BatchNorm's running statistics) before every forward: rank 0,
    which writes the model, keeps its own either way, and the batch statistics train in every rank.
    Two collectives per step instead of four (benchmarks/README, Scale: 2 ranks 1.57× → 1.61× one).
    """
    from torch.nn.parallel import DistributedDataParallel

    megabytes = sum(p.numel() * p.element_size() for p in network.parameters()) / 2**20
    return DistributedDataParallel(network, broadcast_buffers=False, gradient_as_bucket_view=True,
                                   bucket_cap_mb=math.ceil(megabytes) + 1)


def train_gan(
    generator_net: Generator,
    critic: Discriminator,
    layout: SpanLayout,
    data: torch.Tensor,
    config: GANConfig,
    rng: torch.Generator,
    *,
    progress: bool = True,
    distributed: bool = False,
    checkpointing: Checkpointing | None = None,
) -> tuple[ConditionSampler, TrainingSummary]:
    """Train ``generator_net`` against ``critic`` on ``data`` (already on the training device).

    ``config`` must be resolved (``resolve_config``): batch size, learning rate and steps set.
    ``distributed`` (inside a joined process group): ``data`` is this rank's share, and both
    networks are wrapped in DistributedDataParallel, which averages their gradients over the ranks.
    A forward pass whose gradients must not be synchronised (the generator under no_grad in the
    critic's step, the frozen critic in the generator's) goes to the plain module: DDP expects
    every forward through it to be followed by a backward into its parameters.
    """
    device = data.device
    sampler = ConditionSampler.from_data(layout, data)
    batch, steps = config.batch_size, config.steps
    g_optimiser, d_optimiser, schedulers = adam_pair(
        generator_net, critic, learning_rate=config.learning_rate, weight_decay=config.weight_decay,
        final_fraction=config.final_learning_rate_fraction, steps=steps, device=device,
    )
    # bfloat16 needs no loss scaling; losses are reduced in float32.
    bfloat16 = use_bfloat16(device, config.mixed_precision)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bfloat16)
    generator_net.train()
    critic.train()
    start, after_step = 0, None
    if checkpointing is not None:
        state = ({"generator": generator_net, "critic": critic}, {"generator": g_optimiser, "critic": d_optimiser},
                 schedulers, rng)
        if checkpointing.resume is not None:
            start = load_checkpoint(checkpointing, steps, *state)

        def after_step(step: int) -> None:
            if checkpointing.due(step) and step < steps:
                save_checkpoint(checkpointing, step, *state)
    synced_generator, synced_critic = generator_net, critic
    if distributed:
        synced_generator, synced_critic = _synchronised(generator_net), _synchronised(critic)
    result = adversarial_loop(
        steps,
        lambda: discriminator_step(generator_net, synced_critic, critic, layout, sampler, data, config, d_optimiser, rng,
                                   batch, autocast),
        lambda: generator_step(synced_generator, critic, layout, sampler, config, g_optimiser, rng, batch, device, autocast),
        schedulers,
        progress=progress,
        start_step=start,
        after_step=after_step,
    )
    generator_net.eval()
    critic.eval()
    logger.info("trained %d steps in %.1f s on %s", result.steps, result.seconds, device)
    return sampler, TrainingSummary.of(result, batch, device, bfloat16)
