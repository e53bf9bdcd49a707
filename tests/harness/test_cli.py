"""The command line: list, bad names, bad devices, unwritable output, dry runs that change
nothing, the extended set, data checked once per experiment, Ctrl-C."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from benchmarks import cli
from benchmarks.api import ExperimentSpec
from benchmarks.cli import main
from benchmarks.report.tidy import load_records

ROOT = Path(__file__).resolve().parents[2]


def test_list_shows_methods_with_mask_needs_and_experiments_with_splits(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "standard" in out and "biased_mnist" in out
    assert "biased, unbiased, deceiving" in out


def test_unknown_method_suggests_the_closest_name(capsys):
    assert main(["run", "--methods", "standrd", "--experiments", "biased_mnist", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "unknown method 'standrd'" in err and "Did you mean 'standard'" in err


def test_unknown_experiment_lists_valid_names(capsys):
    assert main(["run", "--experiments", "mnist_biased", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "unknown experiment 'mnist_biased'" in err and "biased_mnist" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_out_fails_before_training(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert main(["run", "--methods", "standard", "--experiments", "biased_mnist", "--out", str(locked / "x")]) == 2
    assert "not writable" in capsys.readouterr().err


def test_out_that_is_a_file_fails_before_training(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["run", "--methods", "standard", "--experiments", "biased_mnist", "--profile", "smoke",
                 "--out", str(blocker / "sub")]) == 2
    assert "not writable" in capsys.readouterr().err
    for dry in ([], ["--dry-run"]):
        assert main(["run", "--methods", "standard", "--experiments", "biased_mnist", "--profile", "smoke",
                     "--out", str(blocker), *dry]) == 2
        err = capsys.readouterr().err
        assert "is a file, not a folder" in err and "File exists" not in err and len(err.splitlines()) == 1


def test_dry_run_lists_the_grid(tmp_path, capsys):
    assert main(["run", "--methods", "standard", "--experiments", "biased_mnist", "--seeds", "0", "1",
                 "--profile", "smoke", "--out", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 runs in the grid" in out and out.count("would run") == 2


def test_run_all_skips_an_experiment_whose_data_are_missing(tmp_path, capsys, monkeypatch):
    import benchmarks.data.fashion as fashion

    monkeypatch.setenv("ISNET_FASHION_MNIST_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setattr(fashion, "DEBIAN_DIR", tmp_path / "nowhere")
    assert main(["run", "--all", "--extended", "--profile", "smoke", "--seeds", "0", "--out", str(tmp_path / "runs"),
                 "--cache-dir", str(tmp_path / "cache"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("not running biased_fashion_mnist: its data are missing here") == 1
    assert "apt-get install dataset-fashion-mnist" in out
    assert "would run biased_fashion_mnist" not in out and "would run biased_mnist/standard" in out


SMOKE = ["run", "--methods", "standard", "--experiments", "biased_mnist", "--profile", "smoke", "--seeds", "0"]


def _tree(root: Path) -> dict[str, tuple[int, str]]:
    """Every path under ``root`` with its mode and content digest (folders: mode only)."""
    found = {}
    for path in sorted(root.rglob("*")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        found[str(path.relative_to(root))] = (path.stat().st_mode, digest)
    return found


def _damaged_record(out: Path, cache: Path) -> Path:
    """The smoke run's folder with intact predictions and a summary edited after its ``done``."""
    from benchmarks import grid
    from benchmarks.registry import discover_experiments, discover_methods

    (task,), _ = grid.expand({"biased_mnist": discover_experiments()["biased_mnist"]},
                             {"standard": discover_methods()["standard"]}, [0], "smoke", 1, out.resolve(),
                             cache.resolve(), "cpu")
    folder = task.folder
    (folder / "predictions").mkdir(parents=True)
    (folder / "predictions" / "biased.npz").write_bytes(b"intact predictions")
    (folder / "summary.json").write_text('{"status": "ok"}')
    digests = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
               for name in ("summary.json", "predictions/biased.npz")}
    (folder / "done").write_text(json.dumps({"status": "ok", "files": digests}))
    (folder / "summary.json").write_text('{"status": "ok", "edited": true}')
    return folder


