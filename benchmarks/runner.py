"""Run a grid of tasks: skip finished runs, re-run damaged ones, hand the rest to an executor.

``execute(task)`` is the unit every executor ships: it looks the experiment and method up
by name, so a task pickles as plain data. Executors:

- :func:`run_serial`: one run after another in this process (also what every rank does
  under ``torchrun``, where each run is trained by all ranks together);
- :func:`run_pool`: ``--jobs N`` runs at once in a process pool on this machine;
- :func:`run_submitit`: one submitit job per run, submitted as one job array, to SLURM
  (``--executor slurm``) or to local processes (``--executor local-submitit``).

Whatever the executor, a run is resumable on its own: ``train_run`` checkpoints after every
epoch and picks up from the last checkpoint, and a finished run has a ``done`` marker, so
running the same command again skips it. A grid-level progress bar counts runs, with a run
in progress counted by its finished epochs (read from its ``metrics.jsonl``), and shows an
ETA.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from benchmarks import distributed
from benchmarks.allocator import keep_freed_buffers
from benchmarks.registry import discover_experiments, discover_methods
from benchmarks.resources import available_memory_bytes, usable_cores
from benchmarks.store import CorruptRecordError, RunDir, atomic_write_json, run_path
from benchmarks.training import RunTask, train_run


@dataclass(frozen=True)
class Outcome:
    task: RunTask
    # ok | failed (recorded, e.g. diverged) | error (not recorded; retried next time) | skipped
    # | submitted (handed to a cluster, not waited for)
    status: str
    message: str = ""


def run_dir(task: RunTask) -> RunDir:
    return RunDir(run_path(task.out, task.experiment, task.method, task.seed, task.config))


def pending(tasks: Sequence[RunTask], report: Callable[[str], None] = print) -> tuple[list[RunTask], list[Outcome]]:
    """Split tasks into those to run and those already done; damaged records are reported
    and removed so that they run again. Under ``torchrun`` rank 0 decides for all ranks."""
    todo_index: list[int] | None = None
    if distributed.is_main():
        todo_index = []
        for i, task in enumerate(tasks):
            run = run_dir(task)
            try:
                if run.is_done():
                    continue
            except CorruptRecordError as err:
                report(f"damaged record, re-running: {err}")
                run.reset()
            todo_index.append(i)
    todo_index = distributed.broadcast_object(todo_index)
    chosen = set(todo_index)
    todo = [tasks[i] for i in todo_index]
    done = [Outcome(task, "skipped", "already done") for i, task in enumerate(tasks) if i not in chosen]
    return todo, done


def execute(task: RunTask, position: int = 0, show_progress: bool = True, threads: int | None = None) -> Outcome:
    """Train one run and record it. Unexpected errors are written to ``error.json`` (no
    ``done`` marker, so the next invocation retries) and returned, never raised, except
    under ``torchrun``: there one rank's error leaves the others waiting in a collective,
    so it is raised to stop them all."""
    keep_freed_buffers()
    if threads:
        torch.set_num_threads(threads)
    experiment = discover_experiments()[task.experiment]
    method = discover_methods()[task.method]
    run = run_dir(task)
    try:
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


# --------------------------------------------------------------------------- progress
class GridProgress:
    """A grid-level progress bar with an ETA.

    Each run counts 1. A run not finished counts ``epochs done / (epochs + 1)``: its
    finished epochs are the lines of its ``metrics.jsonl`` (written by whichever process or
    cluster node trains it, so this works for every executor), and evaluation weighs one
    epoch. Runs resumed from a checkpoint start the bar where they are, so the ETA is
    measured on this invocation's work only. A background thread polls every ``interval``
    seconds.
    """

    def __init__(self, tasks: Sequence[RunTask], show: bool, interval: float = 2.0, position: int = 0) -> None:
        self.tasks = list(tasks)
        self.interval = interval
        experiments = discover_experiments()
        self.epochs = []
        for task in self.tasks:
            try:
                self.epochs.append(max(1, experiments[task.experiment].profile(task.profile).epochs))
            except KeyError:
                self.epochs.append(1)
        self.metrics = [run_dir(t).path / "metrics.jsonl" for t in self.tasks]
        self.finished: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.value = self._progress()  # runs done, fractional (kept here: a disabled bar counts nothing)
        self.bar = tqdm(
            total=len(self.tasks),
            initial=self.value,
            desc="grid",
            unit="run",
            position=position,
            smoothing=0,
            disable=not show,
            dynamic_ncols=True,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.2f}/{total_fmt} runs [{elapsed}<{remaining}{postfix}]",
        )
        self.show = show

    def _epochs_done(self, i: int) -> int:
        try:
            with open(self.metrics[i], "rb") as handle:
                return sum(1 for line in handle if line.strip())
        except OSError:
            return 0

    def _progress(self) -> float:
        total = 0.0
        for i, epochs in enumerate(self.epochs):
            total += 1.0 if i in self.finished else min(self._epochs_done(i), epochs) / (epochs + 1)
        return total

    def refresh(self) -> None:
        with self._lock:
            value = self._progress()
            if value > self.value + 1e-9:
                self.bar.update(value - self.value)
                self.value = value

    def finish(self, index: int, outcome: Outcome) -> None:
        with self._lock:
            self.finished.add(index)
            self.bar.set_postfix_str(f"{outcome.task.label}: {outcome.status}", refresh=False)
        self.refresh()

    def note(self, text: str) -> None:
        with self._lock:
            self.bar.set_postfix_str(text, refresh=True)

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self.refresh()

    def __enter__(self) -> GridProgress:
        if self.show and self.tasks:
            self._thread = threading.Thread(target=self._poll, name="grid-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.bar.close()


# --------------------------------------------------------------------------- in this process
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


# --------------------------------------------------------------------------- process pool
_worker_threads: int | None = None


def _init_worker(threads: int, counter: Any, environ: dict[str, str], invocation: int) -> None:
    """Pool worker start-up: the parent's ISNET_* settings, a share of the CPU threads,
    on a machine with several GPUs a GPU of its own (round robin over worker slots), and a
    watch on the invocation that started it."""
    global _worker_threads
    threading.Thread(target=_stop_without, args=(invocation,), name="invocation-watch", daemon=True).start()
    os.environ.update(environ)
    _worker_threads = threads
    torch.set_num_threads(threads)
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


def _pool_worker(task: RunTask) -> Outcome:
    return execute(task, show_progress=False, threads=_worker_threads)


WORKER_MEMORY_BYTES = 2 * 2**30  # what one cpu-profile worker may need (its measured peak is under 1 GiB)


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
    """``(workers, torch threads per worker)`` of a pool for ``n_tasks`` runs: no more workers
    than runs, and the usable cores shared equally among them."""
    workers = max(1, min(jobs, n_tasks))
    return workers, max(1, usable_cores() // workers)


def _pool_context() -> multiprocessing.context.BaseContext:
    """Workers start from a fork server (or spawn where there is none), never by forking
    this process: a fork after torch has started its thread pools (or CUDA) can hang. The
    fork server imports the harness once, so workers start without paying the imports."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["benchmarks.runner"])
        return context
    return multiprocessing.get_context("spawn")


