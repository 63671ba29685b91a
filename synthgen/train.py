"""The adversarial training loops: devices, steps, optimisers, progress. Knows no columns, pixels or files.

Tabular (``train_gan``, and ``train_gan_private`` for DP-SGD) and image (``train_image_gan``) models
share ``adversarial_loop``; each kind brings its own step functions.
"""
from __future__ import annotations

import itertools
import logging
import math
import time
import warnings
from dataclasses import asdict, dataclass, replace
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

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
from synthgen.models.tabular_gan import ConditionSampler, Discriminator, GANConfig, Generator, MarginalLoss, SpanLayout

from synthgen.dp.entropy import PrivateRandom

if TYPE_CHECKING:
    from synthgen.dp.accounting import PrivacyPlan

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


def use_bfloat16(device: torch.device, requested: bool | None) -> bool:
    """bfloat16 autocast: as requested, else where the hardware has it natively.

    On such CPUs (AVX512-BF16, AMX) a tabular step runs 1.5x faster and sampling 2.5x (measured on
    an AVX512-BF16 EPYC) at the same fidelity; elsewhere bfloat16 would be emulated, and slower.
    """
    if requested is not None:
        return requested
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return any(getattr(torch.cpu, check, lambda: False)() for check in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return False


def _fused(device: torch.device) -> bool | None:
    """Fused Adam (one kernel for all parameters; 4x faster than the per-tensor loop on CPUs) where torch has it."""
    return True if device.type in ("cpu", "cuda") else None


#: Below this many rows a table trains in small batches at a higher learning rate (see GANConfig).
SMALL_TABLE_ROWS = 2_500
SMALL_BATCH, SMALL_BATCH_LEARNING_RATE = 128, 5e-4
LARGE_BATCH, LARGE_BATCH_LEARNING_RATE = 500, 2e-4
MIN_STEPS, MAX_STEPS = 1_500, 10_000


def default_steps(n_rows: int) -> int:
    """CTGAN's 300 epochs (at its batch of 500) in optimiser steps, at least 1,500 and at most 10,000."""
    return int(min(MAX_STEPS, max(MIN_STEPS, round(300 * n_rows / LARGE_BATCH))))


def default_private_steps(n_rows: int, batch_size: int) -> int:
    """DP-SGD's default length: 300 epochs at its batch, at least 3,000 and at most 10,000 steps."""
    return int(min(MAX_STEPS, max(3_000, round(300 * n_rows / batch_size))))


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


@dataclass
class TrainingSummary:
    steps: int
    batch_size: int
    seconds: float
    device: str
    generator_loss: float
    discriminator_loss: float
    mixed_precision: bool = False

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
    description: str = "training",
) -> LoopResult:
    """Alternate one discriminator and one generator step ``steps`` times; shared by every model kind.

    Each step function returns its loss as a device tensor; losses are summed on the device and
    read back every ``_REPORT_EVERY`` steps only.
    """
    g_total = d_total = None
    g_loss = d_loss = float("nan")
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
        if step % _REPORT_EVERY == 0 or step == steps:
            window = step - reported
            g_loss, d_loss = (g_total / window).item(), (d_total / window).item()
            g_total = d_total = None
            reported = step
            bar.set_postfix(loss_g=f"{g_loss:.3f}", loss_d=f"{d_loss:.3f}", refresh=False)
            bar.update(window)
    bar.close()
    return LoopResult(steps, time.perf_counter() - started, g_loss, d_loss)

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
    with autocast:  # one context per step: autocast caches its weight casts only within a context
        with torch.no_grad():
            fake = layout.activate(generator_net(noise, cond), config.gumbel_tau, rng)
        real = torch.cat([data.index_select(0, rows), cond], dim=1)
        fake = torch.cat([fake, cond], dim=1)
        # Real and fake packs in one pass (batch is a whole number of packs, so none mixes them).
        scores = critic(torch.cat([fake, real]), rng).float()
        loss = scores[: batch // critic.pac].mean() - scores[batch // critic.pac :].mean()
        penalty = _gradient_penalty(critic, real, fake, rng)
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
    """Train ``generator_net`` against ``critic`` on ``data`` (already on the training device).

    ``config`` must be resolved (``resolve_config``): batch size, learning rate and steps set.
    """
    device = data.device
    sampler = ConditionSampler.from_data(layout, data)
    batch, steps = config.batch_size, config.steps
    adam = dict(lr=config.learning_rate, betas=(0.5, 0.9), weight_decay=config.weight_decay, fused=_fused(device))
    g_optimiser = torch.optim.Adam(generator_net.parameters(), **adam)
    d_optimiser = torch.optim.Adam(critic.parameters(), **adam)
    decay = lambda step: 1 - (1 - config.final_learning_rate_fraction) * step / steps  # noqa: E731
    schedulers = [torch.optim.lr_scheduler.LambdaLR(o, decay) for o in (g_optimiser, d_optimiser)]
    # bfloat16 needs no loss scaling; losses are reduced in float32.
    bfloat16 = use_bfloat16(device, config.mixed_precision)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bfloat16)
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
    return sampler, TrainingSummary(result.steps, batch, round(result.seconds, 3), str(device), result.generator_loss,
                                    result.discriminator_loss, bfloat16)


