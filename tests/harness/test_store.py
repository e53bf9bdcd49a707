"""The run store: atomic writes that honour the umask, done markers that detect damage, parse
errors that name the file, checkpoints that are plain data, resume after a kill."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines.standard import StandardClassifier
from benchmarks.api import register_method
from benchmarks.report.tidy import load_records
from benchmarks.run.task import RunTask
from benchmarks.run.training import train_run
from benchmarks.store import CorruptRecordError, RunDir, atomic_write_json, check_plain, run_path


class Killed(Exception):
    """Stands in for the process being killed between two epochs."""


@register_method("killable", needs_masks=False, defaults={"lr": 1e-2, "weight_decay": 0.0, "kill_at": -1})
class Killable(StandardClassifier):
    """The standard classifier, dying when epoch ``kill_at`` starts (once)."""

    def on_epoch_start(self, epoch: int) -> None:
        if epoch == self.hparams["kill_at"]:
            raise Killed(f"killed before epoch {epoch}")


def _task(tmp_path, kill_at: int, seed: int = 0) -> RunTask:
    return RunTask("tiny", "killable", seed, "smoke", {"lr": 1e-2, "weight_decay": 0.0, "kill_at": kill_at}, 0,
                   tmp_path, tmp_path / "cache")


def _predictions(tmp_path, task: RunTask) -> dict[str, np.ndarray]:
    run = RunDir(run_path(tmp_path, task.experiment, task.method, task.seed, task.config))
    return run.read().predictions("b")


@pytest.mark.slow
def test_resume_after_kill_gives_the_same_result(tmp_path, tiny_experiment, monkeypatch):
    straight = _task(tmp_path / "straight", kill_at=-1)
    assert train_run(straight, tiny_experiment, Killable.spec, show_progress=False) == "ok"

    interrupted = _task(tmp_path / "resumed", kill_at=2)
    with pytest.raises(Killed):
        train_run(interrupted, tiny_experiment, Killable.spec, show_progress=False)
    run = RunDir(run_path(interrupted.out, "tiny", "killable", 0, interrupted.config))
    assert not run.done_path.exists()
    assert len(run.read_checkpoint()["epochs"]) == 2

    # the restarted process: same configuration, and this time nobody kills it
    monkeypatch.setattr(Killable, "on_epoch_start", lambda self, epoch: None)
    assert train_run(interrupted, tiny_experiment, Killable.spec, show_progress=False) == "ok"

    a = _predictions(tmp_path / "straight", straight)
    b = _predictions(tmp_path / "resumed", interrupted)
    np.testing.assert_array_equal(a["labels"], b["labels"])
    np.testing.assert_allclose(a["logits"], b["logits"], rtol=0, atol=1e-6)
    epochs_a = RunDir(run_path(straight.out, "tiny", "killable", 0, straight.config)).read().epochs
    epochs_b = run.read().epochs
    assert [e["val_accuracy"] for e in epochs_a] == [e["val_accuracy"] for e in epochs_b]
    assert not run.checkpoint_path.exists()  # the checkpoint is dropped once the record is done
    starts = run.read().provenance["starts"]  # every start and resume is recorded
    assert [s["resumed_from_epoch"] for s in starts] == [0, 2]
    assert all(s["threads"] == torch.get_num_threads() for s in starts)


@pytest.mark.slow
def test_done_marker_detects_damage(tmp_path, tiny_experiment):
    task = _task(tmp_path, kill_at=-1)
    train_run(task, tiny_experiment, Killable.spec, show_progress=False)
    run = RunDir(run_path(tmp_path, "tiny", "killable", 0, task.config))
    assert run.is_done()
    summary = json.loads((run.path / "summary.json").read_text())
    summary["splits"]["a"]["accuracy"] = 1.0  # a hand-edited number
    (run.path / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(CorruptRecordError, match="summary.json"):
        run.is_done()
    records, problems = load_records(tmp_path)
    assert records == [] and len(problems) == 1


@pytest.mark.slow
def test_half_written_record_is_not_done(tmp_path, tiny_experiment):
    task = _task(tmp_path, kill_at=-1)
    train_run(task, tiny_experiment, Killable.spec, show_progress=False)
    run = RunDir(run_path(tmp_path, "tiny", "killable", 0, task.config))
    (run.path / "predictions" / "a.npz").unlink()
    with pytest.raises(CorruptRecordError, match="missing"):
        run.verify()


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "x" / "record.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in target.parent.iterdir()] == ["record.json"]


def test_diverging_run_is_recorded_as_failed(tmp_path, tiny_experiment):
    task = RunTask("tiny", "killable", 0, "smoke", {"lr": 1e30, "weight_decay": 0.0, "kill_at": -1}, 0,
                   tmp_path, tmp_path / "cache")
    status = train_run(task, tiny_experiment, Killable.spec, show_progress=False)
    assert status == "failed"
    record = RunDir(run_path(tmp_path, "tiny", "killable", 0, task.config)).read()
    assert record.status == "failed"
    assert "non-finite loss" in record.summary["reason"]


def test_profile_settings_are_part_of_the_run_identity(tmp_path):
    """Records of a shorter schedule are never taken for those of a longer one."""
    short = RunTask("tiny", "killable", 0, "cpu", {}, 0, tmp_path, tmp_path, experiment_profile={"epochs": 5})
    long = RunTask("tiny", "killable", 0, "cpu", {}, 0, tmp_path, tmp_path, experiment_profile={"epochs": 12})
    assert run_path(tmp_path, "tiny", "killable", 0, short.config) != run_path(tmp_path, "tiny", "killable", 0,
                                                                                 long.config)


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_record_files_honour_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write_json(tmp_path / "a" / "summary.json", {"a": 1})
        RunDir(tmp_path / "a").write_checkpoint({"epochs": []})
    finally:
        os.umask(old)
    for name in ("summary.json", "checkpoint.pt"):
        assert stat.S_IMODE((tmp_path / "a" / name).stat().st_mode) == mode, name


def _sealed(tmp_path: Path, files: dict[str, str], listed: list[str] | None) -> RunDir:
    """A folder with ``files`` and a ``done`` marker listing the digests of ``listed``."""
    run = RunDir(tmp_path / "run")
    for name, text in files.items():
        (run.path / name).parent.mkdir(parents=True, exist_ok=True)
        (run.path / name).write_text(text)
    marker: dict = {"status": "ok", "reason": None}
    if listed is not None:
        marker["files"] = {n: hashlib.sha256((run.path / n).read_bytes()).hexdigest() for n in listed}
    (run.path / "done").write_text(json.dumps(marker))
    return run


def test_a_marker_without_digests_or_leaving_a_file_out_is_damaged(tmp_path):
    files = {"config.json": "{}", "summary.json": "{}"}
    with pytest.raises(CorruptRecordError, match="lists no record files"):
        _sealed(tmp_path / "none", files, None).is_done()
    with pytest.raises(CorruptRecordError, match="summary.json is not covered"):
        _sealed(tmp_path / "part", files, ["config.json"]).is_done()
    assert _sealed(tmp_path / "all", files, ["config.json", "summary.json"]).is_done()


@pytest.mark.parametrize("name", ["config.json", "summary.json", "explanations.json", "metrics.jsonl", "done"])
def test_a_parse_error_names_the_file(tmp_path, name):
    files = {"config.json": "{}", "summary.json": "{}", "explanations.json": "{}", "metrics.jsonl": '{"epoch": 0}\n'}
    files[name if name != "done" else "config.json"] = '{"trunc'
    run = _sealed(tmp_path, files, list(files))
    if name == "done":
        run.done_path.write_text('{"status": "ok", "fil')
    with pytest.raises(CorruptRecordError, match=f"{run.path}: {name}"):
        run.read()


@pytest.mark.slow
def test_the_report_lists_a_record_that_does_not_parse_by_its_file(tmp_path, tiny_experiment):
    task = _task(tmp_path, kill_at=-1)
    train_run(task, tiny_experiment, Killable.spec, show_progress=False)
    run = RunDir(run_path(tmp_path, "tiny", "killable", 0, task.config))
    (run.path / "summary.json").write_text('{"status": "o')  # truncated, and sealed as if it were whole
    marker = json.loads(run.done_path.read_text())
    marker["files"]["summary.json"] = hashlib.sha256((run.path / "summary.json").read_bytes()).hexdigest()
    run.done_path.write_text(json.dumps(marker))
    records, problems = load_records(tmp_path)
    assert records == [] and len(problems) == 1 and "summary.json is not valid JSON" in problems[0]


PLANTED = "planted-code-ran"


def _plant(path: Path) -> None:
    (path.parent / PLANTED).write_text("a checkpoint executed code on load")


class Planted:
    """What an attacker pickles into a checkpoint: code that runs when it is unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return _plant, (self.path,)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["checkpoint.pt", "best.pt"])
