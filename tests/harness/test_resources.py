"""Cost accounting of grid invocations: memory of the process tree, the invocation log, --jobs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import resources
from benchmarks.commands.cli import main
from benchmarks.executors import local
from benchmarks.report.ledger import invocations_table
from benchmarks.run.allocator import keep_freed_buffers

linux_only = pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="needs Linux /proc")

ALLOCATE = ("import time; block = bytearray({n}); block[::4096] = b'x' * len(block[::4096]); "
            "print('ready', flush=True); time.sleep(30)")


@linux_only
def test_monitor_counts_a_child_process_memory():
    size = 300 * 2**20
    with resources.ResourceMonitor(interval=0.05) as monitor:
        baseline = monitor.peak_pss
        child = subprocess.Popen([sys.executable, "-c", ALLOCATE.format(n=size)], stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline().strip() == "ready"
            assert child.pid in resources.process_tree(os.getpid())
            time.sleep(0.3)
        finally:
            child.kill()
            child.wait()
    summary = monitor.summary()
    assert summary["peak_pss_bytes"] - baseline >= 0.9 * size
    assert summary["peak_rss_sum_bytes"] >= summary["peak_pss_bytes"] * 0.9
    assert summary["processes_at_peak"] >= 2
    assert summary["wall_seconds"] > 0


def test_machine_names_cpu_cores_and_memory():
    m = resources.machine()
    assert m["cpu"] and m["usable_cores"] >= 1
    assert m["memory_bytes"] is None or m["memory_bytes"] > 2**28


def test_invocation_log_appends_lines_and_skips_damaged_ones(tmp_path):
    resources.append_invocation(tmp_path, {"profile": "cpu", "wall_seconds": 10.0})
    with open(tmp_path / resources.INVOCATIONS, "a") as handle:
        handle.write("{half a line")
    resources.append_invocation(tmp_path, {"profile": "smoke", "wall_seconds": 2.0})
    assert [r["profile"] for r in resources.read_invocations(tmp_path)] == ["cpu", "smoke"]


def test_invocations_table_states_wall_time_and_memory():
    record = {"finished": "2026-01-01T00:00:00+00:00", "profile": "cpu", "seeds": [0, 1, 2], "runs_in_grid": 150,
              "runs_trained": 150, "outcomes": {"ok": 149, "failed": 1, "error": 0}, "wall_seconds": 2700.0,
              "jobs": 2, "threads_per_job": 1, "device": "cpu", "peak_pss_bytes": 3 * 2**30,
              "peak_rss_sum_bytes": 5 * 2**30, "git_commit": "abcdef1234567890",
              "machine": {"cpu": "Some CPU", "usable_cores": 2, "memory_bytes": 24 * 2**30}}
    md = invocations_table([record]).markdown()
    assert "| 45.0 |" in md and "| 3.00 |" in md and "| 5.00 |" in md
    assert "Some CPU, 2 cores, 24 GiB" in md and "150 of 150 (149 ok, 1 failed, 0 errors)" in md
    assert "2 x 1" in md


def test_allocator_setting_keeps_results_identical():
    import torch

    torch.manual_seed(0)
    x = torch.randn(8, 3, 64, 64)
    conv = torch.nn.Conv2d(3, 16, 3, padding=1)
    before = conv(x)
    applied = keep_freed_buffers()
    assert applied == sys.platform.startswith("linux")
    assert torch.equal(conv(x), before)


def test_auto_jobs_is_one_worker_per_core_on_cpu_and_one_per_selected_gpu():
    assert 1 <= local.auto_jobs("cpu") <= resources.usable_cores()
    assert local.auto_jobs("cuda:1") == 1


def test_bad_jobs_value_is_a_clear_error_before_training(tmp_path, capsys):
    args = ["run", "--methods", "standard", "--experiments", "biased_mnist", "--profile", "smoke", "--seeds", "0",
            "--out", str(tmp_path / "runs")]
    assert main(args + ["--jobs", "0"]) == 2
    assert "--jobs must be at least 1" in capsys.readouterr().err
    assert main(args + ["--jobs", "many"]) == 2
    assert "positive integer or 'auto'" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "runs").exists()


def test_jobs_with_a_cluster_executor_is_refused(tmp_path, capsys):
    args = ["run", "--methods", "standard", "--experiments", "biased_mnist", "--profile", "smoke", "--seeds", "0",
            "--out", str(tmp_path / "runs"), "--executor", "local-submitit", "--jobs", "2"]
    assert main(args) == 2
    assert "--jobs applies to --executor local" in capsys.readouterr().err
