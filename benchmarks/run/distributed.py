"""Data-parallel training of one run over several processes (GPUs, or CPU processes).

Launch the ordinary command under ``torchrun`` (or ask SLURM for several tasks per job,
``--slurm-tasks``)::

    torchrun --nproc_per_node=4 -m benchmarks run --methods standard --profile paper

Every rank walks the same grid and trains the same run at the same time; each epoch's
shuffled order (the very order a single process uses, from :mod:`benchmarks.run.batching`) is
cut into one shard per rank; after ``loss.backward()`` the gradients are averaged across
ranks; only rank 0 writes the record and its checkpoints; every rank resumes from the same
checkpoint. The process group this process joined is described by one immutable
:class:`Group`; what changes while a run trains (its epoch, this rank's share of the current
batch) lives in the :class:`Replicas` object that :func:`start_run` returns for that run.
Without ``torchrun`` (no ``WORLD_SIZE`` > 1 in the environment) there is no group and every
step falls through to the single-process code, so single-process runs are bit-for-bit what
they were.

**What a DDP run is.** The profile's ``batch_size`` stays the *global* batch: each step,
the batch a single process would train on is split across the ranks (rank ``r`` takes
items ``r, r + W, r + 2W, ...``), so the number of steps, the learning rate and the data
seen per step are those of the single-process run. For a method whose loss is a mean over
the batch, the averaged gradient *is* the gradient of the global batch (each rank's
gradient is weighted by its share of the batch, which makes an uneven last batch exact as
well). What differs from one process: batch-norm statistics are computed per shard (as in
``DistributedDataParallel`` without ``SyncBatchNorm``; running statistics are averaged
across ranks every step, which makes the running mean exact for even shards), and each rank
draws its own dropout / augmentation noise (torch's RNG is re-seeded from ``(seed, epoch,
rank)`` at every epoch, so a resumed run draws what an uninterrupted one would).

Why not ``torch.nn.parallel.DistributedDataParallel``? The harness trains a
:class:`~benchmarks.api.Method`: an ``nn.Module`` whose ``training_step`` calls its *own*
submodules (the classifier, a heatmap loss's second pass, a segmenter, ...). DDP only
synchronises gradients of work done through ``DDP.forward``; wrapping the method would
leave every call inside ``training_step`` unsynchronised, and wrapping only the backbone
would miss the other submodules, LRP's second backward pass and double-backward losses
(which DDP's hooks do not support). Averaging every parameter's ``.grad`` ourselves after
``backward()`` is method-agnostic and easy to check: one flattened bucket, one
``all_reduce`` per step. We give up DDP's overlap of communication with the backward pass;
for the benchmark's model sizes the all-reduce is a small share of a step.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import sys
import warnings
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import Dataset

from benchmarks.api import Batch
from benchmarks.run.batching import batch_indices, iterate_batches, load_batch
from benchmarks.store import CorruptRecordError, RunDir

#: minutes a rank waits in a collective before giving up (evaluation runs on every rank,
#: so ranks never wait for one another for long)
TIMEOUT_MIN = 30


class ReplicasDiverged(RuntimeError):
    """Ranks hold different models at a point where they must agree."""


@dataclass(frozen=True)
class Group:
    """The process group this process belongs to."""

    rank: int
    world_size: int
    local_rank: int
    backend: str
    owns_group: bool

    def comm_device(self) -> torch.device:
        return torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else torch.device("cpu")


#: the group joined by :func:`init_from_env` (like torch.distributed's own default group, one
#: per process); ``None`` in a single-process run
_group: Group | None = None


# --------------------------------------------------------------------------- set-up
def env_world_size() -> int:
    """``WORLD_SIZE`` set by ``torchrun`` (or a submitit job with several tasks), else 1."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def init_from_env(device: str = "cpu", silence_other_ranks: bool = True) -> bool:
    """Join the process group described by the environment (``torchrun``'s ``RANK``,
    ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``).

    Returns whether this process is one of several. The backend is NCCL for a CUDA device
    (each rank on GPU ``LOCAL_RANK``) and gloo on the CPU. Ranks other than 0 print nothing
    on stdout (their stderr is kept, so their errors still show).
    """
    global _group
    if _group is not None:
        return True
    if env_world_size() <= 1:
        return False
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    use_cuda = device.startswith("cuda")
    if use_cuda:
        if ":" in device:
            raise ValueError(f"--device {device}: under torchrun each rank takes GPU LOCAL_RANK; use --device cuda")
        if not torch.cuda.is_available():
            raise ValueError("--device cuda under torchrun, but this machine has no CUDA device")
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    backend = "nccl" if use_cuda else "gloo"
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=TIMEOUT_MIN))
    _group = Group(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank,
                   backend=dist.get_backend(), owns_group=owns)
    atexit.register(shutdown)
    if silence_other_ranks and _group.rank != 0:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    return True


