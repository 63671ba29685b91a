"""Scoring synthetic images against real ones, offline: fidelity, utility and memorisation.

No Inception weights can be downloaded, so the features come from a small CNN (three blocks of a
3x3 convolution with 16, 32 and 64 channels, ReLU and 2x2 max-pooling; each block's output
averaged over the image: 112 features) trained here on the real training images, resized to 16-32 px: as a
classifier of their labels or, for unlabelled images, on the self-supervised rotation task
(Gidaris et al. 2018: by which of 0/90/180/270 degrees was an image turned). Its features,
standardised on the training images, feed the Fréchet distance, KID, precision/recall and density/coverage;
the same classifier scores synthetic images for their requested label, and a fresh copy trained
on the synthetic images gives the train-on-synthetic, test-on-real accuracy. With a local
torchvision Inception v3 weights file the Inception FID is computed too.

Every score is set against the holdout (real images the generator never saw) scored the same way
against the training images: what fresh real images achieve. The default gates
(:data:`IMAGE_GATES`) are privacy gates on memorisation only, since fidelity targets depend on
the data set: a synthetic image may be a near-duplicate of a training image no more often than a
holdout image is, and at most 10 % of synthetic images (lower 95 % bound) may sit closer to a
training image than 95 % of holdout images do, by pixel or by feature distance (ideal: 5 %).
"""
from __future__ import annotations

import base64
import importlib.util
import io
import logging
import math
import pickle
import time
from dataclasses import dataclass, replace
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from PIL import Image
from scipy import linalg
from scipy.stats import binomtest
from threadpoolctl import threadpool_limits
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from synthgen._version import __version__
from synthgen.data.images import ImageSet
from synthgen.errors import InvalidArgumentError, InvalidDataError, ModelFileError
from synthgen.evaluation.gates import Gate
from synthgen.evaluation.report import KNOWN_LIMITS, Report, Wording
from synthgen.evaluation.scores import Score, SectionResult
from synthgen.train import select_device

__all__ = ["IMAGE_GATES", "IMAGE_WORDING", "FeatureExtractor", "evaluate_images", "frechet_distance", "kernel_inception_distance", "prdc"]

logger = logging.getLogger(__name__)

IMAGE_GATES: list[Gate] = [
    Gate.parse(text)
    for text in ("near_duplicate_share<=holdout", "memorisation_share_pixels_lower<=0.1", "memorisation_share_features_lower<=0.1")
]
_METHOD = f"synthgen {__version__}"
_WIDTHS = (16, 32, 64)
_MIN_SIDE, _MAX_SIDE = 16, 32  # the CNN sees images resized into this range: room for three 2x poolings, and fast
_BATCH = 64
_EPOCHS = 5
_MIN_STEPS = 100  # small sets still get enough updates; 1,000 images at 32 px train in about 2 s on one core
_LEARNING_RATE = 2e-3
_K = 5  # neighbours of the k-NN manifolds (Kynkäänniemi et al. and Naeem et al. both use 5)
_MAX_MANIFOLD = 10_000  # training images the k-NN manifold is built from
_FIDELITY_DRAWS = 5
_KID_SUBSETS, _KID_SUBSET_SIZE = 100, 1000
_QUANTILE = 0.05
_NEAR_DUPLICATE_RMS = 0.02  # about 2.5 grey levels of 255 on the [-1, 1] scale
_N_BOOTSTRAP = 500
_CHUNK = 512
_PAIRS, _PAIRS_PER_ROW = 8, 4
_SAMPLES_PER_CLASS, _MAX_SAMPLE_ROWS = 8, 10
_TILE = 64  # grid tiles are scaled up to at least this many pixels
_INCEPTION_SIDE = 299
_INCEPTION_BATCH = 32
_MIN_IMAGES = _K + 1

