"""Resumable training: the whole training state every K steps, in the safe model-file format.

A checkpoint holds what the steps after it depend on and nothing else: both networks' weights and
buffers, both optimisers' state, the schedulers' position, the training random stream and the step.
Everything before the loop (transformers, encoded rows, initial weights) is rebuilt by ``fit``
from the same data and seed, so a resumed fit ends in the same model, byte for byte, as one that
never stopped. A fingerprint of those inputs (the encoded rows, the configuration, the seed) is
stored, and a checkpoint of another fit is refused. Tensors and JSON only, read back with
``weights_only=True`` (``synthgen.bundle``), never a pickle.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthgen.bundle import read_bundle, write_bundle
from synthgen.errors import InvalidArgumentError, ModelFileError

KIND = "training-checkpoint"


@dataclass(frozen=True)
class Checkpointing:
    """Where and how often to write checkpoints, and the one to resume from (if any)."""

    path: Path
    every: int | None = None
    resume: Path | None = None
    fingerprint: str = ""

    def due(self, step: int) -> bool:
        return self.every is not None and step % self.every == 0


def fingerprint(encoded: np.ndarray, settings: dict[str, Any], seed: int) -> str:
    """What a checkpoint must match to be resumed: the training rows, the settings and the seed."""
    digest = hashlib.sha256(np.ascontiguousarray(encoded).view(np.uint8))
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    digest.update(str(seed).encode())
    return digest.hexdigest()


def save_checkpoint(plan: Checkpointing, step: int, modules: dict[str, torch.nn.Module],
                    optimisers: dict[str, torch.optim.Optimizer], schedulers: list[Any], rng: torch.Generator) -> None:
    """Write the training state after ``step`` atomically (a crash mid-write keeps the previous one)."""
    tensors: dict[str, torch.Tensor] = {"rng": rng.get_state()}
    groups: dict[str, Any] = {}
    for name, module in modules.items():
        tensors.update({f"weights/{name}/{key}": value for key, value in module.state_dict().items()})
    for name, optimiser in optimisers.items():
        state = optimiser.state_dict()
        groups[name] = state["param_groups"]
        for index, slots in state["state"].items():
            tensors.update({f"optimiser/{name}/{index}/{slot}": torch.as_tensor(value) for slot, value in slots.items()})
    manifest = {"kind": KIND, "step": step, "fingerprint": plan.fingerprint, "param_groups": groups,
                "schedulers": [scheduler.state_dict() for scheduler in schedulers]}
    write_bundle(plan.path, manifest, tensors)


def load_checkpoint(plan: Checkpointing, steps: int, modules: dict[str, torch.nn.Module],
                    optimisers: dict[str, torch.optim.Optimizer], schedulers: list[Any], rng: torch.Generator) -> int:
    """Restore the state saved in ``plan.resume`` into the given objects; returns its step."""
    assert plan.resume is not None
    manifest, tensors = read_bundle(plan.resume)
    where = str(plan.resume)
    if manifest.get("kind") != KIND:
        raise ModelFileError(f"{where!r} is not a training checkpoint (it holds a {manifest.get('kind')!r} file)")
    if manifest.get("fingerprint") != plan.fingerprint:
        raise InvalidArgumentError(f"{where!r} is a checkpoint of another fit (other data, settings or seed); "
                                   "resume with exactly the command that wrote it")
    step = manifest.get("step")
    if not isinstance(step, int) or not 0 < step <= steps:
        raise ModelFileError(f"{where!r}: its step {step!r} is not within this fit's {steps} steps")
    try:
        for name, module in modules.items():
            prefix = f"weights/{name}/"
            module.load_state_dict({key[len(prefix):]: value for key, value in tensors.items() if key.startswith(prefix)})
        for name, optimiser in optimisers.items():
            slots: dict[int, dict[str, torch.Tensor]] = {}
            for key, value in tensors.items():
                parts = key.split("/")
                if parts[:2] == ["optimiser", name] and len(parts) == 4:
                    slots.setdefault(int(parts[2]), {})[parts[3]] = value
            optimiser.load_state_dict({"state": slots, "param_groups": manifest["param_groups"][name]})
        for scheduler, state in zip(schedulers, manifest["schedulers"], strict=True):
            scheduler.load_state_dict(state)
        rng.set_state(tensors["rng"])
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise ModelFileError(f"{where!r}: the checkpoint does not fit this model ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:200]})") from exc
    return step
