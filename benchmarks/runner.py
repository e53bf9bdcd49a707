"""Run a grid: check where it goes and on what, skip finished runs, set damaged records aside
to run again, hand the rest to an executor (:mod:`benchmarks.executors`), and say what an
interruption left behind.

Whatever the executor, a run is resumable on its own (a checkpoint after every epoch, a
``done`` marker last), so the same command run again skips what is done and resumes the
rest.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.executors.unit import Outcome, run_dir
from benchmarks.resources import ResourceMonitor, append_invocation, machine
from benchmarks.run import distributed
from benchmarks.run.task import RunTask
from benchmarks.store import CorruptRecordError

EXECUTORS = ("local", "local-submitit", "slurm")


def check_out(folder: Path, dry_run: bool = False) -> None:
    """Fail before any training when run records could not be written to ``folder``. A dry run
    only looks: it creates nothing."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"--out {folder} is a file, not a folder: give a folder for the run records")
    existing = folder if folder.exists() else next(p for p in folder.parents if p.exists())
    if not existing.is_dir():
        raise NotADirectoryError(f"--out {folder} is not writable: {existing} is a file, not a folder")
    if dry_run:
        if not os.access(existing, os.W_OK | os.X_OK):
            raise PermissionError(f"--out {folder} is not writable: {existing} does not allow writing")
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as err:
        raise PermissionError(f"--out {folder} is not writable: {err.strerror or err}") from err


def resolve_device(name: str, executor: str = "local", slurm_gpus: int = 0) -> str:
    """``--device`` as a torch device string, checked before any run starts. With ``--executor
    slurm`` the device is the compute nodes' (``auto``: ``cuda`` when jobs get GPUs), which
    this login node cannot check beyond its spelling."""
    import torch

    on_nodes = executor == "slurm"
    if name == "auto":
        return ("cuda" if slurm_gpus else "cpu") if on_nodes else ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda") or (device.type == "cpu" and device.index):
        raise ValueError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not on_nodes:
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: this machine has no CUDA device that torch {torch.__version__} can "
                             "use; use --device cpu (or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                             f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return name


def pending(tasks: Sequence[RunTask], dry_run: bool = False,
            report: Callable[[str], None] = print) -> tuple[list[RunTask], list[Outcome]]:
    """Split tasks into those to run and those already done. A damaged record is reported and
    moved aside (``<run>.damaged-<time>``) so that it runs again; a dry run only says so.
    Under ``torchrun`` rank 0 decides for all ranks."""
    todo_index: list[int] | None = None
    if distributed.is_main():
        todo_index = []
        for i, task in enumerate(tasks):
            run = run_dir(task)
            try:
                if run.is_done():
                    continue
            except CorruptRecordError as err:
                if dry_run:
                    report(f"damaged record, would be moved aside and re-run: {err}")
                else:
                    report(f"damaged record, moved to {run.set_aside()}, re-running: {err}")
            todo_index.append(i)
    todo_index = distributed.broadcast_object(todo_index)
    chosen = set(todo_index)
    todo = [tasks[i] for i in todo_index]
    done = [Outcome(task, "skipped", "already done") for i, task in enumerate(tasks) if i not in chosen]
    return todo, done


def interrupted_text(todo: Sequence[RunTask], out: Path) -> str:
    """What Ctrl-C left behind, and how to go on."""
    finished = sum(run_dir(task).done_path.exists() for task in todo)
    return (f"interrupted: {finished} of the {len(todo)} runs to do are recorded under {out}; runs in progress "
            "keep the checkpoint of their last finished epoch. Run the same command again to resume.")


def log_invocation(out: Path, args: argparse.Namespace, device: str, workers: int, threads: int,
                   tasks: Sequence[RunTask], outcomes: Sequence[Outcome], monitor: ResourceMonitor) -> None:
    """Record what this invocation ran and what it cost in ``<out>/invocations.jsonl``."""
    from benchmarks.run.provenance import git_commit, package_versions

    local = args.executor == "local"
    record = {
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "profile": args.profile,
        "seeds": list(args.seeds),
        "experiments": sorted({t.experiment for t in tasks}),
        "methods": sorted({t.method for t in tasks}),
        "runs_in_grid": len(tasks),
        "runs_trained": len(outcomes),
        "outcomes": {s: sum(o.status == s for o in outcomes) for s in ("ok", "failed", "error", "submitted")},
        "executor": args.executor,
        "jobs": workers if local else None,
        "threads_per_job": threads if local else None,
        "device": device,
        "machine": machine(),
        "git_commit": git_commit(),
        "torch": package_versions().get("torch"),
        **monitor.summary(),
    }
    append_invocation(out, record)