def test_a_checkpoint_carrying_a_pickled_object_is_refused_and_set_aside(tmp_path, tiny_experiment, monkeypatch,
                                                                         name):
    task = _task(tmp_path, kill_at=2)
    with pytest.raises(Killed):
        train_run(task, tiny_experiment, Killable.spec, show_progress=False)
    run = RunDir(run_path(tmp_path, "tiny", "killable", 0, task.config))
    state = torch.load(run.path / name, weights_only=True)
    state["epochs" if name == "checkpoint.pt" else "epoch"] = Planted(run.path / name)
    torch.save(state, run.path / name)  # a file planted in a shared --out
    with pytest.raises(CorruptRecordError, match=f"{name} is not a checkpoint of plain tensors"):
        run.read_checkpoint() if name == "checkpoint.pt" else run.read_best()

    monkeypatch.setattr(Killable, "on_epoch_start", lambda self, epoch: None)  # the restarted process
    assert train_run(task, tiny_experiment, Killable.spec, show_progress=False) == "ok"
    assert not list(tmp_path.rglob(PLANTED))  # never executed
    (aside,) = run.path.parent.glob(run.path.name + ".damaged-*")
    assert (aside / name).exists()  # kept for whoever wants to look at it
    record = run.read()
    assert [s["resumed_from_epoch"] for s in record.provenance["starts"]] == [0]  # started afresh


def test_checkpoints_are_plain_data():
    check_plain({"model": {"w": torch.zeros(2)}, "betas": (0.9, 0.99), "epochs": [{"loss": 1.0, "ok": True}]})
    with pytest.raises(TypeError, match=r"checkpoint\['extra'\]\['seen'\] is a set"):
        check_plain({"extra": {"seen": {1, 2}}})
    with pytest.raises(TypeError, match="float64"):
        check_plain({"loss": np.float64(1.0)})
