"""``--executor slurm`` / ``local-submitit``: one submitit job per run, submitted as one job array.

Every submission is appended to ``<out>/submitit/submissions.jsonl``, so that a run whose job
from an earlier submission is still queued or running is not submitted twice; a preempted
or timed-out job is requeued as the very same run and resumes from its last checkpoint.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks.executors.progress import GridProgress
from benchmarks.executors.unit import Outcome, execute, run_dir
from benchmarks.run import distributed
from benchmarks.run.task import RunTask
from benchmarks.store import CorruptRecordError

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
    task is one rank (see :mod:`benchmarks.run.distributed`).
    """

    def __init__(self, cpus: int | None = None) -> None:
        self.cpus = cpus  # the job's CPUs: a GPU run's torch threads (a CPU run's are fixed)

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
            outcome = execute(task, show_progress=False, share=self.cpus)
            print(f"{task.label}: {outcome.status} {outcome.message}", flush=True)
            return outcome
        finally:
            if ranks > 1:
                distributed.shutdown()

    def checkpoint(self, task: RunTask) -> Any:
        """Called by submitit on preemption / time-out: requeue the very same task."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(RunJob(self.cpus), task)


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
            moved = run.set_aside()
            print(f"damaged record, moved to {moved}, re-running: {err}", flush=True)
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
    unit = RunJob(cpus=options.cpus)
    with executor.batch():
        submitted = [executor.submit(unit, tasks[i]) for i in to_submit]
    jobs = dict(zip(to_submit, submitted, strict=True))
    _drop_pattern_folder(options.folder)
    _append_manifest(tasks, jobs, options)
    first = next(iter(jobs.values()))
    report(f"submitted {len(jobs)} {options.cluster} jobs ({options.ranks} rank(s) each); "
           f"logs: {Path(options.folder)}/<job_id>/, e.g. {first.paths.stdout}")
    if not options.wait:
        for i, job in jobs.items():
            outcomes[i] = Outcome(tasks[i], "submitted", f"job {job.job_id}")
        return [outcomes[i] for i in range(len(tasks))]

    _follow(tasks, jobs, outcomes, options, show_progress, report)
    _drop_pattern_folder(options.folder)
    return [outcomes[i] for i in range(len(tasks))]


def _append_manifest(tasks: Sequence[RunTask], jobs: dict[int, Any], options: SlurmOptions) -> None:
    """One line per submitted job in ``submissions.jsonl``: job id, run label and folder."""
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    manifest = manifest_path(options.folder)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    with open(manifest, "a") as handle:
        for i, job in jobs.items():
            handle.write(json.dumps({"job_id": job.job_id, "cluster": options.cluster, "label": tasks[i].label,
                                     "run": str(run_dir(tasks[i]).path), "job_folder": str(job.paths.folder),
                                     "submitted": stamp}) + "\n")


def _follow(tasks: Sequence[RunTask], jobs: dict[int, Any], outcomes: dict[int, Outcome], options: SlurmOptions,
            show_progress: bool, report: Callable[[str], None]) -> None:
    """Wait for ``jobs`` with the grid progress bar, filling ``outcomes`` (the runs already in
    ``outcomes`` were submitted earlier and count as finished here). Ctrl-C stops the waiting,
    not the jobs."""
    poll = options.poll_s or (1.0 if options.cluster == "local" else 30.0)
    waiting = dict(jobs)
    with GridProgress(tasks, show_progress, interval=max(poll, 2.0)) as progress:
        for i in outcomes:
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