def make_private_critic(critic: Discriminator, plan: "PrivacyPlan", learning_rate: float,
                        private_rng: torch.Generator) -> tuple[Any, Any, Any]:
    """(critic wrapped for per-sample clipping, its DP optimiser, the per-sample loss) for DP-SGD.

    Ghost clipping computes per-sample gradient norms without materialising per-sample
    gradients, then a second backward pass weighted by the clipping factors (about 2x a plain
    step; materialising them was 15x). The loss is the logistic GAN loss per row: target 1 for real
    rows, 0 for fakes. Weight decay is left out: it would add a term after clipping. The noise comes
    from ``private_rng`` (re-keyed from OS entropy every step) in Opacus' secure mode.
    """
    from opacus.grad_sample import GradSampleModuleFastGradientClipping
    from opacus.optimizers import DPOptimizerFastGradientClipping
    from opacus.utils.fast_gradient_clipping_utils import DPLossFastGradientClipping

    private_critic = GradSampleModuleFastGradientClipping(
        critic, max_grad_norm=plan.max_grad_norm, use_ghost_clipping=True, loss_reduction="mean"
    )
    optimiser = DPOptimizerFastGradientClipping(
        torch.optim.Adam(private_critic.parameters(), lr=learning_rate, betas=(0.5, 0.9)),
        noise_multiplier=plan.noise_multiplier,
        max_grad_norm=plan.max_grad_norm,
        expected_batch_size=2 * plan.expected_batch_size,  # real rows (expected) + as many fakes
        loss_reduction="mean",
        generator=private_rng,
        secure_mode=True,
    )
    criterion = DPLossFastGradientClipping(
        private_critic, optimiser, torch.nn.BCEWithLogitsLoss(reduction="mean"), loss_reduction="mean"
    )
    return private_critic, optimiser, criterion


