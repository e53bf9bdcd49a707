"""The out-of-tree plugin in examples/ installs, is listed and runs, like any user's plugin."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # pip-installs the example plugin, then runs it

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "examples" / "example-plugin"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """Install the example plugin into a private folder (no change to the environment)."""
    site = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(site), str(PLUGIN)],
        check=True,
        capture_output=True,
        text=True,
    )
    return site


def _benchmarks(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "benchmarks", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def test_plugin_is_listed_and_runnable(plugin_site, tmp_path):
    listed = _benchmarks(plugin_site, "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "label_smoothing" in listed.stdout

    out = tmp_path / "runs"
    ran = _benchmarks(plugin_site, "run", "--methods", "label_smoothing", "--experiments", "biased_mnist",
                      "--profile", "smoke", "--seeds", "0", "--out", str(out), "--no-progress",
                      "--cache-dir", str(tmp_path / "cache"), cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert list(out.glob("runs/biased_mnist/label_smoothing/seed0-*/done"))


def test_the_contract_checks_run_on_the_installed_plugin(plugin_site, tmp_path):
    """An author who installed the package (no checkout of its tests) checks their method."""
    checked = _benchmarks(plugin_site, "check", "label_smoothing", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    lines = checked.stdout.splitlines()
    assert lines[0] == "label_smoothing (role comparison, no masks):"
    assert sum(line.startswith("  pass  ") for line in lines) == 7
    assert lines[-1] == "1 method(s) checked: all keep the contract"
