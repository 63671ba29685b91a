"""Image data: the shared types (:class:`IntensityMapping`, :class:`ImageSet`) and the readers.

A reader turns a folder of DICOM files, a folder of PNG/JPEG files or a MedMNIST-style ``.npz``
file into one :class:`ImageSet`: float32 images in [-1, 1] plus the :class:`IntensityMapping` that
brings network values back to physical units (HU for CT). Readers register in the
``synthgen.transformers`` entry-point group under names starting with ``image.``;
:func:`read_images` picks the one that recognises a path.

Common to all readers:

* Every image is made square by **centre-padding** with its own minimum value (air in CT, black in
  photographs), never by cropping, so nothing at the edge of the field of view is lost; it is then
  resized to ``image_size`` with antialiased bilinear interpolation. Images that already have that
  size are kept exactly. Images of different sizes in one dataset are therefore fine.
* Greyscale images have one channel, colour images three; a dataset mixing both is refused, since
  silently converting either way changes what the model learns.
* Hidden files and folders (names starting with ``.``) are ignored.
* A labels CSV names each image file in a ``file``, ``filename`` or ``path`` column (the first of
  these present, case-insensitive). An entry matches an image by its path relative to the folder
  read (``/`` separators), by its absolute path, or by its bare file name when that name is unique
  among the images. Every image needs a non-empty label; rows naming no image are ignored.
"""
from __future__ import annotations

import logging
import zipfile
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pydicom
import torch
from PIL import Image, UnidentifiedImageError
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut

from synthgen.errors import InvalidArgumentError, InvalidDataError, ModelFileError
from synthgen.registry import image_readers

logger = logging.getLogger(__name__)

