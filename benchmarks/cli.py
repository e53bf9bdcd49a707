"""Command line: ``python -m benchmarks {run,report,list,masks}``."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.api import SCALES
from benchmarks.registry import UnknownNameError, discover_experiments, discover_methods, select
from benchmarks.resources import ResourceMonitor, append_invocation, machine

DEFAULT_OUT = Path("runs")
DEFAULT_CACHE = Path(os.environ.get("ISNET_BENCHMARKS_CACHE", "datasets/cache"))
USER_DATA_TAG = "user-data"
DATA_ENV = "ISNET_BENCHMARKS_DATA"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="train and evaluate a grid of runs (resumable)")
    run.add_argument("--all", action="store_true", help="every method on every default experiment")
    run.add_argument("--methods", nargs="+", default=[], metavar="NAME", help="method names or glob patterns")
    run.add_argument("--experiments", nargs="+", default=[], metavar="NAME", help="experiment names or patterns")
    run.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    run.add_argument("--profile", choices=SCALES, default="cpu")
    run.add_argument("--n-hparams", type=int, default=1, help="hyper-parameter draws per method (0 = defaults)")
    run.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where run records go (default: runs/)")
    run.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="preprocessing cache")
    run.add_argument("--data-root", type=Path, help=f"root of the real collections (or set {DATA_ENV})")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    run.add_argument("--jobs", default="auto",
                     help="runs in parallel on this machine (process pool); auto: one single-threaded worker per "
                          "core (as memory allows) on the CPU, one per GPU on CUDA")
    run.add_argument("--executor", choices=["local", "local-submitit", "slurm"], default="local",
                     help="local: this process or --jobs; slurm: one submitit job per run (a job array); "
                          "local-submitit: the same jobs as local processes")
    run.add_argument("--slurm-partition", help="SLURM partition (with --executor slurm)")
    run.add_argument("--slurm-time", type=int, default=240, help="minutes per job (with --executor slurm)")
    run.add_argument("--slurm-gpus", type=int, default=0, help="GPUs per job (with --executor slurm)")
    run.add_argument("--slurm-cpus", type=int, default=2, help="CPUs per task (with --executor slurm)")
    run.add_argument("--slurm-mem-gb", type=float, help="memory per job in GB (with --executor slurm)")
    run.add_argument("--slurm-array-parallelism", type=int, default=32, help="jobs of the array running at once")
    run.add_argument("--slurm-tasks", type=int, help="processes per run, trained with DDP (default: one per GPU)")
    run.add_argument("--slurm-param", action="append", metavar="KEY=VALUE",
                     help="any other submitit parameter, e.g. slurm_account=mylab (repeatable)")
    run.add_argument("--no-wait", action="store_true", help="with --executor slurm: submit the jobs and return")
    run.add_argument("--log-to", type=Path, metavar="FOLDER",
                     help="append this invocation's wall time and peak memory to FOLDER/invocations.jsonl "
                          "(default: --out), e.g. to record a smoke grid beside the reference records")
    run.add_argument("--dry-run", action="store_true", help="print the grid and exit")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")

    report = commands.add_parser("report", help="turn run records into tables and figures")
    report.add_argument("--runs", "--out", dest="runs", type=Path, default=DEFAULT_OUT, metavar="RUNS",
                        help="the records to report: the folder `run --out` wrote, holding runs/ (default: runs; "
                             "--out is the old name of this flag)")
    report.add_argument("--reports", type=Path, metavar="FOLDER",
                        help="where the report goes: a new or empty folder, or one an earlier report wrote "
                             "(default: RUNS/report; for this checkout's committed reference records results/, "
                             "the committed reports/)")
    report.add_argument("--no-figures", action="store_true", help="tables and README only (default: figures too)")
    report.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 listing the files of --reports that differ from what the records "
                             "produce (default: write the report)")

    commands.add_parser("list", help="list registered methods and experiments")

    masks = commands.add_parser("masks", help="train a lung segmenter / write predicted masks")
    try:
        from benchmarks import masks_cli
    except ImportError:  # the data tools are optional at import time
        masks.set_defaults(masks_unavailable=True)
    else:
        masks_cli.add_arguments(masks)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            return cmd_list()
        if args.command == "run":
            return cmd_run(args)
        if args.command == "report":
            from benchmarks.report import build_report

            return build_report(args.runs, args.reports, figures=not args.no_figures, check=args.check)
        if args.command == "masks":
            from benchmarks import masks_cli

            return masks_cli.main(args)
    except (UnknownNameError, FileNotFoundError, PermissionError, NotADirectoryError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 1


def cmd_list() -> int:
    methods = discover_methods()
    experiments = discover_experiments()
    print("Methods (name | needs masks | summary):")
    for name, spec in methods.items():
        print(f"  {name:<22} {'yes' if spec.needs_masks else 'no ':<4} {spec.summary}")
    print("\nExperiments (name | test splits | summary):")
    for name, exp in experiments.items():
        note = f"  [needs {DATA_ENV}]" if USER_DATA_TAG in exp.tags else ""
        print(f"  {name:<22} {', '.join(exp.test_splits):<36} {exp.summary}{note}")
        for method_name, spec in methods.items():
            reason = spec.reason_not_applicable(exp.tags)
            if reason:
                print(f"  {'':<22}   not run: {method_name} ({reason})")
    return 0


def check_writable(folder: Path) -> None:
    """Fail before any training when run records could not be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as err:
        raise PermissionError(f"--out {folder} is not writable: {err.strerror or err}") from err