def run_pool(tasks: Sequence[RunTask], jobs: int, show_progress: bool = True) -> list[Outcome]:
    """``jobs`` runs at once in a process pool on this machine; each worker gets an equal
    share of the CPU threads. Each run resumes from its own checkpoint, exactly as in the
    serial executor; if a worker dies (out of memory, killed), the runs it had not
    finished are reported as errors and resume on the next invocation."""
    if distributed.is_active():
        raise ValueError("--jobs cannot be combined with torchrun: under torchrun all ranks train each run together")
    if not tasks:
        return []
    workers, threads = pool_shape(jobs, len(tasks))
    context = _pool_context()
    counter = context.Value("i", 0)
    environ = {k: v for k, v in os.environ.items() if k.startswith("ISNET_")}
    results: dict[int, Outcome] = {}
    with GridProgress(tasks, show_progress) as progress, ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_init_worker,
        initargs=(threads, counter, environ, os.getpid()),
    ) as pool:
        futures = {pool.submit(_pool_worker, task): i for i, task in enumerate(tasks)}
        try:
            for future in as_completed(futures):
                i = futures[future]
                try:
                    outcome = future.result()
                except BrokenProcessPool as err:
                    outcome = Outcome(tasks[i], "error", f"worker process died ({err}); rerun to resume")
                results[i] = outcome
                progress.finish(i, outcome)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return [results[i] for i in range(len(tasks))]


