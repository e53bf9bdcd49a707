"""The unit every executor ships: one run, trained and recorded by :func:`execute`.

A task names its experiment and method (looked up here, in the process that trains it), so
it pickles as plain data. Whatever executes it, a CPU run trains with :data:`CPU_THREADS`
torch threads: the bits of a CPU run depend on its thread count (a convolution's sums are
split by thread), so a count chosen by the scheduler (the pool's share of the cores, the
cores left when one run remains, a SLURM job's CPUs) would make ``--jobs 1``, ``--jobs 2``
and a resumed run disagree. On a GPU the numbers do not depend on the CPU threads, and a run
gets its executor's share of the cores. Each start records its thread count in the run's
``provenance.json`` (``starts``).
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from benchmarks.registry import discover_experiments, discover_methods
from benchmarks.run import distributed
from benchmarks.run.allocator import keep_freed_buffers
from benchmarks.run.task import RunTask
from benchmarks.run.training import train_run
from benchmarks.store import RunDir, atomic_write_json

#: torch threads of every run on the CPU, whatever executes it
CPU_THREADS = 1


@dataclass(frozen=True)
class Outcome:
    task: RunTask
    # ok | failed (recorded, e.g. diverged) | error (not recorded; retried next time) | skipped
    # | submitted (handed to a cluster, not waited for)
    status: str
    message: str = ""


def run_dir(task: RunTask) -> RunDir:
    return RunDir(task.folder)


def resumes(task: RunTask) -> bool:
    """Whether the run picks up from an epoch checkpoint (begun earlier, not finished)."""
    run = run_dir(task)
    return run.checkpoint_path.exists() and not run.done_path.exists()


def run_threads(device: str, share: int) -> int:
    """The torch threads a run on ``device`` trains with: :data:`CPU_THREADS` on the CPU (fixed,
    so that its numbers do not depend on how it was scheduled), else its executor's ``share``
    of the cores."""
    return CPU_THREADS if torch.device(device).type == "cpu" else max(1, share)


@contextmanager
def fixed_threads(threads: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``threads`` for the block, restored after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def execute(task: RunTask, position: int = 0, show_progress: bool = True, share: int | None = None) -> Outcome:
    """Train one run and record it, with :func:`run_threads` threads (``share``: the cores this
    executor gives a GPU run; default, torch's current count). Unexpected errors are written to
    ``error.json`` (no ``done`` marker, so the next invocation retries) and returned, never
    raised, except under ``torchrun``: there one rank's error leaves the others waiting in a
    collective, so it is raised to stop them all."""
    keep_freed_buffers()
    experiment = discover_experiments()[task.experiment]
    method = discover_methods()[task.method]
    run = run_dir(task)
    try:
        with fixed_threads(run_threads(task.device, share or torch.get_num_threads())):
            status = train_run(task, experiment, method, position=position,
                               show_progress=show_progress and distributed.is_main())
    except Exception as err:  # noqa: BLE001 - one broken run must not stop the sweep
        if distributed.is_main():
            atomic_write_json(run.path / "error.json",
                              {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()})
        if distributed.is_active():
            raise
        return Outcome(task, "error", f"{type(err).__name__}: {err}")
    message = ""
    if distributed.is_main():
        (run.path / "error.json").unlink(missing_ok=True)
        if status == "failed":
            message = json.loads((run.path / "summary.json").read_text()).get("reason", "")
    return Outcome(task, status, message)
