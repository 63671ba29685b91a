"""What the commands share: paths, the one-line errors, conditions, the image-reading options, and the
refusal of options given for the other kind of input (tables vs images)."""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from synthgen._files import describe_error
from synthgen.errors import InvalidArgumentError, SynthgenError

PATH = click.Path(path_type=Path)


def friendly_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Show synthgen's own errors as one line and exit 1, instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except SynthgenError as exc:
            raise click.ClickException(str(exc)) from exc
        except OSError as exc:  # the machine's refusal (disk full, permissions) on a file synthgen did not expect
            where = f"{exc.filename!r}: " if exc.filename else ""
            raise click.ClickException(f"{where}{describe_error(exc)}") from exc

    return wrapper


def split_condition(pair: str, columns: list[str]) -> tuple[str, str]:
    """COLUMN=VALUE split at the first '=' that leaves a known column name, so a column named ``x=y``
    can be conditioned (``x=y=a``); with none known, at the first '=' (the error then names the column)."""
    cuts = [i for i, character in enumerate(pair) if character == "="]
    if not cuts or cuts[0] == 0:
        raise InvalidArgumentError(f"--condition {pair!r}: write it as COLUMN=VALUE, e.g. --condition sex=F")
    cut = next((i for i in cuts if pair[:i] in columns), cuts[0])
    return pair[:cut], pair[cut + 1:]


def parse_conditions(pairs: tuple[str, ...], columns: list[str]) -> dict[str, str]:
    return dict(split_condition(pair, columns) for pair in pairs)


def image_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options that say how to read a folder of images (shared by fit and augment)."""
    options = [
        click.option("--labels", "labels_path", type=PATH, help="Images: CSV naming each file (file/filename/path column) and its label."),
        click.option("--label-column", help="Images: the label column of --labels."),
        click.option("--label-tag", help="Images: DICOM attribute holding the label, e.g. SeriesDescription."),
        click.option("--image-size", type=int, help="Images: side in pixels after resizing (multiple of 8, 16-128). [default: 64]"),
        click.option("--window", help="DICOM: intensity window, a CT preset (soft-tissue, lung, bone, brain) or CENTRE,WIDTH."),
        click.option("--reader", help="Images: reader to use (dicom, folder, npz) when a folder holds several kinds."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def is_image_input(path: Path) -> bool:
    return path.is_dir() or path.suffix.lower() == ".npz"


def read_image_folder(path: Path, options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The images at ``path`` and the reading options, as recorded in the model for later re-reading."""
    from synthgen.images.reading import read_images
    reading: dict[str, Any] = {
        "reader": options.get("reader"),
        "labels": str(options["labels_path"]) if options.get("labels_path") else None,
        "label_column": options.get("label_column"),
        "label_tag": options.get("label_tag"),
        "image_size": options.get("image_size") or 64,
        "window": options.get("window"),
    }
    if reading["label_column"] and not reading["labels"]:
        raise InvalidArgumentError("--label-column needs --labels (the CSV that holds that column)")
    return read_images(path, **reading), reading


#: The options that say how to read images, as ``image_options`` names them.
IMAGE_OPTIONS = ("--labels", "--label-column", "--label-tag", "--image-size", "--window", "--reader")


def refuse(options: Sequence[str], given: bool, applies_to: str) -> None:
    """One error naming every option of ``options`` when any was ``given`` for the wrong kind of input."""
    if given:
        names = ", ".join(options[:-1]) + " and " + options[-1] if len(options) > 1 else options[0]
        raise InvalidArgumentError(f"{names} {'apply' if len(options) > 1 else 'applies'} to {applies_to}")


def refuse_image_options(image_options: dict[str, Any], *others: tuple[str, bool]) -> None:
    """A table was given: refuse the image-reading options (and ``others``, (name, given) pairs)."""
    given = any(value is not None for value in image_options.values()) or any(flag for _, flag in others)
    refuse([*(name for name, _ in others), *IMAGE_OPTIONS], given, "images")