# --------------------------------------------------------------------------- submitit / SLURM
#: SLURM job states in which a job may still train its run (UNKNOWN, e.g. no sacct, is not one)
ACTIVE_SLURM_STATES = {"PENDING", "RUNNING", "REQUEUED", "PREEMPTED", "CONFIGURING", "COMPLETING", "RESIZING",
                       "SUSPENDED", "REQUEUE_HOLD", "REQUEUE_FED", "SIGNALING", "STAGE_OUT"}


class RunJob:
    """What one submitit job runs: one grid cell, checkpointable.

    submitit's checkpointing protocol: on preemption or time-out SLURM signals the job,
    submitit calls :meth:`checkpoint` with the job's arguments and requeues the
    ``DelayedSubmission`` it returns. The state lives on disk already (``train_run`` writes
    a checkpoint after every epoch), so the requeued job is the same task again: it
    resumes after the last finished epoch and at most one epoch of work is lost.

    A job with several tasks (``--slurm-tasks``) trains its run with data parallelism: each
    task is one rank (see :mod:`benchmarks.distributed`).
    """

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads

    def __call__(self, task: RunTask) -> Outcome:
        ranks = _join_job_ranks(task.device)
        try:
            if _done_already(task):
                print(f"{task.label}: already done", flush=True)
                return Outcome(task, "skipped", "already done")
            run = run_dir(task)
            checkpoint = run.checkpoint_path.exists()
            print(f"{task.label}: {'resuming' if checkpoint else 'starting'} in {run.path}"
                  + (f" ({ranks} ranks)" if ranks > 1 else ""), flush=True)
            outcome = execute(task, show_progress=False, threads=self.threads)
            print(f"{task.label}: {outcome.status} {outcome.message}", flush=True)
            return outcome
        finally:
            if ranks > 1:
                distributed.shutdown()

    def checkpoint(self, task: RunTask) -> Any:
        """Called by submitit on preemption / time-out: requeue the very same task."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(RunJob(self.threads), task)


def _join_job_ranks(device: str) -> int:
    """Inside a submitit job with several tasks: export torch.distributed's variables
    from the job environment and join the group. Returns the number of ranks."""
    import submitit

    try:
        env = submitit.JobEnvironment()
    except RuntimeError:  # not inside a submitit job (called directly, e.g. in a test)
        return 1
    if env.num_tasks <= 1:
        return 1
    from submitit.helpers import TorchDistributedEnvironment

    TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
    if env.cluster == "local":
        os.environ["MASTER_ADDR"] = "127.0.0.1"
    distributed.init_from_env(device, silence_other_ranks=False)
    return env.num_tasks


def _done_already(task: RunTask) -> bool:
    done = None
    if distributed.is_main():
        run = run_dir(task)
        try:
            done = run.is_done()
        except CorruptRecordError as err:
            print(f"damaged record, re-running: {err}", flush=True)
            run.reset()
            done = False
    return bool(distributed.broadcast_object(done))


@dataclass(frozen=True)
class SlurmOptions:
    """How runs become submitit jobs. ``cluster`` is ``slurm`` or ``local`` (submitit's
    ``LocalExecutor``: local processes, the same code path, used by the tests)."""

    folder: Path
    cluster: str = "slurm"
    partition: str | None = None
    time_min: int = 240
    gpus: int = 0
    cpus: int = 2
    mem_gb: float | None = None
    array_parallelism: int = 32
    tasks: int | None = None  # processes (DDP ranks) per run; default one per GPU
    extra: dict[str, Any] = field(default_factory=dict)
    wait: bool = True
    poll_s: float | None = None

    @property
    def ranks(self) -> int:
        return self.tasks if self.tasks else max(1, self.gpus)

    def parameters(self) -> dict[str, Any]:
        """submitit ``update_parameters`` keywords (generic ones, then ``slurm_*``)."""
        params: dict[str, Any] = {
            "name": "isnet-benchmarks",
            "timeout_min": int(self.time_min),
            "cpus_per_task": int(self.cpus),
            "gpus_per_node": int(self.gpus),
            "tasks_per_node": int(self.ranks),
            "nodes": 1,
            "slurm_array_parallelism": int(self.array_parallelism),
        }
        if self.mem_gb:
            params["mem_gb"] = float(self.mem_gb)
        if self.partition:
            params["slurm_partition"] = self.partition
        params.update(self.extra)
        return params

    @classmethod
    def from_args(cls, args: Any) -> SlurmOptions:
        """From ``python -m benchmarks run``'s arguments (logs under ``<--out>/submitit``)."""
        if args.jobs not in ("auto", "1", 1):
            raise ValueError(f"--jobs applies to --executor local; with --executor {args.executor} every run is a job")
        return cls(
            folder=Path(args.out).resolve() / "submitit",
            cluster="local" if args.executor == "local-submitit" else "slurm",
            partition=args.slurm_partition,
            time_min=args.slurm_time,
            gpus=args.slurm_gpus,
            cpus=args.slurm_cpus,
            mem_gb=args.slurm_mem_gb,
            array_parallelism=args.slurm_array_parallelism,
            tasks=args.slurm_tasks,
            extra=parse_params(args.slurm_param),
            wait=not args.no_wait,
        )


