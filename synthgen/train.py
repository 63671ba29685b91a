"""The adversarial training loop: devices, steps, optimisers, progress. Knows no columns or files."""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from collections.abc import Callable
from typing import Any

import torch
from tqdm.auto import tqdm

from synthgen.models.tabular_gan import ConditionSampler, Discriminator, GANConfig, Generator, SpanLayout

logger = logging.getLogger(__name__)

#: Loss values are read back to the host only this often, so a step never waits on the device.
_REPORT_EVERY = 50


def select_device(requested: str | None = None) -> torch.device:
    """``requested`` if given, else CUDA, then Apple MPS, then CPU."""
    if requested and requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def default_steps(n_rows: int, batch_size: int) -> int:
    """CTGAN's 300 epochs in optimiser steps, bounded: small tables still get enough updates."""
    return int(min(10_000, max(3_000, round(300 * n_rows / batch_size))))


def effective_batch_size(config: GANConfig, n_rows: int) -> int:
    """The configured batch, shrunk for tiny tables and rounded to a whole number of packs."""
    batch = min(config.batch_size, max(n_rows, config.pac))
    return max(config.pac, batch - batch % config.pac)


@dataclass
class TrainingSummary:
    steps: int
    batch_size: int
    seconds: float
    device: str
    generator_loss: float
    discriminator_loss: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)



@dataclass
class LoopResult:
    steps: int
    seconds: float
    generator_loss: float
    discriminator_loss: float


def adversarial_loop(
    steps: int,
    discriminator_step: Callable[[], torch.Tensor],
    generator_step: Callable[[], torch.Tensor],
    schedulers: list[Any] = (),
    *,
    progress: bool = True,
    stop: Callable[[int], bool] | None = None,
    description: str = "training",
) -> LoopResult:
    """Alternate one discriminator and one generator step ``steps`` times; shared by every model kind.

    Each step function returns its loss as a device tensor; losses are summed on the device and
    read back every ``_REPORT_EVERY`` steps only. ``stop(step)`` is asked after each step (e.g. a
    privacy budget that is spent); when it says yes, training ends there.
    """
    g_total = d_total = None
    g_loss = d_loss = float("nan")
    done = 0
    reported = 0
    started = time.perf_counter()
    bar = tqdm(total=steps, desc=description, unit="step", disable=not progress, leave=False)
    for step in range(1, steps + 1):
        d_value = discriminator_step().detach()
        g_value = generator_step().detach()
        d_total = d_value if d_total is None else d_total + d_value
        g_total = g_value if g_total is None else g_total + g_value
        for scheduler in schedulers:
            scheduler.step()
        done = step
        finished = step == steps or (stop is not None and stop(step))
        if step % _REPORT_EVERY == 0 or finished:
            window = step - reported
            g_loss, d_loss = (g_total / window).item(), (d_total / window).item()
            g_total = d_total = None
            reported = step
            bar.set_postfix(loss_g=f"{g_loss:.3f}", loss_d=f"{d_loss:.3f}", refresh=False)
            bar.update(window)
        if finished:
            break
    bar.close()
    return LoopResult(done, time.perf_counter() - started, g_loss, d_loss)

def _gradient_penalty(critic: Discriminator, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """WGAN-GP on pack-level interpolates (one mixing weight per pack, as PacGAN scores packs)."""
    pac = critic.pac
    alpha = torch.rand(real.shape[0] // pac, 1, 1, generator=generator, device=real.device)
    alpha = alpha.expand(-1, pac, real.shape[1]).reshape(real.shape)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    scores = critic(mixed, generator)
    (grads,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    grads = grads.reshape(-1, pac * real.shape[1])
    return ((grads.norm(2, dim=1) - 1) ** 2).mean()


def discriminator_step(generator_net, critic, layout, sampler, data, config, optimiser, rng, batch, autocast):
    cond, _, _, rows = sampler.for_training(batch, rng)
    noise = torch.randn(batch, config.embedding_dim, generator=rng, device=data.device)
    with autocast, torch.no_grad():
        fake = layout.activate(generator_net(noise, cond), config.gumbel_tau, rng)
    real = torch.cat([data[rows], cond], dim=1)
    fake = torch.cat([fake.float(), cond], dim=1)
    with autocast:
        loss = critic(fake, rng).mean() - critic(real, rng).mean()
    penalty = _gradient_penalty(critic, real, fake, rng)
    optimiser.zero_grad(set_to_none=True)
    (loss.float() + config.gradient_penalty * penalty).backward()
    optimiser.step()
    return loss.detach()


def generator_step(generator_net, critic, layout, sampler, config, optimiser, rng, batch, device, autocast):
    cond, column, category, _ = sampler.for_training(batch, rng)
    noise = torch.randn(batch, config.embedding_dim, generator=rng, device=device)
    with autocast:
        raw = generator_net(noise, cond)
        fake = layout.activate(raw, config.gumbel_tau, rng)
        loss = -critic(torch.cat([fake, cond], dim=1), rng).mean()
    if column is not None:
        loss = loss.float() + layout.condition_loss(raw, column, category)
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    return loss.detach()


def train_gan(
    generator_net: Generator,
    critic: Discriminator,
    layout: SpanLayout,
    data: torch.Tensor,
    config: GANConfig,
    rng: torch.Generator,
    *,
    progress: bool = True,
) -> tuple[ConditionSampler, TrainingSummary]:
    """Train ``generator_net`` against ``critic`` on ``data`` (already on the training device)."""
    device = data.device
    sampler = ConditionSampler.from_data(layout, data)
    batch = effective_batch_size(config, data.shape[0])
    steps = config.steps or default_steps(data.shape[0], batch)
    adam = dict(lr=config.learning_rate, betas=(0.5, 0.9), weight_decay=config.weight_decay)
    g_optimiser = torch.optim.Adam(generator_net.parameters(), **adam)
    d_optimiser = torch.optim.Adam(critic.parameters(), **adam)
    decay = lambda step: 1 - (1 - config.final_learning_rate_fraction) * step / steps  # noqa: E731
    schedulers = [torch.optim.lr_scheduler.LambdaLR(o, decay) for o in (g_optimiser, d_optimiser)]
    # bfloat16 needs no loss scaling; the gradient penalty and condition loss stay in float32.
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    generator_net.train()
    critic.train()
    result = adversarial_loop(
        steps,
        lambda: discriminator_step(generator_net, critic, layout, sampler, data, config, d_optimiser, rng, batch, autocast),
        lambda: generator_step(generator_net, critic, layout, sampler, config, g_optimiser, rng, batch, device, autocast),
        schedulers,
        progress=progress,
    )
    generator_net.eval()
    critic.eval()
    logger.info("trained %d steps in %.1f s on %s", result.steps, result.seconds, device)
    return sampler, TrainingSummary(result.steps, batch, round(result.seconds, 3), str(device), result.generator_loss, result.discriminator_loss)
