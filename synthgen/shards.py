"""Sharded sampling: many rows as part files, written by several workers, resumable.

``out/part-00000.parquet``, ``part-00001.parquet``, ... Shard k holds ``shard_rows`` rows (the last
one the rest) drawn with its own seed, derived from (seed, k), so the rows depend neither on how
many workers there are nor on the order in which they finish. For a patient-history model the
counts are patients: a shard holds ``shard_rows`` whole patients, every visit of each, and the
patients' ids are numbered across the whole request (:func:`synthgen.sequences.synthesizer.patient_ids`),
so no two shards share an id. Every part is published atomically
(written beside its name, then renamed: a failure never leaves half a file), and ``out/_shards.json``
records the request before the first part, so running the same request again skips the parts
that exist and writes only the missing ones.

Workers are local processes (``workers``) or the ranks of a ``torchrun`` launch (``RANK`` /
``WORLD_SIZE``, coordinated through ``torch.distributed``): shard k goes to worker k mod N, with no
cluster code of our own.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import json
import multiprocessing
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthgen._files import PARTIAL, check_output, write_atomic
from synthgen.choices import DEFAULT_CHUNK_ROWS, DEFAULT_SHARD_ROWS
from synthgen.errors import InvalidArgumentError, OutputError

#: The request a folder of parts answers; written before the first part.
MANIFEST = "_shards.json"
#: Mixed into every shard's seed so shard streams never coincide with a plain ``sample`` at that seed.
_SHARD_STREAM = 0x5A4D


@dataclass(frozen=True)
class ShardPlan:
    """What the parts of one folder hold: the model, the rows, how they are cut, the seed, the conditions."""

    model_sha256: str
    num_rows: int
    shard_rows: int
    seed: int
    conditions: dict[str, Any]

    @property
    def shards(self) -> int:
        return -(-self.num_rows // self.shard_rows)

    def rows_of(self, shard: int) -> int:
        return min(self.shard_rows, self.num_rows - shard * self.shard_rows)

    def seed_of(self, shard: int) -> int:
        """Shard ``shard``'s sampling seed: a child of (seed, shard), independent of everything else."""
        return _child_seed(self.seed, _SHARD_STREAM, shard)

    @property
    def ids_seed(self) -> int:
        """The key of the whole request's patient ids (patient-history models), shared by every shard."""
        return _child_seed(self.seed, _SHARD_STREAM)

    def path_of(self, folder: Path, shard: int) -> Path:
        width = max(5, len(str(self.shards - 1)))
        return folder / f"part-{shard:0{width}d}.parquet"


@dataclass(frozen=True)
class ShardReport:
    """What a call did: every part of the plan, and how many of them this call wrote."""

    plan: ShardPlan
    parts: list[Path]
    written: int
    skipped: int


