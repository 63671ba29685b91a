"""DP-SGD training of the tabular GAN: Opacus on the critic, the only network that reads real rows."""
from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch.nn import functional as F

from synthgen.dp.entropy import PrivateRandom
from synthgen.models.tabular_gan import ConditionSampler, Discriminator, GANConfig, Generator, MarginalLoss, SpanLayout
from synthgen.training.loop import TrainingSummary, adversarial_loop
from synthgen.training.tabular import MAX_STEPS

if TYPE_CHECKING:
    from synthgen.dp.accounting import PrivacyPlan

logger = logging.getLogger(__name__)


def default_private_steps(n_rows: int, batch_size: int) -> int:
    """DP-SGD's default length: 300 epochs at its batch, at least 3,000 and at most 10,000 steps."""
    return int(min(MAX_STEPS, max(3_000, round(300 * n_rows / batch_size))))



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


def poisson_rows(count: int, sample_rate: float, private_rng: torch.Generator) -> torch.Tensor:
    """DP-SGD's Poisson sampling: each of ``count`` examples joins with probability ``sample_rate``,
    drawn from ``private_rng`` re-keyed with fresh OS bits. The batch size is itself random (reading
    it back is the one host sync per step; Opacus' own loader does this on the host)."""
    private_rng.manual_seed(PrivateRandom.key())
    return torch.nonzero(torch.rand(count, generator=private_rng, device=private_rng.device) < sample_rate).squeeze(1)


def private_critic_step(private_critic: Any, criterion: Any, optimiser: Any, real: torch.Tensor, fake: torch.Tensor,
                        rng: torch.Generator) -> torch.Tensor:
    """One DP-SGD step of the critic: the logistic loss with target 1 for real examples, 0 for fakes."""
    scores = private_critic(torch.cat([real, fake]), rng).squeeze(1)
    targets = torch.cat([torch.ones(real.shape[0], device=real.device), torch.zeros(fake.shape[0], device=real.device)])
    optimiser.zero_grad(set_to_none=True)
    loss = criterion(scores, targets)
    loss.backward()
    optimiser.step()
    return loss.detach()


def private_generator_update(loss: torch.Tensor, g_optimiser: torch.optim.Optimizer, d_optimiser: Any,
                             private_critic: Any) -> torch.Tensor:
    """The generator's update beside a DP critic whose hooks the step turned off: the gradients the
    backward pass left on the critic are cleared (they never reach its private sum), hooks back on."""
    g_optimiser.zero_grad(set_to_none=True)
    loss.backward()
    g_optimiser.step()
    d_optimiser.zero_grad(set_to_none=True)
    private_critic.enable_hooks()
    return loss.detach()


def private_adversarial_loop(steps: int, private_step: Callable[[], torch.Tensor], public_step: Callable[[], torch.Tensor],
                             schedulers: Any, *, progress: bool, description: str) -> Any:
    """``adversarial_loop`` with a DP critic's step first and the generator's second."""
    with warnings.catch_warnings():
        # Opacus' backward hooks fire on the critic's outputs only, since its inputs need no gradient.
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        return adversarial_loop(steps, private_step, public_step, schedulers, progress=progress, description=description)


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
    g_optimiser = _generator_optimiser(generator_net, config)
    private_rng = torch.Generator(device)
    private_critic, d_optimiser, criterion = make_private_critic(critic, plan, config.learning_rate, private_rng)
    schedulers = [torch.optim.lr_scheduler.LambdaLR(o, _decay(config, plan.steps))
                  for o in (g_optimiser, d_optimiser.original_optimizer)]
    generator_net.train()
    private_critic.train()

    def fakes(count: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        cond, column, category = sampler.at_true_frequencies(count, rng)
        noise = torch.randn(count, config.embedding_dim, generator=rng, device=device)
        return generator_net(noise, cond), column, category, cond

    def private_step() -> torch.Tensor:
        real = data[poisson_rows(n_rows, plan.sample_rate, private_rng)]
        real = torch.cat([real, sampler.of_rows(real, rng)], dim=1)
        with torch.no_grad():
            raw, _, _, cond = fakes(batch)
            fake = torch.cat([layout.activate(raw, config.gumbel_tau, rng), cond], dim=1)
        return private_critic_step(private_critic, criterion, d_optimiser, real, fake, rng)

    def public_step() -> torch.Tensor:
        private_critic.disable_hooks()
        raw, column, category, cond = fakes(batch)
        fake = layout.activate(raw, config.gumbel_tau, rng)
        loss = F.softplus(-private_critic(torch.cat([fake, cond], dim=1), rng)).mean()
        if column is not None:
            loss = loss + layout.condition_loss(raw, column, category)
        if marginal_loss is not None:
            loss = loss + marginal_weight * marginal_loss(raw)
        return private_generator_update(loss, g_optimiser, d_optimiser, private_critic)

    result = private_adversarial_loop(plan.steps, private_step, public_step, schedulers, progress=progress,
                                      description="training (DP)")
    generator_net.eval()
    critic.eval()
    logger.info("trained %d DP steps in %.1f s on %s", result.steps, result.seconds, device)
    return TrainingSummary(result.steps, batch, round(result.seconds, 3), str(device), result.generator_loss,
                           result.discriminator_loss)


def fit_generator_to_releases(generator_net: Generator, layout: SpanLayout, config: GANConfig, rng: torch.Generator,
                              sampler: ConditionSampler, marginal_loss: MarginalLoss, *,
                              progress: bool = True) -> TrainingSummary:
    """Fit the generator to released one- and two-way tables alone, for ``config.steps`` steps.

    The DP fit without a critic (the default, ``DPSettings.resolved_critic``): nothing here
    reads a row, so the steps cost no ε (post-processing of the releases). Same optimiser, schedule
    and condition loss as the generator step of :func:`train_gan_private`.
    """
    device = layout.tanh_index.device
    g_optimiser = _generator_optimiser(generator_net, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(g_optimiser, _decay(config, config.steps))
    generator_net.train()
    nothing = torch.zeros((), device=device)

    def generator_step() -> torch.Tensor:
        cond, column, category = sampler.at_true_frequencies(config.batch_size, rng)
        noise = torch.randn(config.batch_size, config.embedding_dim, generator=rng, device=device)
        raw = generator_net(noise, cond)
        loss = marginal_loss(raw)
        if column is not None:
            loss = loss + layout.condition_loss(raw, column, category)
        g_optimiser.zero_grad(set_to_none=True)
        loss.backward()
        g_optimiser.step()
        return loss.detach()

    result = adversarial_loop(config.steps, lambda: nothing, generator_step, [scheduler], progress=progress,
                              description="fitting the released tables (DP)")
    generator_net.eval()
    logger.info("fitted the generator to the released tables in %d steps, %.1f s on %s", result.steps, result.seconds, device)
    return TrainingSummary(result.steps, config.batch_size, round(result.seconds, 3), str(device), result.generator_loss,
                           result.discriminator_loss)


def _generator_optimiser(generator_net: Generator, config: GANConfig) -> torch.optim.Adam:
    return torch.optim.Adam(generator_net.parameters(), lr=config.learning_rate, betas=(0.5, 0.9),
                            weight_decay=config.weight_decay)


def _decay(config: GANConfig, steps: int) -> Callable[[int], float]:
    """The learning rate's linear decay to ``config.final_learning_rate_fraction`` over ``steps``."""
    return lambda step: 1 - (1 - config.final_learning_rate_fraction) * step / steps
