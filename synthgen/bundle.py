"""The model file: a zip holding ``model.json`` (everything that is not a tensor) and ``tensors.pt``.

Tensors are read with ``torch.load(weights_only=True)``, which refuses to execute code, and onto
the CPU, so a model trained on a GPU loads anywhere. Files are written to a temporary name and
renamed, so a failed save never leaves a half-written model behind. The zip entries carry a fixed
timestamp, so the same model gives the same bytes.

A model file may come from anyone, so reading it is bounded before anything is decompressed or
allocated: each entry's size and compression ratio are read from the zip directory (Python's
zipfile never returns more bytes than the directory declares), and a network is first built on
PyTorch's ``meta`` device, which allocates nothing, and its shapes compared with the stored tensors.
"""
from __future__ import annotations

import io
import json
import pickle
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from synthgen._files import atomic_path
from synthgen.errors import ModelFileError

FORMAT = "synthgen-model"
#: Version 2 dropped the clock readings (``created``, ``training.seconds``) that version 1 required.
FORMAT_VERSION = 2
#: Versions this synthgen reads: version 1 files load as they are.
READABLE_VERSIONS = (1, 2)
_MANIFEST = "model.json"
_TENSORS = "tensors.pt"
#: The zip format's earliest date: entries carry it instead of the time of writing.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
#: Largest ``model.json`` read. A model's description holds column summaries, never rows: a
#: 5,000-level column takes well under 1 MB.
MAX_MANIFEST_BYTES = 64 * 2**20
#: Largest ``tensors.pt`` read (a generator for a 5,000-level column is about 114 MB).
MAX_TENSOR_BYTES = 2 * 2**30
#: Trained weights hardly compress (about 1.1x) and JSON about 3-10x; a larger ratio on an entry
#: of more than 1 MB is a decompression bomb, whatever its total.
MAX_COMPRESSION_RATIO = 100
_RATIO_FLOOR = 2**20
#: Far more hidden layers than any synthgen network has: bounds even the allocation-free build of
#: a crafted configuration's network.
MAX_HIDDEN_LAYERS = 64


def _megabytes(size: int) -> str:
    return f"{size / 2**20:,.0f} MB"


def write_bundle(path: str | Path, manifest: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Path:
    """Write ``manifest`` (JSON-compatible) and ``tensors`` to ``path`` atomically and reproducibly."""
    path = Path(path)
    document = {"format": FORMAT, "format_version": FORMAT_VERSION, **manifest}
    buffer = io.BytesIO()
    torch.save({name: t.detach().cpu().contiguous() for name, t in tensors.items()}, buffer)
    with atomic_path(path) as temporary, zipfile.ZipFile(temporary, "w") as archive:
        for name, data in ((_MANIFEST, json.dumps(document, indent=1, allow_nan=False).encode()),
                           (_TENSORS, buffer.getvalue())):
            entry = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, data)
    return path