def sample_shards(
    model: str | Path,
    num_rows: int,
    folder: str | Path,
    *,
    seed: int | None = None,
    conditions: Mapping[str, Any] | None = None,
    workers: int = 1,
    shard_rows: int = DEFAULT_SHARD_ROWS,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    device: str | None = None,
    progress: bool = True,
) -> ShardReport:
    """Write ``num_rows`` rows of the tabular model at ``model`` into ``folder`` as Parquet parts
    (for a patient-history model, ``num_rows`` whole patients, ``shard_rows`` patients a part).

    Under ``torchrun`` every rank calls this with the same arguments and writes its own shards
    (``workers`` must then be 1); otherwise ``workers`` local processes share the shards. A
    folder that already holds parts of the same request is completed, never rewritten. One job
    per folder at a time: a resumed job deletes the half-written files a killed one left. A job
    that fails before its first part is complete removes its manifest (and the folder it created),
    so a corrected request (a condition the model can meet, say) may use the same folder.
    """
    from tqdm.auto import tqdm

    from synthgen.synthesizers.base import draw_seed

    if isinstance(num_rows, bool) or not isinstance(num_rows, (int, np.integer)) or num_rows < 1:
        raise InvalidArgumentError(f"the number of rows must be a positive integer, got {num_rows!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidArgumentError(f"workers must be a positive integer, got {workers!r}")
    if shard_rows < 1 or chunk_rows < 1:
        raise InvalidArgumentError(f"shard_rows and chunk_rows must be >= 1, got {shard_rows} and {chunk_rows}")
    model, folder = Path(model), Path(folder)
    from synthgen.training.distributed import join, launched, leave

    launch = launched()
    join(launch, torch.device("cpu"))  # gloo: the ranks exchange a seed and counts, not training tensors
    rank, world = launch.rank, launch.world_size
    if world > 1 and workers > 1:
        raise InvalidArgumentError(f"under torchrun each of the {world} ranks is a worker; leave --workers at 1")
    synthesizer = _load_model(model, device)
    request = ShardPlan(_sha256(model), int(num_rows), int(shard_rows), draw_seed(seed), _plain(conditions or {}))
    # Checked before anything is written: a bad condition is one error, and leaves no folder behind.
    synthesizer.sample_chunks(1, request.conditions, seed=0)
    existed, recorded = folder.exists(), (folder / MANIFEST).exists()
    if world > 1:
        plan = _agreed_plan(request, folder, given_seed=seed is not None, rank=rank)
    else:
        plan = _settle_plan(request, folder, given_seed=seed is not None)
    mine = range(rank, plan.shards, world)  # every shard when there is no torchrun
    pending = [shard for shard in mine if not plan.path_of(folder, shard).exists()]
    show = progress and rank == 0
    unit = "patient" if synthesizer.kind == "sequence" else "row"
    try:
        with tqdm(total=sum(plan.rows_of(s) for s in pending), unit=unit, disable=not show, leave=False) as bar:
            if workers == 1:
                for shard in pending:
                    _write_shard(synthesizer, plan, folder, shard, chunk_rows)
                    bar.update(plan.rows_of(shard))
            else:
                context = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch state
                with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                                            initargs=(model, device)) as pool:
                    futures = {pool.submit(_worker_shard, plan, folder, shard, chunk_rows): shard for shard in pending}
                    for future in concurrent.futures.as_completed(futures):
                        future.result()  # the first failure stops the job; finished parts stay
                        bar.update(plan.rows_of(futures[future]))
    except BaseException:
        if world == 1 and not recorded:  # this call began the folder: no parts, then no folder
            _discard_unstarted(folder, plan, remove_folder=not existed)
        raise
    written, skipped = len(pending), len(mine) - len(pending)
    if world > 1:  # every rank's counts, and no rank returns before all parts exist
        import torch.distributed as dist

        counts = torch.tensor([written, skipped])
        dist.all_reduce(counts)
        written, skipped = (int(count) for count in counts)
        leave(launch)
    parts = [plan.path_of(folder, shard) for shard in range(plan.shards)]
    return ShardReport(plan, parts, written, skipped)


def _write_shard(synthesizer: Any, plan: ShardPlan, folder: Path, shard: int, chunk_rows: int) -> None:
    from synthgen.io import TableWriter

    if synthesizer.kind == "sequence":  # blocks of whole patients; ids numbered across the request
        chunks = synthesizer.sample_chunks(plan.rows_of(shard), plan.conditions, seed=plan.seed_of(shard),
                                           ids_seed=plan.ids_seed, first_patient=shard * plan.shard_rows)
    else:
        chunks = synthesizer.sample_chunks(plan.rows_of(shard), plan.conditions, seed=plan.seed_of(shard),
                                           chunk_rows=chunk_rows)
    with TableWriter(plan.path_of(folder, shard)) as writer:
        for chunk in chunks:
            writer.write(chunk)


def _discard_unstarted(folder: Path, plan: ShardPlan, *, remove_folder: bool) -> None:
    """Remove the manifest (and the folder, when it was new) of a job that failed before any part
    was complete, so the same folder takes a corrected request (another condition, say)."""
    if any(plan.path_of(folder, shard).exists() for shard in range(plan.shards)):
        return  # finished parts stay, with the manifest that lets a re-run complete them
    (folder / MANIFEST).unlink(missing_ok=True)
    if remove_folder:
        try:
            folder.rmdir()
        except OSError:  # something else is in it: leave it
            pass


#: A worker process's model, loaded once by :func:`_start_worker` (one per process, never shared).
_worker_model: Any = None


def _start_worker(model: Path, device: str | None) -> None:
    global _worker_model
    _worker_model = _load_model(model, device)


def _worker_shard(plan: ShardPlan, folder: Path, shard: int, chunk_rows: int) -> None:
    _write_shard(_worker_model, plan, folder, shard, chunk_rows)


