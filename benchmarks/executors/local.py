"""Executors on this machine: one run after another in this process, or a process pool.

Either way a run is resumable on its own: ``train_run`` checkpoints after every epoch and
picks up from the last checkpoint, and a finished run has a ``done`` marker, so running the
same command again skips it.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import torch
from tqdm.auto import tqdm

from benchmarks.executors.progress import GridProgress
from benchmarks.executors.unit import Outcome, execute
from benchmarks.resources import available_memory_bytes, usable_cores
from benchmarks.run import distributed
from benchmarks.run.task import RunTask

WORKER_MEMORY_BYTES = 2 * 2**30  # what one cpu-profile worker may need (its measured peak is under 1 GiB)


def run_serial(tasks: Sequence[RunTask], show_progress: bool = True) -> list[Outcome]:
    """One run after another in this process (each with its own progress bar below the grid's)."""
    show = show_progress and distributed.is_main()
    outcomes = []
    with GridProgress(tasks, show) as progress:
        for i, task in enumerate(tasks):
            outcome = execute(task, position=1, show_progress=show)
            outcomes.append(outcome)
            progress.finish(i, outcome)
    return outcomes


def auto_jobs(device: str) -> int:
    """``--jobs auto``: on the CPU one single-threaded worker per usable core (the suite's
    small networks use one thread far better than a share of several), fewer when the
    available memory does not cover :data:`WORKER_MEMORY_BYTES` per worker; one process per
    GPU on CUDA; one under ``torchrun``."""
    if distributed.is_active():
        return 1
    if device.startswith("cuda"):
        return max(1, torch.cuda.device_count()) if device == "cuda" else 1
    avail = available_memory_bytes()
    cores = usable_cores()
    return cores if avail is None else max(1, min(cores, avail // WORKER_MEMORY_BYTES))


def pool_shape(jobs: int, n_tasks: int) -> tuple[int, int]:
    """``(workers, cores per worker)`` of a pool for ``n_tasks`` runs: no more workers than
    runs, and the usable cores shared equally among them (a GPU run's torch threads; a CPU
    run trains with :data:`~benchmarks.executors.unit.CPU_THREADS` whatever its share)."""
    workers = max(1, min(jobs, n_tasks))
    return workers, max(1, usable_cores() // workers)


def _init_worker(counter: Any, environ: dict[str, str], invocation: int) -> None:
    """Pool worker start-up: the parent's ISNET_* settings, on a machine with several GPUs a
    GPU of its own (round robin over worker slots), a watch on the invocation that started
    it, and a quiet exit on Ctrl-C (the ``run`` process says what was saved). A worker draws no
    progress bar, so tqdm gets a thread lock instead of its default multiprocessing one: that
    semaphore, left behind by the quick exit, made the resource tracker warn of a leak."""
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))
    tqdm.set_lock(threading.RLock())
    threading.Thread(target=_stop_without, args=(invocation,), name="invocation-watch", daemon=True).start()
    os.environ.update(environ)
    with counter.get_lock():
        slot = counter.value
        counter.value += 1
    if torch.cuda.is_available() and torch.cuda.device_count() > 1:
        torch.cuda.set_device(slot % torch.cuda.device_count())


def _stop_without(invocation: int, interval: float = 2.0) -> None:
    """Exit this worker once the ``run`` process that started it is gone (killed, so that it
    could not stop its pool), instead of training on unseen: the run it was training keeps
    its last epoch checkpoint and no ``done`` marker, so the next invocation resumes it."""
    while True:
        time.sleep(interval)
        try:
            os.kill(invocation, 0)
        except (ProcessLookupError, PermissionError):  # gone (PermissionError: another user's process took the pid)
            os._exit(1)


def _pool_worker(task: RunTask, share: int) -> Outcome:
    return execute(task, show_progress=False, share=share)


def _pool_context() -> multiprocessing.context.BaseContext:
    """Workers start from a fork server (or spawn where there is none), never by forking
    this process: a fork after torch has started its thread pools (or CUDA) can hang. The
    fork server imports the harness once, so workers start without paying the imports."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["benchmarks.executors.local"])
        return context
    return multiprocessing.get_context("spawn")


def run_pool(tasks: Sequence[RunTask], jobs: int, show_progress: bool = True) -> list[Outcome]:
    """``jobs`` runs at once in a process pool on this machine. Each run resumes from its own
    checkpoint, exactly as in the serial executor, and trains with the threads it would get
    there (see :func:`~benchmarks.executors.unit.run_threads`); if a worker dies (out of
    memory, killed), the runs it had not finished are reported as errors and resume on the
    next invocation."""
    if distributed.is_active():
        raise ValueError("--jobs cannot be combined with torchrun: under torchrun all ranks train each run together")
    if not tasks:
        return []
    workers, share = pool_shape(jobs, len(tasks))
    context = _pool_context()
    counter = context.Value("i", 0)
    environ = {k: v for k, v in os.environ.items() if k.startswith("ISNET_")}
    results: dict[int, Outcome] = {}
    with GridProgress(tasks, show_progress) as progress, ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_init_worker,
        initargs=(counter, environ, os.getpid()),
    ) as pool:
        futures = {pool.submit(_pool_worker, task, share): i for i, task in enumerate(tasks)}
        try:
            for future in as_completed(futures):
                i = futures[future]
                try:
                    outcome = future.result()
                except BrokenProcessPool as err:
                    outcome = Outcome(tasks[i], "error", f"worker process died ({err}); rerun to resume")
                results[i] = outcome
                progress.finish(i, outcome)
        except BaseException:  # Ctrl-C or SIGTERM: stop the workers too (one signalled alone would train on)
            for process in list((pool._processes or {}).values()):
                process.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return [results[i] for i in range(len(tasks))]