def train_gan_private(
    generator_net: Generator,
    critic: Discriminator,
    layout: SpanLayout,
    data: torch.Tensor,
    config: GANConfig,
    rng: torch.Generator,
    sampler: ConditionSampler,
    plan: "PrivacyPlan",
    *,
    progress: bool = True,
    marginal_loss: MarginalLoss | None = None,
    marginal_weight: float = 1.0,
) -> TrainingSummary:
    """DP-SGD on the critic, the only network that reads real rows, for ``plan.steps`` steps.

    ``rng`` (seeded) drives what protects nobody: fakes, dropout, condition draws. The Poisson
    sample and the gradient noise come from a generator re-keyed with fresh OS entropy before every
    step (``synthgen.dp.entropy``), so nothing in the model file can replay them.

    Real rows are Poisson-sampled at ``plan.sample_rate`` and each row's gradient is clipped to
    ``plan.max_grad_norm`` (Opacus per-sample gradients), with Gaussian noise of
    ``plan.noise_multiplier`` × that norm added to the sum. Fakes share the critic's batch: they are
    generated from public noise and the already-private critic, so they add no sensitivity. The
    loss is the logistic (non-saturating) GAN loss: the WGAN gradient penalty needs a second
    backward pass that per-sample clipping does not account for (Opacus #31). The generator is
    trained only through the critic's scores: post-processing of a DP output. The critic's hooks
    are off during the generator step and its gradients are cleared before every private update,
    so generator-step gradients never enter it. ``marginal_loss`` (weighted ``marginal_weight``)
    pulls the generator toward released one- and two-way tables: post-processing too.
    """
    if config.pac != 1:
        raise ValueError("DP training scores rows one at a time (pac=1): one sample is one row")
    device = data.device
    n_rows = data.shape[0]
    batch = plan.expected_batch_size
    adam = dict(lr=config.learning_rate, betas=(0.5, 0.9))
    g_optimiser = torch.optim.Adam(generator_net.parameters(), **adam, weight_decay=config.weight_decay)
    private_rng = torch.Generator(device)
    private_critic, d_optimiser, criterion = make_private_critic(critic, plan, config.learning_rate, private_rng)
    decay = lambda step: 1 - (1 - config.final_learning_rate_fraction) * step / plan.steps  # noqa: E731
    schedulers = [torch.optim.lr_scheduler.LambdaLR(o, decay) for o in (g_optimiser, d_optimiser.original_optimizer)]
    generator_net.train()
    private_critic.train()

    def fakes(count: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        cond, column, category = sampler.at_true_frequencies(count, rng)
        noise = torch.randn(count, config.embedding_dim, generator=rng, device=device)
        return generator_net(noise, cond), column, category, cond

    def private_step() -> torch.Tensor:
        # Poisson sampling: each row joins with probability q; the batch size is itself random
        # (reading it back is the one host sync per step; Opacus's own loader does this on the host).
        private_rng.manual_seed(PrivateRandom.key())
        rows = torch.nonzero(torch.rand(n_rows, generator=private_rng, device=device) < plan.sample_rate).squeeze(1)
        real = data[rows]
        real = torch.cat([real, sampler.of_rows(real, rng)], dim=1)
        with torch.no_grad():
            raw, _, _, cond = fakes(batch)
            fake = torch.cat([layout.activate(raw, config.gumbel_tau, rng), cond], dim=1)
        scores = private_critic(torch.cat([real, fake]), rng).squeeze(1)
        targets = torch.cat([torch.ones(real.shape[0], device=device), torch.zeros(batch, device=device)])
        d_optimiser.zero_grad(set_to_none=True)
        loss = criterion(scores, targets)
        loss.backward()
        d_optimiser.step()
        return loss.detach()

    def public_step() -> torch.Tensor:
        private_critic.disable_hooks()
        raw, column, category, cond = fakes(batch)
        fake = layout.activate(raw, config.gumbel_tau, rng)
        loss = F.softplus(-private_critic(torch.cat([fake, cond], dim=1), rng)).mean()
        if column is not None:
            loss = loss + layout.condition_loss(raw, column, category)
        if marginal_loss is not None:
            loss = loss + marginal_weight * marginal_loss(raw)
        g_optimiser.zero_grad(set_to_none=True)
        loss.backward()
        g_optimiser.step()
        d_optimiser.zero_grad(set_to_none=True)
        private_critic.enable_hooks()
        return loss.detach()

    with warnings.catch_warnings():
        # Opacus' backward hooks fire on the critic's outputs only, since its inputs need no gradient.
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        result = adversarial_loop(plan.steps, private_step, public_step, schedulers, progress=progress,
                                  description="training (DP)")
    generator_net.eval()
    critic.eval()
    logger.info("trained %d DP steps in %.1f s on %s", result.steps, result.seconds, device)
    return TrainingSummary(result.steps, batch, round(result.seconds, 3), str(device), result.generator_loss,
                           result.discriminator_loss)


# ---------------------------------------------------------------------------------------------- images


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
    return TrainingSummary(result.steps, batch, round(result.seconds, 3), str(device), result.generator_loss, result.discriminator_loss)