def _settle_plan(request: ShardPlan, folder: Path, *, given_seed: bool) -> ShardPlan:
    """The plan of ``folder``: its manifest's when it answers the same request, else ``request``, recorded."""
    manifest = folder / MANIFEST
    if manifest.exists():
        recorded = _read_manifest(manifest)
        same = (recorded.model_sha256, recorded.num_rows, recorded.shard_rows, recorded.conditions) == (
            request.model_sha256, request.num_rows, request.shard_rows, request.conditions)
        if not same or (given_seed and recorded.seed != request.seed):
            raise OutputError(
                f"{str(folder)!r} holds parts of another request ({recorded.num_rows} rows in shards of "
                f"{recorded.shard_rows}, seed {recorded.seed}, conditions {recorded.conditions}, model sha256 "
                f"{recorded.model_sha256[:12]}...); resume it with the same model, -n, --shard-rows, --condition "
                "(and --seed, or none), or write to a new folder"
            )
        for stale in folder.glob(f".part-*{PARTIAL}"):  # left by a killed job; parts are never half-published
            stale.unlink(missing_ok=True)
        return recorded
    check_output(folder, directory=True)  # a new or empty folder only: never mix with other files
    write_atomic(manifest, json.dumps(asdict(request), indent=2) + "\n")
    return request


def _agreed_plan(request: ShardPlan, folder: Path, *, given_seed: bool, rank: int) -> ShardPlan:
    """Rank 0 settles the plan (its drawn seed wins); every rank then reads the same manifest."""
    import torch.distributed as dist

    failure: list[str | None] = [None]
    if rank == 0:
        try:
            _settle_plan(request, folder, given_seed=given_seed)
        except Exception as exc:  # every rank must get past the broadcast, then all raise the same error
            failure = [str(exc)]
    dist.broadcast_object_list(failure, src=0)
    if failure[0] is not None:
        raise OutputError(failure[0])
    return _read_manifest(folder / MANIFEST)


def _read_manifest(path: Path) -> ShardPlan:
    try:
        fields = json.loads(path.read_text(encoding="utf-8"))
        plan = ShardPlan(str(fields["model_sha256"]), int(fields["num_rows"]), int(fields["shard_rows"]),
                         int(fields["seed"]), dict(fields["conditions"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise OutputError(f"{str(path)!r} is not a readable shard manifest ({type(exc).__name__}); "
                          "write to a new folder") from exc
    if plan.num_rows < 1 or plan.shard_rows < 1:
        raise OutputError(f"{str(path)!r} is not a valid shard manifest; write to a new folder")
    return plan


def _load_model(model: Path, device: str | None) -> Any:
    """A tabular or a (one long table) patient-history model: the kinds whose samples are table rows."""
    from synthgen.loading import load

    synthesizer = load(model, device=device)
    kind = getattr(synthesizer, "kind", None)
    if not hasattr(synthesizer, "sample_chunks") or kind not in ("tabular", "sequence"):
        raise InvalidArgumentError(f"{str(model)!r} is a {kind or '?'!r} model; sharded sampling writes table "
                                   "rows and needs a tabular or a patient-history model")
    if kind == "sequence" and synthesizer.tables_ is not None:
        raise InvalidArgumentError(f"{str(model)!r} learned a parent and a child table, which are sampled whole "
                                   "into one folder (synthgen sample -o FOLDER), not into parts")
    return synthesizer


def _child_seed(seed: int, *key: int) -> int:
    """A seed below 2**63 drawn from (``seed``, ``key``): a stream of its own for each key."""
    state = np.random.SeedSequence(seed, spawn_key=key).generate_state(1, dtype=np.uint64)
    return int(state[0] >> np.uint64(1))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise InvalidArgumentError(f"cannot read the model file {str(path)!r}: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def _plain(conditions: Mapping[str, Any]) -> dict[str, Any]:
    """Conditions as JSON keeps them, so a resumed request compares equal to the recorded one."""
    try:
        return dict(json.loads(json.dumps(dict(conditions), default=_scalar)))
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"conditions must be plain values (text, numbers, booleans): {exc}") from exc


def _scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not a plain value")


__all__ = ["DEFAULT_SHARD_ROWS", "MANIFEST", "ShardPlan", "ShardReport", "sample_shards"]
