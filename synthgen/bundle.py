"""The model file: a zip holding ``model.json`` (everything that is not a tensor) and ``tensors.pt``.

Tensors are read with ``torch.load(weights_only=True)``, which refuses to execute code, and onto
the CPU, so a model trained on a GPU loads anywhere. Files are written to a temporary name and
renamed, so a failed save never leaves a half-written model behind.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from synthgen._files import publish
from synthgen.errors import ModelFileError

FORMAT = "synthgen-model"
FORMAT_VERSION = 1
_MANIFEST = "model.json"
_TENSORS = "tensors.pt"


def write_bundle(path: str | Path, manifest: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Path:
    """Write ``manifest`` (JSON-compatible) and ``tensors`` to ``path`` atomically."""
    path = Path(path)
    document = {"format": FORMAT, "format_version": FORMAT_VERSION, **manifest}
    buffer = io.BytesIO()
    torch.save({name: t.detach().cpu().contiguous() for name, t in tensors.items()}, buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as raw, zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(_MANIFEST, json.dumps(document, indent=1, allow_nan=False))
            archive.writestr(_TENSORS, buffer.getvalue())
        publish(Path(temporary), path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def read_bundle(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read a model file, refusing anything that is not an intact synthgen model of a known version."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {str(path)!r} does not exist")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if not {_MANIFEST, _TENSORS} <= names:
                raise ModelFileError(f"{str(path)!r} is a zip file but not a synthgen model (no {_MANIFEST}/{_TENSORS})")
            manifest = json.loads(archive.read(_MANIFEST))
            tensor_bytes = archive.read(_TENSORS)
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, zipfile.LargeZipFile) as exc:
        raise ModelFileError(f"{str(path)!r} is not a synthgen model file, or it is truncated or corrupt ({exc})") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{str(path)!r}: the model description is corrupt ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelFileError(f"{str(path)!r} is not a synthgen model file")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{str(path)!r} uses model format version {manifest.get('format_version')!r}; "
            f"this synthgen reads version {FORMAT_VERSION}"
        )
    try:
        tensors = torch.load(io.BytesIO(tensor_bytes), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for bad or unsafe payloads
        raise ModelFileError(f"{str(path)!r}: the model weights are corrupt or unsafe to load ({exc})") from exc
    if not isinstance(tensors, dict) or not all(isinstance(t, torch.Tensor) for t in tensors.values()):
        raise ModelFileError(f"{str(path)!r}: the model weights are not a plain mapping of tensors")
    return manifest, tensors
