"""What the grid costs at a profile: seconds per epoch of every method on every experiment of
``python -m benchmarks run --all --profile paper``, measured on this device, and the whole grid
on one GPU and on N GPUs through the SLURM executor (a benchmark, not a test).

    python perf/paper_grid_cost.py --device cuda --write          # reports/performance/paper_grid_cost.{md,csv}
    python perf/paper_grid_cost.py --quick                        # smoke profile on the CPU (proves the path)
    python perf/paper_grid_cost.py --data-size covid_real:train=24000,val=3400,in_distribution=6800,external=1000

Methods come from ``benchmarks.registry.discover_methods()``, experiments from
``discover_experiments()`` (those outside the default grid only with ``--extended``), the runs
from ``benchmarks.grid.expand`` as ``run`` builds them. Each method is built with
``benchmarks.run.training.build_method`` and fed synthetic batches of the experiment's shape (no
dataset is built); see ``perf/grid_timing.py`` for what is timed and how the epoch schedule is
followed. A run's cost is: building the method; per epoch, ``ceil(n_train / batch)`` training
steps, ``ceil(n_val / batch)`` validation batches and the checkpoint write; then test predictions
and the explanation record. The real-data experiments have no size in their profile (their
data are the user's): give ``--data-size`` to count them, else their per-epoch cost is shown per
1000 training images and left out of the totals.
"""

from __future__ import annotations

import argparse
import csv
import heapq
import math
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import grid  # noqa: E402
from benchmarks.api import MethodSpec  # noqa: E402
from benchmarks.registry import discover_experiments, discover_methods, select  # noqa: E402
from benchmarks.run.task import RunTask  # noqa: E402
from perf.grid_timing import CellTiming, Shape, experiment_shape, time_cell  # noqa: E402
from perf.timing import describe, is_out_of_memory, release_memory  # noqa: E402

OUT_DIR = ROOT / "reports" / "performance"
FIELDS = ("experiment", "method", "epochs", "batch", "train_batches", "val_batches", "walked_epochs", "build_s",
          "step_s", "val_batch_s", "checkpoint_s", "epoch_s", "per_1000_images_s", "infer_batch_s",
          "explain_chunk_s", "run_s", "seeds")
STARTUP = ("import torch, benchmarks.runner\nfrom benchmarks.registry import discover_experiments, discover_methods\n"
           "discover_methods(); discover_experiments()\ntorch.zeros(1, device={device!r}).sum().item()\n")


# --------------------------------------------------------------------------- cost model
def epoch_seconds(cell: CellTiming, shape: Shape) -> list[float] | None:
    """Seconds of each epoch (training batches, validation batches, checkpoint), None if the
    experiment's size is unknown."""
    train, val = shape.batches(shape.n_train), shape.batches(shape.n_val)
    if train is None or val is None:
        return None
    return [train * s + val * v + cell.checkpoint_s for s, v in zip(cell.step_s, cell.val_s, strict=True)]


def run_seconds(cell: CellTiming, shape: Shape) -> float | None:
    """One run: building the method, every epoch, then test predictions and explanations."""
    epochs = epoch_seconds(cell, shape)
    chunks = shape.explained_chunks()
    if epochs is None or chunks is None:
        return None
    tests = sum(shape.batches(n) for n in shape.n_test.values())
    return cell.build_s + sum(epochs) + tests * cell.infer_s + chunks * cell.explain_chunk_s


def makespan(durations: list[float], workers: int) -> float:
    """Wall time of independent jobs on ``workers`` machines, longest job first to the least
    loaded machine (what a job array with enough parallelism does, up to queueing)."""
    loads = [0.0] * max(1, min(workers, len(durations) or 1))
    for d in sorted(durations, reverse=True):
        heapq.heapreplace(loads, loads[0] + d)
    return max(loads)


