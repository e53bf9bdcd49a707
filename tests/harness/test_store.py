"""The run store: atomic writes, done markers that detect damage, resume after a kill."""

from __future__ import annotations

import json

import numpy as np
import pytest

from baselines.standard import StandardClassifier
from benchmarks.api import register_method
from benchmarks.report.tidy import load_records
from benchmarks.store import CorruptRecordError, RunDir, atomic_write_json, run_path
from benchmarks.training import RunTask, train_run


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
