"""The image types every reader, model and writer shares: ``IntensityMapping``, ``ImageSet``, ``ImageReader``.

An ``ImageSet`` holds float32 images in [-1, 1] (N, C, H, W) with the ``IntensityMapping`` that
brings network values back to physical units (HU for CT). A reader (``dicom.py``, ``folder.py``,
``npz.py``, or a plugin in the ``synthgen.image_readers`` entry-point group) turns a path into one.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from synthgen.errors import InvalidArgumentError, ModelFileError

UNITS = ("HU", "raw", "pixel")
PHOTOMETRICS = ("MONOCHROME2", "RGB")

Window = tuple[float, float] | str | None


@dataclass(frozen=True)
class ReadRequest:
    """How to read a source, checked once for every reader: labels (a CSV and its column, or a DICOM
    keyword), the side in pixels after resizing, and the intensity window."""

    labels: Path | None = None
    label_column: str | None = None
    label_tag: str | None = None
    image_size: int = 64
    window: Window = None


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

    Subclasses set ``name``, implement ``can_read`` and ``_read``, and register in the
    ``synthgen.image_readers`` entry-point group. ``read`` checks what every reader needs (the image
    size) and hands ``_read`` a ``ReadRequest``. ``window`` is (centre, width), a CT preset name (see
    ``synthgen.images.common.CT_WINDOWS``) or ``"centre,width"``; readers whose data has no such
    notion refuse it.
    """

    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def can_read(cls, path: Path) -> bool:
        """Whether ``path`` looks like this reader's input (cheap: no full decode)."""

    def read(
        self,
        path: str | Path,
        *,
        labels: Path | None = None,
        label_column: str | None = None,
        label_tag: str | None = None,
        image_size: int = 64,
        window: Window = None,
    ) -> ImageSet:
        """All images under ``path``, square, ``image_size`` pixels wide, scaled to [-1, 1]."""
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 4:
            raise InvalidArgumentError(f"image_size must be an integer >= 4, got {image_size!r}")
        return self._read(Path(path), ReadRequest(labels, label_column, label_tag, image_size, window))

    @abstractmethod
    def _read(self, path: Path, request: ReadRequest) -> ImageSet:
        """The reader's own work, on a checked request."""
