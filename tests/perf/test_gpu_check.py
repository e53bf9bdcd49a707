"""perf/gpu_check.sh --quick (its stages on the CPU at tiny sizes) and perf/gpu_report.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from perf.gpu_report import build, demoted, read_status

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_check_quick_writes_its_report(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable, "STAGES": "speed grid"}
    done = subprocess.run(["bash", str(ROOT / "perf" / "gpu_check.sh"), "--quick"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    status = read_status(tmp_path / "stages_quick.tsv")
    assert [(r["stage"], r["rc"]) for r in status] == [("preflight", 0), ("speed", 0), ("grid", 0)]
    report = (tmp_path / "gpu_quick.md").read_text()
    assert "## Machine" in report and "| speed | ok |" in report
    assert "### Training step / plain cross-entropy step (SmallCNN" in report  # the stage's table, demoted
    assert "### Seconds per epoch (method x experiment)" in report
    assert (tmp_path / "grid_cost_smoke.csv").exists() and (tmp_path / "isnet_speed_quick.json").exists()


def test_gpu_check_rejects_unknown_arguments():
    done = subprocess.run(["bash", str(ROOT / "perf" / "gpu_check.sh"), "--fast"], capture_output=True, text=True)
    assert done.returncode == 2 and "usage" in done.stderr


def test_report_shows_a_stage_cut_short_and_a_failed_stage_log(tmp_path):
    (tmp_path / "a.md").write_text("# Table A\n\n## Part\n\n| x |\n")
    (tmp_path / "b.log").write_text("Traceback\nRuntimeError: boom\n")
    (tmp_path / "s.tsv").write_text("speed\t124\t150\ta.log\ngrid\t1\t3\tb.log\n")
    text = build(tmp_path, read_status(tmp_path / "s.tsv"), torch.device("cpu"), ["a.md", "missing.md"])
    assert "| speed | stopped at its time limit (finished sections kept) | 150 |" in text
    assert "| grid | failed (exit 1) | 3 |" in text
    assert "## Table A\n\n### Part" in text
    assert "RuntimeError: boom" in text
    assert demoted("# a\ntext #1\n## b") == "## a\ntext #1\n### b"
