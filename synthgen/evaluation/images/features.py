"""The small CNN whose pooled activations are the image features, trained on the real images here.

No Inception weights can be downloaded, so the features come from a small CNN (three blocks of a
3x3 convolution with 16, 32 and 64 channels, ReLU and 2x2 max-pooling; each block's output
averaged over the image: 112 features) trained on the real training images, resized to 16-32 px: as a
classifier of their labels or, for unlabelled images, on the self-supervised rotation task
(Gidaris et al. 2018: by which of 0/90/180/270 degrees was an image turned).
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn
from torch.nn import functional as F

from synthgen.errors import InvalidArgumentError
from synthgen.evaluation.images.inputs import checked_pixels, classes_of, codes, resize
from synthgen.images.types import ImageSet
from synthgen.training.loop import select_device

logger = logging.getLogger(__name__)

_WIDTHS = (16, 32, 64)
_MIN_SIDE, _MAX_SIDE = 16, 32  # the CNN sees images resized into this range: room for three 2x poolings, and fast
_BATCH = 64
_EPOCHS = 5
_MIN_STEPS = 100  # small sets still get enough updates; 1,000 images at 32 px train in about 2 s on one core
_LEARNING_RATE = 2e-3
CHUNK = 512


class _SmallCNN(nn.Module):
    """Three conv blocks; the features are every block's output averaged over the image; then a linear head.

    Pooling all three blocks, not just the last, keeps low-level texture in the features: with the
    last block alone, a classifier of toy shapes put uniform noise inside the real images' k-NN
    manifold (precision 0.6-0.9) for 2 of 8 seeds, and with all three for none. There is no
    normalisation layer, as GroupNorm, which evens out contrast, did the same for 1 of 3 seeds.
    """

    def __init__(self, channels: int, n_outputs: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList()
        for width in _WIDTHS:
            self.blocks.append(nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)))
            channels = width
        self.head = nn.Linear(sum(_WIDTHS), n_outputs)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        pooled = []
        for block in self.blocks:
            x = block(x)
            pooled.append(x.mean(dim=(2, 3)))
        return torch.cat(pooled, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@dataclass
class FeatureExtractor:
    """The small CNN trained on real images, whose pooled activations are the image features.

    ``classes`` are the labels it predicts; empty when it was trained on the rotation task
    because the images had fewer than two labels. Features are standardised with the mean and
    standard deviation they have on the training images, so that each weighs alike in distances
    and KID's cubic kernel sees values of unit scale, as it was designed for.
    """

    network: _SmallCNN
    classes: list[str]
    side: int
    steps: int
    n_images: int
    device: torch.device
    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(
        cls,
        images: ImageSet,
        *,
        classes: list[str] | None = None,
        steps: int | None = None,
        seed: int = 0,
        device: str | None = None,
    ) -> FeatureExtractor:
        """Train on ``images``: a classifier of ``classes`` or, when that is empty, the rotation task.

        ``classes`` defaults to the labels of ``images`` when there are at least two, else [].
        ``steps`` defaults to 5 epochs, at least 100 steps, of batches of 64.
        """
        pixels = checked_pixels("training", images)
        labels = images.labels
        classes = classes_of("training", labels) if classes is None else list(classes)
        if len(classes) == 1:
            raise InvalidArgumentError(f"a classifier needs at least two classes, got only {classes[0]!r}")
        n = len(pixels)
        steps = steps if steps is not None else max(_MIN_STEPS, math.ceil(_EPOCHS * n / _BATCH))
        if steps < 1:
            raise InvalidArgumentError(f"feature_steps must be at least 1, not {steps}")
        target_device = select_device(device)
        side = int(np.clip(pixels.shape[-1], _MIN_SIDE, _MAX_SIDE))
        generator = torch.Generator().manual_seed(seed)
        network = _SmallCNN(pixels.shape[1], len(classes) if classes else 4)
        _initialise(network, generator)
        network.to(target_device)
        x = resize(torch.from_numpy(pixels), side).to(target_device)
        y = torch.from_numpy(codes(labels, classes)).to(target_device) if classes else None
        optimiser = torch.optim.Adam(network.parameters(), lr=_LEARNING_RATE)
        batch = min(_BATCH, n)
        order = torch.empty(0, dtype=torch.long)
        started = time.perf_counter()
        network.train()
        with one_cpu_thread():
            for _ in range(steps):
                if len(order) < batch:
                    order = torch.randperm(n, generator=generator)
                rows, order = order[:batch].to(target_device), order[batch:]
                if y is None:
                    turns = torch.randint(4, (batch,), generator=generator).to(target_device)
                    inputs, targets = rotate(x[rows], turns), turns
                else:
                    inputs, targets = x[rows], y[rows]
                loss = F.cross_entropy(network(inputs), targets)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
        network.eval()
        logger.info("feature CNN: %d steps on %d images in %.1f s", steps, n, time.perf_counter() - started)
        raw = apply(network.features, pixels, side, target_device)
        std = raw.std(axis=0)
        return cls(network, classes, side, steps, n, target_device, raw.mean(axis=0), np.where(std > 0, std, 1.0))  # a unit never active stays 0

    def features(self, images: np.ndarray) -> np.ndarray:
        """The 112 standardised pooled activations of each image (N, C, H, W in [-1, 1]), float64."""
        return (apply(self.network.features, images, self.side, self.device) - self.mean) / self.scale

    def predict(self, images: np.ndarray) -> np.ndarray:
        """The predicted class of each image (object array of labels); needs a classifier."""
        if not self.classes:
            raise InvalidArgumentError("this feature CNN was trained on the rotation task and predicts no classes")
        return np.asarray(self.classes, dtype=object)[self._logits(images).argmax(axis=1)]

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities of each image, columns in ``classes`` order; needs a classifier."""
        if not self.classes:
            raise InvalidArgumentError("this feature CNN was trained on the rotation task and predicts no classes")
        logits = self._logits(images)
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    def accuracy(self, images: np.ndarray, labels: np.ndarray | None = None) -> float:
        """Share of ``labels`` predicted right, or, without them, of the four rotations of each image told right."""
        if labels is not None:
            return float(np.mean(self.predict(images) == np.asarray(labels, dtype=object)))
        turns = np.repeat(np.arange(4), len(images))
        rotated = rotate(torch.from_numpy(np.tile(images, (4, 1, 1, 1))), torch.from_numpy(turns)).numpy()
        return float(np.mean(self._logits(rotated).argmax(axis=1) == turns))

    def describe(self, holdout_accuracy: float | None) -> str:
        """What the extractor is, for the report (e.g. "... 5 epochs, accuracy on holdout 0.93")."""
        task = f"as a classifier of {len(self.classes)} classes" if self.classes else "on the self-supervised rotation task (images unlabelled or of one class)"
        accuracy = "no holdout to measure accuracy" if holdout_accuracy is None else f"accuracy on holdout {holdout_accuracy:.3f}"
        epochs = self.steps * min(_BATCH, self.n_images) / self.n_images
        return (
            f"synthgen small CNN ({'-'.join(map(str, _WIDTHS))} channels, {sum(_WIDTHS)} features, {self.side} px) trained on the "
            f"{self.n_images} real training images {task}, {self.steps} steps ({epochs:.1f} epochs); {accuracy}"
        )

    def _logits(self, images: np.ndarray) -> np.ndarray:
        return apply(self.network, images, self.side, self.device)


