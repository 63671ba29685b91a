"""Plugin discovery through Python entry points.

Built-in transformers register in synthgen's own ``pyproject.toml`` under the same group a third
party uses, so there is exactly one way in. The group holds two kinds of plugin: column
transformers, whose name is what metadata selects (the column's ``"transformer"`` key if present,
otherwise its ``"sdtype"``), and image readers, registered as ``image.<name>`` so that neither kind
can be mistaken for the other.
"""
from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import Any

from synthgen.data.base import ColumnTransformer
from synthgen.data.images import ImageReader
from synthgen.errors import MetadataError, PluginError

TRANSFORMER_GROUP = "synthgen.transformers"
IMAGE_PREFIX = "image."


def _check_kind(name: str, value: str, loaded: object) -> None:
    is_image_name = name.startswith(IMAGE_PREFIX)
    if isinstance(loaded, type) and issubclass(loaded, ImageReader):
        if not is_image_name:
            raise PluginError(f"plugin {name!r} ({value}) is an ImageReader: register it as '{IMAGE_PREFIX}{name}'")
    elif is_image_name:
        raise PluginError(
            f"plugin {name!r} ({value}) is not an ImageReader subclass (names starting with {IMAGE_PREFIX!r} are image readers)"
        )
    elif not (isinstance(loaded, type) and issubclass(loaded, ColumnTransformer)):
        raise PluginError(f"transformer plugin {name!r} ({value}) is not a ColumnTransformer subclass")


@cache
def transformers() -> dict[str, type[ColumnTransformer] | type[ImageReader]]:
    """Every plugin of the group by entry-point name (column transformers and image readers); loaded once."""
    found: dict[str, type[ColumnTransformer] | type[ImageReader]] = {}
    for entry in entry_points(group=TRANSFORMER_GROUP):
        if entry.name in found:
            raise PluginError(
                f"two plugins register transformer {entry.name!r} in {TRANSFORMER_GROUP!r}: "
                f"{found[entry.name].__module__} and {entry.value}"
            )
        try:
            loaded = entry.load()
        except Exception as exc:
            raise PluginError(f"transformer plugin {entry.name!r} ({entry.value}) failed to load: {exc}") from exc
        _check_kind(entry.name, entry.value, loaded)
        found[entry.name] = loaded
    return found


def column_transformers() -> dict[str, type[ColumnTransformer]]:
    """The installed column transformers by name."""
    return {name: found for name, found in transformers().items() if issubclass(found, ColumnTransformer)}


def image_readers() -> dict[str, type[ImageReader]]:
    """The installed image readers by short name (``"dicom"`` for the entry point ``image.dicom``)."""
    return {
        name.removeprefix(IMAGE_PREFIX): found
        for name, found in transformers().items()
        if issubclass(found, ImageReader)
    }


def transformer_for(column_name: str, spec: dict[str, Any]) -> type[ColumnTransformer]:
    """The column transformer class a metadata column spec selects."""
    name = spec.get("transformer") or spec.get("sdtype")
    available = column_transformers()
    if isinstance(name, str) and name.startswith(IMAGE_PREFIX) and name in transformers():
        raise MetadataError(f"column {column_name!r}: {name!r} is an image reader, not a column transformer")
    if name not in available:
        raise MetadataError(
            f"column {column_name!r}: no transformer named {name!r} is installed "
            f"(available: {', '.join(sorted(available))})"
        )
    return available[name]
