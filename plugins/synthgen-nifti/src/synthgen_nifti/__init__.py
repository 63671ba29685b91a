"""NIfTI volumes (``.nii``, ``.nii.gz``) as 2-D axial slices: a synthgen image reader plugin.

Registered as ``nifti`` in the ``synthgen.image_readers`` entry-point group, so
``synthgen.read_images`` and every ``synthgen`` command that reads images pick it for a NIfTI
file or a folder holding NIfTI files.

* Each volume is turned to the closest canonical orientation (RAS+, nibabel's
  ``io_orientation``), whatever its storage order, then cut along the inferior→superior axis.
  A slice is laid out as a DICOM axial image is displayed: anterior at the top, the patient's
  right on the left. So a volume and the DICOM series it came from give the same images, in the
  same order (an oblique affine is taken to its closest axes, not resampled).
* Values go through the header's ``scl_slope``/``scl_inter`` (nibabel's ``get_fdata``).
* NIfTI does not record the modality. A volume is CT, in HU, when the JSON sidecar beside it
  (``name.json``, as dcm2niix and BIDS write it) says ``"Modality": "CT"``, or when a CT window
  preset is asked for; otherwise its values have no unit (``raw``) and its modality is the
  sidecar's or ``OT``. ``window`` and the intensity range then follow the DICOM reader exactly:
  a window if given, else -1024..3071 HU for CT and the 1st..99.5th percentile otherwise.
* Labels: one per volume, shared by all its slices, from a labels CSV (matched as for the other
  readers); without one, the images are unlabelled.
* Volumes come in path order; 2-D files are one slice; a 4-D file is accepted only when its extra
  dimensions have length 1. Unreadable, 4-D, empty and non-finite volumes are refused, naming
  the file.
"""
from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import astuple
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, io_orientation

# synthgen's shared reader helpers, so that sizes, windows, labels and ranges mean here exactly
# what they mean for the built-in readers (this plugin is tested with synthgen's suite).
from synthgen.images.common import (
    check_label_options,
    grey_range,
    labels_from_csv,
    parse_window,
    square_resize,
    visible_files,
)
from synthgen.images.types import ImageReader, ImageSet, IntensityMapping, ReadRequest
from synthgen.errors import InvalidArgumentError, InvalidDataError

__all__ = ["NiftiReader", "is_nifti"]
__version__ = "0.1.0"

logger = logging.getLogger(__name__)

SUFFIXES = (".nii.gz", ".nii")
#: A sidecar's Modality must look like a DICOM modality code: it becomes the output files' Modality.
_MODALITY_CODE = re.compile(r"[A-Z]{2,16}")


def is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(SUFFIXES)


def _stem(path: Path) -> str:
    name = path.name
    return name[: -len(next(suffix for suffix in SUFFIXES if name.lower().endswith(suffix)))]


def _sidecar_modality(file: Path) -> str | None:
    """The ``Modality`` of the JSON sidecar beside ``file``, or None when there is none."""
    sidecar = file.with_name(_stem(file) + ".json")
    if not sidecar.is_file():
        return None
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidDataError(f"{str(sidecar)!r}, the sidecar of {str(file)!r}, could not be read as JSON: {exc}") from exc
    value = meta.get("Modality") if isinstance(meta, dict) else None
    if value is None:
        return None
    code = str(value).strip().upper()
    if not _MODALITY_CODE.fullmatch(code):
        raise InvalidDataError(
            f"{str(sidecar)!r}: Modality {str(value)[:40]!r} is not a DICOM modality code (such as CT, MR, PT)"
        )
    return code