def parse_params(items: Sequence[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` strings (``--slurm-param``) as submitit parameters; numbers become numbers."""
    params: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--slurm-param {item!r}: expected KEY=VALUE, e.g. slurm_account=myproject")
        parsed: Any = value
        for kind in (int, float):
            try:
                parsed = kind(value)
                break
            except ValueError:
                continue
        params[key.strip()] = parsed
    return params


def manifest_path(folder: Path) -> Path:
    return Path(folder) / "submissions.jsonl"


def _local_job_alive(entry: dict[str, Any]) -> bool:
    """A local-submitit job is its controller process (job id = pid) until it writes a result."""
    job_id = str(entry.get("job_id", ""))
    if (Path(entry.get("job_folder", "")) / f"{job_id}_0_result.pkl").exists():
        return False
    try:
        os.kill(int(job_id), 0)
    except (OSError, ValueError):
        return False
    return True


def _slurm_states(job_ids: Sequence[str]) -> dict[str, str]:
    """SLURM states of jobs, with one ``sacct`` call (``{}`` when sacct is not there)."""
    if not job_ids:
        return {}
    try:
        from submitit.slurm.slurm import SlurmInfoWatcher

        watcher = SlurmInfoWatcher(delay_s=0)
        for job_id in job_ids:
            watcher.register_job(job_id)
        watcher.update()
        return {job_id: watcher.get_state(job_id, mode="cache") for job_id in job_ids}
    except Exception:  # noqa: BLE001 - no sacct: nothing is known to be queued
        return {}


def _queued_elsewhere(tasks: Sequence[RunTask], folder: Path) -> dict[int, str]:
    """Tasks that an earlier submission's job (still queued or running) will train."""
    manifest = manifest_path(folder)
    if not manifest.exists():
        return {}
    latest: dict[str, dict[str, Any]] = {}
    for line in manifest.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        latest[entry.get("run", "")] = entry
    entries = {i: latest[str(run_dir(t).path)] for i, t in enumerate(tasks) if str(run_dir(t).path) in latest}
    states = _slurm_states([str(e["job_id"]) for e in entries.values() if e.get("cluster") == "slurm"])
    busy = {}
    for i, entry in entries.items():
        job_id = str(entry["job_id"])
        if entry.get("cluster") == "local":
            active = _local_job_alive(entry)
        else:
            state = (states.get(job_id) or "UNKNOWN").split()[0].upper()
            active = state in ACTIVE_SLURM_STATES
        if active:
            busy[i] = job_id
    return busy


def _make_executor(options: SlurmOptions) -> Any:
    import shutil

    import submitit

    if options.cluster == "slurm" and shutil.which("sbatch") is None:
        raise ValueError("--executor slurm needs SLURM's sbatch on PATH (run this on the cluster's login node); "
                         "--executor local-submitit runs the same jobs as local processes")
    executor = submitit.AutoExecutor(folder=Path(options.folder) / "%j", cluster=options.cluster)
    executor.update_parameters(**options.parameters())
    return executor


def run_submitit(tasks: Sequence[RunTask], options: SlurmOptions, show_progress: bool = True,
                 report: Callable[[str], None] = print) -> list[Outcome]:
    """One submitit job per run, submitted as one job array (``executor.batch()``).

    Logs go to ``<folder>/<job_id>/`` (``<job_id>_0_log.out`` / ``.err``); every submission
    is appended to ``<folder>/submissions.jsonl`` (job id, run label and folder). Runs whose
    job from an earlier submission is still queued or running are not submitted twice.
    With ``wait`` the call follows the jobs with the grid progress bar and returns their
    outcomes; without, it returns at once (outcomes ``submitted``): run the same command
    again later to see what is done and to resubmit what is not.
    """
    if distributed.is_active():
        raise ValueError("--executor slurm / local-submitit cannot run under torchrun; use --slurm-tasks for DDP")
    busy = _queued_elsewhere(tasks, options.folder)
    for i, job_id in busy.items():
        report(f"  {tasks[i].label}: still queued or running as job {job_id}, not submitted again")
    outcomes: dict[int, Outcome] = {i: Outcome(tasks[i], "submitted", f"job {j} (earlier)") for i, j in busy.items()}
    to_submit = [i for i in range(len(tasks)) if i not in busy]
    if not to_submit:
        return [outcomes[i] for i in range(len(tasks))]
    executor = _make_executor(options)
    unit = RunJob(threads=options.cpus)
    with executor.batch():
        submitted = [executor.submit(unit, tasks[i]) for i in to_submit]
    jobs = dict(zip(to_submit, submitted, strict=True))
    _drop_pattern_folder(options.folder)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    manifest = manifest_path(options.folder)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    with open(manifest, "a") as handle:
        for i, job in jobs.items():
            handle.write(json.dumps({"job_id": job.job_id, "cluster": options.cluster, "label": tasks[i].label,
                                     "run": str(run_dir(tasks[i]).path), "job_folder": str(job.paths.folder),
                                     "submitted": stamp}) + "\n")
    first = next(iter(jobs.values()))
    report(f"submitted {len(jobs)} {options.cluster} jobs ({options.ranks} rank(s) each); "
           f"logs: {Path(options.folder)}/<job_id>/, e.g. {first.paths.stdout}")
    if not options.wait:
        for i, job in jobs.items():
            outcomes[i] = Outcome(tasks[i], "submitted", f"job {job.job_id}")
        return [outcomes[i] for i in range(len(tasks))]

    poll = options.poll_s or (1.0 if options.cluster == "local" else 30.0)
    waiting = dict(jobs)
    with GridProgress(tasks, show_progress, interval=max(poll, 2.0)) as progress:
        for i in busy:
            progress.finish(i, outcomes[i])
        try:
            while waiting:
                for i, job in list(waiting.items()):
                    recorded = _recorded_outcome(tasks[i])  # the record is there: no need to wait for sacct
                    if recorded is not None or job.done():
                        outcomes[i] = recorded or _job_outcome(tasks[i], job)
                        progress.finish(i, outcomes[i])
                        del waiting[i]
                if waiting:
                    time.sleep(poll)
        except KeyboardInterrupt:
            report(f"stopped waiting; {len(waiting)} job(s) go on. Run the same command again to follow up "
                   "(finished runs are skipped, queued ones are not submitted twice)")
            raise
    _drop_pattern_folder(options.folder)
    return [outcomes[i] for i in range(len(tasks))]


def _drop_pattern_folder(folder: Path) -> None:
    """Remove the empty folder named ``%j`` that submitit makes from the folder pattern."""
    try:
        (Path(folder) / "%j").rmdir()
    except OSError:
        pass


def _recorded_outcome(task: RunTask) -> Outcome | None:
    """The outcome a run's ``done`` marker states, if it has one (and it is intact)."""
    run = run_dir(task)
    try:
        if not run.is_done():
            return None
        marker = run.verify()
    except CorruptRecordError as err:
        return Outcome(task, "error", str(err))
    return Outcome(task, marker.get("status", "ok"), marker.get("reason") or "")


def _job_outcome(task: RunTask, job: Any) -> Outcome:
    """The job's outcome (rank 0's, for a job with several tasks)."""
    try:
        result = job.results()[0]
    except Exception as err:  # noqa: BLE001 - a dead job is an error of its run, not of the sweep
        first_line = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        return Outcome(task, "error", f"job {job.job_id} failed: {first_line} (log: {job.paths.stderr})")
    if isinstance(result, Outcome):
        return result
    return Outcome(task, "error", f"job {job.job_id} returned {result!r}")
