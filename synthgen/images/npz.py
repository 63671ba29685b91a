"""The ``npz`` reader: a NumPy ``.npz`` file in the MedMNIST layout (nothing is downloaded)."""
from __future__ import annotations

import logging
import zipfile
from dataclasses import astuple
from pathlib import Path

import numpy as np

from synthgen.errors import InvalidArgumentError, InvalidDataError
from synthgen.images.common import square_resize
from synthgen.images.types import ImageReader, ImageSet, IntensityMapping, ReadRequest

logger = logging.getLogger(__name__)


class NpzReader(ImageReader):
    """A NumPy ``.npz`` file in the MedMNIST layout; the training split is used.

    ``train_images`` is uint8 shaped (N, H, W) or (N, H, W, 1) for greyscale, (N, H, W, 3) for
    colour; ``train_labels`` holds one integer class per image, shaped (N,) or (N, 1). Labels
    become the integers' decimal strings under the name ``"label"``; multi-label files (N, k) are
    refused. Values are grey levels 0..255 (unit ``"pixel"``). Nothing is downloaded.
    """

    name = "npz"
    IMAGES = "train_images"
    LABELS = "train_labels"

    @classmethod
    def can_read(cls, path: Path) -> bool:
        path = Path(path)
        return path.is_file() and path.suffix.lower() == ".npz"

    def _read(self, path: Path, request: ReadRequest) -> ImageSet:
        labels, label_column, label_tag, image_size, window = astuple(request)
        if labels is not None or label_column is not None or label_tag is not None:
            raise InvalidArgumentError(
                f"{str(path)!r} carries its labels in {self.LABELS!r}; labels, label_column and label_tag do not apply"
            )
        if window is not None:
            raise InvalidArgumentError("window applies to DICOM images; .npz images are used as stored")
        try:
            with np.load(path, allow_pickle=False) as data:
                keys = sorted(data.files)
                present = {key: data[key] for key in (self.IMAGES, self.LABELS) if key in keys}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise InvalidDataError(f"{str(path)!r} could not be read as a NumPy .npz file: {exc}") from exc
        missing = [key for key in (self.IMAGES, self.LABELS) if key not in present]
        if missing:
            raise InvalidDataError(
                f"{str(path)!r} lacks {missing}: a MedMNIST-style file holds {self.IMAGES!r} and {self.LABELS!r}; it has {keys}"
            )
        images, classes = present[self.IMAGES], present[self.LABELS]
        if images.dtype != np.uint8:
            raise InvalidDataError(f"{str(path)!r}: {self.IMAGES!r} must be uint8 grey levels, got {images.dtype}")
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4 or images.shape[-1] not in (1, 3) or len(images) == 0:
            raise InvalidDataError(
                f"{str(path)!r}: {self.IMAGES!r} must be shaped (N, H, W) or (N, H, W, 3), got {present[self.IMAGES].shape}"
            )
        if classes.ndim == 2 and classes.shape[1] == 1:
            classes = classes[:, 0]
        if classes.ndim != 1 or not np.issubdtype(classes.dtype, np.integer):
            raise InvalidDataError(
                f"{str(path)!r}: {self.LABELS!r} must hold one integer class per image, shaped (N,) or (N, 1); "
                f"got {present[self.LABELS].dtype} {present[self.LABELS].shape}"
            )
        if len(classes) != len(images):
            raise InvalidDataError(f"{str(path)!r}: {len(images)} images but {len(classes)} labels")
        physical = square_resize(images.transpose(0, 3, 1, 2).astype(np.float32), image_size)
        photometric = "RGB" if physical.shape[1] == 3 else "MONOCHROME2"
        mapping = IntensityMapping(0.0, 255.0, "pixel", "OT", photometric)
        logger.info("read %d image(s) from %s", len(physical), path)
        return ImageSet(
            images=mapping.to_unit(physical),
            labels=np.array([str(int(value)) for value in classes], dtype=object),
            mapping=mapping,
            label_name="label",
            sources=[f"{path}[{index}]" for index in range(len(physical))],
        )