IMAGE_WORDING = Wording(
    headline=(
        ("fd", "FD"), ("kid", "KID"), ("inception_fid", "Inception FID"), ("precision", "Precision"), ("recall", "Recall"),
        ("sample_accuracy", "Sample accuracy"), ("tstr_accuracy", "TSTR accuracy"),
        ("memorisation_share", "Memorisation share"), ("near_duplicate_share", "Near-duplicate share"),
    ),
    summary=(
        "An evaluation of synthetic images against the real images they were generated from. It contains scores, "
        "per-class summaries, distance histograms and grids of synthetic images."
    ),
    attacker_model=(
        "The memorisation check assumes an attacker who holds the synthetic images and looks for a training "
        "patient's image reproduced, or nearly so, among them. The holdout (real images the generator never saw) "
        "plays the control: a synthetic image only counts as memorised when it sits closer to a training image "
        "than fresh real images do."
    ),
    known_limits=(
        *KNOWN_LIMITS[:3],
        "Features come from a small CNN trained on these real images, not from Inception: FD and KID compare "
        "runs on the same data and settings, not published FIDs.",
        "The memorisation check compares pixels and features; a training image reproduced with a shift, flip or "
        "intensity change escapes the pixel distance and is caught by the features only as far as they ignore it.",
        "One image is assumed to be one patient: slices or images of one patient split between training and "
        "holdout make the holdout reference too lenient.",
    ),
)

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
        pixels = _pixels("training", images)
        labels = images.labels
        classes = _classes("training", labels) if classes is None else list(classes)
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
        x = _resize(torch.from_numpy(pixels), side).to(target_device)
        y = torch.from_numpy(_codes(labels, classes)).to(target_device) if classes else None
        optimiser = torch.optim.Adam(network.parameters(), lr=_LEARNING_RATE)
        batch = min(_BATCH, n)
        order = torch.empty(0, dtype=torch.long)
        started = time.perf_counter()
        network.train()
        with _one_cpu_thread():
            for _ in range(steps):
                if len(order) < batch:
                    order = torch.randperm(n, generator=generator)
                rows, order = order[:batch].to(target_device), order[batch:]
                if y is None:
                    turns = torch.randint(4, (batch,), generator=generator).to(target_device)
                    inputs, targets = _rotate(x[rows], turns), turns
                else:
                    inputs, targets = x[rows], y[rows]
                loss = F.cross_entropy(network(inputs), targets)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
        network.eval()
        logger.info("feature CNN: %d steps on %d images in %.1f s", steps, n, time.perf_counter() - started)
        raw = _apply(network.features, pixels, side, target_device)
        std = raw.std(axis=0)
        return cls(network, classes, side, steps, n, target_device, raw.mean(axis=0), np.where(std > 0, std, 1.0))  # a unit never active stays 0

    def features(self, images: np.ndarray) -> np.ndarray:
        """The 112 standardised pooled activations of each image (N, C, H, W in [-1, 1]), float64."""
        return (_apply(self.network.features, images, self.side, self.device) - self.mean) / self.scale

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
        rotated = _rotate(torch.from_numpy(np.tile(images, (4, 1, 1, 1))), torch.from_numpy(turns)).numpy()
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
        return _apply(self.network, images, self.side, self.device)


def _apply(function: Callable[[torch.Tensor], torch.Tensor], images: np.ndarray, side: int, device: torch.device) -> np.ndarray:
    """``function`` of the images resized to ``side``, in chunks, as float64."""
    outputs = []
    with torch.inference_mode(), _one_cpu_thread():
        for start in range(0, len(images), _CHUNK):
            chunk = torch.from_numpy(np.ascontiguousarray(images[start : start + _CHUNK], dtype=np.float32))
            outputs.append(function(_resize(chunk, side).to(device)).cpu().double().numpy())
    return np.concatenate(outputs)