def apply(function: Callable[[torch.Tensor], torch.Tensor], images: np.ndarray, side: int, device: torch.device) -> np.ndarray:
    """``function`` of the images resized to ``side``, in chunks, as float64."""
    outputs = []
    with torch.inference_mode(), one_cpu_thread():
        for start in range(0, len(images), CHUNK):
            chunk = torch.from_numpy(np.ascontiguousarray(images[start : start + CHUNK], dtype=np.float32))
            outputs.append(function(resize(chunk, side).to(device)).cpu().double().numpy())
    return np.concatenate(outputs)


def one_cpu_thread() -> threadpool_limits:
    """One OpenMP thread for the small CNN: its batches gain little from more, and on a busy 2-core
    machine the spinning threads made 120 training steps take 18-29 s instead of 0.8-2.4 s."""
    return threadpool_limits(limits=1, user_api="openmp")


def rotate(images: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Each image turned by its own number of quarter turns."""
    turned = torch.stack([torch.rot90(images, k, dims=(2, 3)) for k in range(4)])
    return turned[turns, torch.arange(len(images), device=images.device)]


def _initialise(network: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default conv/linear initialisation (uniform, bound 1/sqrt(fan-in)), drawn from ``generator``."""
    with torch.no_grad():
        for layer in network.modules():
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                bound = 1 / math.sqrt(layer.weight[0].numel())
                nn.init.uniform_(layer.weight, -bound, bound, generator=generator)
                nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
