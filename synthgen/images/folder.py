"""The ``folder`` reader: PNG and JPEG files under a folder, the class of each from its sub-folder."""
from __future__ import annotations

import logging
from dataclasses import astuple
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from synthgen.errors import InvalidArgumentError, InvalidDataError
from synthgen.images.common import check_channels, check_label_options, labels_from_csv, square_resize, visible_files
from synthgen.images.types import ImageReader, ImageSet, IntensityMapping, ReadRequest

logger = logging.getLogger(__name__)

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _picture_array(image: Image.Image) -> tuple[np.ndarray, int]:
    """(C, H, W) float32 grey levels and the bit depth (8 or 16) of one PNG/JPEG image."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return np.asarray(image, dtype=np.float32)[None], 16
    if image.mode in ("1", "L", "LA", "La"):
        return np.asarray(image.convert("L"), dtype=np.float32)[None], 8
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32).transpose(2, 0, 1)
    if image.mode in ("P", "PA") and (rgb[0] == rgb[1]).all() and (rgb[0] == rgb[2]).all():
        return rgb[:1], 8  # a palette of greys is a greyscale image
    return rgb, 8


def _is_picture(path: Path) -> bool:
    return path.suffix.lower() in PICTURE_SUFFIXES


class ImageFolderReader(ImageReader):
    """PNG and JPEG files under a folder; the class of an image is its top-level sub-folder.

    ``root/nodule/a.png`` gets the label ``"nodule"`` (also for deeper files such as
    ``root/nodule/x/b.png``); files directly in ``root`` get ``""``. A labels CSV, when given,
    replaces the folder names. Greyscale images keep one channel, colour ones (RGB, palette,
    RGBA with alpha dropped) three. Values are grey levels (unit ``"pixel"``) from 0 to 255, or
    to 65535 for 16-bit greyscale PNGs; a folder mixing 8- and 16-bit images is refused.
    """

    name = "folder"

    @classmethod
    def can_read(cls, path: Path) -> bool:
        path = Path(path)
        return path.is_dir() and any(_is_picture(file) for file in visible_files(path))

    def _read(self, path: Path, request: ReadRequest) -> ImageSet:
        labels, label_column, label_tag, image_size, window = astuple(request)
        check_label_options(labels, label_column, label_tag)
        if label_tag is not None:
            raise InvalidArgumentError(
                "label_tag names a DICOM tag; PNG/JPEG images take labels from sub-folders or a labels CSV"
            )
        if window is not None:
            raise InvalidArgumentError("window applies to DICOM images; PNG/JPEG images are used as stored")
        files = [file for file in visible_files(path) if _is_picture(file)] if path.is_dir() else []
        if not files:
            raise InvalidDataError(f"{str(path)!r}: no images found: no PNG or JPEG files in it")
        arrays: list[np.ndarray] = []
        depths: dict[int, str] = {}  # bit depth -> one file of that depth
        for file in files:
            try:
                with Image.open(file) as image:
                    array, depth = _picture_array(image)
            except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
                raise InvalidDataError(f"{str(file)!r} could not be read as an image: {exc}") from exc
            depths.setdefault(depth, str(file))
            arrays.append(array)
        check_channels(((len(array), str(file)) for array, file in zip(arrays, files)), path)
        if len(depths) > 1:
            raise InvalidDataError(
                f"{str(path)!r} mixes 8-bit and 16-bit images (e.g. {depths[8]!r} and {depths[16]!r}); convert them to one depth"
            )
        images = np.concatenate([square_resize(array[None], image_size) for array in arrays])
        label_name: str | None
        if labels is not None:
            file_labels, label_name = labels_from_csv(files, path, Path(labels), label_column)
        else:
            parts = [file.relative_to(path).parts for file in files]
            file_labels = [names[0] if len(names) > 1 else "" for names in parts]
            label_name = "class" if any(file_labels) else None
        photometric = "RGB" if images.shape[1] == 3 else "MONOCHROME2"
        mapping = IntensityMapping(0.0, 2.0 ** next(iter(depths)) - 1, "pixel", "OT", photometric)
        logger.info("read %d PNG/JPEG image(s) from %s", len(images), path)
        return ImageSet(
            mapping.to_unit(images), np.array(file_labels, dtype=object), mapping, label_name, [str(file) for file in files]
        )
