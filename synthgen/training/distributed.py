"""Multi-process training on torch.distributed, as launched by ``torchrun`` (gloo on CPU, nccl on CUDA).

``torchrun --nproc-per-node N -m synthgen fit ...`` starts N copies of the same command with
``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` set. Each rank reads the table (a file chunk by
chunk), fits the same transformers (same seed, same rows), encodes and trains on its own share of
the rows only, with its own random streams, and DistributedDataParallel averages the gradients, so every rank holds the same
weights; rank 0 alone writes the model file. Without those variables everything is one process.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from synthgen.errors import InvalidArgumentError


@dataclass(frozen=True)
class Launch:
    """Where this process stands in a launch: its rank, how many ranks, and its rank on this machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def device(self, device: torch.device) -> torch.device:
        """Each rank on a machine takes its own GPU; CPU ranks share the CPU."""
        return torch.device("cuda", self.local_rank) if self.distributed and device.type == "cuda" else device

    def stream_seed(self, seed: int) -> int:
        """The seed of this rank's training streams: ``seed`` itself on rank 0 (so one process is
        unchanged), a child of (seed, rank) elsewhere, so ranks never draw the same batches."""
        if self.rank == 0:
            return seed
        state = np.random.SeedSequence(seed, spawn_key=(self.rank,)).generate_state(1, dtype=np.uint64)
        return int(state[0] >> np.uint64(1))

    @property
    def share(self) -> tuple[int, int]:
        """This rank's rows of the training table, as (rank, world_size): every world_size-th row,
        starting at its rank (``TableTransformer.encode_chunks`` encodes only these)."""
        return (self.rank, self.world_size)


def launched() -> Launch:
    """The launch this process is part of (``torchrun``'s variables), without joining it."""
    try:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise InvalidArgumentError(f"RANK, LOCAL_RANK and WORLD_SIZE must be integers (as torchrun sets them): {exc}") from None
    return Launch(rank, world_size, local_rank)


def join(launch: Launch, device: torch.device) -> None:
    """Join the process group of ``launch`` (once): nccl for CUDA ranks, gloo otherwise."""
    import torch.distributed as dist

    if launch.distributed and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def leave(launch: Launch) -> None:
    """Leave the process group together once training is done: a rank that exits while gloo still talks
    to it makes its peer abort (seen as SIGABRT in CI), so all wait for each other, then disband."""
    import torch.distributed as dist

    if launch.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
