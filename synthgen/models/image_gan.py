"""Conditional image GAN for small medical sets: networks, losses, DiffAugment and the EMA generator.

Generator: residual up-blocks with class-conditional BatchNorm, tanh output in [-1, 1].
Discriminator: spectrally normalised residual down-blocks, global sum pooling, a linear head plus
a projection head (embedding(label) · features). Hinge loss. Tensor code only: no files, no pandas.
Unconditional data is the one-class case (``n_classes=1``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from synthgen.errors import InvalidArgumentError

#: Transforms DiffAugment may apply. No colour jitter (CT intensity is physical) and no flips
#: (they change laterality).
AUGMENTATIONS = ("translation", "cutout")
MIN_SIZE, MAX_SIZE = 16, 128


@dataclass(frozen=True)
class ImageGANConfig:
    """Network sizes and optimiser settings; JSON-serialisable through ``dataclasses.asdict``.

    ``base_width`` is the channel count at full resolution; each halving of the resolution
    doubles it, up to 8×. Optimiser settings follow SNGAN/BigGAN (Adam, betas (0, 0.9)).
    The default width, 32, is sized for small medical sets on modest hardware: at 32 px a step
    takes 0.5 s on 2 CPU cores against 6.5 s at width 64 (measured, batch 64); on a GPU, raise it.
    """

    image_size: int = 64
    channels: int = 1
    n_classes: int = 1
    latent_dim: int = 128
    base_width: int = 32
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.0, 0.9)
    batch_size: int = 64
    steps: int | None = None  # None: chosen from the set size, see training.images.default_image_steps
    ema_decay: float = 0.999
    #: bfloat16 autocast; None means on CUDA only.
    mixed_precision: bool | None = None
    diffaugment: str = "translation,cutout"
    d_steps_per_g: int = 1

    def __post_init__(self) -> None:
        check_image_size(self.image_size)
        if self.channels not in (1, 3):
            raise InvalidArgumentError(f"channels must be 1 or 3, got {self.channels}")
        if self.n_classes < 1:
            raise InvalidArgumentError(f"n_classes must be >= 1, got {self.n_classes}")
        unknown = set(augmentation_policy(self.diffaugment)) - set(AUGMENTATIONS)
        if unknown:
            raise InvalidArgumentError(f"unknown DiffAugment transform(s) {sorted(unknown)}; choose from {', '.join(AUGMENTATIONS)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise InvalidArgumentError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.d_steps_per_g < 1 or self.batch_size < 2 or self.base_width < 1 or self.latent_dim < 1:
            raise InvalidArgumentError("d_steps_per_g, base_width and latent_dim must be >= 1 and batch_size >= 2")


def check_image_size(size: int) -> None:
    if not (isinstance(size, int) and MIN_SIZE <= size <= MAX_SIZE and size % 8 == 0):
        raise InvalidArgumentError(f"image size must be a multiple of 8 from {MIN_SIZE} to {MAX_SIZE} pixels, got {size!r}")


def augmentation_policy(policy: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in policy.split(",") if name.strip())


def _depth(size: int) -> tuple[int, int]:
    """(number of 2× resampling blocks, side of the smallest feature map), the smallest side >= 4.

    Sizes that are not powers of two start from a larger map (24 px: 6×6 → 12 → 24).
    """
    blocks = 0
    while size % 2 ** (blocks + 1) == 0 and size // 2 ** (blocks + 1) >= 4:
        blocks += 1
    return blocks, size // 2**blocks


def _width(base: int, level: int) -> int:
    """Channels at ``level`` halvings below full resolution."""
    return base * min(2**level, 8)


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm without its own affine; each class has a learned gain and bias instead.

    Both embeddings start at zero, so an untrained block is plain BatchNorm for every class.
    """

    def __init__(self, channels: int, n_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Embedding(n_classes, channels)
        self.bias = nn.Embedding(n_classes, channels)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        gain = 1 + self.gain(labels)[:, :, None, None]
        return self.norm(x) * gain + self.bias(labels)[:, :, None, None]


class _UpBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, n_classes: int) -> None:
        super().__init__()
        self.norm1 = ConditionalBatchNorm2d(in_channels, n_classes)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = ConditionalBatchNorm2d(out_channels, n_classes)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(self.norm1(x, labels)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.norm2(self.conv1(h), labels)))
        return h + self.skip(F.interpolate(x, scale_factor=2, mode="nearest"))


