"""What the image readers share (plugins' too): reading rules, labels CSVs, windows, square resizing.

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
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from synthgen.errors import InvalidArgumentError, InvalidDataError
from synthgen.images.types import Window

logger = logging.getLogger(__name__)

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
#: Names a labels CSV may give its file column, in order of preference.
FILE_COLUMNS = ("file", "filename", "path")
#: Images resized per torch call; bounds the memory of a large .npz.
RESIZE_CHUNK = 1024


def check_label_options(labels: Path | None, label_column: str | None, label_tag: str | None) -> None:
    if labels is not None and label_tag is not None:
        raise InvalidArgumentError("give labels (a CSV) or label_tag (a DICOM keyword), not both")
    if label_column is not None and labels is None:
        raise InvalidArgumentError(f"label_column {label_column!r} needs a labels CSV")


def visible_files(path: Path) -> list[Path]:
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


def parse_window(window: Window) -> tuple[str | None, float, float] | None:
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


def labels_from_csv(files: list[Path], root: Path, csv: Path, label_column: str | None) -> tuple[list[str], str]:
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


def check_channels(channels: Iterable[tuple[int, str]], path: Path) -> None:
    """Refuse a dataset that mixes greyscale and colour images, naming one file of each."""
    example: dict[int, str] = {}
    for count, source in channels:
        example.setdefault(count, source)
    if len(example) > 1:
        raise InvalidDataError(
            f"{str(path)!r} mixes greyscale and colour images (e.g. {example[1]!r} has 1 channel, "
            f"{example[3]!r} has 3); read them as separate datasets"
        )


def grey_range(
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