def test_dry_run_changes_nothing_and_a_real_run_moves_a_damaged_record_aside(tmp_path, capsys):
    out, cache = tmp_path / "out", tmp_path / "cache"
    assert main([*SMOKE, "--out", str(tmp_path / "new"), "--cache-dir", str(cache), "--dry-run"]) == 0
    assert not (tmp_path / "new").exists()  # --out is not created

    folder = _damaged_record(out, cache)
    before = _tree(tmp_path)
    assert main([*SMOKE, "--out", str(out), "--cache-dir", str(cache), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "damaged record, would be moved aside and re-run" in text and "0 done, 1 to run" in text
    assert _tree(tmp_path) == before

    assert main([*SMOKE, "--out", str(out), "--cache-dir", str(cache), "--no-progress"]) == 0
    assert "damaged record, moved to" in capsys.readouterr().out
    (aside,) = folder.parent.glob(folder.name + ".damaged-*")
    assert (aside / "predictions" / "biased.npz").read_bytes() == b"intact predictions"
    assert json.loads((aside / "summary.json").read_text()) == {"status": "ok", "edited": True}
    assert (folder / "done").exists() and "edited" not in (folder / "summary.json").read_text()
    assert main([*SMOKE, "--out", str(out), "--cache-dir", str(cache), "--dry-run"]) == 0
    assert "1 done, 0 to run" in capsys.readouterr().out  # the set-aside folder is not a run of the grid
    records, problems = load_records(out)
    assert len(records) == 1 and problems == []  # nor a damaged record the report should list


@pytest.mark.parametrize("dry", [[], ["--dry-run"]], ids=["run", "dry-run"])
def test_a_bad_device_is_refused_before_any_run(tmp_path, capsys, monkeypatch, dry):
    args = [*SMOKE, "--out", str(tmp_path / "out"), *dry]
    assert main([*args, "--device", "banana"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --device 'banana': expected auto, cpu, cuda or cuda:N") and err.count("\n") == 1
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main([*args, "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "this machine has no CUDA device" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_a_seed_given_twice_runs_once(tmp_path, capsys):
    assert main([*SMOKE[:-1], "0", "0", "1", "--out", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "--seeds: 0 given more than once" in out and "2 runs in the grid" in out and out.count("would run") == 2


def test_the_default_out_holds_runs_once(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([*SMOKE, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"-> {tmp_path / cli.DEFAULT_OUT / 'runs' / 'biased_mnist'}" in out and "runs/runs" not in out
    assert not (tmp_path / cli.DEFAULT_OUT).exists()


def test_the_extended_set_runs_only_when_asked_for(tmp_path, capsys):
    base = ["run", "--profile", "smoke", "--seeds", "0", "--out", str(tmp_path), "--dry-run"]
    assert main([*base, "--all", "--experiments", "biased_mnist"]) == 0
    assert "biased_mnist/isnet_grad_input" not in capsys.readouterr().out
    assert main([*base, "--all", "--extended", "--experiments", "biased_mnist"]) == 0
    assert "would run biased_mnist/isnet_grad_input/seed0" in capsys.readouterr().out
    assert main([*base, "--methods", "isnet_grad_input", "--experiments", "biased_mnist"]) == 0
    assert "would run biased_mnist/isnet_grad_input/seed0" in capsys.readouterr().out
    assert main([*base, "--all"]) == 0
    out = capsys.readouterr().out
    assert "isnet_grad_input" not in out and "would run biased_fashion_mnist" not in out
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert listed.count("extended (runs with --extended or by name): ") == 2 and "an ablation" in listed


def test_missing_data_are_checked_once_per_experiment_before_the_grid(tmp_path, capsys, monkeypatch):
    calls = []

    def unavailable(cache_dir: Path) -> str:
        calls.append(cache_dir)
        return "no collection under /nowhere\nexpected layout:\n  images/\n  masks/"

    def build(*args):
        raise AssertionError("never built")

    profile = cli.discover_experiments()["biased_mnist"].profiles
    spec = ExperimentSpec("offline", build, ("a",), "a", (), profile, unavailable=unavailable)
    discover = cli.discover_experiments
    monkeypatch.setattr(cli, "discover_experiments", lambda: {**discover(), "offline": spec})
    args = ["run", "--methods", "standard", "isnet", "--experiments", "offline", "biased_mnist", "--profile", "smoke",
            "--seeds", "0", "1", "2", "--out", str(tmp_path / "out"), "--dry-run"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert len(calls) == 1 and out.count("not running offline: its data are missing here") == 1
    assert out.count("expected layout") == 1 and "6 runs in the grid" in out and "offline/" not in out


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_says_what_was_saved_and_how_to_resume(tmp_path, jobs):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "benchmarks", "run", "--methods", "isnet", "--experiments", "biased_mnist",
               "--profile", "smoke", "--seeds", "0", "1", "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
               "--device", "cpu", "--jobs", jobs, "--no-progress"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(out.glob("runs/*/*/*/config.json")):
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground process group
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert "interrupted:" in stderr and "Run the same command again to resume" in stderr