class ImageGenerator(nn.Module):
    """(noise, class index) → image in [-1, 1] of shape (channels, image_size, image_size)."""

    def __init__(self, config: ImageGANConfig) -> None:
        super().__init__()
        blocks, self.start = _depth(config.image_size)
        widths = [_width(config.base_width, level) for level in range(blocks, -1, -1)]
        self.linear = nn.Linear(config.latent_dim, widths[0] * self.start**2)
        self.blocks = nn.ModuleList(_UpBlock(a, b, config.n_classes) for a, b in zip(widths[:-1], widths[1:]))
        self.out_norm = nn.BatchNorm2d(widths[-1])
        self.out_conv = nn.Conv2d(widths[-1], config.channels, 3, padding=1)

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.linear(noise).reshape(noise.shape[0], -1, self.start, self.start)
        for block in self.blocks:
            h = block(h, labels)
        return torch.tanh(self.out_conv(F.relu(self.out_norm(h))))


class _DownBlock(nn.Module):
    """Residual block; the first one takes raw pixels, so it skips the leading ReLU."""

    def __init__(self, in_channels: int, out_channels: int, *, down: bool, first: bool) -> None:
        super().__init__()
        self.down, self.first = down, first
        self.conv1 = spectral_norm(nn.Conv2d(in_channels, out_channels, 3, padding=1))
        self.conv2 = spectral_norm(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip = spectral_norm(nn.Conv2d(in_channels, out_channels, 1)) if down or in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.relu(self.conv1(x if self.first else F.relu(x))))
        skip = x
        if self.down:
            h, skip = F.avg_pool2d(h, 2), F.avg_pool2d(skip, 2)
        # A 1×1 convolution commutes with average pooling, so pooling first is the cheaper order.
        return h + (self.skip(skip) if self.skip is not None else skip)


class ImageDiscriminator(nn.Module):
    """(image, class index) → one score per image: linear head plus projection head."""

    def __init__(self, config: ImageGANConfig) -> None:
        super().__init__()
        blocks, _ = _depth(config.image_size)
        # Mirrors the generator: the block at level j has its width, then one more block at the smallest map.
        widths = [config.channels, *(_width(config.base_width, level) for level in range(blocks + 1))]
        layers = [_DownBlock(a, b, down=i < blocks, first=i == 0) for i, (a, b) in enumerate(zip(widths[:-1], widths[1:]))]
        self.blocks = nn.Sequential(*layers)
        self.head = spectral_norm(nn.Linear(widths[-1], 1))
        self.projection = spectral_norm(nn.Embedding(config.n_classes, widths[-1]))
        self._normalised = [m for m in self.modules() if parametrize.is_parametrized(m, "weight")]

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # Normalised weights are computed once per forward, in float32: under CUDA bfloat16 autocast
        # the power iteration would otherwise mix dtypes (and lose precision on sigma).
        with parametrize.cached():
            with torch.autocast(images.device.type, enabled=False):
                for module in self._normalised:
                    module.weight  # noqa: B018  (fills the cache)
            features = F.relu(self.blocks(images)).sum(dim=(2, 3))
            projection = (self.projection(labels) * features).sum(dim=1, keepdim=True)
            return (self.head(features) + projection).squeeze(1)


def init_weights(module: nn.Module, generator: torch.Generator) -> None:
    """Xavier-uniform weights and zero biases drawn from ``generator``; spectral-norm vectors too.

    Class-conditional gains and biases start at zero (plain BatchNorm). Everything random at
    construction is redrawn here, so a seed fixes the networks without touching global RNG state.
    """
    conditional = {id(e) for m in module.modules() if isinstance(m, ConditionalBatchNorm2d) for e in (m.gain, m.bias)}
    with torch.no_grad():
        for layer in module.modules():
            if id(layer) in conditional:
                layer.weight.zero_()
            elif isinstance(layer, (nn.Conv2d, nn.Linear, nn.Embedding)):
                parametrised = parametrize.is_parametrized(layer, "weight")
                weight = layer.parametrizations.weight.original if parametrised else layer.weight
                receptive = weight[0, 0].numel() if weight.dim() > 2 else 1
                fan_in, fan_out = weight.shape[1] * receptive, weight.shape[0] * receptive
                bound = math.sqrt(6.0 / (fan_in + fan_out))
                weight.copy_((torch.rand(weight.shape, generator=generator) * 2 - 1) * bound)
                if getattr(layer, "bias", None) is not None:
                    layer.bias.zero_()
                if parametrised:
                    _init_power_iteration(layer.parametrizations.weight[0], weight, generator)