def startup_seconds(device: str) -> float:
    """A fresh process's start: Python, torch and the harness imported, plugins discovered, the
    device initialised (what every SLURM job pays before its run starts)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", STARTUP.format(device=device)], check=True, cwd=ROOT,
                   capture_output=True)
    return time.perf_counter() - started


# --------------------------------------------------------------------------- tables
def cell_record(cell: CellTiming, shape: Shape, seeds: int) -> dict:
    epochs = epoch_seconds(cell, shape)
    train = shape.batches(shape.n_train)
    settled = cell.step_s[-1] * math.ceil(1000 / shape.batch)
    return {
        "experiment": cell.experiment, "method": cell.method, "epochs": shape.epochs, "batch": shape.batch,
        "train_batches": train, "val_batches": shape.batches(shape.n_val), "walked_epochs": cell.walked,
        "build_s": cell.build_s, "step_s": cell.step_s[-1], "val_batch_s": cell.val_s[-1],
        "checkpoint_s": cell.checkpoint_s, "epoch_s": None if epochs is None else sum(epochs) / len(epochs),
        "per_1000_images_s": settled, "infer_batch_s": cell.infer_s, "explain_chunk_s": cell.explain_chunk_s,
        "run_s": run_seconds(cell, shape), "seeds": seeds,
    }


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if value < 10 else f"{value:.0f}"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def markdown(records: list[dict], notes: list[str], startup: float, gpus: list[int], args: argparse.Namespace,
             device: torch.device, cells: int) -> str:
    """The tables; ``cells``: how many method x experiment cells the grid has (a run stopped early
    measured fewer, and says so)."""
    known = [r for r in records if r["run_s"] is not None]
    unknown = sorted({r["experiment"] for r in records if r["run_s"] is None})
    jobs = [r["run_s"] + startup for r in known for _ in range(r["seeds"])]
    total = sum(r["run_s"] * r["seeds"] for r in known)
    lines = [
        f"# What `run --all --profile {args.profile}` costs",
        "",
        f"Generated by `python perf/paper_grid_cost.py {args.command_line}`. Every method of the grid on every "
        f"experiment, {args.seeds} seeds, hyper-parameter draw 0 (the defaults), as `run --all` builds the runs. "
        "Times are measured on synthetic batches of each experiment's shape with the harness's own step, "
        "validation, prediction, explanation and checkpoint code; the epoch schedule is followed epoch by epoch "
        f"until it settles (`walked`), then the median of {args.steps} steps stands for the remaining epochs "
        "(`perf/grid_timing.py`). Not included: building the data (read from the cache), SLURM queueing.",
        "",
        *describe(device),
        "",
        "## Seconds per epoch (method x experiment)",
        "",
        "| experiment | method | epochs (walked) | batches train / val | step (s) | val batch (s) | epoch (s) "
        "| training steps per 1000 images (s) | run (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(f"| {r['experiment']} | {r['method']} | {r['epochs']} ({r['walked_epochs']}) "
                     f"| {r['train_batches'] or 'n/a'} / {r['val_batches'] or 'n/a'} | {_fmt(r['step_s'])} "
                     f"| {_fmt(r['val_batch_s'])} | {_fmt(r['epoch_s'])} | {_fmt(r['per_1000_images_s'])} "
                     f"| {_fmt(r['run_s'])} |")
    lines += [
        "",
        "## The whole grid",
        "",
        *([] if len(records) == cells else [
            f"**Only {len(records)} of the grid's {cells} cells were measured (the run was stopped early or cells "
            "did not fit): the totals below cover those cells only.**", ""]),
        f"{len(jobs)} runs ({len(known)} method x experiment cells x seeds); per-job start-up measured here: "
        f"{startup:.1f} s (a fresh Python importing torch and the harness, discovering the plugins and "
        "initialising the device).",
        "",
        "| GPUs | total / N + start-up per job | longest-first schedule of the jobs |",
        "|---|---|---|",
    ]
    for n in gpus:
        simple = total / n + startup * math.ceil(len(jobs) / n)
        lines.append(f"| {n} | {_duration(simple)} | {_duration(makespan(jobs, n))} |")
    lines += [
        "",
        f"One device: `run --all --profile {args.profile} --device {device.type}` trains the runs one after "
        f"another in one process (one start-up): {_duration(total + startup)}. N GPUs: `--executor slurm "
        "--slurm-gpus 1`, one job per run (a job array, `--slurm-array-parallelism` at least N); the "
        "longest-first schedule is a lower bound of what the array achieves, never less than the longest single "
        f"run ({_duration(max(jobs, default=0.0))}).",
    ]
    if unknown:
        lines += ["", f"Not in the totals (data size unknown here, give `--data-size`): {', '.join(unknown)}."]
    lines += [f"\nNot counted: {note}" for note in notes]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main
def parse_sizes(items: list[str]) -> dict[str, dict[str, int]]:
    """``NAME:split=N,split=N`` -> {NAME: {split: N}} (splits: train, val and the test splits)."""
    sizes: dict[str, dict[str, int]] = {}
    for item in items:
        name, _, rest = item.partition(":")
        try:
            sizes[name] = {k: int(v) for k, v in (part.split("=") for part in rest.split(","))}
        except ValueError:
            raise SystemExit(f"--data-size {item!r}: expected NAME:train=N,val=N,<test split>=N") from None
    return sizes


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--profile", default="paper", help="profile of the grid (default paper)")
    parser.add_argument("--quick", action="store_true", help="the smoke profile, 2 steps, 1 validation batch")
    parser.add_argument("--methods", nargs="+", default=["*"], help="names or glob patterns")
    parser.add_argument("--experiments", nargs="+", default=["*"], help="names or glob patterns")
    parser.add_argument("--extended", action="store_true", help="also methods / experiments outside the default grid")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per cell (run's default: 0 1 2)")
    parser.add_argument("--steps", type=int, default=8, help="timed steps of the settled state")
    parser.add_argument("--val-batches", type=int, default=3, help="timed validation batches of the settled state")
    parser.add_argument("--gpus", default="1,4,8,16,32", help="GPU counts of the cluster table")
    parser.add_argument("--data-size", nargs="*", default=[], metavar="NAME:split=N,...")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "datasets" / "cache")
    parser.add_argument("--write", action="store_true", help=f"write the table to {OUT_DIR.relative_to(ROOT)}/")
    parser.add_argument("--out-dir", type=Path, help="write the table here (implies --write)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.command_line = " ".join(argv if argv is not None else sys.argv[1:])
    if args.quick:
        args.profile, args.steps, args.val_batches = "smoke", 2, 1
    device = torch.device(args.device)
    methods, experiments = discover_methods(), discover_experiments()
    if not args.extended:
        methods = {n: s for n, s in methods.items() if not s.extended}
        experiments = {n: e for n, e in experiments.items() if not e.extended}
    methods = {n: methods[n] for n in select(methods, args.methods, "method")}
    experiments = {n: experiments[n] for n in select(experiments, args.experiments, "experiment")}
    sizes = parse_sizes(args.data_size)
    tasks, skipped = grid.expand(experiments, methods, [0], args.profile, 1, Path("runs"), args.cache_dir, args.device)
    shapes = {n: experiment_shape(e, args.profile, args.cache_dir, sizes.get(n)) for n, e in experiments.items()}
    tasks.sort(key=lambda t: (shapes[t.experiment].n_train is None, t.experiment, t.method))  # countable cells first
    startup = startup_seconds(args.device)
    notes = [f"{s.experiment}/{s.method} is not part of the grid: {s.reason}" for s in skipped]
    gpus = [int(n) for n in args.gpus.split(",")]
    records: list[dict] = []
    failures: list[str] = []
    for task in tasks:
        measure_cell(task, shapes[task.experiment], methods[task.method], device, args, records, failures)
        # written after every cell: a run stopped by a time limit keeps what it measured
        write(markdown(records, notes + failures, startup, gpus, args, device, len(tasks)), records, args)
    text = markdown(records, notes + failures, startup, gpus, args, device, len(tasks))
    print(text)
    paths = write(text, records, args)
    if paths:
        print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0


def measure_cell(task: RunTask, shape: Shape, spec: MethodSpec, device: torch.device, args: argparse.Namespace,
                 records: list[dict], failures: list[str]) -> None:
    """Time one cell into ``records``; a cell that does not fit in the device's memory goes to
    ``failures`` instead (the grid could not run it on this device either)."""
    started = time.perf_counter()
    try:
        cell = time_cell(spec, shape, task.hparams, device, steps=args.steps, val_batches=args.val_batches)
    except Exception as err:
        if not is_out_of_memory(err):
            raise
        release_memory(device)
        failures.append(f"{task.experiment}/{task.method}: out of memory at batch {shape.batch} on this device "
                        "(not in the totals)")
        print(failures[-1], flush=True)
        return
    records.append(cell_record(cell, shape, args.seeds))
    release_memory(device)
    r = records[-1]
    print(f"{task.experiment}/{task.method}: step {r['step_s']:.4f}s, epoch {_fmt(r['epoch_s'])} s, run "
          f"{_fmt(r['run_s'])} s (walked {r['walked_epochs']} of {r['epochs']} epochs; timed in "
          f"{time.perf_counter() - started:.0f} s)", flush=True)


def write(text: str, records: list[dict], args: argparse.Namespace) -> list[Path]:
    """The Markdown and CSV tables, with ``--write`` / ``--out-dir`` (else nothing)."""
    if not (args.write or args.out_dir):
        return []
    out = args.out_dir or OUT_DIR
    out.mkdir(parents=True, exist_ok=True)
    stem = "paper_grid_cost" if args.profile == "paper" else f"grid_cost_{args.profile}"
    (out / f"{stem}.md").write_text(text)
    with open(out / f"{stem}.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(records)
    return [out / f"{stem}.md", out / f"{stem}.csv"]


if __name__ == "__main__":
    raise SystemExit(main())