def evaluate_images(
    real: ImageSet,
    synthetic: ImageSet,
    *,
    holdout: ImageSet | None = None,
    seed: int = 0,
    feature_steps: int | None = None,
    inception_weights: Path | None = None,
    gates: list[Gate] | None = None,
    show_real_images: bool = True,
    device: str | None = None,
    progress: bool = True,
    context: dict[str, Any] | None = None,
) -> Report:
    """Score ``synthetic`` images against the ``real`` training images they were generated from.

    ``holdout`` (real images the generator never saw, ideally as many as the synthetic ones)
    gives every score its reference and is needed for TSTR and the memorisation shares.
    ``feature_steps`` sets the feature CNN's training steps (default: 5 epochs, at least 100).
    ``inception_weights`` is a local torchvision Inception v3 state dict (e.g.
    ``inception_v3_google-0cc3c7bd.pth``); it needs torchvision. ``gates`` default to
    :data:`IMAGE_GATES`. ``show_real_images=False`` leaves the real training images out of the
    closest-pairs grid, so the report holds no real pixels. Synthetic and holdout images of
    another size than the training images are resized to theirs, and those in another intensity
    window of the same unit (e.g. another HU window) are mapped onto the training images' window.
    """
    if inception_weights is not None:
        _check_inception(Path(inception_weights))
    train = _pixels("real", real)
    syn = _pixels("synthetic", synthetic, real)
    hold = _pixels("holdout", holdout, real) if holdout is not None else None
    side, channels = train.shape[-1], train.shape[1]
    classes = _classes("real", np.asarray(real.labels, dtype=object))
    syn_labels = _requested("synthetic", synthetic, classes)
    hold_labels = _requested("holdout", holdout, classes) if holdout is not None else None
    rng = np.random.default_rng(seed)
    stages = 4 + (inception_weights is not None)
    with tqdm(total=stages, desc="evaluating images", unit="stage", disable=not progress, leave=False) as bar:
        extractor = FeatureExtractor.fit(real, classes=classes, steps=feature_steps, seed=seed, device=device)
        holdout_accuracy = None if hold is None or (classes and hold_labels is None) else extractor.accuracy(hold, hold_labels)
        description = extractor.describe(holdout_accuracy)
        features = {"train": extractor.features(train), "synthetic": extractor.features(syn)}
        if hold is not None:
            features["holdout"] = extractor.features(hold)
        bar.update()
        fidelity = _fidelity(features, rng, description)
        fidelity.figures["synthetic_samples"] = _samples_grid(syn, syn_labels, classes)
        bar.update()
        if inception_weights is not None:
            fidelity.scores.append(_inception_fid(Path(inception_weights), train, syn, hold, extractor.device))
            bar.update()
        utility = _utility(extractor, holdout_accuracy, synthetic, syn, syn_labels, hold, hold_labels, seed)
        bar.update()
        privacy = _privacy(train, syn, hold, features, rng, show_real_images)
        bar.update()
    about = {
        "split": {"real (training)": len(train), "holdout": None if hold is None else len(hold), "synthetic": len(syn)},
        "images": f"{side}×{side} px, {channels} channel{'s' if channels > 1 else ''}, values in [-1, 1]",
        "classes": classes or "none (unlabelled, or one class)",
        "privacy unit": "one image = one patient (assumed; the memorisation shares are per image)",
        "feature extractor": description,
        "evaluation seed": seed,
        "versions": {name: version(name) for name in ("synthgen", "torch", "scipy", "pillow")},
        **(context or {}),
    }
    sections = {"fidelity": fidelity, "utility": utility, "privacy": privacy}
    return Report(sections=sections, context=about, gates=list(IMAGE_GATES if gates is None else gates), wording=IMAGE_WORDING)


# --- inputs -------------------------------------------------------------------------------------


def _pixels(name: str, images: ImageSet, like: ImageSet | None = None) -> np.ndarray:
    """The images of ``images``, checked; brought to the size and intensity window of ``like`` when given."""
    if not isinstance(images, ImageSet):
        raise InvalidArgumentError(f"the {name} images must be an ImageSet, not {type(images).__name__}")
    if len(images) < _MIN_IMAGES:
        raise InvalidDataError(f"the {name} set has {len(images)} images; the evaluation needs at least {_MIN_IMAGES}")
    array = images.images
    if not np.isfinite(array).all():
        raise InvalidDataError(f"the {name} images contain NaN or infinite values")
    if like is None:
        return array
    if array.shape[1] != like.images.shape[1]:
        raise InvalidDataError(f"the {name} images have {array.shape[1]} channel(s) and the real training images {like.images.shape[1]}")
    ours, theirs = images.mapping, like.mapping
    if ours.unit != theirs.unit:
        raise InvalidDataError(
            f"the {name} images are in {ours.unit!r} units and the real training images in {theirs.unit!r}; "
            "read both the same way (e.g. both as DICOM) so that their intensities compare"
        )
    if (ours.low, ours.high) != (theirs.low, theirs.high):
        logger.info("mapping the %s images from [%g, %g] to [%g, %g] %s", name, ours.low, ours.high, theirs.low, theirs.high, ours.unit)
        array = theirs.to_unit(images.physical())
    side = like.images.shape[-1]
    if array.shape[-1] != side:
        logger.info("resizing the %s images from %d to %d px", name, array.shape[-1], side)
        array = _resize(torch.from_numpy(array), side).numpy()
    return array


def _classes(name: str, labels: np.ndarray) -> list[str]:
    """The label classes to classify, or [] when there are fewer than two (then the rotation task is used)."""
    blank = labels == ""
    if blank.any() and not blank.all():
        raise InvalidDataError(f"{int(blank.sum())} of the {len(labels)} {name} images have no label; label all of them or none")
    classes = sorted(set(labels.tolist()) - {""})
    return classes if len(classes) > 1 else []


def _requested(name: str, images: ImageSet, classes: list[str]) -> np.ndarray | None:
    """The labels of ``images`` when they can be scored against ``classes``; None when unlabelled."""
    labels = np.asarray(images.labels, dtype=object)
    if not classes or (labels == "").all():
        return None
    unknown = sorted(set(labels.tolist()) - set(classes))
    if unknown:
        raise InvalidDataError(f"the {name} labels {unknown[:5]} are not classes of the real images ({', '.join(classes)})")
    return labels


