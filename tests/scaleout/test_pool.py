"""``--jobs N``: a process pool on one machine, with per-run resume and a grid progress bar."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.commands.cli import main
from benchmarks.executors import local
from benchmarks.executors.progress import GridProgress
from benchmarks.executors.unit import Outcome, run_dir
from benchmarks.resources import process_tree

from .conftest import assert_same_records, interrupt_before_evaluation, smoke_args, smoke_task


@pytest.mark.slow
def test_jobs_2_gives_the_serial_records_and_resumes_each_run(serial_reference, smoke_cache, tmp_path, monkeypatch,
                                                               capsys):
    out = tmp_path / "pool"
    # seed 1 was killed after training, before its evaluation: it must resume, not retrain
    seconds = interrupt_before_evaluation(smoke_task(out, smoke_cache, seed=1), monkeypatch)
    monkeypatch.setattr(local, "usable_cores", lambda: 2)  # 2 workers
    args = smoke_args(out, smoke_cache)

    assert main([*args, "--jobs", "2"]) == 0
    text = capsys.readouterr().out
    assert "0 done, 2 to run" in text and "2 ok, 0 failed, 0 errors" in text

    assert_same_records(serial_reference, out)
    resumed = run_dir(smoke_task(out, smoke_cache, seed=1)).read()
    assert resumed.epochs[-1]["seconds"] == seconds  # the epoch trained before the kill, not a new one
    assert not (resumed.path / "error.json").exists()

    assert main([*args, "--jobs", "2"]) == 0  # the same command again: nothing left to run
    assert "2 done, 0 to run" in capsys.readouterr().out


def test_grid_progress_counts_finished_epochs_and_shows_whole_runs(tmp_path, smoke_cache, capsys):
    tasks = [smoke_task(tmp_path, smoke_cache, seed) for seed in (0, 1)]
    metrics = run_dir(tasks[0]).path / "metrics.jsonl"
    metrics.parent.mkdir(parents=True)
    metrics.write_text('{"epoch": 0}\n')  # smoke: 1 epoch + evaluation = 2 units a run, 1 done
    with GridProgress(tasks, show=True, interval=3600) as progress:
        assert progress.value == 1  # a resumed run starts the bar where it is
        progress.finish(1, Outcome(tasks[1], "ok"))
        assert progress.value == 3
    shown = capsys.readouterr().err
    assert "grid 1/2 runs" in shown and "75%" in shown
    assert ".50" not in shown  # no fractional run counts


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_workers_stop_when_the_run_process_is_killed(smoke_cache, tmp_path):
    """``kill`` of the ``run`` process (not Ctrl-C, which reaches the whole process group) leaves no worker behind."""
    args = [*smoke_args(tmp_path / "out", smoke_cache, seeds=(0, 1, 2, 3)), "--jobs", "2"]
    args[args.index("standard")] = "isnet"  # a few seconds per run: the workers are busy when the kill comes
    main_process = subprocess.Popen([sys.executable, "-m", "benchmarks", *args], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        tree: list[int] = []
        while time.monotonic() < deadline and len(tree) < 4:  # run, fork server, 2 workers
            time.sleep(0.2)
            tree = process_tree(main_process.pid)
        assert len(tree) >= 4, f"pool did not start: {tree}"
        main_process.kill()
        main_process.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(_alive(pid) for pid in tree[1:]):
            time.sleep(0.2)
        assert not any(_alive(pid) for pid in tree[1:])
    finally:
        for pid in process_tree(main_process.pid) if main_process.poll() is None else []:
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
