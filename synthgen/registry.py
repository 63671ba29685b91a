"""Plugin discovery through Python entry points: one loader, one group per kind of plugin.

Built-ins register in synthgen's own ``pyproject.toml`` under the same groups a third party uses,
so there is exactly one way in:

- ``synthgen.transformers``: column transformers (``ColumnTransformer``); metadata selects one by
  the column's ``"transformer"`` key if present, otherwise its ``"sdtype"``;
- ``synthgen.image_readers``: image readers (``ImageReader``), chosen by what they can read;
- ``synthgen.synthesizers``: model kinds (a class with ``kind`` and ``from_bundle``), chosen by the
  ``kind`` a model file records.

Each group is checked against its own base, imported only when that group is first loaded (the
image readers pull in pydicom and PIL; a column transformer does not need them).
"""
from __future__ import annotations

from functools import cache
from importlib import import_module
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from synthgen.errors import MetadataError, PluginError

if TYPE_CHECKING:
    from synthgen.data.base import ColumnTransformer
    from synthgen.images.types import ImageReader

TRANSFORMER_GROUP = "synthgen.transformers"
IMAGE_READER_GROUP = "synthgen.image_readers"
SYNTHESIZER_GROUP = "synthgen.synthesizers"
#: What every plugin of a group must be: (module, base class), or None for a duck-typed group.
_BASES: dict[str, tuple[str, str] | None] = {
    TRANSFORMER_GROUP: ("synthgen.data.base", "ColumnTransformer"),
    IMAGE_READER_GROUP: ("synthgen.images.types", "ImageReader"),
    SYNTHESIZER_GROUP: None,
}
_WHAT = {TRANSFORMER_GROUP: "column transformer", IMAGE_READER_GROUP: "image reader", SYNTHESIZER_GROUP: "synthesizer"}


def _check(group: str, name: str, value: str, loaded: object) -> None:
    base = _BASES[group]
    if base is None:  # a synthesizer: what ``load`` calls on it
        if not (isinstance(loaded, type) and callable(getattr(loaded, "from_bundle", None)) and hasattr(loaded, "kind")):
            raise PluginError(f"{_WHAT[group]} plugin {name!r} ({value}) has no 'kind' and 'from_bundle'")
        return
    expected = getattr(import_module(base[0]), base[1])
    if not (isinstance(loaded, type) and issubclass(loaded, expected)):
        raise PluginError(f"{_WHAT[group]} plugin {name!r} ({value}) is not a subclass of {base[1]}")


@cache
def plugins(group: str) -> dict[str, Any]:
    """Every plugin of ``group`` by entry-point name, loaded and checked once."""
    if group not in _BASES:
        raise PluginError(f"unknown plugin group {group!r} (known: {', '.join(_BASES)})")
    found: dict[str, Any] = {}
    for entry in entry_points(group=group):
        if entry.name in found:
            raise PluginError(
                f"two plugins register the {_WHAT[group]} {entry.name!r} in {group!r}: "
                f"{found[entry.name].__module__} and {entry.value}"
            )
        try:
            loaded = entry.load()
        except Exception as exc:
            raise PluginError(f"{_WHAT[group]} plugin {entry.name!r} ({entry.value}) failed to load: {exc}") from exc
        _check(group, entry.name, entry.value, loaded)
        found[entry.name] = loaded
    return found


def column_transformers() -> dict[str, type[ColumnTransformer]]:
    """The installed column transformers by name."""
    return plugins(TRANSFORMER_GROUP)


def image_readers() -> dict[str, type[ImageReader]]:
    """The installed image readers by name (``"dicom"``, ``"folder"``, ``"npz"``, plugins')."""
    return plugins(IMAGE_READER_GROUP)


def synthesizers() -> dict[str, Any]:
    """The installed synthesizer kinds by the ``kind`` name model files record."""
    return plugins(SYNTHESIZER_GROUP)


def transformer_for(column_name: str, spec: dict[str, Any]) -> type[ColumnTransformer]:
    """The column transformer class a metadata column spec selects."""
    name = spec.get("transformer") or spec.get("sdtype")
    available = column_transformers()
    if name not in available:
        raise MetadataError(
            f"column {column_name!r}: no transformer named {name!r} is installed "
            f"(available: {', '.join(sorted(available))})"
        )
    return available[name]