def _check_sizes(path: Path, archive: zipfile.ZipFile) -> None:
    """Refuse entries that would expand beyond the caps, from the zip directory alone."""
    for name, cap in ((_MANIFEST, MAX_MANIFEST_BYTES), (_TENSORS, MAX_TENSOR_BYTES)):
        entry = archive.getinfo(name)
        if entry.file_size > cap:
            raise ModelFileError(f"{str(path)!r}: {name} would expand to {_megabytes(entry.file_size)}, over the "
                                 f"{_megabytes(cap)} a synthgen model can hold; refused")
        if entry.file_size > _RATIO_FLOOR and entry.file_size > MAX_COMPRESSION_RATIO * max(entry.compress_size, 1):
            raise ModelFileError(f"{str(path)!r}: {name} is compressed {entry.file_size / max(entry.compress_size, 1):,.0f}"
                                 f" times ({_megabytes(entry.file_size)}), more than a model's contents allow "
                                 f"({MAX_COMPRESSION_RATIO}x); refused as a decompression bomb")


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
            _check_sizes(path, archive)
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
    if manifest.get("format_version") not in READABLE_VERSIONS:
        raise ModelFileError(
            f"{str(path)!r} uses model format version {manifest.get('format_version')!r}; "
            f"this synthgen reads versions {', '.join(map(str, READABLE_VERSIONS))}"
        )
    try:
        with warnings.catch_warnings():  # torch warns on foreign pickles; the refusal below is the one line shown
            warnings.simplefilter("ignore")
            tensors = torch.load(io.BytesIO(tensor_bytes), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # torch's text advises loading with weights_only=False: never relay it
        raise ModelFileError(f"{str(path)!r}: the model weights hold Python objects or code, not plain tensors; "
                             "refused as unsafe") from exc
    except Exception as exc:  # torch raises several types for damaged payloads
        raise ModelFileError(f"{str(path)!r}: the model weights are corrupt or unsafe to load "
                             f"({type(exc).__name__})") from exc
    if not isinstance(tensors, dict) or not all(isinstance(t, torch.Tensor) for t in tensors.values()):
        raise ModelFileError(f"{str(path)!r}: the model weights are not a plain mapping of tensors")
    return manifest, tensors


Module = TypeVar("Module", bound=torch.nn.Module)


def build_checked(build: Callable[[], Module], weights: dict[str, torch.Tensor], what: str = "generator") -> Module:
    """``build()`` with ``weights`` loaded, once its shapes are known to match them.

    The network the configuration describes is first built on the ``meta`` device, which allocates
    no memory, so a crafted configuration (``generator_dims: [40000, 40000]``) is refused before it
    costs anything: its parameters must match the stored tensors, whose size the zip caps bound.
    """
    with torch.device("meta"):
        skeleton = build()
    expected = {name: tuple(t.shape) for name, t in skeleton.state_dict().items()}
    stored = {name: tuple(t.shape) for name, t in weights.items()}
    if expected != stored:
        missing = sorted(set(expected) - set(stored))
        extra = sorted(set(stored) - set(expected))
        differ = sorted(name for name in set(expected) & set(stored) if expected[name] != stored[name])
        detail = (f"{differ[0]} is {list(stored[differ[0]])} in the file but {list(expected[differ[0]])} in the "
                  "configuration" if differ else f"tensors missing: {missing[:3]}, unexpected: {extra[:3]}")
        raise ModelFileError(f"the {what} weights do not match the configuration ({detail})")
    network = build()
    network.load_state_dict(weights)
    return network


#: The fields every model kind stores, with the types ``synthgen info`` and ``load`` rely on.
COMMON_FIELDS: dict[str, tuple[type, ...]] = {
    "kind": (str,), "synthgen_version": (str,), "seed": (int,), "config": (dict,), "training": (dict,),
}
#: The training summary's fields that every kind stores.
TRAINING_FIELDS: dict[str, tuple[type, ...]] = {"steps": (int,), "batch_size": (int,), "device": (str,)}


def check_fields(record: Any, fields: dict[str, tuple[type, ...]], where: str = "the model description",
                 optional: dict[str, tuple[type, ...]] | None = None) -> dict[str, Any]:
    """``record`` as a mapping holding each of ``fields`` with one of its types (and ``optional`` ones
    when present), or a :class:`ModelFileError` naming the first field that is missing or ill-typed.

    A crafted file reaches this before anything is built from it, so every later step can trust the
    types (``"training": null`` would otherwise fail deep inside ``synthgen info``).
    """
    if not isinstance(record, dict):
        raise ModelFileError(f"{where} is {_kind(record)}, not a mapping")
    for key, kinds in {**fields, **(optional or {})}.items():
        if key not in record:
            if key in fields:
                raise ModelFileError(f"{where} lacks {key!r}")
            continue
        value = record[key]
        numeric = float in kinds and isinstance(value, int)
        if (not isinstance(value, kinds) and not numeric) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join("null" if kind is type(None) else kind.__name__ for kind in kinds)
            raise ModelFileError(f"{where}: {key!r} is {_kind(value)}, not {names}")
    return record


def _kind(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, (dict, list)) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."