def shutdown() -> None:
    """Leave the process group (if this module created it)."""
    global _group
    if _group is not None and _group.owns_group and dist.is_initialized():
        dist.destroy_process_group()
    _group = None


def is_active() -> bool:
    return _group is not None


def rank() -> int:
    return 0 if _group is None else _group.rank


def world_size() -> int:
    return 1 if _group is None else _group.world_size


def is_main() -> bool:
    """True on rank 0, and in every single-process run."""
    return _group is None or _group.rank == 0


def describe() -> dict[str, Any]:
    """What provenance records about data parallelism ({} for a single process)."""
    if _group is None:
        return {}
    return {"distributed": {"world_size": _group.world_size, "backend": _group.backend,
                            "global_batch": "profile batch_size, split across ranks"}}


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (``obj`` itself without a process group)."""
    if _group is None:
        return obj
    box = [obj if _group.rank == 0 else None]
    dist.broadcast_object_list(box, src=0, device=_group.comm_device() if _group.backend == "nccl" else None)
    return box[0]


# --------------------------------------------------------------------------- the record
class _SilentRunDir(RunDir):
    """A run folder as seen by ranks other than 0: read, never written or moved."""

    def write_json(self, name: str, obj: Any) -> None:
        pass

    def write_epochs(self, epochs: list[dict[str, Any]]) -> None:
        pass

    def write_arrays(self, name: str, arrays: Any) -> None:
        pass

    def write_predictions(self, split: str, arrays: Any) -> None:
        pass

    def write_checkpoint(self, state: dict[str, Any]) -> None:
        pass

    def write_best(self, state: dict[str, Any]) -> None:
        pass

    def mark_done(self, status: str, reason: str | None = None, keep_checkpoint: bool = False) -> None:
        pass

    def set_aside(self) -> Path | None:
        return None

    def read_checkpoint(self) -> dict[str, Any] | None:
        try:
            return super().read_checkpoint()
        except CorruptRecordError:  # rank 0 sets it aside; every rank then starts afresh
            return None


def run_dir(path: Path) -> RunDir:
    """The run folder: writable on rank 0 (and in single-process runs), read-only elsewhere."""
    return RunDir(path) if is_main() else _SilentRunDir(path)


# --------------------------------------------------------------------------- one run's replicas
@dataclass
class Replicas:
    """One run trained by every rank of ``group`` (or by this process alone when ``group`` is
    ``None``: every step then falls through to the single-process code).

    ``epoch`` is the epoch being trained; ``weight`` this rank's share of the current global
    batch (set by :meth:`batches`, used by :meth:`all_reduce_gradients`).
    """

    group: Group | None
    module: nn.Module | None
    seed: int
    epoch: int
    weight: float = 1.0

    def batches(self, split: Dataset, batch_size: int, shuffle_seed: int | None) -> Iterator[Batch]:
        """This rank's shard of every training batch of an epoch (all of it in one process).

        Rank ``r`` of ``W`` gets items ``r, r + W, ...`` of each batch of the single-process
        order. A batch smaller than ``W`` leaves some ranks without an item: they train on a
        copy of the first item with weight 0, so that every rank takes part in every step.
        After the last batch, rank 0's model is copied to all ranks (they are expected to be
        identical already; a difference is reported) and the next epoch's RNG is seeded.
        """
        if self.group is None:
            yield from iterate_batches(split, batch_size, shuffle_seed)
            return
        for indices in batch_indices(split, batch_size, shuffle_seed):
            mine = indices[self.group.rank :: self.group.world_size]
            self.weight = len(mine) / len(indices)
            yield load_batch(split, mine if len(mine) else indices[:1])
        self.weight = 1.0
        if self.module is not None:
            self.sync_from_rank0(check=True)
        self.epoch += 1
        self.seed_epoch()

    def all_finite(self, loss: Tensor) -> bool:
        """Whether the loss is finite on every rank (so that all ranks stop at the same step)."""
        finite = bool(torch.isfinite(loss.detach()).all())
        if self.group is None:
            return finite
        flag = torch.tensor([1.0 if finite else 0.0], device=self.group.comm_device())
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item() > 0)

    def all_reduce_gradients(self, out: MutableMapping[str, Tensor] | None = None) -> None:
        """Average, across ranks, every parameter's gradient of :attr:`module` (weighted by each
        rank's share of the global batch), the floating-point buffers (batch-norm running
        statistics) and the scalar terms of ``out`` (so the logged losses are those of the
        global batch).

        One flattened float32 bucket and one ``all_reduce``. A parameter without a gradient on
        every rank keeps ``grad = None`` (so optimisers skip it as they would in one process).
        """
        if self.group is None or self.module is None:
            return
        device, w = self.group.comm_device(), self.weight
        params = [p for p in self.module.parameters() if p.requires_grad]
        buffers = [b for b in self.module.buffers() if b.is_floating_point()]
        keys = sorted(k for k, v in (out or {}).items() if k != "logits" and torch.is_tensor(v) and v.numel() == 1)
        dtype = _bucket_dtype([*params, *buffers])

        def piece(t: Tensor) -> Tensor:
            return t.detach().reshape(-1).to(device=device, dtype=dtype) * w

        pieces = [torch.zeros(p.numel(), device=device, dtype=dtype) if p.grad is None else piece(p.grad)
                  for p in params]
        pieces.append(torch.tensor([0.0 if p.grad is None else 1.0 for p in params], device=device, dtype=dtype))
        pieces += [piece(b) for b in buffers]
        pieces += [piece(out[k]) for k in keys]
        flat = torch.cat(pieces)
        dist.all_reduce(flat)
        offset = sum(p.numel() for p in params)
        has_grad = flat[offset : offset + len(params)].tolist()
        start = 0
        for p, flag in zip(params, has_grad, strict=True):
            if flag > 0:
                value = flat[start : start + p.numel()].view_as(p).to(device=p.device, dtype=p.dtype)
                if p.grad is None:
                    p.grad = value.clone()
                else:
                    p.grad.copy_(value)
            start += p.numel()
        offset += len(params)
        for b in buffers:
            b.copy_(flat[offset : offset + b.numel()].view_as(b))
            offset += b.numel()
        if out is not None:
            for i, k in enumerate(keys):
                out[k] = flat[offset + i].to(out[k].device)

    def seed_epoch(self) -> None:
        """Seed torch's RNG from (run seed, epoch, rank): different noise per rank, and the
        same noise whether or not the run was interrupted before this epoch."""
        assert self.group is not None
        key = f"{self.seed}:{self.epoch}:{self.group.rank}".encode()
        torch.manual_seed(int.from_bytes(hashlib.sha256(key).digest()[:8], "little") % 2**63)

    def sync_from_rank0(self, check: bool) -> None:
        """Copy rank 0's parameters, floating-point buffers and extra state to every rank."""
        assert self.group is not None and self.module is not None
        module = self.module
        tensors = [t for t in (*module.parameters(), *module.buffers()) if t.is_floating_point()]
        if tensors:
            dtype = _bucket_dtype(tensors)
            mine = torch.cat([t.detach().reshape(-1).to(device=self.group.comm_device(), dtype=dtype)
                              for t in tensors])
            flat = mine.clone()
            dist.broadcast(flat, src=0)
            if check:
                gap = float((flat - mine).abs().max())
                if gap > 0:
                    warnings.warn(f"rank {self.group.rank}: model differed from rank 0's by up to {gap:.3g} after "
                                  f"epoch {self.epoch}; continuing from rank 0's", stacklevel=2)
            offset = 0
            with torch.no_grad():
                for t in tensors:
                    t.copy_(flat[offset : offset + t.numel()].view_as(t))
                    offset += t.numel()
        if hasattr(module, "extra_state") and hasattr(module, "load_extra_state"):
            extra = broadcast_object(module.extra_state() if self.group.rank == 0 else None)
            if self.group.rank != 0:
                module.load_extra_state(extra)


def start_run(method: nn.Module, epochs_done: int, seed: int) -> Replicas:
    """The replicas of one run; call once the method is built and its checkpoint (if any) loaded.

    Under a process group it checks that every rank resumes from the same epoch, copies rank
    0's parameters and buffers to every rank, and seeds each rank's RNG for the first epoch
    to train.
    """
    replicas = Replicas(_group, method, seed, epochs_done)
    if _group is None:
        return replicas
    first = broadcast_object(epochs_done)
    if first != epochs_done:
        raise ReplicasDiverged(f"rank {_group.rank} would resume after epoch {epochs_done}, rank 0 after {first}: "
                               "the ranks read different checkpoints (is --out on a shared file system?)")
    replicas.sync_from_rank0(check=False)
    replicas.seed_epoch()
    return replicas


def _bucket_dtype(tensors: list[Tensor]) -> torch.dtype:
    """float32, or float64 when any tensor is (so that no value loses precision in transit)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32
