"""Whole-patient GAN networks (DoppelGANger-like, Lin et al. 2020): no pandas, no files.

The generator draws a patient's static encoding from noise and a condition vector over the static
discrete columns (the tabular generator and its training-by-sampling; no such column, or
``conditional_statics`` off: unconditioned), then its visits with a GRU cell whose every step sees the static encoding, fresh noise and the visit
drawn before it (autoregressive, teacher-free: as at sampling). A visit's outputs before activation are
the previous visit's plus a change (a level and deltas), and a categorical span starts from the
category drawn at the previous visit times a learned gain (starting at the training patients'
recurrence of that category, ``markov_gains``), so values and categories persist unless
the generator moves them (independent draws made trajectories jumpier than real ones). Each visit's
encoding ends with a two-way (continue, stop) span: a patient is alive at visit t while no earlier
visit said stop, so the length is generated with the values and stays differentiable in training
(the soft stop probabilities multiply out). The critic sees whole patients: static encoding,
padded visits masked by that "alive" mask, and the mask itself, flattened (as DoppelGANger's).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import cast

import torch
from torch import nn

from synthgen.data.base import Span
from synthgen.models.tabular_gan import Discriminator, Generator, SpanLayout, init_weights

#: The span every visit's encoding ends with: (continue, stop).
STOP_SPAN = Span(2, "softmax")


@dataclass(frozen=True)
class SequenceConfig:
    """Network sizes and optimiser settings of the sequence GAN."""

    noise_dim: int = 32
    static_dims: tuple[int, ...] = (128, 128)
    hidden_dim: int = 64
    critic_dims: tuple[int, ...] = (256, 256)
    #: None: set from the steps (see ``scaled``).
    learning_rate: float | None = None
    batch_size: int = 128
    #: None: ``EPOCHS`` passes over the patients, at most ``MAX_STEPS`` (see ``scaled``).
    steps: int | None = None
    gradient_penalty: float = 10.0
    gumbel_tau: float = 0.2
    #: Scale of the fresh noise each visit gets (the patient's own noise sets the GRU's start).
    visit_noise_scale: float = 1.0
    #: Whether the critic also sees each visit's change from the previous one.
    difference_channel: bool = False
    #: Whether every visit's GRU step also sees the patient's own noise (a latent shared by its visits).
    patient_noise_per_visit: bool = False
    #: Whether a visit's pre-activation outputs are the previous visit's plus a change (a level and
    #: deltas), so that a value or category persists unless the generator moves it.
    residual_visits: bool = True
    #: With ``residual_visits``: a categorical (or mixture-mode) span carries the category drawn at the
    #: previous visit (its one-hot times a learned gain), not the previous logits, so the draw persists.
    sticky_categories: bool = True
    #: Weight of the generator's moment loss (``sequence_moments``: per encoded visit channel, the mean,
    #: spread and mean squared change between consecutive visits, and the spread of each patient's
    #: first, last and mean, against the training patients'); 0: none (one run made lag-1 worse).
    moment_loss: float = 0.0
    #: Weight of the generator's length loss: the L1 distance between the batch's expected survival
    #: curve (share of patients still alive at each visit) and the training patients'; 0: none.
    length_loss: float = 0.0
    #: With ``gains_from_data``: mixture modes' gains from data too, each value's most likely mode
    #: (not the encoder's posterior draw) counted as its level.
    mode_gains_from_data: bool = False
    #: Whether the generator step reuses the batch the critic step just saw (one generator pass a step).
    shared_fake: bool = False
    #: Initial gain of ``sticky_categories`` (the logit the previous visit's category starts with).
    stickiness: float = 2.0
    #: Whether a categorical column's (and a missing indicator's) gains start from the training
    #: visits instead (``markov_gains``); mixture modes keep ``stickiness``: the encoder draws a value's
    #: mode from its posterior, so their recurrence in the encoding understates the real one.
    gains_from_data: bool = True
    #: Whether a missing cell's value encoding (ignored when decoding) copies the patient's previous
    #: present visit's (the next one's before the first) instead of a random present row's, so a
    #: column missing at many visits (pbcseq's chol, 42%) does not jump at each gap in what the critic sees.
    fill_gaps_forward: bool = True
    #: Whether the static generator takes a condition vector over the static categorical and boolean
    #: columns (trained by sampling, as tabular), so a static condition is met by the model itself
    #: instead of by generating whole patients and keeping those that match.
    conditional_statics: bool = True

    def scaled(self, patients: int) -> "SequenceConfig":
        """This configuration with the steps and learning rate it leaves open (None) set for
        ``patients`` training patients: ``EPOCHS`` passes, at most ``MAX_STEPS``, and a learning rate
        raised as the steps fall (``BASE_LEARNING_RATE`` × ``MAX_STEPS`` / steps, so at most twice the
        base rate); with the steps given, the base rate. A fixed 1,500 steps
        took cgd's 102 patients through 1,500 passes; 750 at twice the rate scored as well, in half
        the time, while 500 at the base rate did not (benchmarks/README.md, "Longitudinal")."""
        if self.steps is not None:  # a step count given: the base rate unless a rate is given too
            return replace(self, learning_rate=BASE_LEARNING_RATE if self.learning_rate is None else self.learning_rate)
        steps = min(MAX_STEPS, math.ceil(EPOCHS * patients / min(self.batch_size, patients)))
        rate = self.learning_rate if self.learning_rate is not None else BASE_LEARNING_RATE * MAX_STEPS / steps
        return replace(self, steps=steps, learning_rate=rate)


#: The automatic schedule of ``SequenceConfig.scaled``.
EPOCHS = 750
MAX_STEPS = 1_500
BASE_LEARNING_RATE = 5e-4


class SequenceGenerator(nn.Module):
    """noise (⊕ condition) → (static encoding, visits (batch, max_length, visit width), alive mask (batch, max_length)).

    The condition vector is over ``static_layout``'s conditional spans (none: unconditioned).
    """

    categorical: torch.Tensor  # (visit width without the stop span,) True on softmax positions

    def __init__(self, static_layout: SpanLayout, visit_layout: SpanLayout, max_length: int, config: SequenceConfig) -> None:
        super().__init__()
        self.static_layout = static_layout
        self.visit_layout = visit_layout
        self.static_dim = self.static_layout.data_dim
        self.cond_dim = self.static_layout.cond_dim
        self.visit_dim = self.visit_layout.data_dim
        self.max_length = max_length
        self.noise_dim = config.noise_dim
        self.tau = config.gumbel_tau
        self.visit_noise_scale = config.visit_noise_scale
        self.patient_noise_per_visit = config.patient_noise_per_visit
        self.residual_visits = config.residual_visits
        categorical = torch.ones(self.visit_dim, dtype=torch.bool)
        categorical[cast(torch.Tensor, visit_layout.tanh_index)] = False
        self.register_buffer("categorical", categorical[: self.visit_dim - STOP_SPAN.width], persistent=False)
        self.stickiness = (nn.Parameter(torch.full((self.visit_dim - STOP_SPAN.width,), float(config.stickiness)))
                           if config.sticky_categories else None)
        self.static_net = Generator(config.noise_dim, self.cond_dim, config.static_dims, self.static_dim) if self.static_dim else None
        self.initial = nn.Linear(self.static_dim + config.noise_dim, config.hidden_dim)
        step_input = self.static_dim + config.noise_dim * (2 if config.patient_noise_per_visit else 1) + self.visit_dim
        self.cell = nn.GRUCell(step_input, config.hidden_dim)
        self.head = nn.Linear(config.hidden_dim, self.visit_dim)

    def noise(self, batch: int, rng: torch.Generator, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(static noise, per-visit noise) for ``batch`` patients."""
        static = torch.randn(batch, self.noise_dim, generator=rng, device=device)
        visits = torch.randn(batch, self.max_length, self.noise_dim, generator=rng, device=device) * self.visit_noise_scale
        return static, visits

    def forward(self, static_noise: torch.Tensor, visit_noise: torch.Tensor, rng: torch.Generator | None,
                hard: bool = False, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        static = self.static_part(static_noise, rng, hard, cond)[1]
        return (static, *self.visit_part(static, static_noise, visit_noise, rng, hard))

    def static_part(self, static_noise: torch.Tensor, rng: torch.Generator | None, hard: bool = False,
                    cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(raw static outputs, activated static encoding); ``cond`` is required when ``cond_dim`` > 0."""
        if cond is None:
            if self.cond_dim:
                raise ValueError("this generator is conditioned on its static discrete columns: pass cond")
            cond = static_noise[:, :0]
        if self.static_net is None:
            return static_noise[:, :0], static_noise[:, :0]
        raw = self.static_net(static_noise, cond)
        return raw, self.static_layout.activate(raw, self.tau, rng, hard)

    def visit_part(self, static: torch.Tensor, static_noise: torch.Tensor, visit_noise: torch.Tensor,
                   rng: torch.Generator | None, hard: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(visits, alive mask) of patients with this static encoding (set apart from the static
        part, so sampling can fix a conditioned span before the visits see it)."""
        batch = static_noise.shape[0]
        hidden = torch.tanh(self.initial(torch.cat([static, static_noise], dim=1)))
        previous = static.new_zeros(batch, self.visit_dim)
        logits = None
        produced = []
        patient = [static_noise] if self.patient_noise_per_visit else []
        # Each visit sees the one drawn before it, so a drawn mode or category can persist along
        # the sequence (independent draws per visit broke the lag-1 autocorrelation).
        for step in range(self.max_length):
            hidden = self.cell(torch.cat([static, *patient, visit_noise[:, step], previous], dim=1), hidden)
            change = self.head(hidden)
            if self.residual_visits and logits is not None:
                # The stop span is decided afresh at every visit; the values move from the last visit's.
                carried = logits[:, :-STOP_SPAN.width]
                if self.stickiness is not None:
                    carried = torch.where(self.categorical, self.stickiness * previous[:, :-STOP_SPAN.width], carried)
                change = torch.cat([carried + change[:, :-STOP_SPAN.width], change[:, -STOP_SPAN.width:]], dim=1)
            logits = change
            previous = self.visit_layout.activate(logits, self.tau, rng, hard)
            produced.append(previous)
        visits = torch.stack(produced, dim=1)
        stop = visits[:, :, -1]
        # Alive at t while no earlier visit stopped: 1, (1 - s0), (1 - s0)(1 - s1), ...
        alive = torch.cat([torch.ones_like(stop[:, :1]), torch.cumprod(1 - stop[:, :-1], dim=1)], dim=1)
        return visits, alive


def init_sequence_weights(module: nn.Module, generator: torch.Generator) -> None:
    """Every weight drawn from ``generator``: Linear layers as the tabular models do, GRU cells with
    PyTorch's default U(-1/sqrt(hidden), 1/sqrt(hidden)) (their constructor draws from global state)."""
    init_weights(module, generator)
    for layer in module.modules():
        if isinstance(layer, nn.GRUCell):
            bound = 1 / math.sqrt(layer.hidden_size)
            with torch.no_grad():
                for parameter in layer.parameters():
                    parameter.copy_(torch.rand(parameter.shape, generator=generator) * 2 * bound - bound)


def layouts(static_spans: list[Span], visit_spans: list[Span],
            conditional_offsets: Sequence[int] = ()) -> tuple[SpanLayout, SpanLayout]:
    """The static and visit span layouts (built apart from the generator: their index tensors cannot
    be made on the ``meta`` device, where a model file's network is first checked).
    ``conditional_offsets``: where the static spans the generator is conditioned on start (none: unconditioned)."""
    if not visit_spans or visit_spans[-1] != STOP_SPAN:
        raise ValueError("the visit spans must end with the (continue, stop) span")
    return SpanLayout(static_spans, list(conditional_offsets)), SpanLayout(visit_spans, [])


def critic_input(static: torch.Tensor, visits: torch.Tensor, alive: torch.Tensor, differences: bool = False) -> torch.Tensor:
    """A whole patient as one row: static ⊕ masked visits (flattened) ⊕ mask, and with ``differences``
    each visit minus the one before it (masked by the later visit's alive)."""
    masked = visits * alive[:, :, None]
    parts = [static, masked.flatten(1), alive]
    if differences:
        parts.append(((visits[:, 1:] - visits[:, :-1]) * alive[:, 1:, None]).flatten(1))
    return torch.cat(parts, dim=1)


def sequence_moments(visits: torch.Tensor, alive: torch.Tensor) -> list[torch.Tensor]:
    """Per encoded visit channel, over the alive visits of a batch of patients: [mean, standard
    deviation, root mean squared change from the previous visit, and the across-patient standard
    deviations of each patient's first, last and mean]. With the mean and spread, the change fixes the
    lag-1 autocorrelation of the encoding (corr = 1 - E[change²] / 2 var for a steady level)."""
    weight = alive[:, :, None]
    count = weight.sum((0, 1)).clamp_min(1.0)
    mean = (visits * weight).sum((0, 1)) / count
    spread = ((((visits - mean) ** 2) * weight).sum((0, 1)) / count + 1e-8).sqrt()
    pairs = alive[:, 1:, None]
    change = ((((visits[:, 1:] - visits[:, :-1]) ** 2) * pairs).sum((0, 1)) / pairs.sum((0, 1)).clamp_min(1.0) + 1e-8).sqrt()
    # The last visit is where alive drops: weights alive[t] - alive[t + 1].
    last_weight = alive - torch.cat([alive[:, 1:], torch.zeros_like(alive[:, :1])], dim=1)
    last = (visits * last_weight[:, :, None]).sum(1)
    patient_mean = (visits * weight).sum(1) / weight.sum(1).clamp_min(1e-6)
    spreads = [(frame.var(0, unbiased=False) + 1e-8).sqrt() for frame in (visits[:, 0], last, patient_mean)]
    return [mean, spread, change, *spreads]


def markov_gains(visits: torch.Tensor, alive: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
    """Per visit output (the stop span left out), the sticky gain under which a category drawn at one
    visit recurs at the next as often as in the training patients: logit P(c at t | c at t-1) −
    logit P(c), clipped to [0, 6], on the ``categorical`` positions; 0 elsewhere. With logits at the
    category's marginal, that gain gives the observed recurrence (one gain for all made pbcseq's rare
    ascites stick far more than in real patients, or its stage far less)."""
    values = visits[:, :, : -STOP_SPAN.width][:, :, categorical]
    pairs = alive[:, 1:, None]
    had = (values[:, :-1] * pairs).sum((0, 1))
    stayed = (values[:, :-1] * values[:, 1:] * pairs).sum((0, 1))
    share = (values * alive[:, :, None]).sum((0, 1)) / alive.sum().clamp_min(1.0)
    recur = (stayed + 1) / (had + 2)  # one pseudo-pair each way: a category seen once is not certain to recur
    gain = torch.logit(recur) - torch.logit(share.clamp(1e-3, 1 - 1e-3))
    out = visits.new_zeros(visits.shape[2] - STOP_SPAN.width)
    out[categorical] = gain.clamp(0.0, 6.0)
    return out


def build_critic(static_dim: int, visit_dim: int, max_length: int, config: SequenceConfig, *,
                 cond_dim: int = 0) -> Discriminator:
    """The tabular critic over whole-patient rows (no packing, no dropout), each followed by its
    ``cond_dim``-wide condition vector (as tabular's critic sees row ⊕ condition)."""
    width = static_dim + max_length * (visit_dim + 1) + cond_dim
    if config.difference_channel:
        width += (max_length - 1) * visit_dim
    return Discriminator(width, config.critic_dims, 1, 0.0)


def encode_real(static: torch.Tensor, visits: torch.Tensor, lengths: torch.Tensor,
                max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(padded visits with the stop span appended, alive mask) from flat encoded visits and lengths."""
    patients, width = lengths.shape[0], visits.shape[1]
    padded = torch.zeros(patients, max_length, width + STOP_SPAN.width, dtype=visits.dtype)
    alive = (torch.arange(max_length)[None, :] < lengths[:, None]).to(visits.dtype)
    padded[alive.bool(), :width] = visits
    last = torch.arange(max_length)[None, :] == (lengths[:, None] - 1)
    padded[:, :, width] = alive * ~last        # continue
    padded[:, :, width + 1] = last.to(visits.dtype)  # stop
    return padded, alive
