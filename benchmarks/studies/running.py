"""Run a study's tasks as the grid runs them: skip finished records, train the rest on this
machine's process pool (one single-threaded worker per job), and log what the invocation cost
in ``<out>/invocations.jsonl``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.run.task import RunTask


def run_tasks(tasks: Sequence[RunTask], out: Path, jobs: int) -> int:
    """Train the unfinished ``tasks``; exit status 1 when a run ended in an error."""
    from benchmarks import runner
    from benchmarks.executors import local
    from benchmarks.interrupts import exit_code, terminate_as_interrupt
    from benchmarks.resources import ResourceMonitor, append_invocation, machine
    from benchmarks.run.provenance import git_commit

    runner.check_out(Path(out))
    todo, done = runner.pending(tasks)
    print(f"{len(tasks)} runs in the study: {len(done)} done, {len(todo)} to run", flush=True)
    if not todo:
        return 0
    try:
        with terminate_as_interrupt(), ResourceMonitor() as monitor:
            if jobs > 1 and len(todo) > 1:
                outcomes = local.run_pool(todo, jobs, show_progress=False)
            else:
                outcomes = local.run_serial(todo, show_progress=False)
    except KeyboardInterrupt as interrupt:  # Ctrl-C or SIGTERM: the finished epochs are checkpointed
        print(runner.interrupted_text(todo, Path(out)), file=sys.stderr)
        return exit_code(interrupt)
    counts = {s: sum(o.status == s for o in outcomes) for s in ("ok", "failed", "error")}
    append_invocation(Path(out), {"finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                  "runs_trained": len(outcomes), "outcomes": counts, "jobs": jobs,
                                  "machine": machine(), "git_commit": git_commit(), **monitor.summary()})
    for outcome in outcomes:
        if outcome.status != "ok":
            print(f"  {outcome.status}: {outcome.task.label}: {outcome.message}")
    print(f"finished in {monitor.wall:.0f} s: {counts}")
    return 1 if counts["error"] else 0


def study_main(name: str, doc: str, tasks: Callable[[Path, Path], list[RunTask]], argv: Sequence[str] | None,
               listing: Callable[[list[RunTask]], None] | None = None) -> int:
    """The command of study ``name`` (``python -m benchmarks.studies.<name> run``; ``list`` too
    where ``listing`` prints the study's plan): its records go to ``results/studies/<name>``
    unless ``--out`` says otherwise."""
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.studies.{name}", description=doc.split("\n\n")[0])
    parser.add_argument("command", choices=["run", "list"] if listing else ["run"])
    parser.add_argument("--out", type=Path, default=Path("results/studies") / name)
    parser.add_argument("--cache-dir", type=Path, default=Path("datasets/cache"))
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    made = tasks(args.out.resolve(), args.cache_dir.resolve())
    if args.command == "list" and listing is not None:
        listing(made)
        return 0
    return run_tasks(made, args.out, args.jobs)
