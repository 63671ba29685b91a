"""The ``dicom`` reader: every DICOM file with pixel data under a folder (or one file), as 2-D images."""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import astuple, dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut

from synthgen.errors import InvalidArgumentError, InvalidDataError
from synthgen.images.common import (
    check_channels, check_label_options, grey_range, labels_from_csv, parse_window, square_resize, visible_files,
)
from synthgen.images.types import ImageReader, ImageSet, IntensityMapping, ReadRequest

logger = logging.getLogger(__name__)


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
        return any(_has_dicom_preamble(file) for file in visible_files(Path(path)))

    def _read(self, path: Path, request: ReadRequest) -> ImageSet:
        labels, label_column, label_tag, image_size, window = astuple(request)
        check_label_options(labels, label_column, label_tag)
        if label_tag is not None:
            tag = tag_for_keyword(label_tag)
            if tag is None or dictionary_VR(tag) == "SQ":
                raise InvalidArgumentError(
                    f"label_tag {label_tag!r} is not a DICOM keyword with a plain value (e.g. SeriesDescription)"
                )
        chosen_window = parse_window(window)
        found: list[_DicomFile] = []
        without_pixels: Counter[str] = Counter()
        not_dicom = 0
        for file in visible_files(path):
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
        check_channels(((file.frames.shape[1], str(file.path)) for file in found), path)
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
            file_labels, label_name = labels_from_csv([file.path for file in ordered], root, Path(labels), label_column)
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
            low, high = grey_range(physical, unit, modality, chosen_window)
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
