"""ImageSynthesizer: the scikit-learn-style front of the conditional image GAN.

fit:    ImageSet → class indices + images on the device → train_image_gan (generator, critic, EMA)
sample: noise + class indices → EMA generator → ImageSet in the training set's IntensityMapping
"""
from __future__ import annotations

import copy
import logging
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthgen.bundle import build_checked, check_fields
from synthgen.errors import ConditionError, InvalidArgumentError, InvalidDataError, ModelFileError
from synthgen.images.common import square_resize
from synthgen.images.types import ImageSet, IntensityMapping
from synthgen.models.image_gan import ImageDiscriminator, ImageGANConfig, ImageGenerator, check_image_size, init_weights
from synthgen.synthesizers.base import (
    BUNDLE_ERRORS, Synthesizer, check_holdout, config_from, draw_seed, generator_weights, inconsistent,
)
from synthgen.training.images import train_image_gan
from synthgen.training.loop import select_device

logger = logging.getLogger(__name__)

#: Images generated per forward pass when sampling; bounds memory at 128 px RGB to ~50 MB.
SAMPLE_CHUNK = 256


class ImageSynthesizer(Synthesizer):
    """Learn a set of (optionally labelled) images with a conditional GAN and sample new ones.

    Parameters are stored as given; everything learned ends with ``_``. ``image_size`` resizes the
    images to that side (a multiple of 8 from 16 to 128) before training; ``None`` keeps their
    size. ``seed`` makes ``fit`` reproducible; ``None`` draws one and records it. Image size,
    channels and number of classes always come from the data, whatever ``config`` says.
    """

    kind = "image"

    def __init__(
        self,
        *,
        image_size: int | None = None,
        seed: int | None = None,
        steps: int | None = None,
        batch_size: int | None = None,
        device: str | None = None,
        config: ImageGANConfig | None = None,
        progress: bool = True,
    ) -> None:
        self.image_size = image_size
        self.seed = seed
        self.steps = steps
        self.batch_size = batch_size
        self.device = device
        self.config = config
        self.progress = progress

    # ------------------------------------------------------------------ fit
    def fit(self, images: ImageSet, *, holdout: float = 0.0, reading: dict[str, Any] | None = None) -> "ImageSynthesizer":
        """Learn ``images``; returns ``self``.

        ``holdout`` (a fraction in [0, 0.5]) keeps that share of each class out of training and
        records which images, so :meth:`split` can hand the same real holdout to the evaluation.
        ``reading`` records how the images were read (the ``read_images`` arguments), so that
        ``synthgen evaluate`` can read the real images again exactly the same way.
        """
        self.reading_ = dict(reading or {})
        check_holdout(holdout)
        pixels, labels = self._prepare(images)
        seed = draw_seed(self.seed)
        rng = np.random.default_rng(seed)
        holdout_indices = _stratified_holdout(labels, holdout, rng)
        train = np.ones(len(labels), dtype=bool)
        train[holdout_indices] = False
        pixels, labels = pixels[train], labels[train]
        if len(labels) < 2:
            raise InvalidDataError(f"training needs at least 2 images, and {len(labels)} remain after the holdout")
        classes, class_index, counts = np.unique(labels, return_inverse=True, return_counts=True)
        config = self._resolved_config(pixels.shape[-1], pixels.shape[1], len(classes))

        device = select_device(self.device)
        generator_net, critic = ImageGenerator(config), ImageDiscriminator(config)
        init_rng = torch.Generator().manual_seed(seed)
        init_weights(generator_net, init_rng)
        init_weights(critic, init_rng)
        ema = copy.deepcopy(generator_net)
        generator_net, critic, ema = generator_net.to(device), critic.to(device), ema.to(device)
        train_rng = torch.Generator(device).manual_seed(seed)
        # The images move to the device once; batches are gathered there.
        summary = train_image_gan(
            generator_net, critic, ema, torch.from_numpy(pixels).to(device),
            torch.from_numpy(class_index.astype(np.int64)).to(device), config, train_rng, progress=self.progress,
        )
        training = {**summary.to_dict(), "images": len(labels), "set_images": len(train)}
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        return self._set_fitted(
            config, seed, [str(c) for c in classes], [int(c) for c in counts], images.mapping, images.label_name,
            ema, training, holdout_indices, created,
        )

    def _set_fitted(self, config: ImageGANConfig, seed: int, classes: list[str], class_counts: list[int],
                    mapping: IntensityMapping, label_name: str | None, ema: ImageGenerator, training: dict[str, Any],
                    holdout_indices: np.ndarray, created: str | None) -> "ImageSynthesizer":
        """Store what fit learned (or what a model file holds); the one place fitted state is set."""
        self.config_ = config
        self.seed_ = seed
        self.classes_ = classes
        self.class_counts_ = class_counts
        self.mapping_ = mapping
        self.label_name_ = label_name
        self.image_size_ = config.image_size
        self.channels_ = config.channels
        self.generator_ = ema.eval()
        self.training_ = training
        self.holdout_indices_ = holdout_indices
        self.created_ = created
        return self

    def _prepare(self, images: ImageSet) -> tuple[np.ndarray, np.ndarray]:
        """Checked float32 pixels at the model's size, and labels as strings."""
        if not isinstance(images, ImageSet):
            raise InvalidDataError(f"fit expects an ImageSet (see synthgen.images), got {type(images).__name__}")
        pixels = np.asarray(images.images)
        if pixels.ndim != 4 or pixels.shape[1] not in (1, 3):
            raise InvalidDataError(f"images must have shape (N, 1 or 3 channels, H, W), got {pixels.shape}")
        if pixels.shape[0] == 0:
            raise InvalidDataError("the image set is empty")
        if pixels.shape[2] != pixels.shape[3]:
            raise InvalidDataError(f"images must be square, got {pixels.shape[2]}×{pixels.shape[3]} pixels")
        if not np.issubdtype(pixels.dtype, np.floating):
            raise InvalidDataError(f"image values must be floats in [-1, 1], got dtype {pixels.dtype}")
        outside = ~(np.abs(pixels) <= 1.0 + 1e-6).all(axis=(1, 2, 3))  # also catches NaN
        if outside.any():
            first = int(np.flatnonzero(outside)[0])
            source = f" ({images.sources[first]})" if images.sources else ""
            image = pixels[first]
            found = "NaN or infinite values" if not np.isfinite(image).all() else f"values in [{image.min():.4g}, {image.max():.4g}]"
            raise InvalidDataError(
                f"image values must be finite and lie in [-1, 1]; {int(outside.sum())} images do not, "
                f"the first is image {first}{source} with {found}"
            )
        labels = np.asarray(images.labels)
        if labels.shape != (pixels.shape[0],):
            raise InvalidDataError(f"{pixels.shape[0]} images but labels of shape {labels.shape}")
        pixels = np.clip(pixels, -1.0, 1.0).astype(np.float32, copy=False)
        if self.image_size is not None:
            check_image_size(self.image_size)
            if self.image_size != pixels.shape[-1]:
                logger.info("resizing %d images from %d to %d px", len(pixels), pixels.shape[-1], self.image_size)
                pixels = square_resize(pixels, self.image_size)
        else:
            try:
                check_image_size(pixels.shape[-1])
            except InvalidArgumentError as exc:
                raise InvalidDataError(f"{exc}; pass image_size= to resize the images") from exc
        return pixels, labels.astype(str).astype(object)

    def _resolved_config(self, image_size: int, channels: int, n_classes: int) -> ImageGANConfig:
        config = replace(self.config or ImageGANConfig(), image_size=image_size, channels=channels, n_classes=n_classes)
        if self.steps is not None:
            if self.steps < 1:
                raise InvalidArgumentError(f"steps must be >= 1, got {self.steps}")
            config = replace(config, steps=self.steps)
        if self.batch_size is not None:
            if self.batch_size < 2:
                raise InvalidArgumentError(f"batch_size must be >= 2 (BatchNorm needs a batch), got {self.batch_size}")
            config = replace(config, batch_size=self.batch_size)
        return config

    def split(self, images: ImageSet) -> tuple[ImageSet, ImageSet | None]:
        """(training images, holdout images) of the set this model was fitted on, as fit split it.

        Both come at the model's image size. The holdout is None when ``fit`` kept none. The set
        must be the same one, in the same order; a different count is refused rather than mis-split.
        """
        self._check_fitted()
        pixels, labels = self._prepare(images)
        expected = self.training_["set_images"]
        if len(labels) != expected:
            raise InvalidDataError(
                f"this model was fitted on {expected} images, but the given set has {len(labels)}; pass the same images used for fit"
            )
        is_holdout = np.zeros(len(labels), dtype=bool)
        is_holdout[self.holdout_indices_] = True

        def subset(keep: np.ndarray) -> ImageSet:
            sources = [s for s, k in zip(images.sources, keep) if k] if images.sources is not None else None
            return ImageSet(pixels[keep], labels[keep], images.mapping, images.label_name, sources)

        return subset(~is_holdout), (subset(is_holdout) if is_holdout.any() else None)

    # ------------------------------------------------------------------ sample
    def sample(self, n: int, *, condition: str | None = None, seed: int | None = None) -> ImageSet:
        """``n`` synthetic images; all of class ``condition`` if given, else classes at their training frequency."""
        self._check_fitted()
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise InvalidArgumentError(f"the number of images must be a positive integer, got {n!r}")
        if condition is not None and str(condition) not in self.classes_:
            known = ", ".join(repr(c) for c in self.classes_)
            raise ConditionError(f"unknown label {str(condition)!r}: this model knows {known}")
        seed = draw_seed(seed)
        device = next(self.generator_.parameters()).device
        rng = torch.Generator(device).manual_seed(seed)
        frequencies = torch.tensor(self.class_counts_, dtype=torch.float32, device=device)
        chunks, indices = [], []
        with torch.inference_mode():
            for start in range(0, int(n), SAMPLE_CHUNK):
                size = min(SAMPLE_CHUNK, int(n) - start)
                if condition is None:
                    labels = torch.multinomial(frequencies, size, replacement=True, generator=rng)
                else:
                    labels = torch.full((size,), self.classes_.index(str(condition)), dtype=torch.long, device=device)
                noise = torch.randn(size, self.config_.latent_dim, generator=rng, device=device)
                chunks.append(self.generator_(noise, labels).float().clamp(-1, 1).cpu().numpy())
                indices.append(labels.cpu().numpy())
        names = np.asarray(self.classes_, dtype=object)[np.concatenate(indices)]
        return ImageSet(np.concatenate(chunks), names, self.mapping_, self.label_name_, None)

    # ------------------------------------------------------------------ persistence
    def describe(self) -> dict[str, Any]:
        """What ``synthgen info`` shows: classes, image format, training summary, versions and seed."""
        return {
            **self._description(),
            "image_size": self.image_size_,
            "channels": self.channels_,
            "label_name": self.label_name_,
            "classes": self.classes_,
            "class_counts": self.class_counts_,
            "mapping": self.mapping_.get_state(),
            "reading": self.reading_,
        }

    def save(self, path: str | Path) -> Path:
        """Write the fitted model to ``path``: the EMA generator's weights and JSON; no pickle.

        The discriminator is not saved: sampling does not need it.
        """
        return self._write(path, self.describe(),
                           {"holdout_indices": torch.from_numpy(self.holdout_indices_.astype(np.int64))})

    @classmethod
    def from_bundle(cls, manifest: dict[str, Any], tensors: dict[str, torch.Tensor], device: str | None = None) -> "ImageSynthesizer":
        """Rebuild a fitted synthesizer from :func:`synthgen.bundle.read_bundle` output."""
        check_fields(manifest, {"classes": (list,), "class_counts": (list,), "mapping": (dict,),
                                "label_name": (str, type(None))},
                     optional={"reading": (dict, type(None)), "created": (str, type(None))})
        check_fields(manifest["training"], {"images": (int,)}, "the training summary")
        if "holdout_indices" not in tensors:
            raise ModelFileError("the image model file lacks holdout_indices; it is damaged or from an incompatible synthgen")
        try:
            config = config_from(ImageGANConfig, manifest["config"])
            classes = [str(c) for c in manifest["classes"]]
            counts = [int(c) for c in manifest["class_counts"]]
            if not len(classes) == len(counts) == config.n_classes:
                raise ValueError(f"{len(classes)} classes, {len(counts)} class counts and n_classes={config.n_classes} disagree")
            mapping = IntensityMapping.from_state(manifest["mapping"])
            generator_net = build_checked(lambda: ImageGenerator(config), generator_weights(tensors))
            holdout_indices = tensors["holdout_indices"].numpy()
        except ModelFileError:
            raise
        except BUNDLE_ERRORS as exc:
            raise inconsistent(exc, "the image model file") from exc
        synthesizer = cls(seed=manifest["seed"], config=config, device=device)
        synthesizer.reading_ = dict(manifest.get("reading") or {})
        return synthesizer._set_fitted(
            config, manifest["seed"], classes, counts, mapping, manifest["label_name"],
            generator_net.to(select_device(device)), manifest["training"], holdout_indices, manifest.get("created"),
        )


def _stratified_holdout(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``fraction`` of each class, so every class keeps its share in training."""
    chosen = []
    for label in sorted(set(labels)):
        members = np.flatnonzero(labels == label)
        chosen.append(rng.permutation(members)[: round(fraction * len(members))])
    return np.sort(np.concatenate(chosen)).astype(np.int64) if chosen else np.zeros(0, dtype=np.int64)
