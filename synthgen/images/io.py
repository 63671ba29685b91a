"""Writing image sets: de-identified DICOM built from scratch, PNG, or NumPy ``.npz``.

Each call publishes one new directory atomically: everything is written into a hidden temporary
directory beside the target, which is renamed onto the target only when every file is written, so
a failed run leaves nothing behind. Next to the images, ``labels.csv`` lists each image's file and
label (the label column is named after the set's ``label_name``, else ``label``), in image order.

DICOM files never copy anything from input data: every attribute comes from an allow-list filled
here. One call is one synthetic patient, study and series with fresh UIDs; CT in HU is written as
CT Image Storage with a rescale (``RescaleType`` HU), everything else as Secondary Capture
(``ConversionType`` SYN). Pixel values read back through the modality LUT equal the written
physical values to the precision of the stored integers (1 HU for CT, 1/65535 of the intensity range
for other greyscale, 1 grey level for RGB).
"""
from __future__ import annotations

import csv
import re
import secrets
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)
from pydicom.valuerep import format_number_as_ds

from synthgen._files import atomic_directory
from synthgen._version import __version__
from synthgen.choices import IMAGE_FORMATS
from synthgen.errors import InvalidArgumentError, InvalidDataError
from synthgen.images.common import FILE_COLUMNS
from synthgen.images.reading import read_images
from synthgen.images.types import ImageSet, IntensityMapping

MANIFEST = "labels.csv"
#: Manifest column marking images that are not patients (augmented sets).
SYNTHETIC_COLUMN = "synthetic"
NPZ_NAME = "images.npz"
DEIDENTIFICATION_METHOD = "SYNTHETIC IMAGE FROM SYNTHGEN; NO SOURCE ATTRIBUTES"
#: DICOM LO (long string) values hold at most 64 characters.
LO_LENGTH = 64


def write_images(images: ImageSet, directory: str | Path, fmt: str = "dicom", *,
                 synthetic: np.ndarray | None = None) -> list[Path]:
    """Write ``images`` in physical values into the new directory ``directory``.

    ``fmt`` is ``"dicom"`` (one file per image), ``"png"`` (8-bit, one sub-folder per label, the
    mapping's [low, high] spread over 0..255; unlabelled images at the top) or ``"npz"`` (one
    ``images.npz`` with float32 ``images`` shaped (N, H, W) or (N, H, W, 3), string ``labels`` and
    the ``unit``). ``directory`` must not exist or be empty. Returns the file holding each image,
    in image order (for npz, the same file N times). ``synthetic`` (one bool per image) adds a
    ``synthetic`` column to ``labels.csv``, so augmented sets say which images are not patients.
    """
    if fmt not in IMAGE_FORMATS:
        raise InvalidArgumentError(f"unknown image format {fmt!r}; use one of {', '.join(IMAGE_FORMATS)}")
    if len(images) == 0:
        raise InvalidArgumentError("there are no images to write")
    target = Path(directory)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InvalidArgumentError(f"{str(target)!r} already exists and is not an empty directory; choose a new output directory")
    with atomic_directory(target) as staging:
        files = {"dicom": _write_dicom, "png": _write_png, "npz": _write_npz}[fmt](images, staging)
        _write_manifest(staging / MANIFEST, files, images, synthetic)
    return [target / name for name in files]


def _file_names(count: int, suffix: str) -> list[str]:
    width = max(5, len(str(count)))
    return [f"{number:0{width}d}{suffix}" for number in range(1, count + 1)]


def _manifest_label_column(images: ImageSet) -> str:
    return images.label_name if images.label_name and images.label_name.lower() not in FILE_COLUMNS else "label"


def _write_manifest(path: Path, files: list[str], images: ImageSet, synthetic: np.ndarray | None) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if synthetic is None:
            writer.writerow(["file", _manifest_label_column(images)])
            writer.writerows(zip(files, images.labels))
        else:
            writer.writerow(["file", _manifest_label_column(images), SYNTHETIC_COLUMN])
            writer.writerows(zip(files, images.labels, np.asarray(synthetic, dtype=bool)))