UNITS = ("HU", "raw", "pixel")
PHOTOMETRICS = ("MONOCHROME2", "RGB")
#: CT window presets as (centre, width) in HU.
CT_WINDOWS: dict[str, tuple[float, float]] = {
    "soft-tissue": (40.0, 400.0),
    "lung": (-600.0, 1500.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
}
#: CT range used when no window is given: air (-1024 HU) up to the top of a 12-bit scanner.
CT_FULL_RANGE = (-1024.0, 3071.0)
#: Percentiles of all pixels that bound other greyscale modalities when no window is given;
#: robust to a few hot pixels, which would otherwise squeeze the rest into a narrow band.
DATA_PERCENTILES = (1.0, 99.5)
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: Names a labels CSV may give its file column, in order of preference.
FILE_COLUMNS = ("file", "filename", "path")
#: Images resized per torch call; bounds the memory of a large .npz.
RESIZE_CHUNK = 1024

Window = tuple[float, float] | str | None


@dataclass
class IntensityMapping:
    """How network values in [-1, 1] map to physical values, and back.

    ``low`` and ``high`` are the physical values at -1 and +1 (a CT window in HU, or 0..255 grey
    levels); values outside are clipped. ``unit`` is ``"HU"`` (CT after rescale), ``"raw"`` (DICOM
    modality LUT applied, no physical unit) or ``"pixel"`` (PNG/JPEG/npz grey levels, any RGB).
    """

    low: float
    high: float
    unit: str
    modality: str = "OT"
    photometric: str = "MONOCHROME2"

    def __post_init__(self) -> None:
        self.low, self.high = float(self.low), float(self.high)
        if not (np.isfinite(self.low) and np.isfinite(self.high) and self.high > self.low):
            raise InvalidArgumentError(f"intensity range needs finite low < high, got low={self.low}, high={self.high}")
        if self.unit not in UNITS:
            raise InvalidArgumentError(f"unknown intensity unit {self.unit!r}; use one of {', '.join(UNITS)}")
        if self.photometric not in PHOTOMETRICS:
            raise InvalidArgumentError(f"unknown photometric {self.photometric!r}; use one of {', '.join(PHOTOMETRICS)}")

    @property
    def channels(self) -> int:
        return 3 if self.photometric == "RGB" else 1

    def to_unit(self, physical: np.ndarray) -> np.ndarray:
        """Clip to [low, high] and scale to [-1, 1], as float32."""
        clipped = np.clip(np.asarray(physical, dtype=np.float32), self.low, self.high)
        return ((clipped - np.float32(self.low)) * np.float32(2.0 / (self.high - self.low)) - 1).astype(np.float32)

    def to_physical(self, unit: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`to_unit`; values beyond [-1, 1] are clipped first."""
        clipped = np.clip(np.asarray(unit, dtype=np.float32), -1.0, 1.0)
        return ((clipped + 1) * np.float32((self.high - self.low) / 2.0) + np.float32(self.low)).astype(np.float32)

    def get_state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> IntensityMapping:
        try:
            return cls(**{field.name: state[field.name] for field in fields(cls) if field.name in state})
        except (TypeError, InvalidArgumentError) as exc:
            raise ModelFileError(f"the model file's image intensity mapping is invalid: {exc}") from exc


@dataclass
class ImageSet:
    """Images ready for a model, with their labels and the way back to physical values.

    ``images`` is float32 shaped (N, C, H, W) with C 1 or 3, H == W, values in [-1, 1].
    ``labels`` holds one string per image (all ``""`` when unlabelled). ``sources`` names the file
    of each image, with ``[index]`` appended when one file holds several images (multi-frame
    DICOM, .npz); it is for messages only and never stored in a model.
    """

    images: np.ndarray
    labels: np.ndarray
    mapping: IntensityMapping
    label_name: str | None = None
    sources: list[str] | None = None

    def __post_init__(self) -> None:
        self.images = np.asarray(self.images, dtype=np.float32)
        shape = self.images.shape
        if len(shape) != 4 or shape[1] not in (1, 3) or shape[2] != shape[3]:
            raise InvalidArgumentError(f"images must be shaped (N, C, H, W) with C 1 or 3 and H == W, got {shape}")
        if shape[1] != self.mapping.channels:
            raise InvalidArgumentError(f"images have {shape[1]} channel(s) but the mapping is {self.mapping.photometric}")
        self.labels = np.array([str(label) for label in self.labels], dtype=object)
        if len(self.labels) != shape[0]:
            raise InvalidArgumentError(f"{shape[0]} images but {len(self.labels)} labels")
        if self.sources is not None and len(self.sources) != shape[0]:
            raise InvalidArgumentError(f"{shape[0]} images but {len(self.sources)} sources")

    def __len__(self) -> int:
        return len(self.images)

    def physical(self) -> np.ndarray:
        """The images in physical values (HU, raw or grey levels), float32 (N, C, H, W)."""
        return self.mapping.to_physical(self.images)

    @property
    def classes(self) -> list[str]:
        """Sorted distinct labels."""
        return sorted(set(self.labels))


class ImageReader(ABC):
    """Reads one kind of image source into an :class:`ImageSet`.

    Subclasses set ``name`` and register in the ``synthgen.transformers`` entry-point group as
    ``image.<name>``. ``window`` is (centre, width), a CT preset name (see ``CT_WINDOWS``) or
    ``"centre,width"``; readers whose data has no such notion refuse it.
    """

    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def can_read(cls, path: Path) -> bool:
        """Whether ``path`` looks like this reader's input (cheap: no full decode)."""

    @abstractmethod
    def read(
        self,
        path: Path,
        *,
        labels: Path | None = None,
        label_column: str | None = None,
        label_tag: str | None = None,
        image_size: int = 64,
        window: Window = None,
    ) -> ImageSet:
        """All images under ``path``, square, ``image_size`` pixels wide, scaled to [-1, 1]."""


# --- shared helpers ----------------------------------------------------------------------------


def _check_image_size(image_size: int) -> None:
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 4:
        raise InvalidArgumentError(f"image_size must be an integer >= 4, got {image_size!r}")


def _check_label_options(labels: Path | None, label_column: str | None, label_tag: str | None) -> None:
    if labels is not None and label_tag is not None:
        raise InvalidArgumentError("give labels (a CSV) or label_tag (a DICOM keyword), not both")
    if label_column is not None and labels is None:
        raise InvalidArgumentError(f"label_column {label_column!r} needs a labels CSV")


def _visible_files(path: Path) -> list[Path]:
    """``path`` itself if it is a file, else every file under it, in path order, hidden ones skipped."""
    if path.is_file():
        return [path]
    return sorted(
        file for file in path.rglob("*")
        if file.is_file() and not any(part.startswith(".") for part in file.relative_to(path).parts)
    )


def square_resize(frames: np.ndarray, size: int) -> np.ndarray:
    """(F, C, H, W) float32 -> (F, C, size, size): centre-pad to a square with each frame's minimum, then resize."""
    count, channels, height, width = frames.shape
    side = max(height, width)
    if height != width:
        padded = np.empty((count, channels, side, side), dtype=np.float32)
        padded[...] = frames.min(axis=(1, 2, 3), keepdims=True)
        top, left = (side - height) // 2, (side - width) // 2
        padded[:, :, top : top + height, left : left + width] = frames
        frames = padded
    if side == size:
        return np.ascontiguousarray(frames, dtype=np.float32)
    resized = [
        torch.nn.functional.interpolate(
            torch.from_numpy(np.ascontiguousarray(frames[start : start + RESIZE_CHUNK], dtype=np.float32)),
            size=(size, size), mode="bilinear", antialias=True, align_corners=False,
        ).numpy()
        for start in range(0, count, RESIZE_CHUNK)
    ]
    return np.concatenate(resized)


def _parse_window(window: Window) -> tuple[str | None, float, float] | None:
    """(preset name or None, low, high) for a window argument; None when no window is asked for."""
    if window is None:
        return None
    preset = None
    if isinstance(window, str):
        text = window.strip().lower()
        if text in CT_WINDOWS:
            preset = text
            centre, width = CT_WINDOWS[text]
        else:
            try:
                centre, width = (float(part) for part in text.split(","))
            except ValueError:
                raise InvalidArgumentError(
                    f"unknown window {window!r}: use a preset ({', '.join(CT_WINDOWS)}) or 'centre,width'"
                ) from None
    else:
        try:
            centre, width = (float(value) for value in window)
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"window must be (centre, width), got {window!r}") from None
    if not (np.isfinite(centre) and np.isfinite(width) and width > 0):
        raise InvalidArgumentError(f"window needs a finite centre and a positive width, got {window!r}")
    return preset, centre - width / 2, centre + width / 2


def _normalise_entry(entry: str) -> str:
    entry = entry.strip().replace("\\", "/")
    while entry.startswith("./"):
        entry = entry[2:]
    return entry


def _read_label_table(csv: Path, label_column: str | None) -> tuple[dict[str, str], str]:
    """Labels by normalised file entry, and the name of the label column used."""
    if not csv.is_file():
        raise InvalidDataError(f"labels file {str(csv)!r} does not exist or is not a file")
    try:
        # Read as text so labels such as "007" keep their spelling; empty cells become "".
        table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise InvalidDataError(f"labels file {str(csv)!r} could not be read as CSV: {exc}") from exc
    by_lower = {str(column).strip().lower(): column for column in table.columns}
    file_column = next((by_lower[name] for name in FILE_COLUMNS if name in by_lower), None)
    if file_column is None:
        raise InvalidDataError(
            f"labels file {str(csv)!r} needs a column naming the image files ({', '.join(FILE_COLUMNS)}); "
            f"its columns are {list(table.columns)}"
        )
    others = [column for column in table.columns if column != file_column]
    if label_column is None:
        if len(others) != 1:
            raise InvalidArgumentError(f"labels file {str(csv)!r} has label columns {others}: choose one with label_column")
        label_column = others[0]
    elif label_column not in others:
        raise InvalidArgumentError(f"labels file {str(csv)!r} has no label column {label_column!r} (columns: {others})")
    entries: dict[str, str] = {}
    for entry, label in zip(table[file_column], table[label_column]):
        key = _normalise_entry(entry)
        if entries.get(key, label) != label:
            raise InvalidDataError(f"labels file {str(csv)!r} gives {key!r} two different labels")
        entries[key] = label
    return entries, label_column


def _labels_from_csv(files: list[Path], root: Path, csv: Path, label_column: str | None) -> tuple[list[str], str]:
    """One label per file from a labels CSV (matching rules in the module docstring)."""
    entries, column = _read_label_table(Path(csv), label_column)
    names = Counter(file.name for file in files)
    labels, used = [], set()
    for file in files:
        relative = file.relative_to(root).as_posix()
        keys = [relative, file.resolve().as_posix()] + ([file.name] if names[file.name] == 1 else [])
        key = next((key for key in keys if key in entries), None)
        if key is None:
            raise InvalidDataError(f"{str(file)!r} has no row in labels file {str(csv)!r} (looked for {relative!r})")
        if not entries[key].strip():
            raise InvalidDataError(f"{str(file)!r} has an empty {column!r} value in labels file {str(csv)!r}")
        used.add(key)
        labels.append(entries[key].strip())
    if len(entries) > len(used):
        logger.warning("%d row(s) of %s name no image that was read", len(entries) - len(used), csv)
    return labels, column


def _check_channels(channels: Iterable[tuple[int, str]], path: Path) -> None:
    """Refuse a dataset that mixes greyscale and colour images, naming one file of each."""
    example: dict[int, str] = {}
    for count, source in channels:
        example.setdefault(count, source)
    if len(example) > 1:
        raise InvalidDataError(
            f"{str(path)!r} mixes greyscale and colour images (e.g. {example[1]!r} has 1 channel, "
            f"{example[3]!r} has 3); read them as separate datasets"
        )


# --- DICOM -------------------------------------------------------------------------------------


@dataclass
class _DicomFile:
    """The decoded frames of one DICOM file and what ordering and checks need from its header."""

    path: Path
    frames: np.ndarray  # (F, C, size, size) float32 physical values
    modality: str
    unit: str
    series: str
    position: float | None
    instance: int | None
    tag_label: str | None

    @property
    def sources(self) -> list[str]:
        if len(self.frames) == 1:
            return [str(self.path)]
        return [f"{self.path}[{index}]" for index in range(len(self.frames))]


def _has_dicom_preamble(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(132)[128:] == b"DICM"
    except OSError:
        return False


def _kind(ds: Dataset) -> str:
    """What a DICOM file holds, for messages: its modality, else its SOP class."""
    sop_class = ds.get("SOPClassUID") or ds.file_meta.get("MediaStorageSOPClassUID")
    return str(ds.get("Modality") or getattr(sop_class, "name", None) or "unknown")


def _modality_lut(pixels: np.ndarray, ds: Dataset) -> np.ndarray:
    if "RescaleSlope" in ds or "ModalityLUTSequence" in ds:
        return apply_modality_lut(pixels, ds)
    try:  # enhanced multi-frame objects keep the rescale in the shared functional groups
        transform = ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence[0]
    except (AttributeError, IndexError):
        return pixels
    return apply_modality_lut(pixels, transform)


def _decode_error(path: Path, ds: Dataset, exc: Exception) -> InvalidDataError:
    reason = " ".join(str(exc).split())
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if syntax is not None and syntax.is_compressed:
        return InvalidDataError(
            f"{str(path)!r}: its pixel data is compressed as {syntax.name} ({syntax}) and could not be decoded; "
            f"if a decoder is missing, install the optional DICOM codecs: pip install 'synthgen[dicom-codecs]' "
            f"(pydicom: {reason})"
        )
    return InvalidDataError(f"{str(path)!r}: its pixel data could not be decoded: {reason}")


def _physical_frames(path: Path, ds: Dataset) -> tuple[np.ndarray, str]:
    """All frames as float32 (F, C, H, W) physical values, and their unit."""
    try:
        pixels = ds.pixel_array
    except Exception as exc:  # decoders raise assorted types; the user needs the file and the remedy
        raise _decode_error(path, ds, exc) from exc
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if photometric == "PALETTE COLOR":
        pixels = apply_color_lut(pixels, ds)
        entry_bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
        pixels = pixels * (255.0 / (2**entry_bits - 1))
        unit = "pixel"
    elif int(ds.get("SamplesPerPixel", 1)) == 3:
        # pydicom hands YBR data over as RGB; deeper colour is brought to the 8-bit range colour uses here
        bits = int(ds.get("BitsStored", 8))
        pixels = pixels * (255.0 / (2**bits - 1)) if bits > 8 else pixels
        unit = "pixel"
    else:
        grey = _modality_lut(pixels, ds)
        if photometric == "MONOCHROME1":
            # high values display dark: reflect them inside the range the stored bits can hold
            bits = int(ds.get("BitsStored", 16))
            stored = [-(2 ** (bits - 1)), 2 ** (bits - 1) - 1] if ds.get("PixelRepresentation") == 1 else [0, 2**bits - 1]
            ends = _modality_lut(np.array(stored), ds)
            grey = float(np.min(ends)) + float(np.max(ends)) - np.asarray(grey, dtype=np.float64)
        pixels = grey
        rescale_type = str(ds.get("RescaleType", "HU")).strip().upper()
        unit = "HU" if _kind(ds) == "CT" and rescale_type == "HU" else "raw"
    channels = 3 if unit == "pixel" else 1
    frames = np.asarray(pixels, dtype=np.float32).reshape(-1, int(ds.Rows), int(ds.Columns), channels)
    return frames.transpose(0, 3, 1, 2), unit


def _position(ds: Dataset) -> float | None:
    """Distance of the slice along its normal, from ImagePositionPatient and ImageOrientationPatient."""
    try:
        position = np.asarray([float(value) for value in ds.ImagePositionPatient])
        orientation = np.asarray([float(value) for value in ds.ImageOrientationPatient])
    except (AttributeError, TypeError, ValueError):
        return None
    if position.shape != (3,) or orientation.shape != (6,):
        return None
    return float(position @ np.cross(orientation[:3], orientation[3:]))


def _tag_label(path: Path, ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    text = "\\".join(str(part) for part in value) if isinstance(value, MultiValue) else str(value or "")
    if not text.strip():
        raise InvalidDataError(f"{str(path)!r} has no {keyword} value to use as its label")
    return text.strip()


def _instance(ds: Dataset) -> int | None:
    try:
        return int(ds.InstanceNumber)
    except (AttributeError, TypeError, ValueError):
        return None


def _series_order(files: list[_DicomFile]) -> list[_DicomFile]:
    """Series in order of their first file's path; slices by position along the normal, else instance number."""
    series: dict[str, list[_DicomFile]] = {}
    for file in files:
        series.setdefault(file.series, []).append(file)
    ordered: list[_DicomFile] = []
    for members in series.values():
        if all(member.position is not None for member in members):
            ordered += sorted(members, key=lambda m: (m.position, m.instance or 0, str(m.path)))
        else:
            ordered += sorted(members, key=lambda m: (m.instance is None, m.instance or 0, str(m.path)))
    return ordered


def _nothing_found(path: Path, without_pixels: Counter[str], not_dicom: int) -> str:
    skipped = f"; {not_dicom} non-DICOM file(s) skipped" if not_dicom else ""
    if without_pixels:
        kinds = ", ".join(f"{kind}: {count}" for kind, count in sorted(without_pixels.items()))
        total = sum(without_pixels.values())
        return f"{str(path)!r}: no images found: {total} DICOM file(s), none with pixel data ({kinds}){skipped}"
    if not_dicom:
        return f"{str(path)!r}: no images found: {not_dicom} file(s), none of them DICOM"
    return f"{str(path)!r}: no images found: it contains no files"


class DicomFolderReader(ImageReader):
    """Every DICOM file with pixel data under a folder (or one DICOM file), as 2-D images.

    * Files are recognised by the ``DICM`` marker of the DICOM file format; other files are skipped
      and counted. DICOM files without pixel data (RT plans, structured reports, DICOMDIR) are
      skipped too; when nothing with pixels is left the error says what was found.
    * Series (``SeriesInstanceUID``) come in the order of their first file's path; slices within a
      series by ``ImagePositionPatient`` projected on the slice normal, or by ``InstanceNumber``
      when a slice has no position. Multi-frame files are split into frames, in file order.
    * The modality LUT (rescale slope/intercept or LUT) is applied, so CT is in HU.
      ``MONOCHROME1`` is inverted within the range its stored bits can hold. Palette colour is
      expanded; colour images (RGB, YBR) keep 3 channels on a 0..255 scale.
    * Intensity range: ``window`` if given (a CT preset or (centre, width)); otherwise CT uses
      ``CT_FULL_RANGE`` (-1024..3071 HU) and other greyscale modalities the 1st..99.5th percentile
      of all pixels after resizing. Values outside are clipped.
    * All images must share one modality (and unit) and one channel count.
    * Labels: a CSV (see the module docstring) or ``label_tag``, a DICOM keyword read from each file.
    """

    name = "dicom"

    @classmethod
    def can_read(cls, path: Path) -> bool:
        return any(_has_dicom_preamble(file) for file in _visible_files(Path(path)))

    def read(
        self,
        path: Path,
        *,
        labels: Path | None = None,
        label_column: str | None = None,
        label_tag: str | None = None,
        image_size: int = 64,
        window: Window = None,
    ) -> ImageSet:
        path = Path(path)
        _check_image_size(image_size)
        _check_label_options(labels, label_column, label_tag)
        if label_tag is not None:
            tag = tag_for_keyword(label_tag)
            if tag is None or dictionary_VR(tag) == "SQ":
                raise InvalidArgumentError(
                    f"label_tag {label_tag!r} is not a DICOM keyword with a plain value (e.g. SeriesDescription)"
                )
        chosen_window = _parse_window(window)
        found: list[_DicomFile] = []
        without_pixels: Counter[str] = Counter()
        not_dicom = 0
        for file in _visible_files(path):
            try:
                ds = pydicom.dcmread(file, force=False)
            except InvalidDicomError:
                not_dicom += 1
                continue
            except Exception as exc:  # a damaged header raises assorted errors from the parser
                raise InvalidDataError(f"{str(file)!r} could not be read as DICOM: {exc}") from exc
            if not any(keyword in ds for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
                without_pixels[_kind(ds)] += 1
                continue
            frames, unit = _physical_frames(file, ds)
            found.append(
                _DicomFile(
                    path=file,
                    frames=square_resize(frames, image_size),
                    modality=_kind(ds),
                    unit=unit,
                    series=str(ds.get("SeriesInstanceUID", "")),
                    position=_position(ds),
                    instance=_instance(ds),
                    tag_label=_tag_label(file, ds, label_tag) if label_tag else None,
                )
            )
        if not found:
            raise InvalidDataError(_nothing_found(path, without_pixels, not_dicom))
        _check_channels(((file.frames.shape[1], str(file.path)) for file in found), path)
        kinds = Counter((file.modality, file.unit) for file in found)
        if len(kinds) > 1:
            listed = ", ".join(f"{modality} ({unit}): {count}" for (modality, unit), count in sorted(kinds.items()))
            raise InvalidDataError(
                f"{str(path)!r} mixes image kinds that cannot share one intensity scale ({listed}); read them separately"
            )
        ordered = _series_order(found)
        counts = [len(file.frames) for file in ordered]
        if labels is not None:
            root = path if path.is_dir() else path.parent
            file_labels, label_name = _labels_from_csv([file.path for file in ordered], root, Path(labels), label_column)
        elif label_tag is not None:
            file_labels, label_name = [str(file.tag_label) for file in ordered], label_tag
        else:
            file_labels, label_name = [""] * len(ordered), None
        physical = np.concatenate([file.frames for file in ordered])
        modality, unit = ordered[0].modality, ordered[0].unit
        if unit == "pixel":
            if chosen_window is not None:
                raise InvalidArgumentError(f"window applies to greyscale images; {str(path)!r} holds colour images")
            low, high = 0.0, 255.0
        else:
            low, high = _grey_range(physical, unit, modality, chosen_window)
        mapping = IntensityMapping(low, high, unit, modality, "RGB" if unit == "pixel" else "MONOCHROME2")
        logger.info(
            "read %d image(s) from %d DICOM file(s) in %s (%d without pixel data and %d non-DICOM file(s) skipped)",
            len(physical), len(ordered), path, sum(without_pixels.values()), not_dicom,
        )
        return ImageSet(
            images=mapping.to_unit(physical),
            labels=np.repeat(np.array(file_labels, dtype=object), counts),
            mapping=mapping,
            label_name=label_name,
            sources=[source for file in ordered for source in file.sources],
        )


def _grey_range(
    physical: np.ndarray, unit: str, modality: str, window: tuple[str | None, float, float] | None
) -> tuple[float, float]:
    if window is not None:
        preset, low, high = window
        if preset is not None and unit != "HU":
            raise InvalidArgumentError(
                f"window preset {preset!r} is in HU and needs CT images; these are {modality}: give window=(centre, width)"
            )
        return low, high
    if unit == "HU":
        return CT_FULL_RANGE
    low, high = (float(value) for value in np.percentile(physical, DATA_PERCENTILES))
    return low, high if high > low else low + 1.0  # a constant image set still needs a non-empty range


# --- PNG / JPEG --------------------------------------------------------------------------------


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
        return path.is_dir() and any(_is_picture(file) for file in _visible_files(path))

    def read(
        self,
        path: Path,
        *,
        labels: Path | None = None,
        label_column: str | None = None,
        label_tag: str | None = None,
        image_size: int = 64,
        window: Window = None,
    ) -> ImageSet:
        path = Path(path)
        _check_image_size(image_size)
        _check_label_options(labels, label_column, label_tag)
        if label_tag is not None:
            raise InvalidArgumentError(
                "label_tag names a DICOM tag; PNG/JPEG images take labels from sub-folders or a labels CSV"
            )
        if window is not None:
            raise InvalidArgumentError("window applies to DICOM images; PNG/JPEG images are used as stored")
        files = [file for file in _visible_files(path) if _is_picture(file)] if path.is_dir() else []
        if not files:
            raise InvalidDataError(f"{str(path)!r}: no images found: no PNG or JPEG files in it")
        arrays, depths = [], {}
        for file in files:
            try:
                with Image.open(file) as image:
                    array, depth = _picture_array(image)
            except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
                raise InvalidDataError(f"{str(file)!r} could not be read as an image: {exc}") from exc
            depths.setdefault(depth, str(file))
            arrays.append(array)
        _check_channels(((len(array), str(file)) for array, file in zip(arrays, files)), path)
        if len(depths) > 1:
            raise InvalidDataError(
                f"{str(path)!r} mixes 8-bit and 16-bit images (e.g. {depths[8]!r} and {depths[16]!r}); convert them to one depth"
            )
        images = np.concatenate([square_resize(array[None], image_size) for array in arrays])
        if labels is not None:
            file_labels, label_name = _labels_from_csv(files, path, Path(labels), label_column)
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


# --- NumPy .npz (MedMNIST layout) --------------------------------------------------------------


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

    def read(
        self,
        path: Path,
        *,
        labels: Path | None = None,
        label_column: str | None = None,
        label_tag: str | None = None,
        image_size: int = 64,
        window: Window = None,
    ) -> ImageSet:
        path = Path(path)
        _check_image_size(image_size)
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


def read_images(
    path: str | Path,
    *,
    reader: str | None = None,
    labels: str | Path | None = None,
    label_column: str | None = None,
    label_tag: str | None = None,
    image_size: int = 64,
    window: Window = None,
) -> ImageSet:
    """Read images with the installed reader that recognises ``path`` (or the one named ``reader``).

    A ``.npz`` file goes to ``npz``, a folder with DICOM files to ``dicom``, a folder with PNG/JPEG
    files to ``folder``. A folder that several readers recognise (DICOM and PNG files side by side)
    needs ``reader``; one that none recognises is an error naming it.
    """
    path = Path(path)
    if not path.exists():
        raise InvalidDataError(f"{str(path)!r} does not exist")
    readers = image_readers()
    if reader is None:
        able = [name for name, reader_class in sorted(readers.items()) if reader_class.can_read(path)]
        if not able:
            raise InvalidDataError(
                f"{str(path)!r}: no images found (no installed image reader recognises it; readers: {', '.join(sorted(readers))})"
            )
        if len(able) > 1:
            raise InvalidDataError(
                f"{str(path)!r} could be read by several image readers ({', '.join(able)}); choose one with reader="
            )
        reader = able[0]
    elif reader not in readers:
        raise InvalidArgumentError(f"no image reader named {reader!r} is installed (available: {', '.join(sorted(readers))})")
    return readers[reader]().read(
        path,
        labels=None if labels is None else Path(labels),
        label_column=label_column,
        label_tag=label_tag,
        image_size=image_size,
        window=window,
    )
