"""The sequence GAN's step functions, run by the shared ``adversarial_loop`` (WGAN-GP, as tabular).

With static discrete columns the steps train by sampling, as tabular: each step draws a condition
(a static column, then one of its categories at log frequency) per patient, the critic sees real
patients that have it, and the generator's loss adds the cross-entropy of its static span against it.
"""
from __future__ import annotations

import logging
from typing import NamedTuple

import torch

from synthgen.models.tabular_gan import ConditionSampler, Discriminator
from synthgen.sequences.model import SequenceConfig, SequenceGenerator, critic_input, sequence_moments
from synthgen.training.loop import TrainingSummary, adam_pair, adversarial_loop
from synthgen.training.tabular import gradient_penalty

logger = logging.getLogger(__name__)


class _Fakes(NamedTuple):
    """A generated batch: raw static outputs (for the condition loss), static encoding, visits, alive."""

    raw_static: torch.Tensor
    static: torch.Tensor
    visits: torch.Tensor
    alive: torch.Tensor


class _Conditions(NamedTuple):
    """A batch's condition vectors and, when conditioned, each patient's column and category."""

    cond: torch.Tensor
    column: torch.Tensor | None
    category: torch.Tensor | None


def train_sequence_gan(generator_net: SequenceGenerator, critic: Discriminator, static: torch.Tensor,
                       visits: torch.Tensor, alive: torch.Tensor, config: SequenceConfig, rng: torch.Generator,
                       *, progress: bool = True, sampler: ConditionSampler | None = None) -> TrainingSummary:
    """Train on whole patients: ``static`` (patients, S), ``visits`` (patients, T, V), ``alive`` (patients, T),
    all on the training device. One example is one patient: drawn uniformly when the generator is
    unconditioned, else one that has the step's condition, drawn by ``sampler`` (default: built
    from ``static`` over the generator's conditional static spans)."""
    device = static.device
    patients = static.shape[0]
    if config.steps is None or config.learning_rate is None:
        raise ValueError("steps and learning rate must be set: train with SequenceConfig.scaled(patients)")
    steps = config.steps
    batch = min(config.batch_size, patients)
    real_rows = critic_input(static, visits, alive, config.difference_channel)
    if sampler is None:
        sampler = ConditionSampler.from_data(generator_net.static_layout, static)
    # Unconditioned, the sampler draws the same uniform patients as before, and nothing else.
    conditional = sampler.n_columns > 0
    # Linear decay to 10%, as tabular.
    g_optimiser, d_optimiser, schedulers = adam_pair(generator_net, critic, learning_rate=config.learning_rate,
                                                     weight_decay=1e-6, final_fraction=0.1, steps=steps,
                                                     device=device)

    real_survival = alive.mean(0)
    real_moments = [m.detach() for m in sequence_moments(visits, alive)] if config.moment_loss else []

    def fake_patients(cond: torch.Tensor) -> _Fakes:
        static_noise, visit_noise = generator_net.noise(batch, rng, device)
        raw, fake_static = generator_net.static_part(static_noise, rng, cond=cond)
        return _Fakes(raw, fake_static, *generator_net.visit_part(fake_static, static_noise, visit_noise, rng))

    def rows_of(fakes: _Fakes, cond: torch.Tensor) -> torch.Tensor:
        return torch.cat([critic_input(fakes.static, fakes.visits, fakes.alive, config.difference_channel), cond], dim=1)

    shared: list[tuple[_Fakes, _Conditions]] = []

    def discriminator_step() -> torch.Tensor:
        cond, column, category, rows = sampler.for_training(batch, rng)
        real = torch.cat([real_rows.index_select(0, rows), cond], dim=1)
        if config.shared_fake:
            fakes = fake_patients(cond)
            shared[:] = [(fakes, _Conditions(cond, column, category))]
            fake = rows_of(fakes, cond).detach()
        else:
            with torch.no_grad():
                fake = rows_of(fake_patients(cond), cond)
        scores = critic(torch.cat([fake, real]), rng)
        loss = scores[:batch].mean() - scores[batch:].mean()
        penalty = gradient_penalty(critic, real, fake, rng)
        d_optimiser.zero_grad(set_to_none=True)
        (loss + config.gradient_penalty * penalty).backward()
        d_optimiser.step()
        return loss.detach()

    def generator_step() -> torch.Tensor:
        critic.requires_grad_(False)
        if config.shared_fake:
            fakes, conditions = shared.pop()
        else:
            # Unconditioned: no draw here, so the random stream (and the model) is what it was before conditions.
            conditions = (_Conditions(*sampler.for_training(batch, rng)[:3]) if conditional
                          else _Conditions(real_rows.new_zeros(batch, 0), None, None))
            fakes = fake_patients(conditions.cond)
        fake_visits, fake_alive = fakes.visits, fakes.alive
        loss = -critic(rows_of(fakes, conditions.cond), rng).mean()
        if conditions.column is not None and conditions.category is not None:
            loss = loss + generator_net.static_layout.condition_loss(fakes.raw_static, conditions.column, conditions.category)
        if config.length_loss:
            # alive is differentiable in the stop probabilities: the curve pulls the lengths directly.
            loss = loss + config.length_loss * (fake_alive.mean(0) - real_survival).abs().sum()
        if config.moment_loss:
            # Moments of the whole training set against this batch's: each group's distance (a norm, so
            # its pull does not fade as it closes) pushes the jumpiness and spreads towards the real ones.
            fake_moments = sequence_moments(fake_visits, fake_alive)
            loss = loss + config.moment_loss * sum(torch.linalg.vector_norm(f - r) for f, r in zip(fake_moments, real_moments))
        g_optimiser.zero_grad(set_to_none=True)
        loss.backward()
        g_optimiser.step()
        critic.requires_grad_(True)
        return loss.detach()

    generator_net.train()
    critic.train()
    result = adversarial_loop(steps, discriminator_step, generator_step, schedulers, progress=progress,
                              description="training (sequences)")
    generator_net.eval()
    critic.eval()
    logger.info("trained %d steps in %.1f s on %s", result.steps, result.seconds, device)
    return TrainingSummary.of(result, batch, device)
