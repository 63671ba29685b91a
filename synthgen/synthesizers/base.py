"""What every synthesizer kind shares: the seed, the holdout check, the fitted check, describe and save.

A kind (tabular, image, sequence) subclasses ``Synthesizer``, sets ``kind`` and, in its one
``_set_fitted``, ``config_``, ``seed_``, ``generator_``, ``training_`` and ``created_``; it adds
its own fields to ``describe`` and its own tensors to ``save``.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar, TypeVar, cast

import numpy as np
import torch

from synthgen._version import __version__
from synthgen.bundle import write_bundle
from synthgen.errors import InvalidArgumentError, ModelFileError, NotFittedError

T = TypeVar("T")

#: The largest holdout share: beyond half the data, the model would learn from the smaller part.
MAX_HOLDOUT = 0.5
#: What ``from_bundle`` turns into one ``ModelFileError`` line when a crafted description slips
#: past the field checks.
BUNDLE_ERRORS = (KeyError, TypeError, ValueError, RuntimeError, AttributeError)


def draw_seed(seed: int | None) -> int:
    """``seed``, or a fresh one from OS entropy, recorded by the caller so a run can be repeated."""
    if seed is not None:
        return seed
    entropy = cast(int, np.random.SeedSequence().entropy)  # drawn from the OS without a seed: always an int
    return int(entropy % 2**63)


def block_streams(seed: int, block: int, device: torch.device) -> tuple[torch.Generator, np.random.Generator]:
    """The torch and numpy random streams of sampling block ``block``: children of (seed, block)."""
    torch_sequence, numpy_sequence = np.random.SeedSequence(seed, spawn_key=(block,)).spawn(2)
    torch_seed = int(torch_sequence.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
    return torch.Generator(device).manual_seed(torch_seed), np.random.default_rng(numpy_sequence)


def check_holdout(holdout: float) -> None:
    """Refuse a holdout share outside [0, 0.5]."""
    if not 0.0 <= holdout <= MAX_HOLDOUT:
        raise InvalidArgumentError(f"holdout must be a fraction between 0 and {MAX_HOLDOUT}, got {holdout}")


def config_from(config_class: type[T], fields: dict[str, Any]) -> T:
    """A network configuration from a model file's JSON, where tuples were written as lists."""
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    return config_class(**values)


def generator_weights(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The generator's state dict from a model file's tensors (saved under ``generator.``)."""
    return {k.removeprefix("generator."): v for k, v in tensors.items() if k.startswith("generator.")}


def inconsistent(exc: Exception, what: str = "the model file") -> ModelFileError:
    """One line for a model file whose description does not build (crafted or from another version)."""
    return ModelFileError(f"{what} is inconsistent or from an incompatible synthgen ({exc})")


class Synthesizer:
    """The scaffolding of a synthesizer kind; subclasses bring fit, sample and ``from_bundle``."""

    kind: ClassVar[str]
    config_: Any
    seed_: int
    generator_: torch.nn.Module
    training_: dict[str, Any]
    created_: str | None

    def _check_fitted(self) -> None:
        if not hasattr(self, "generator_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit() or synthgen.load() first")

    def _description(self) -> dict[str, Any]:
        """The fields every kind's ``describe`` starts with (what ``synthgen info`` shows first)."""
        self._check_fitted()
        return {
            "kind": self.kind,
            "synthgen_version": __version__,
            "torch_version": torch.__version__,
            "created": self.created_,
            "seed": self.seed_,
            "config": asdict(self.config_),
            "training": self.training_,
        }

    def _write(self, path: str | Path, manifest: dict[str, Any], tensors: dict[str, torch.Tensor] | None = None) -> Path:
        """Write ``manifest`` (``describe`` plus the kind's state) and the generator's weights, then ``tensors``.

        No clock reading is stored (when it was made, how long training took), so the same seed
        gives the same bytes.
        """
        manifest = {k: v for k, v in manifest.items() if k != "created"}
        manifest["training"] = {k: v for k, v in self.training_.items() if k != "seconds"}
        weights = {f"generator.{k}": v for k, v in self.generator_.state_dict().items()}
        return write_bundle(path, manifest, {**weights, **(tensors or {})})
