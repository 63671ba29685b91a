"""``synthgen.load``: open any model file, whatever kind of synthesizer wrote it.

Synthesizer kinds are found through the ``synthgen.synthesizers`` entry-point group, where the
built-in tabular synthesizer registers like any plugin would.
"""
from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from synthgen.bundle import COMMON_FIELDS, TRAINING_FIELDS, check_fields, read_bundle
from synthgen.errors import ModelFileError, PluginError

SYNTHESIZER_GROUP = "synthgen.synthesizers"


def load(path: str | Path, device: str | None = None) -> Any:
    """Load a fitted synthesizer from ``path``; ``device`` defaults to the best one available."""
    manifest, tensors = read_bundle(path)
    try:
        check_fields(manifest, COMMON_FIELDS)
        check_fields(manifest["training"], TRAINING_FIELDS, "the training summary", {"seconds": (float,)})
    except ModelFileError as exc:
        raise ModelFileError(f"{str(path)!r}: {exc}") from exc
    kind = manifest["kind"]
    matches = [e for e in entry_points(group=SYNTHESIZER_GROUP) if e.name == kind]
    if not matches:
        raise ModelFileError(f"{str(path)!r} holds a {kind!r} model, and no installed synthesizer reads that kind")
    try:
        synthesizer_class = matches[0].load()
    except Exception as exc:
        raise PluginError(f"synthesizer plugin {kind!r} ({matches[0].value}) failed to load: {exc}") from exc
    try:
        return synthesizer_class.from_bundle(manifest, tensors, device=device)
    except ModelFileError as exc:
        raise ModelFileError(f"{str(path)!r}: {exc}") from exc
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as exc:
        # A crafted description that slipped past the kind's own checks: still one line, never a traceback.
        raise ModelFileError(f"{str(path)!r}: the model file is inconsistent or from an incompatible synthgen "
                             f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from exc