def read_written_images(path: str | Path, mapping: IntensityMapping, image_size: int,
                        label_name: str | None) -> ImageSet:
    """Read back a folder that :func:`write_images` wrote (any format), on ``mapping``'s intensity scale.

    This is how synthetic images are scored against the real ones they imitate: DICOM files are
    windowed to the model's range, and labels come from the ``labels.csv`` manifest.
    """
    path = Path(path)
    archive = path / NPZ_NAME if path.is_dir() else path
    if archive.suffix == ".npz" and archive.is_file():
        with np.load(archive, allow_pickle=False) as stored:
            if "images" not in stored.files:
                raise InvalidDataError(f"{str(archive)!r} was not written by synthgen (no 'images' array)")
            physical = stored["images"].astype(np.float32)
            labels = stored["labels"].astype(object) if "labels" in stored.files else np.full(len(physical), "", object)
        pixels = physical[:, None] if physical.ndim == 3 else physical.transpose(0, 3, 1, 2)
        return ImageSet(mapping.to_unit(pixels), labels, mapping, label_name)
    manifest = path / MANIFEST
    if not any(path.rglob("*.dcm")):  # PNG: the label is the sub-folder, as written
        images = read_images(path, reader="folder", image_size=image_size)
        return ImageSet(images.images, images.labels, mapping, label_name, images.sources)
    column = label_name if label_name and label_name.lower() not in FILE_COLUMNS else "label"
    window = None if mapping.photometric == "RGB" else f"{(mapping.low + mapping.high) / 2:.10g},{mapping.high - mapping.low:.10g}"
    return read_images(path, reader="dicom", labels=manifest if manifest.is_file() else None,
                       label_column=column if manifest.is_file() else None, image_size=image_size, window=window)