def _axial_slices(file: Path) -> np.ndarray:
    """The volume in ``file`` as float32 (Z, 1, Y, X) physical values, inferior slice first."""
    try:
        image = nib.load(file)
        shape = tuple(int(n) for n in image.shape)
        if len(shape) < 2:
            raise InvalidDataError(f"{str(file)!r} is {len(shape)}-D: an image needs at least 2 dimensions")
        if len(shape) > 3 and any(n != 1 for n in shape[3:]):
            raise InvalidDataError(
                f"{str(file)!r} is {len(shape)}-D ({'x'.join(map(str, shape))}): a time series or several volumes; "
                f"split it into 3-D volumes (e.g. with fslsplit) and read those"
            )
        if 0 in shape:
            raise InvalidDataError(f"{str(file)!r} holds no voxels (shape {'x'.join(map(str, shape))})")
        affine = image.affine
        data = image.get_fdata(dtype=np.float32)  # scl_slope / scl_inter applied
    except InvalidDataError:
        raise
    except Exception as exc:  # nibabel and its decompressors raise assorted types on a damaged file
        raise InvalidDataError(f"{str(file)!r} could not be read as NIfTI: {' '.join(str(exc).split())}") from exc
    data = data.reshape(shape[:3] + (1,) * (3 - len(shape)))  # 2-D: one slice; trailing length-1 axes dropped
    if not np.isfinite(data).all():
        raise InvalidDataError(f"{str(file)!r} holds {int((~np.isfinite(data)).sum())} non-finite voxel value(s) (NaN or inf)")
    orientation = io_orientation(affine)
    if np.isnan(orientation).any():
        raise InvalidDataError(f"{str(file)!r}: its affine gives voxel axis/axes no direction, so it cannot be oriented")
    ras = apply_orientation(data, orientation)  # axes: towards Right, Anterior, Superior
    # (R, A, S) -> (S, A reversed, R reversed): rows run anterior to posterior, columns right to left
    return np.ascontiguousarray(np.flip(ras, (0, 1)).transpose(2, 1, 0)[:, None], dtype=np.float32)


class NiftiReader(ImageReader):
    """NIfTI-1/2 volumes (``.nii``, ``.nii.gz``): one file, or every one under a folder, as axial slices."""

    name = "nifti"

    @classmethod
    def can_read(cls, path: Path) -> bool:
        return any(is_nifti(file) for file in visible_files(Path(path)))

    def _read(self, path: Path, request: ReadRequest) -> ImageSet:
        labels, label_column, label_tag, image_size, window = astuple(request)
        check_label_options(labels, label_column, label_tag)
        if label_tag is not None:
            raise InvalidArgumentError("label_tag names a DICOM tag; NIfTI volumes take their labels from a labels CSV")
        chosen_window = parse_window(window)
        files = [file for file in visible_files(path) if is_nifti(file)]
        if not files:
            what = "it is not a .nii or .nii.gz file" if path.is_file() else "no .nii or .nii.gz files in it"
            raise InvalidDataError(f"{str(path)!r}: no images found: {what}")
        # A CT preset is in HU: asking for one says the volumes are CT, which NIfTI cannot say itself.
        assumed = "CT" if chosen_window is not None and chosen_window[0] is not None else None
        modalities = [_sidecar_modality(file) or assumed or "OT" for file in files]
        kinds = Counter(modalities)
        if len(kinds) > 1:
            listed = ", ".join(f"{modality}: {count}" for modality, count in sorted(kinds.items()))
            raise InvalidDataError(
                f"{str(path)!r} mixes modalities that cannot share one intensity scale ({listed}; from the JSON "
                f"sidecars, OT where there is none); read them separately"
            )
        modality = modalities[0]
        unit = "HU" if modality == "CT" else "raw"
        volumes = [square_resize(_axial_slices(file), image_size) for file in files]
        counts = [len(volume) for volume in volumes]
        if labels is not None:
            root = path if path.is_dir() else path.parent
            file_labels, label_name = labels_from_csv(files, root, Path(labels), label_column)
        else:
            file_labels, label_name = [""] * len(files), None
        physical = np.concatenate(volumes)
        low, high = grey_range(physical, unit, modality, chosen_window)
        mapping = IntensityMapping(low, high, unit, modality, "MONOCHROME2")
        logger.info("read %d slice(s) from %d NIfTI volume(s) in %s", len(physical), len(files), path)
        return ImageSet(
            images=mapping.to_unit(physical),
            labels=np.repeat(np.array(file_labels, dtype=object), counts),
            mapping=mapping,
            label_name=label_name,
            sources=[f"{file}[{index}]" for file, count in zip(files, counts) for index in range(count)],
        )
