"""Run a grid of tasks: skip finished runs, re-run damaged ones, hand the rest to an executor.

``execute(task)`` is the unit every executor ships (in-process, a process pool, SLURM via
submitit): it looks the experiment and method up by name, so a task pickles as plain data.
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from benchmarks.registry import discover_experiments, discover_methods
from benchmarks.store import CorruptRecordError, RunDir, atomic_write_json, run_path
from benchmarks.training import RunTask, train_run


@dataclass(frozen=True)
class Outcome:
    task: RunTask
    status: str  # ok | failed (recorded, e.g. diverged) | error (not recorded; retried next time) | skipped
    message: str = ""


def run_dir(task: RunTask) -> RunDir:
    return RunDir(run_path(task.out, task.experiment, task.method, task.seed, task.config))


def pending(tasks: Sequence[RunTask], report: Callable[[str], None] = print) -> tuple[list[RunTask], list[Outcome]]:
    """Split tasks into those to run and those already done; damaged records are reported
    and removed so that they run again."""
    todo, done = [], []
    for task in tasks:
        run = run_dir(task)
        try:
            if run.is_done():
                done.append(Outcome(task, "skipped", "already done"))
                continue
        except CorruptRecordError as err:
            report(f"damaged record, re-running: {err}")
            run.reset()
        todo.append(task)
    return todo, done


def execute(task: RunTask, position: int = 0, show_progress: bool = True, threads: int | None = None) -> Outcome:
    """Train one run and record it. Unexpected errors are written to ``error.json`` (no
    ``done`` marker, so the next invocation retries) and returned, never raised."""
    if threads:
        torch.set_num_threads(threads)
    experiment = discover_experiments()[task.experiment]
    method = discover_methods()[task.method]
    run = run_dir(task)
    try:
        status = train_run(task, experiment, method, position=position, show_progress=show_progress)
    except Exception as err:  # noqa: BLE001 - one broken run must not stop the sweep
        atomic_write_json(run.path / "error.json", {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()})
        return Outcome(task, "error", f"{type(err).__name__}: {err}")
    (run.path / "error.json").unlink(missing_ok=True)
    message = json.loads((run.path / "summary.json").read_text()).get("reason", "") if status == "failed" else ""
    return Outcome(task, status, message)


def _execute_quietly(task: RunTask, threads: int) -> Outcome:
    return execute(task, show_progress=False, threads=threads)


def run_serial(tasks: Sequence[RunTask], show_progress: bool = True) -> list[Outcome]:
    outcomes = []
    with tqdm(total=len(tasks), desc="grid", position=0, disable=not show_progress, dynamic_ncols=True) as bar:
        for task in tasks:
            outcome = execute(task, position=1, show_progress=show_progress)
            outcomes.append(outcome)
            bar.update(1)
            bar.set_postfix_str(f"{task.label}: {outcome.status}", refresh=True)
    return outcomes


def run_pool(tasks: Sequence[RunTask], jobs: int, show_progress: bool = True) -> list[Outcome]:
    """A process pool on one machine; each worker gets an equal share of the CPU threads."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    outcomes = []
    with ProcessPoolExecutor(max_workers=jobs) as pool, tqdm(
        total=len(tasks), desc="grid", disable=not show_progress, dynamic_ncols=True
    ) as bar:
        futures = {pool.submit(_execute_quietly, task, threads): task for task in tasks}
        for future in as_completed(futures):
            outcome = future.result()
            outcomes.append(outcome)
            bar.update(1)
            bar.set_postfix_str(f"{outcome.task.label}: {outcome.status}", refresh=True)
    return outcomes


def run_slurm(tasks: Sequence[RunTask], folder: Path, cluster: str | None, parameters: dict) -> list[Outcome]:
    """One submitit job per run (as a job array); ``cluster='local'`` runs them as local
    processes, which is how the tests exercise this path."""
    import submitit

    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    executor.update_parameters(**parameters)
    with executor.batch():
        jobs = [executor.submit(_execute_quietly, task, parameters.get("cpus_per_task", 1)) for task in tasks]
    return [job.result() for job in jobs]
