"""The sequence GAN's step functions, run by the shared ``adversarial_loop`` (WGAN-GP, as tabular)."""
from __future__ import annotations

import logging

import torch

from synthgen.models.tabular_gan import Discriminator
from synthgen.sequences.model import SequenceConfig, SequenceGenerator, critic_input
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
    batch = min(config.batch_size, patients)
    real_rows = critic_input(static, visits, alive, config.difference_channel)
    # Linear decay to 10%, as tabular.
    g_optimiser, d_optimiser, schedulers = adam_pair(generator_net, critic, learning_rate=config.learning_rate,
                                                     weight_decay=1e-6, final_fraction=0.1, steps=config.steps,
                                                     device=device)

    def fake_rows() -> torch.Tensor:
        static_noise, visit_noise = generator_net.noise(batch, rng, device)
        return critic_input(*generator_net(static_noise, visit_noise, rng), config.difference_channel)

    def discriminator_step() -> torch.Tensor:
        rows = torch.randint(patients, (batch,), generator=rng, device=device)
        real = real_rows.index_select(0, rows)
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
        loss = -critic(fake_rows(), rng).mean()
        g_optimiser.zero_grad(set_to_none=True)
        loss.backward()
        g_optimiser.step()
        critic.requires_grad_(True)
        return loss.detach()

    generator_net.train()
    critic.train()
    result = adversarial_loop(config.steps, discriminator_step, generator_step, schedulers, progress=progress,
                              description="training (sequences)")
    generator_net.eval()
    critic.eval()
    logger.info("trained %d steps in %.1f s on %s", result.steps, result.seconds, device)
    return TrainingSummary.of(result, batch, device)
