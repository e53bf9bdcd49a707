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

from benchmarks.api import ExperimentSpec
from benchmarks.commands import cli
from benchmarks.commands.cli import main
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
    assert "isnet_grad_input" not in out and "would run biased_fashion_mnist" not in out and "decoy_mnist" not in out
    assert "_control" not in out
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert listed.count("extended (runs with --extended or by name): ") == 5 and "an ablation" in listed
    assert "the RRR paper's benchmark" in listed and listed.count("a no-shortcut control") == 2


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


def _options(parser):
    """Every option of ``parser`` and of its sub-commands, with the command it belongs to."""
    for action in parser._actions:
        if hasattr(action, "choices") and isinstance(action.choices, dict):
            for name, sub in action.choices.items():
                yield from ((f"{name} {where}".strip(), a) for where, a in _options(sub))
        elif action.option_strings and action.nargs != 0 and action.default is not None:
            yield "", action


def test_every_option_shows_the_default_the_code_uses(capsys):
    checked = 0
    for where, action in _options(cli._parser()):
        default = action.default
        shown = " ".join(map(str, default)) if isinstance(default, list) else str(default)
        assert "(default" in action.help, f"{where} {action.option_strings[0]}: no default in its help"
        if not isinstance(default, list) and shown not in action.help:
            raise AssertionError(f"{where} {action.option_strings[0]}: help {action.help!r} does not show {shown!r}")
        checked += 1
    assert checked > 20
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    assert "(default: output;" in " ".join(capsys.readouterr().out.split())  # was "(default: runs;"
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--seeds SEED [SEED ...] training seeds, non-negative integers, one run per seed (default: 0 1 2)" in text
    assert "draw 0 is the method's defaults" in text and "0 = defaults" not in text
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "``" not in capsys.readouterr().out  # was the module docstring's reStructuredText


@pytest.mark.parametrize("bad", [["--experiments", "nosuch"], ["--methods", "nosuch", "--experiments", "biased_mnist"],
                                 [*SMOKE[1:-1], "-1"], [*SMOKE[1:], "--n-hparams", "0"]],
                         ids=["experiment", "method", "negative-seed", "no-draws"])
def test_a_rejected_command_creates_nothing(tmp_path, capsys, bad):
    out = tmp_path / "DIR"
    assert main(["run", *bad, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not out.exists()  # was created before the names were checked


def test_negative_seeds_and_no_draws_are_refused_with_what_is_allowed(tmp_path, capsys):
    assert main([*SMOKE[:-1], "2", "-1", "--out", str(tmp_path), "--dry-run"]) == 2
    assert "--seeds must be non-negative integers, got -1" in capsys.readouterr().err  # was run as seed-1-...
    assert main([*SMOKE, "--n-hparams", "0", "--out", str(tmp_path), "--dry-run"]) == 2
    assert "--n-hparams must be at least 1 (draw 0 is the method's defaults), got 0" in capsys.readouterr().err


def test_a_run_that_resumes_says_so(tmp_path, capsys):
    from benchmarks import grid
    from benchmarks.executors.progress import GridProgress
    from benchmarks.registry import discover_experiments, discover_methods

    out, cache = tmp_path / "out", tmp_path / "cache"
    tasks, _ = grid.expand({"biased_mnist": discover_experiments()["biased_mnist"]},
                           {"standard": discover_methods()["standard"]}, [0, 1], "smoke", 1, out.resolve(),
                           cache.resolve(), "cpu")
    tasks[0].folder.mkdir(parents=True)
    (tasks[0].folder / "checkpoint.pt").write_bytes(b"an interrupted run's last epoch")
    assert main([*SMOKE[:-1], "0", "1", "--out", str(out), "--cache-dir", str(cache), "--dry-run"]) == 0
    assert "0 done, 2 to run (1 resumed from their last checkpoint)" in capsys.readouterr().out  # was silent
    with GridProgress(tasks, show=False) as progress:
        assert progress._runs_done() == "grid 0/2 runs (1 resumed)"


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("jobs", ["1", "2"])
@pytest.mark.parametrize(("signame", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_ctrl_c_and_sigterm_say_what_was_saved_and_how_to_resume(tmp_path, jobs, signame, code):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "benchmarks", "run", "--methods", "isnet", "--experiments", "biased_mnist",
               "--profile", "smoke", "--seeds", "0", "1", "2", "3", "--out", str(out), "--cache-dir",
               str(tmp_path / "cache"), "--device", "cpu", "--jobs", jobs, "--no-progress"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(out.glob("runs/*/*/*/provenance.json")):
        time.sleep(0.2)
    time.sleep(0.5)  # a run is training (its progress bar made)
    if signame == "SIGINT":
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground process group
    else:
        os.kill(process.pid, signal.SIGTERM)  # what `kill PID` or a scheduler does: the run process alone
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stdout + stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert "resource_tracker" not in stderr and "leaked" not in stderr, stderr  # was a warning with --jobs 2
    assert "interrupted:" in stderr and "Run the same command again to resume" in stderr
