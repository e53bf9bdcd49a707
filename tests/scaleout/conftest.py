"""Shared fixtures of the scale-out tests: a smoke grid (standard on biased_mnist, 2 seeds)
trained serially in this process, single-threaded, as the reference every executor must
reproduce."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks import grid
from benchmarks.commands.cli import main
from benchmarks.registry import discover_experiments, discover_methods
from benchmarks.run.task import RunTask
from benchmarks.store import iter_records

SEEDS = (0, 1)
SPLITS = ("biased", "unbiased", "deceiving")


def smoke_args(out: Path, cache: Path, seeds=SEEDS) -> list[str]:
    return ["run", "--methods", "standard", "--experiments", "biased_mnist", "--profile", "smoke",
            "--seeds", *map(str, seeds), "--out", str(out), "--cache-dir", str(cache), "--device", "cpu",
            "--no-progress"]


def smoke_task(out: Path, cache: Path, seed: int) -> RunTask:
    """The grid's task for one seed, exactly as ``run`` builds it."""
    tasks, _ = grid.expand({"biased_mnist": discover_experiments()["biased_mnist"]},
                           {"standard": discover_methods()["standard"]},
                           [seed], "smoke", 1, Path(out).resolve(), Path(cache).resolve(), "cpu")
    return tasks[0]


def records(out: Path) -> dict[int, object]:
    found = {}
    for record in iter_records(out):
        assert not isinstance(record, Exception), record
        found[record.config["seed"]] = record
    return found


def assert_same_records(expected_out: Path, actual_out: Path) -> None:
    """Same runs, same status, bit-identical predictions on every test split."""
    expected, actual = records(expected_out), records(actual_out)
    assert sorted(actual) == sorted(expected)
    for seed, want in expected.items():
        got = actual[seed]
        assert got.status == want.status == "ok"
        assert got.config == want.config
        for split in SPLITS:
            a, b = want.predictions(split), got.predictions(split)
            np.testing.assert_array_equal(a["labels"], b["labels"])
            np.testing.assert_array_equal(a["logits"], b["logits"])
        for split, metrics in want.summary["splits"].items():
            assert got.summary["splits"][split]["accuracy"] == metrics["accuracy"]
            assert got.summary["splits"][split]["loss"] == metrics["loss"]


@pytest.fixture(scope="session")
def smoke_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def serial_reference(tmp_path_factory, smoke_cache) -> Path:
    """The grid run serially in this process with one CPU thread (what each pool worker
    and each submitit job below gets, so that records must match bit for bit)."""
    out = tmp_path_factory.mktemp("serial")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([*smoke_args(out, smoke_cache), "--jobs", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    assert sorted(records(out)) == list(SEEDS)
    return out


class Interrupted(Exception):
    """Stands in for the process being killed after the last epoch, before evaluation."""


def interrupt_before_evaluation(task: RunTask, monkeypatch) -> float:
    """Train ``task`` in this process (one thread) and die before its evaluation: the run
    folder is left with a checkpoint and no record. Returns the epoch's recorded seconds."""
    from benchmarks.run import training

    def die(*args, **kwargs):
        raise Interrupted

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(training, "_evaluate", die)
            with pytest.raises(Interrupted):
                training.train_run(task, discover_experiments()[task.experiment], discover_methods()[task.method],
                                   show_progress=False)
    finally:
        torch.set_num_threads(threads)
    from benchmarks.executors.unit import run_dir

    checkpoint = run_dir(task).read_checkpoint()
    assert checkpoint is not None and not run_dir(task).done_path.exists()
    return checkpoint["epochs"][-1]["seconds"]
