"""``synthgen.load``: open any model file, whatever kind of synthesizer wrote it.

Synthesizer kinds are found through the ``synthgen.synthesizers`` entry-point group, where the
built-in tabular synthesizer registers like any plugin would.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from synthgen.bundle import COMMON_FIELDS, TRAINING_FIELDS, check_fields, read_bundle
from synthgen.errors import ModelFileError
from synthgen.registry import synthesizers


def load(path: str | Path, device: str | None = None) -> Any:
    """Load a fitted synthesizer from ``path``; ``device`` defaults to the best one available."""
    manifest, tensors = read_bundle(path)
    try:
        check_fields(manifest, COMMON_FIELDS)
        check_fields(manifest["training"], TRAINING_FIELDS, "the training summary", {"seconds": (float,)})
    except ModelFileError as exc:
        raise ModelFileError(f"{str(path)!r}: {exc}") from exc
    kind = manifest["kind"]
    synthesizer_class = synthesizers().get(kind)
    if synthesizer_class is None:
        raise ModelFileError(f"{str(path)!r} holds a {kind!r} model, and no installed synthesizer reads that kind")
    try:
        return synthesizer_class.from_bundle(manifest, tensors, device=device)
    except ModelFileError as exc:
        raise ModelFileError(f"{str(path)!r}: {exc}") from exc
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as exc:
        # A crafted description that slipped past the kind's own checks: still one line, never a traceback.
        raise ModelFileError(f"{str(path)!r}: the model file is inconsistent or from an incompatible synthgen "
                             f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from exc