def _to_8bit(physical: np.ndarray, mapping: IntensityMapping) -> np.ndarray:
    scaled = (physical - mapping.low) * (255.0 / (mapping.high - mapping.low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


# --- DICOM -------------------------------------------------------------------------------------


def _lo(text: str) -> str:
    """``text`` as a valid LO value: no backslash (the value separator), at most 64 characters."""
    return text.replace("\\", "/")[:LO_LENGTH]


def _encoder(mapping: IntensityMapping) -> tuple[np.dtype, float, float]:
    """Stored dtype, rescale slope and intercept; slope and intercept exactly as the DS strings will read back."""
    if mapping.photometric == "RGB":
        if (mapping.low, mapping.high) != (0.0, 255.0):
            raise InvalidArgumentError(
                f"colour images are written as 8-bit DICOM and need the intensity range 0..255, got {mapping.low}..{mapping.high}"
            )
        return np.dtype(np.uint8), 1.0, 0.0
    if mapping.unit == "HU":
        return np.dtype(np.int16), 1.0, 0.0
    slope = float(format_number_as_ds((mapping.high - mapping.low) / 65535))
    return np.dtype(np.uint16), slope, float(format_number_as_ds(mapping.low))


def _stored(pixels: np.ndarray, dtype: np.dtype, slope: float, intercept: float) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.clip(np.rint((pixels.astype(np.float64) - intercept) / slope), info.min, info.max).astype(dtype)


def _write_dicom(images: ImageSet, folder: Path) -> list[str]:
    mapping = images.mapping
    dtype, slope, intercept = _encoder(mapping)
    is_ct = mapping.unit == "HU"
    now = datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    shared = Dataset()  # one synthetic patient, study and series per call
    shared.SpecificCharacterSet = "ISO_IR 192"  # UTF-8, for labels beyond ASCII
    shared.SOPClassUID = CTImageStorage if is_ct else SecondaryCaptureImageStorage
    shared.ImageType = ["DERIVED", "SECONDARY", "AXIAL"] if is_ct else ["DERIVED", "SECONDARY"]
    shared.InstanceCreationDate = shared.StudyDate = shared.SeriesDate = shared.ContentDate = date
    shared.InstanceCreationTime = shared.StudyTime = shared.SeriesTime = shared.ContentTime = time
    shared.AccessionNumber = ""
    shared.Modality = "CT" if is_ct else mapping.modality
    shared.Manufacturer = "synthgen"
    shared.ReferringPhysicianName = ""
    shared.StudyDescription = "SYNTHETIC"
    shared.ManufacturerModelName = "synthgen"
    shared.SoftwareVersions = __version__
    shared.PatientName = "SYNTHETIC"
    shared.PatientID = f"SYN{secrets.token_hex(8).upper()}"  # random: encodes nothing about the inputs
    shared.PatientBirthDate = ""
    shared.PatientSex = ""
    shared.PatientIdentityRemoved = "YES"
    shared.DeidentificationMethod = DEIDENTIFICATION_METHOD
    shared.StudyInstanceUID = generate_uid()
    shared.SeriesInstanceUID = generate_uid()
    shared.StudyID = "SYNTHETIC"
    shared.SeriesNumber = 1
    shared.BurnedInAnnotation = "NO"
    if is_ct:
        shared.FrameOfReferenceUID = generate_uid()
        shared.PositionReferenceIndicator = ""
        # Nominal geometry: the slices are independent samples and their true spacing is unknown.
        shared.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        shared.PixelSpacing = [1, 1]
        shared.SliceThickness = ""
        shared.KVP = ""
        shared.AcquisitionNumber = ""
    else:
        shared.ConversionType = "SYN"
        shared.PatientOrientation = ""
    if mapping.photometric != "RGB":
        shared.RescaleIntercept = format_number_as_ds(intercept)
        shared.RescaleSlope = format_number_as_ds(slope)
        shared.RescaleType = "HU" if is_ct else "US"
        shared.WindowCenter = format_number_as_ds((mapping.low + mapping.high) / 2)
        shared.WindowWidth = format_number_as_ds(mapping.high - mapping.low)
    label_name = images.label_name or "label"
    names = _file_names(len(images), ".dcm")
    for number, (pixels, label, name) in enumerate(zip(images.physical(), images.labels, names), start=1):
        ds = Dataset()
        ds.update(shared)
        ds.SOPInstanceUID = generate_uid()
        ds.SeriesDescription = _lo(f"SYNTHETIC {label}".strip())
        ds.ImageComments = f"SYNTHETIC image generated by synthgen; {label_name}: {label}"
        ds.InstanceNumber = number
        if is_ct:
            ds.ImagePositionPatient = [0, 0, number]
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds.file_meta.ImplementationVersionName = f"SYNTHGEN_{__version__}"[:16]
        if mapping.photometric == "RGB":
            ds.set_pixel_data(_stored(pixels.transpose(1, 2, 0), dtype, slope, intercept), "RGB", 8, generate_instance_uid=False)
        else:
            ds.set_pixel_data(_stored(pixels[0], dtype, slope, intercept), "MONOCHROME2", 16, generate_instance_uid=False)
        pydicom.dcmwrite(folder / name, ds, enforce_file_format=True)
    return names


# --- PNG and npz -------------------------------------------------------------------------------


def _label_folders(labels: np.ndarray) -> dict[str, str]:
    """A safe folder name per label ("" stays at the top); two labels may not share a name."""
    folders: dict[str, str] = {}
    for label in sorted(set(labels)):
        name = re.sub(r"[^\w.-]", "_", label)
        if name.startswith("."):
            name = "_" + name[1:]  # a leading dot would hide the folder from readers
        clash = next((other for other, taken in folders.items() if taken == name), None)
        if clash is not None:
            raise InvalidArgumentError(f"labels {clash!r} and {label!r} would share the PNG folder {name!r}; rename one")
        folders[label] = name
    return folders


def _write_png(images: ImageSet, folder: Path) -> list[str]:
    folders = _label_folders(images.labels)
    names = _file_names(len(images), ".png")
    pixels = _to_8bit(images.physical(), images.mapping)
    written = []
    for image, label, name in zip(pixels, images.labels, names):
        relative = Path(folders[label]) / name
        (folder / relative).parent.mkdir(exist_ok=True)
        picture = Image.fromarray(image[0]) if len(image) == 1 else Image.fromarray(image.transpose(1, 2, 0), "RGB")
        picture.save(folder / relative)
        written.append(relative.as_posix())
    return written


def _write_npz(images: ImageSet, folder: Path) -> list[str]:
    physical = images.physical()
    channels_last = physical[:, 0] if physical.shape[1] == 1 else physical.transpose(0, 2, 3, 1)
    np.savez(
        folder / NPZ_NAME,
        images=np.ascontiguousarray(channels_last, dtype=np.float32),
        labels=np.array(list(images.labels), dtype=str),
        unit=np.array(images.mapping.unit),
    )
    return [NPZ_NAME] * len(images)
