"""Command line: ``python -m benchmarks {run,report,list,check,masks}``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from benchmarks.api import SCALES, ExperimentSpec
from benchmarks.interrupts import exit_code, terminate_as_interrupt
from benchmarks.registry import UnknownNameError, discover_experiments, discover_methods
from benchmarks.resources import ResourceMonitor

#: where ``run`` writes (records under ``<out>/runs/``, as in the committed ``results/runs/``)
DEFAULT_OUT = Path("output")
#: the default of earlier versions, whose records sit in ``runs/runs/``
EARLIER_DEFAULT_OUT = Path("runs")
DEFAULT_CACHE = Path(os.environ.get("ISNET_BENCHMARKS_CACHE", "datasets/cache"))
USER_DATA_TAG = "user-data"
DATA_ENV = "ISNET_BENCHMARKS_DATA"
DESCRIPTION = ("The ISNet benchmark suite: train and evaluate background-bias mitigation methods (run), report "
               "the records (report), list what is registered (list), check a method against the contract "
               "(check), make lung masks (masks).")


def _add_run_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument("--all", action="store_true", help="every method of the default grid on every default experiment")
    run.add_argument("--extended", action="store_true",
                     help="also the methods and experiments outside the default grid (`list` says which and why); "
                          "named ones run without it")
    run.add_argument("--methods", nargs="+", default=[], metavar="NAME",
                     help="method names or glob patterns (default: those of the default grid)")
    run.add_argument("--experiments", nargs="+", default=[], metavar="NAME",
                     help="experiment names or patterns (default: the default experiments)")
    run.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], metavar="SEED",
                     help="training seeds, non-negative integers, one run per seed")
    run.add_argument("--profile", choices=SCALES, default="cpu",
                     help="smoke: seconds per run (tests); cpu: minutes on a laptop; paper: the papers' scale, GPUs")
    run.add_argument("--n-hparams", type=int, default=1, metavar="N",
                     help="hyper-parameter draws per method, at least 1: draw 0 is the method's defaults, draws "
                          "1..N-1 are sampled from its search space (seeded by method name and draw index)")
    run.add_argument("--hparams", nargs="+", default=[], metavar="METHOD.KEY=VALUE",
                     help="set a hyper-parameter of a method of the grid in every draw, e.g. isnet.P=0.5 "
                          "rrr.lambda_rrr=5, or as JSON: '{\"isnet\": {\"P\": 0.5}}'; VALUE is read as JSON where "
                          "it parses, else as a string; its type must be the default's (checked before anything "
                          "runs); recorded in config.json (hparams_from_cli) and part of the run's identity")
    run.add_argument("--out", type=Path, default=DEFAULT_OUT,
                     help=f"folder of the run records, kept in <out>/runs/ (default: {DEFAULT_OUT}/)")
    run.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="preprocessing cache")
    run.add_argument("--data-root", type=Path, help=f"root of the real collections (or set {DATA_ENV})")
    run.add_argument("--device", default="auto",
                     help="auto, cpu, cuda or cuda:N (a CPU run trains with one thread, whatever runs it)")
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
    run.add_argument("--dry-run", action="store_true", help="print the grid and exit, changing nothing on disk")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)

    _add_run_arguments(commands.add_parser("run", help="train and evaluate a grid of runs (resumable)"))

    report = commands.add_parser("report", help="turn run records into tables and figures")
    report.add_argument("--runs", "--out", dest="runs", type=Path, default=DEFAULT_OUT, metavar="RUNS",
                        help="the records to report: the folder `run --out` wrote, holding runs/ "
                             f"(default: {DEFAULT_OUT}; --out is the old name of this flag)")
    report.add_argument("--reports", type=Path, metavar="FOLDER",
                        help="where the report goes: a new or empty folder, or one an earlier report wrote "
                             "(default: RUNS/report; for this checkout's committed reference records results/, "
                             "the committed reports/)")
    report.add_argument("--no-figures", action="store_true", help="tables and README only (default: figures too)")
    report.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 listing the files of --reports that differ from what the records "
                             "produce (default: write the report)")

    commands.add_parser("list", help="list registered methods and experiments")
    check = commands.add_parser("check", help="check installed methods against the method contract (for plugins)")
    check.add_argument("names", nargs="+", metavar="NAME", help="method names or glob patterns")

    masks = commands.add_parser("masks", help="train a lung segmenter / write predicted masks")
    try:
        from benchmarks.commands import lung_masks
    except ImportError:  # the data tools are optional at import time
        masks.set_defaults(masks_unavailable=True)
    else:
        lung_masks.add_arguments(masks)
    show_defaults(parser)
    return parser


def show_defaults(parser: argparse.ArgumentParser) -> None:
    """Append ``(default: ...)`` to the help of every option, here and in the sub-commands, whose
    help does not state its default (options without one, and flags, are left alone), so that
    the help shows the default the code uses."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                show_defaults(sub)
        elif action.option_strings and action.nargs != 0 and action.default not in (None, argparse.SUPPRESS) \
                and "(default" not in (action.help or ""):
            default = action.default
            shown = (" ".join(map(str, default)) or "none") if isinstance(default, list) else default
            action.help = f"{action.help or ''} (default: {shown})".strip()


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
        if args.command == "check":
            from benchmarks.contract import check_command

            return check_command(discover_methods(), args.names)
        if args.command == "masks":
            from benchmarks.commands import lung_masks

            return lung_masks.main(args)
    except (UnknownNameError, FileNotFoundError, PermissionError, NotADirectoryError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 1


def cmd_list() -> int:
    methods = discover_methods()
    experiments = discover_experiments()
    print("Methods (name | needs masks | summary):")
    for name, spec in methods.items():
        print(f"  {name:<22} {'yes' if spec.needs_masks else 'no ':<4} {spec.summary}")
        if spec.extended:
            print(f"  {'':<22}   extended (runs with --extended or by name): {spec.extended}")
    print("\nExperiments (name | test splits | summary):")
    for name, exp in experiments.items():
        note = f"  [needs {DATA_ENV}]" if USER_DATA_TAG in exp.tags else ""
        print(f"  {name:<22} {', '.join(exp.test_splits):<36} {exp.summary}{note}")
        if exp.extended:
            print(f"  {'':<22}   extended (runs with --extended or by name): {exp.extended}")
        for method_name, spec in methods.items():
            reason = spec.reason_not_applicable(exp.tags)
            if reason:
                print(f"  {'':<22}   not run: {method_name} ({reason})")
    return 0


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


def _experiments(available: dict[str, ExperimentSpec], args: argparse.Namespace) -> list[str]:
    """The experiments to run: named ones, else the default ones (and, with ``--extended``, the
    others); the real-data ones only where their root is set. Each experiment's data are
    checked once, here: one whose data are missing is left out with one message."""
    from benchmarks import grid

    names = grid.choose(available, args.experiments, "experiment", args.extended)
    if not args.experiments and not os.environ.get(DATA_ENV):
        left_out = [n for n in names if USER_DATA_TAG in available[n].tags]
        if left_out:
            print(f"not running {', '.join(left_out)}: set {DATA_ENV} or --data-root to the real collections")
        names = [n for n in names if n not in left_out]
    chosen = []
    for name in names:
        reason = available[name].missing_data(args.cache_dir)
        if reason:
            print(f"not running {name}: its data are missing here.\n{reason}")
        else:
            chosen.append(name)
    return chosen


def _unique_seeds(seeds: Sequence[int]) -> list[int]:
    unique = list(dict.fromkeys(seeds))
    if len(unique) < len(seeds):
        repeated = sorted({s for s in seeds if seeds.count(s) > 1})
        print(f"--seeds: {', '.join(map(str, repeated))} given more than once; each seed runs once")
    return unique


def cmd_run(args: argparse.Namespace) -> int:
    from benchmarks import grid, runner
    from benchmarks.commands import hparams
    from benchmarks.executors import local
    from benchmarks.executors.unit import resumes
    from benchmarks.run import distributed

    if not (args.all or args.methods or args.experiments):
        raise ValueError("choose what to run: --all, or --methods and/or --experiments")
    if args.n_hparams < 1:
        raise ValueError(f"--n-hparams must be at least 1 (draw 0 is the method's defaults), got {args.n_hparams}")
    if min(args.seeds) < 0:
        raise ValueError(f"--seeds must be non-negative integers, got {min(args.seeds)}")
    fixed_jobs = None if args.jobs == "auto" else _positive_int(args.jobs, "--jobs")
    parsed_hparams = hparams.parse(args.hparams)
    device = runner.resolve_device(args.device, args.executor, args.slurm_gpus)
    distributed.init_from_env(device)  # a no-op unless launched by torchrun (then only rank 0 prints)
    if args.data_root:
        os.environ[DATA_ENV] = str(args.data_root)
    all_methods, all_experiments = discover_methods(), discover_experiments()
    method_names = grid.choose(all_methods, args.methods, "method", args.extended)
    experiment_names = _experiments(all_experiments, args)
    args.seeds = _unique_seeds(args.seeds)
    overrides = hparams.check(parsed_hparams, {n: all_methods[n] for n in method_names})
    hparams.judge_by_constructor(overrides, all_methods, {n: all_experiments[n] for n in experiment_names})
    runner.check_out(args.out, dry_run=args.dry_run)  # the first thing that creates anything: all else is accepted
    if args.out == DEFAULT_OUT and (EARLIER_DEFAULT_OUT / "runs").is_dir():
        print(f"note: {EARLIER_DEFAULT_OUT / 'runs'}/ holds records of the earlier default layout; "
              f"pass --out {EARLIER_DEFAULT_OUT} to resume or report them")
    tasks, skipped = grid.expand({n: all_experiments[n] for n in experiment_names},
                                 {n: all_methods[n] for n in method_names}, args.seeds, args.profile, args.n_hparams,
                                 args.out.resolve(), args.cache_dir.resolve(), device, overrides)
    for skip in skipped:
        print(f"skip {skip.experiment}/{skip.method}: {skip.reason}")
    todo, done = runner.pending(tasks, dry_run=args.dry_run)
    resumed = sum(map(resumes, todo))
    print(f"{len(tasks)} runs in the grid ({args.profile} profile): {len(done)} done, {len(todo)} to run"
          + (f" ({resumed} resumed from their last checkpoint)" if resumed else ""))
    if args.dry_run:
        for task in todo:
            print(f"  would run {task.label}  -> {runner.run_dir(task).path}")
        return 0
    jobs = local.auto_jobs(device) if fixed_jobs is None else fixed_jobs
    workers, share = local.pool_shape(jobs, len(todo))
    try:
        with ResourceMonitor() as monitor, terminate_as_interrupt():
            outcomes = _execute(todo, args, jobs, workers)
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM (see benchmarks.interrupts)
        if args.executor == "local":
            print(runner.interrupted_text(todo, args.out), file=sys.stderr)
        return exit_code(interrupt)
    if todo and distributed.is_main():
        from benchmarks.executors.unit import run_threads

        threads = run_threads(device, share if workers > 1 else torch.get_num_threads())
        runner.log_invocation(args.log_to or args.out, args, device, workers, threads, tasks, outcomes, monitor)
    return _summary(outcomes, monitor)


def _execute(todo: Sequence, args: argparse.Namespace, jobs: int, workers: int) -> list:
    """Hand the runs to the executor the arguments choose."""
    from benchmarks.executors import local, slurm

    show = not args.no_progress
    if args.executor != "local":
        return slurm.run_submitit(todo, slurm.SlurmOptions.from_args(args), show_progress=show)
    if workers > 1:
        return local.run_pool(todo, jobs, show_progress=show)
    return local.run_serial(todo, show_progress=show)


def _summary(outcomes: Sequence, monitor: ResourceMonitor) -> int:
    """Print what the invocation did; exit code 1 when a run ended in an error."""
    counts = {s: sum(o.status == s for o in outcomes) for s in ("ok", "failed", "error")}
    print(f"finished in {monitor.wall:.1f} s: {counts['ok']} ok, {counts['failed']} failed, {counts['error']} errors"
          + _memory_text(monitor))
    if any(o.status == "submitted" for o in outcomes):
        print(f"{sum(o.status == 'submitted' for o in outcomes)} submitted, not waited for (rerun to follow up)")
    for outcome in outcomes:
        if outcome.status in ("failed", "error"):
            print(f"  {outcome.status}: {outcome.task.label}: {outcome.message}")
    return 1 if counts["error"] else 0