def _resolve_device(name: str) -> str:
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _positive_int(text: str, flag: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{flag} must be a positive integer or 'auto', got {text!r}") from None
    if value < 1:
        raise ValueError(f"{flag} must be at least 1, got {value}")
    return value


def _memory_text(monitor: ResourceMonitor) -> str:
    peak = monitor.summary()["peak_pss_bytes"]
    return f"; peak memory {peak / 2**30:.2f} GiB (PSS of all processes)" if peak else ""


def log_invocation(out: Path, args: argparse.Namespace, device: str, workers: int, threads: int, tasks: Sequence,
                   outcomes: Sequence, monitor: ResourceMonitor) -> None:
    """Record what this invocation ran and what it cost in ``<out>/invocations.jsonl``."""
    from benchmarks.provenance import git_commit, package_versions

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


def cmd_run(args: argparse.Namespace) -> int:
    from benchmarks import distributed, grid, runner

    if not (args.all or args.methods or args.experiments):
        raise ValueError("choose what to run: --all, or --methods and/or --experiments")
    if args.data_root:
        os.environ[DATA_ENV] = str(args.data_root)
    all_methods = discover_methods()
    all_experiments = discover_experiments()
    method_names = select(all_methods, args.methods or ["*"], "method")
    if args.experiments:
        experiment_names = select(all_experiments, args.experiments, "experiment")
    else:
        have_data = bool(os.environ.get(DATA_ENV))
        experiment_names = [n for n, e in all_experiments.items() if have_data or USER_DATA_TAG not in e.tags]
        left_out = sorted(set(all_experiments) - set(experiment_names))
        if left_out:
            print(f"not running {', '.join(left_out)}: set {DATA_ENV} or --data-root to the real collections")
        for name in list(experiment_names):
            reason = all_experiments[name].missing_data(args.cache_dir)
            if reason:
                experiment_names.remove(name)
                print(f"not running {name}: its data are missing here.\n{reason}")
    if args.n_hparams < 1:
        raise ValueError("--n-hparams must be at least 1")
    fixed_jobs = None if args.jobs == "auto" else _positive_int(args.jobs, "--jobs")
    check_writable(args.out)
    on_nodes = args.executor == "slurm" and args.device == "auto"  # the jobs' device, not this login node's
    device = ("cuda" if args.slurm_gpus else "cpu") if on_nodes else _resolve_device(args.device)
    distributed.init_from_env(device)  # a no-op unless launched by torchrun
    tasks, skipped = grid.expand(
        {n: all_experiments[n] for n in experiment_names},
        {n: all_methods[n] for n in method_names},
        args.seeds,
        args.profile,
        args.n_hparams,
        args.out.resolve(),
        args.cache_dir.resolve(),
        device,
    )
    for skip in skipped:
        print(f"skip {skip.experiment}/{skip.method}: {skip.reason}")
    todo, done = runner.pending(tasks)
    print(f"{len(tasks)} runs in the grid ({args.profile} profile): {len(done)} done, {len(todo)} to run")
    if args.dry_run:
        for task in todo:
            print(f"  would run {task.label}  -> {runner.run_dir(task).path}")
        return 0
    jobs = runner.auto_jobs(device) if fixed_jobs is None else fixed_jobs
    workers, threads = runner.pool_shape(jobs, len(todo))
    show = not args.no_progress
    with ResourceMonitor() as monitor:
        if args.executor != "local":
            outcomes = runner.run_submitit(todo, runner.SlurmOptions.from_args(args), show_progress=show)
        elif workers > 1:
            outcomes = runner.run_pool(todo, jobs, show_progress=show)
        else:
            outcomes = runner.run_serial(todo, show_progress=show)
    counts = {s: sum(o.status == s for o in outcomes) for s in ("ok", "failed", "error")}
    if todo and distributed.is_main():
        import torch

        threads = threads if workers > 1 else torch.get_num_threads()  # the serial executor keeps torch's own
        log_invocation(args.log_to or args.out, args, device, workers, threads, tasks, outcomes, monitor)
    print(f"finished in {monitor.wall:.1f} s: {counts['ok']} ok, {counts['failed']} failed, {counts['error']} errors"
          + _memory_text(monitor))
    if any(o.status == "submitted" for o in outcomes):
        print(f"{sum(o.status == 'submitted' for o in outcomes)} submitted, not waited for (rerun to follow up)")
    for outcome in outcomes:
        if outcome.status in ("failed", "error"):
            print(f"  {outcome.status}: {outcome.task.label}: {outcome.message}")
    return 1 if counts["error"] else 0