def _codes(labels: np.ndarray, classes: list[str]) -> np.ndarray:
    """Each label's position in ``classes``."""
    codes = pd.Categorical(labels, categories=classes).codes.astype(np.int64)
    if (codes < 0).any():
        unknown = sorted(set(labels[codes < 0].tolist()))
        raise InvalidDataError(f"the labels {unknown[:5]} are not among the classes to learn ({', '.join(classes)})")
    return codes


def _one_cpu_thread() -> threadpool_limits:
    """One OpenMP thread for the small CNN: its batches gain little from more, and on a busy 2-core
    machine the spinning threads made 120 training steps take 18-29 s instead of 0.8-2.4 s."""
    return threadpool_limits(limits=1, user_api="openmp")


def _resize(images: torch.Tensor, side: int) -> torch.Tensor:
    if images.shape[-1] == side:
        return images
    return F.interpolate(images, size=(side, side), mode="bilinear", align_corners=False, antialias=True)


def _rotate(images: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
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


# --- feature-space measures ---------------------------------------------------------------------


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (rows are samples).

    tr((Σa Σb)^½) is computed as tr((Σa^½ Σb Σa^½)^½), a symmetric positive semi-definite
    root: exact, and free of the complex round-off that ``scipy.linalg.sqrtm(Σa @ Σb)`` gives
    when the covariances are singular (fewer images than features).
    """
    if len(a) < 2 or len(b) < 2:
        raise InvalidArgumentError(f"the Fréchet distance needs at least 2 samples per set, got {len(a)} and {len(b)}")
    sigma_a, sigma_b = np.cov(a, rowvar=False, ddof=1), np.cov(b, rowvar=False, ddof=1)
    values, vectors = linalg.eigh(sigma_a)
    root = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    middle = root @ sigma_b @ root
    trace_root = np.sqrt(np.clip(linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    difference = a.mean(axis=0) - b.mean(axis=0)
    return float(max(difference @ difference + np.trace(sigma_a) + np.trace(sigma_b) - 2 * trace_root, 0.0))


def kernel_inception_distance(
    a: np.ndarray, b: np.ndarray, *, rng: np.random.Generator, subsets: int = _KID_SUBSETS, subset_size: int = _KID_SUBSET_SIZE
) -> tuple[float, float]:
    """Unbiased MMD² with the kernel (x·y / d + 1)³ (Bińkowski et al. 2018): mean and std over random subsets.

    Subsets hold at most half of each set, so that they differ and their spread means something.
    """
    m = min(subset_size, len(a) // 2, len(b) // 2)
    if m < 2:
        raise InvalidArgumentError(f"KID needs at least 4 samples per set, got {len(a)} and {len(b)}")
    d = a.shape[1]
    values = np.empty(subsets)
    for s in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        k_xx, k_yy, k_xy = ((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3)
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        values[s] = within - 2 * k_xy.mean()
    return float(values.mean()), float(values.std())


def prdc(real: np.ndarray, fake: np.ndarray, k: int = _K) -> dict[str, float]:
    """Precision and recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020).

    Each sample's ball reaches its k-th nearest neighbour in its own set. Precision: share of
    fake samples inside some real ball; recall: share of real samples inside some fake ball;
    density: fake samples per real ball they fall in, over k; coverage: share of real balls
    holding a fake sample.
    """
    if len(real) <= k or len(fake) <= k:
        raise InvalidArgumentError(f"precision/recall with k={k} need more than {k} samples per set, got {len(real)} and {len(fake)}")
    real_t = torch.from_numpy(real).double()
    return _prdc(real_t, _kth_distance(real_t, k), torch.from_numpy(fake).double(), k)


def _prdc(real_t: torch.Tensor, real_radius: torch.Tensor, fake_t: torch.Tensor, k: int) -> dict[str, float]:
    """:func:`prdc` with the real balls' radii given, so that several fake sets share them."""
    fake_radius = _kth_distance(fake_t, k)
    in_real_ball = torch.zeros(len(fake_t), dtype=torch.bool)
    in_fake_ball = torch.zeros(len(real_t), dtype=torch.bool)
    covered = torch.zeros(len(real_t), dtype=torch.bool)
    density = 0.0
    for start in range(0, len(fake_t), _CHUNK):
        rows = slice(start, start + _CHUNK)
        distance = torch.cdist(fake_t[rows], real_t)  # (fake chunk, real)
        inside = distance <= real_radius[None, :]
        in_real_ball[rows] = inside.any(dim=1)
        density += float(inside.sum())
        covered |= inside.any(dim=0)
        in_fake_ball |= (distance <= fake_radius[rows, None]).any(dim=0)
    return {
        "precision": float(in_real_ball.double().mean()),
        "recall": float(in_fake_ball.double().mean()),
        "density": density / (k * len(fake_t)),
        "coverage": float(covered.double().mean()),
    }