def _init_power_iteration(norm: nn.Module, weight: torch.Tensor, generator: torch.Generator, iterations: int = 15) -> None:
    """Fresh singular-vector estimates for ``weight``, as spectral_norm's own constructor makes them."""
    matrix = weight.flatten(1)
    u = F.normalize(torch.randn(matrix.shape[0], generator=generator), dim=0)
    v = F.normalize(torch.randn(matrix.shape[1], generator=generator), dim=0)
    for _ in range(iterations):
        u = F.normalize(matrix @ v, dim=0)
        v = F.normalize(matrix.T @ u, dim=0)
    norm._u.copy_(u)
    norm._v.copy_(v)


def discriminator_hinge_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()


def generator_hinge_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    return -fake_scores.mean()


def diff_augment(images: torch.Tensor, policy: tuple[str, ...], generator: torch.Generator) -> torch.Tensor:
    """Differentiable augmentation (Zhao et al. 2020), drawn independently for every image.

    translation: shift by up to 1/8 of the side, zeros shifted in; cutout: a zeroed square of half
    the side, centred anywhere in the image. Applied to real and fake alike before the discriminator.
    """
    for name in policy:
        images = _translate(images, generator) if name == "translation" else _cutout(images, generator)
    return images


def _translate(images: torch.Tensor, generator: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    batch, _, height, width = images.shape
    device = images.device
    reach_y, reach_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    shift_y = torch.randint(-reach_y, reach_y + 1, (batch, 1), generator=generator, device=device)
    shift_x = torch.randint(-reach_x, reach_x + 1, (batch, 1), generator=generator, device=device)
    rows = torch.arange(height, device=device)[None, :] - shift_y  # source row of each output row
    cols = torch.arange(width, device=device)[None, :] - shift_x
    inside = ((rows >= 0) & (rows < height))[:, :, None] & ((cols >= 0) & (cols < width))[:, None, :]
    index = torch.arange(batch, device=device)[:, None, None]
    # Advanced indices around a slice put the indexed dims first: (batch, height, width, channels).
    moved = images[index, :, rows.clamp(0, height - 1)[:, :, None], cols.clamp(0, width - 1)[:, None, :]]
    return moved.permute(0, 3, 1, 2) * inside[:, None].to(images.dtype)


def _cutout(images: torch.Tensor, generator: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    batch, _, height, width = images.shape
    device = images.device
    size_y, size_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    top = torch.randint(0, height, (batch, 1), generator=generator, device=device) - size_y // 2
    left = torch.randint(0, width, (batch, 1), generator=generator, device=device) - size_x // 2
    rows = torch.arange(height, device=device)[None, :] - top
    cols = torch.arange(width, device=device)[None, :] - left
    hole = ((rows >= 0) & (rows < size_y))[:, :, None] & ((cols >= 0) & (cols < size_x))[:, None, :]
    return images * (~hole)[:, None].to(images.dtype)


def ema_decay_at(update: int, decay: float) -> float:
    """Decay for the ``update``-th EMA step: ramps up from 0.1 so short runs are not stuck at init."""
    return min(decay, (1 + update) / (10 + update))


@torch.no_grad()
def update_ema(ema: nn.Module, source: nn.Module, decay: float) -> None:
    """Move ``ema``'s parameters toward ``source``'s; copy its buffers (BatchNorm statistics)."""
    torch._foreach_lerp_(list(ema.parameters()), list(source.parameters()), 1.0 - decay)
    for target, value in zip(ema.buffers(), source.buffers()):
        target.copy_(value)
