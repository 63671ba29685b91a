"""The sequence GAN's step functions, run by the shared ``adversarial_loop`` (WGAN-GP, as tabular)."""
from __future__ import annotations

import logging

import torch

from synthgen.models.tabular_gan import Discriminator
from synthgen.sequences.model import SequenceConfig, SequenceGenerator, critic_input, sequence_moments
from synthgen.training.loop import TrainingSummary, adam_pair, adversarial_loop
from synthgen.training.tabular import gradient_penalty

logger = logging.getLogger(__name__)


def train_sequence_gan(generator_net: SequenceGenerator, critic: Discriminator, static: torch.Tensor,
                       visits: torch.Tensor, alive: torch.Tensor, config: SequenceConfig, rng: torch.Generator,
                       *, progress: bool = True) -> TrainingSummary:
    """Train on whole patients: ``static`` (patients, S), ``visits`` (patients, T, V), ``alive`` (patients, T),
    all on the training device. One example is one patient, drawn uniformly."""
    device = static.device
    patients = static.shape[0]
    if config.steps is None or config.learning_rate is None:
        raise ValueError("steps and learning rate must be set: train with SequenceConfig.scaled(patients)")
    steps = config.steps
    batch = min(config.batch_size, patients)
    real_rows = critic_input(static, visits, alive, config.difference_channel)
    # Linear decay to 10%, as tabular.
    g_optimiser, d_optimiser, schedulers = adam_pair(generator_net, critic, learning_rate=config.learning_rate,
                                                     weight_decay=1e-6, final_fraction=0.1, steps=steps,
                                                     device=device)

    real_survival = alive.mean(0)
    real_moments = [m.detach() for m in sequence_moments(visits, alive)] if config.moment_loss else []

    def fake_patients() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        static_noise, visit_noise = generator_net.noise(batch, rng, device)
        return generator_net(static_noise, visit_noise, rng)

    def fake_rows() -> torch.Tensor:
        return critic_input(*fake_patients(), config.difference_channel)

    shared: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def discriminator_step() -> torch.Tensor:
        rows = torch.randint(patients, (batch,), generator=rng, device=device)
        real = real_rows.index_select(0, rows)
        if config.shared_fake:
            shared[:] = [fake_patients()]
            fake = critic_input(*shared[0], config.difference_channel).detach()
        else:
            with torch.no_grad():
                fake = fake_rows()
        scores = critic(torch.cat([fake, real]), rng)
        loss = scores[:batch].mean() - scores[batch:].mean()
        penalty = gradient_penalty(critic, real, fake, rng)
        d_optimiser.zero_grad(set_to_none=True)
        (loss + config.gradient_penalty * penalty).backward()
        d_optimiser.step()
        return loss.detach()

    def generator_step() -> torch.Tensor:
        critic.requires_grad_(False)
        fake_static, fake_visits, fake_alive = shared.pop() if config.shared_fake else fake_patients()
        loss = -critic(critic_input(fake_static, fake_visits, fake_alive, config.difference_channel), rng).mean()
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