def _kth_distance(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each row to its k-th nearest other row (the row itself is the 0th)."""
    return torch.cat([
        torch.cdist(x[start : start + _CHUNK], x).topk(k + 1, dim=1, largest=False).values[:, -1]
        for start in range(0, len(x), _CHUNK)
    ])


def _nearest(queries: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance from each query row to its nearest reference row, and that row's position.

    Candidates come from the fast matrix-product distance; the winner's distance is then
    recomputed directly, so an exact copy measures 0 rather than float32 round-off.
    """
    queries_t = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32)).flatten(1)
    reference_t = torch.from_numpy(np.ascontiguousarray(reference, dtype=np.float32)).flatten(1)
    index = torch.cat([
        torch.cdist(queries_t[start : start + _CHUNK], reference_t, compute_mode="use_mm_for_euclid_dist").argmin(dim=1)
        for start in range(0, len(queries_t), _CHUNK)
    ])
    distance = (queries_t.double() - reference_t[index].double()).norm(dim=1)
    return distance.numpy(), index.numpy()


# --- sections -----------------------------------------------------------------------------------


def _draws(rng: np.random.Generator, n_total: int, n: int) -> list[np.ndarray]:
    """Up to _FIDELITY_DRAWS disjoint random subsets of ``n`` of ``n_total`` rows."""
    order = rng.permutation(n_total)
    return [order[i * n : (i + 1) * n] for i in range(min(_FIDELITY_DRAWS, n_total // n))]


def _fidelity(features: dict[str, np.ndarray], rng: np.random.Generator, description: str) -> SectionResult:
    """FD, KID and precision/recall/density/coverage of synthetic and holdout features against the training features."""
    train, syn, hold = features["train"], features["synthetic"], features.get("holdout")
    # FD, recall and coverage depend on the sample size, so synthetic and holdout are scored at the
    # same size; averaging over disjoint draws uses more of the larger set.
    n = len(syn) if hold is None else min(len(syn), len(hold))
    manifold = train if len(train) <= _MAX_MANIFOLD else train[np.sort(rng.choice(len(train), _MAX_MANIFOLD, replace=False))]
    manifold_t = torch.from_numpy(manifold)
    radius = _kth_distance(manifold_t, _K)

    def measures(points: np.ndarray) -> dict[str, float]:
        values = [
            {"fd": frechet_distance(train, points[rows]), **_prdc(manifold_t, radius, torch.from_numpy(points[rows]), _K)}
            for rows in _draws(rng, len(points), n)
        ]
        return {"draws": len(values)} | {key: float(np.mean([v[key] for v in values])) for key in values[0]}

    syn_values = measures(syn)
    hold_values = measures(hold) if hold is not None else {}
    kid, kid_std = kernel_inception_distance(train, syn, rng=rng)
    hold_kid, hold_kid_std = kernel_inception_distance(train, hold, rng=rng) if hold is not None else (None, None)
    features_method = "on the synthgen small-CNN features"
    knn = f"k={_K} nearest-neighbour balls around {len(manifold)} training images"
    kid_note = f"± {kid_std:.3g} (std over {_KID_SUBSETS} subsets)" + ("" if hold_kid is None else f"; holdout ± {hold_kid_std:.3g}")
    scores = [
        Score("fidelity", "FD", syn_values["fd"], reference=hold_values.get("fd"), ideal="0",
              method=f"Fréchet distance (Heusel et al. 2017) {features_method}; {_METHOD}", note="distance of the feature means and covariances to the training images'"),
        Score("fidelity", "KID", kid, reference=hold_kid, ideal="0",
              method=f"KID (Bińkowski et al. 2018): unbiased MMD², cubic polynomial kernel, subsets of ≤{_KID_SUBSET_SIZE} and ≤ half of each set, {features_method}", note=kid_note),
    ]
    for metric, paper, note in (
        ("Precision", "Kynkäänniemi et al. 2019", "share of synthetic images inside the training images' feature manifold"),
        ("Recall", "Kynkäänniemi et al. 2019", "share of training images inside the synthetic images' feature manifold"),
        ("Density", "Naeem et al. 2020", "synthetic images per training neighbourhood, 1 for matching distributions"),
        ("Coverage", "Naeem et al. 2020", "share of training neighbourhoods holding a synthetic image"),
    ):
        key = metric.lower()
        scores.append(Score("fidelity", metric, syn_values[key], reference=hold_values.get(key), ideal="1",
                            method=f"{paper}, {knn}, {features_method}", note=note))
    notes = [f"Feature extractor: {description}."]
    if hold is None:
        notes.append("No holdout was given: the scores have no reference (what fresh real images score).")
    else:
        notes.append(
            f"FD, precision, recall, density and coverage use {n} synthetic and {n} holdout images per draw (equal sizes, since "
            f"they depend on it), averaged over {syn_values['draws']} synthetic and {hold_values['draws']} holdout draw(s)."
        )
    if len(manifold) < len(train):
        notes.append(f"The k-NN manifolds use {len(manifold)} of the {len(train)} training images, drawn at random.")
    return SectionResult(scores, notes=notes)


def _utility(
    extractor: FeatureExtractor,
    holdout_accuracy: float | None,
    synthetic: ImageSet,
    syn: np.ndarray,
    syn_labels: np.ndarray | None,
    hold: np.ndarray | None,
    hold_labels: np.ndarray | None,
    seed: int,
) -> SectionResult:
    """The classifier's accuracy on synthetic images for their requested label, and TSTR against TRTR."""
    result = SectionResult(scores=[])
    if not extractor.classes or syn_labels is None:
        reason = "the real images have fewer than two labels" if not extractor.classes else "the synthetic images carry no requested label"
        result.notes.append(f"Sample accuracy and TSTR need labelled images; not computed because {reason}.")
        return result
    correct = extractor.predict(syn) == syn_labels
    interval = binomtest(int(correct.sum()), len(correct)).proportion_ci(method="wilson")
    result.scores.append(Score(
        "utility", "Sample accuracy", float(correct.mean()), low=float(interval.low), high=float(interval.high),
        reference=holdout_accuracy, ideal="1", method=f"synthgen small-CNN classifier trained on the real training images; Wilson interval; {_METHOD}",
        note="share of synthetic images classified as their requested label; reference: the classifier's accuracy on the holdout",
    ))
    hold_correct = extractor.predict(hold) == hold_labels if hold_labels is not None else None
    rows = []
    for label in extractor.classes:
        mask = syn_labels == label
        row = {"class": label, "synthetic images": int(mask.sum()), "synthetic accuracy": float(correct[mask].mean()) if mask.any() else np.nan}
        if hold_correct is not None:
            hold_mask = hold_labels == label
            row |= {"holdout images": int(hold_mask.sum()), "holdout accuracy": float(hold_correct[hold_mask].mean()) if hold_mask.any() else np.nan}
        rows.append(row)
    result.tables["accuracy_per_class"] = pd.DataFrame(rows).set_index("class")
    if hold_labels is None:
        result.notes.append("TSTR needs a labelled holdout to test on; not computed.")
        return result
    # Same architecture, steps and seed as the real-trained classifier, so only the training images differ.
    tstr_net = FeatureExtractor.fit(
        replace(synthetic, images=syn, labels=syn_labels), classes=extractor.classes, steps=extractor.steps, seed=seed,
        device=str(extractor.device),
    )
    result.scores.append(Score(
        "utility", "TSTR accuracy", tstr_net.accuracy(hold, hold_labels), reference=holdout_accuracy, ideal="1",
        method=f"synthgen small CNN, {extractor.steps} steps, seed {seed}; {_METHOD}",
        note="trained on the synthetic images, tested on the holdout; reference: trained on the real training images (TRTR)",
    ))
    return result


def _privacy(
    train: np.ndarray, syn: np.ndarray, hold: np.ndarray | None, features: dict[str, np.ndarray], rng: np.random.Generator, show_real: bool
) -> SectionResult:
    """Nearest training image of each synthetic (and holdout) image, by pixels and by features."""
    scale = math.sqrt(train[0].size)  # Euclidean distance / scale = root-mean-square pixel difference
    syn_pixel, syn_nearest = _nearest(syn, train)
    syn_pixel /= scale
    syn_feature, _ = _nearest(features["synthetic"], features["train"])
    result = SectionResult(scores=[], figures={"dcr_synthetic_to_train": syn_pixel})
    near = syn_pixel <= _NEAR_DUPLICATE_RMS
    exact = int(np.count_nonzero(syn_pixel == 0))
    hold_near = None
    rows = []
    if hold is None:
        result.notes.append(
            "No holdout was given: the memorisation shares compare synthetic images with how close fresh real images come "
            "to the training images, so they were not computed, and the near-duplicate share has no reference."
        )
        shares = {"pixels": [np.nan, None, None], "features": [np.nan, None, None]}
    else:
        hold_pixel = _nearest(hold, train)[0] / scale
        hold_feature = _nearest(features["holdout"], features["train"])[0]
        result.figures["dcr_synthetic_to_holdout"] = _nearest(syn, hold)[0] / scale
        result.figures["dcr_holdout_to_train"] = hold_pixel
        hold_near = float(np.mean(hold_pixel <= _NEAR_DUPLICATE_RMS))
        shares: dict[str, list[float | None]] = {}
        for measure, syn_d, hold_d in (("pixels", syn_pixel, hold_pixel), ("features", syn_feature, hold_feature)):
            threshold, *shares[measure] = _share_below(syn_d, hold_d, rng)
            rows.append({
                "distance": measure, "threshold (holdout 5th percentile)": threshold, "synthetic median": float(np.median(syn_d)),
                "holdout median": float(np.median(hold_d)), "synthetic images below threshold": int(np.sum(syn_d < threshold)),
            })
        result.tables["memorisation"] = pd.DataFrame(rows).set_index("distance")
    for measure, (share, low, high) in shares.items():
        unit = "root-mean-square pixel difference" if measure == "pixels" else "Euclidean distance of the small-CNN features"
        result.scores.append(Score(
            "privacy", f"Memorisation share ({measure})", share, low=low, high=high, ideal="0.05",
            method=f"nearest training image by {unit}; bootstrap interval ({_N_BOOTSTRAP}); {_METHOD}",
            note="share of synthetic images closer to a training image than 95% of holdout images are (by construction 5% for fresh real images)",
        ))
    result.scores.append(Score(
        "privacy", "Near-duplicate share", float(near.mean()), reference=hold_near, ideal="0",
        method=f"root-mean-square pixel difference to the nearest training image ≤ {_NEAR_DUPLICATE_RMS} on the [-1, 1] scale; {_METHOD}",
        note=f"{int(near.sum())} of {len(syn)} synthetic images ({exact} identical to a training image)",
    ))
    result.figures["closest_pairs"] = _pairs_grid(syn, train, syn_pixel, syn_nearest, show_real)
    result.notes.append(
        "Distances in the histogram are root-mean-square pixel differences on the [-1, 1] scale, at the training images' size."
    )
    return result


def _share_below(syn_d: np.ndarray, hold_d: np.ndarray, rng: np.random.Generator) -> tuple[float, float, float, float]:
    """The holdout's 5th percentile and the share of ``syn_d`` below it, with a bootstrap 95% interval over both sets.

    A resampled synthetic set's count below a threshold t is Binomial(n, share below t), so only
    the holdout is resampled explicitly.
    """
    ordered = np.sort(syn_d)
    threshold = float(np.quantile(hold_d, _QUANTILE))
    share = np.searchsorted(ordered, threshold) / len(syn_d)
    thresholds = np.quantile(rng.choice(hold_d, (_N_BOOTSTRAP, len(hold_d))), _QUANTILE, axis=1)
    shares = rng.binomial(len(syn_d), np.searchsorted(ordered, thresholds) / len(syn_d)) / len(syn_d)
    low, high = np.quantile(shares, [0.025, 0.975])
    return threshold, float(share), float(low), float(high)


# --- image grids --------------------------------------------------------------------------------


def _grid_png(rows: list[list[np.ndarray]], group: int = 1) -> str:
    """Tiles (C, H, W in [-1, 1]) in rows as a base64 PNG: 2 px apart, 12 px after every ``group`` tiles and between rows."""
    side = rows[0][0].shape[-1]
    scale = max(1, math.ceil(_TILE / side))
    tile, gap, group_gap = side * scale, 2, 12
    columns = max(len(row) for row in rows)

    def left(j: int) -> int:
        return j * (tile + gap) + (j // group) * (group_gap - gap)

    channels = rows[0][0].shape[0]
    mode = "L" if channels == 1 else "RGB"
    canvas = Image.new(mode, (left(columns - 1) + tile, len(rows) * (tile + group_gap) - group_gap), color=255 if mode == "L" else (255, 255, 255))
    for i, row in enumerate(rows):
        for j, image in enumerate(row):
            pixels = np.clip(np.round((image + 1) * 127.5), 0, 255).astype(np.uint8)
            pixels = pixels.repeat(scale, axis=1).repeat(scale, axis=2)
            canvas.paste(Image.fromarray(pixels[0] if channels == 1 else pixels.transpose(1, 2, 0), mode), (left(j), i * (tile + group_gap)))
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _samples_grid(syn: np.ndarray, labels: np.ndarray | None, classes: list[str]) -> dict[str, Any]:
    """Up to 8 synthetic images per requested class (the first ones), a row per class."""
    if labels is None:
        rows = [list(syn[i : i + _SAMPLES_PER_CLASS]) for i in (0, _SAMPLES_PER_CLASS) if i < len(syn)]
        caption = "The first synthetic images."
    else:
        shown = [label for label in classes if (labels == label).any()][:_MAX_SAMPLE_ROWS]
        rows = [list(syn[labels == label][:_SAMPLES_PER_CLASS]) for label in shown]
        caption = f"Up to {_SAMPLES_PER_CLASS} synthetic images per requested class; rows, top to bottom: {', '.join(shown)}."
    return {"kind": "image_grid", "title": "Synthetic samples", "png_base64": _grid_png(rows), "caption": caption, "real_images": False}


def _pairs_grid(syn: np.ndarray, train: np.ndarray, distance: np.ndarray, nearest: np.ndarray, show_real: bool) -> dict[str, Any]:
    """The synthetic images closest to a training image, each beside it (or alone when real images are hidden)."""
    closest = np.argsort(distance, kind="stable")[:_PAIRS]
    distances = ", ".join(f"{distance[i]:.3g}" for i in closest)
    if show_real:
        tiles = [tile for i in closest for tile in (syn[i], train[nearest[i]])]
        rows = [tiles[start : start + 2 * _PAIRS_PER_ROW] for start in range(0, len(tiles), 2 * _PAIRS_PER_ROW)]
        png = _grid_png(rows, group=2)
        caption = (
            f"The {len(closest)} synthetic images closest to a training image, each left of its nearest REAL TRAINING IMAGE "
            f"(root-mean-square pixel differences, in reading order: {distances}). This grid shows real patient images: share "
            "this report only with people allowed to see the training data, or re-run with show_real_images=False."
        )
    else:
        png = _grid_png([list(syn[closest])])
        caption = (
            f"The {len(closest)} synthetic images closest to a training image (root-mean-square pixel differences: {distances}); "
            "their nearest training images are not shown (show_real_images=False)."
        )
    return {"kind": "image_grid", "title": "Closest synthetic–training pairs", "png_base64": png, "caption": caption, "real_images": show_real}


# --- Inception FID ------------------------------------------------------------------------------


def _check_inception(path: Path) -> None:
    """Fail before any work when the Inception FID cannot be computed."""
    if importlib.util.find_spec("torchvision") is None:
        raise InvalidArgumentError(
            f"the Inception FID with {path} needs torchvision, which is not installed: install the torchvision release "
            f"matching torch {torch.__version__} (pip install torchvision), or leave out the Inception weights"
        )
    if not path.is_file():
        raise InvalidArgumentError(f"Inception weights file {path} does not exist")


def _inception_fid(path: Path, train: np.ndarray, syn: np.ndarray, hold: np.ndarray | None, device: torch.device) -> Score:
    """FID on the 2048 pool features of torchvision's Inception v3 with the weights in ``path``.

    The Google weights torchvision ships expect RGB values scaled to [-1, 1] (what its
    ``transform_input`` produces from ImageNet-normalised input), which is what the images are.
    """
    import torchvision  # optional dependency, checked by _check_inception
    from torchvision.models import inception_v3

    network = inception_v3(weights=None, aux_logits=True, transform_input=False, init_weights=False)
    try:
        network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except (OSError, RuntimeError, pickle.UnpicklingError, TypeError, AttributeError, KeyError) as error:
        raise ModelFileError(f"{path} is not a torchvision Inception v3 state dict: {error}") from None
    network.fc = nn.Identity()
    network.eval().to(device)

    def pool_features(images: np.ndarray) -> np.ndarray:
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(images), _INCEPTION_BATCH):
                x = _resize(torch.from_numpy(images[start : start + _INCEPTION_BATCH]).to(device), _INCEPTION_SIDE)
                outputs.append(network(x.expand(-1, 3, -1, -1)).cpu().double().numpy())  # grey images on all three channels
        return np.concatenate(outputs)

    train_features = pool_features(train)
    value = frechet_distance(train_features, pool_features(syn))
    reference = frechet_distance(train_features, pool_features(hold)) if hold is not None else None
    return Score(
        "fidelity", "Inception FID", value, reference=reference, ideal="0",
        method=f"torchvision {torchvision.__version__} Inception v3 pool features at {_INCEPTION_SIDE} px, weights {path.name}",
        note="comparable only with FIDs computed with the same weights file and image sizes",
    )
