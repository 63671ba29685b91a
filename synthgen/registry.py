"""Plugin discovery through Python entry points.

Built-in transformers register in synthgen's own ``pyproject.toml`` under the same group a third
party uses, so there is exactly one way in. A transformer's name is what metadata selects: the
column's ``"transformer"`` key if present, otherwise its ``"sdtype"``.
"""
from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import Any

from synthgen.data.base import ColumnTransformer
from synthgen.errors import MetadataError, PluginError

TRANSFORMER_GROUP = "synthgen.transformers"


@cache
def transformers() -> dict[str, type[ColumnTransformer]]:
    """All installed transformers by name; loaded once per process."""
    found: dict[str, type[ColumnTransformer]] = {}
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
        if not (isinstance(loaded, type) and issubclass(loaded, ColumnTransformer)):
            raise PluginError(f"transformer plugin {entry.name!r} ({entry.value}) is not a ColumnTransformer subclass")
        found[entry.name] = loaded
    return found


def transformer_for(column_name: str, spec: dict[str, Any]) -> type[ColumnTransformer]:
    """The transformer class a metadata column spec selects."""
    name = spec.get("transformer") or spec.get("sdtype")
    available = transformers()
    if name not in available:
        raise MetadataError(
            f"column {column_name!r}: no transformer named {name!r} is installed "
            f"(available: {', '.join(sorted(available))})"
        )
    return available[name]
