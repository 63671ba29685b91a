"""``read_images``: the installed reader that recognises a path (or the one named) reads it."""
from __future__ import annotations

from pathlib import Path

from synthgen.errors import InvalidArgumentError, InvalidDataError
from synthgen.images.types import ImageSet, Window
from synthgen.registry import image_readers


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
