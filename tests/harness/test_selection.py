"""Model selection: the weights of the epoch with the lowest validation objective are evaluated,
calibration epochs are never selected, and the choice survives a kill."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from baselines.standard import StandardClassifier
from benchmarks.api import Batch, register_method
from benchmarks.architectures import build_backbone
from benchmarks.run.convergence import still_improving
from benchmarks.run.task import RunTask
from benchmarks.run.training import best_epoch, train_run
from benchmarks.store import RunDir, run_path

#: validation objective per epoch, scripted so that the answer is known
SCRIPT = {"valley": [3.0, 1.0, 2.0], "early": [0.5, 2.0, 1.0]}
SNAPSHOTS: dict[str, list[dict]] = {}


class Killed(Exception):
    pass


@register_method("scripted", needs_masks=False,
                 defaults={"lr": 1e-2, "weight_decay": 0.0, "script": "valley", "warmup": 0, "kill_at": -1})
class Scripted(StandardClassifier):
    """The standard classifier with a scripted validation loss; epochs before ``warmup`` are not selectable."""

    def on_epoch_start(self, epoch: int) -> None:
        if epoch == self.hparams["kill_at"]:
            raise Killed(epoch)
        self.epoch = epoch

    @property
    def selectable(self) -> bool:
        return self.epoch >= self.hparams["warmup"]

    def validation_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        out = self.training_step(batch)
        key = f"{self.hparams['script']}-{self.hparams['warmup']}"
        snaps = SNAPSHOTS.setdefault(key, [])
        if len(snaps) <= self.epoch:
            snaps.append(copy.deepcopy(self.model.state_dict()))
        return {**out, "loss": torch.tensor(SCRIPT[self.hparams["script"]][self.epoch])}


def _task(out, script: str, warmup: int = 0, kill_at: int = -1) -> RunTask:
    hparams = {"lr": 1e-2, "weight_decay": 0.0, "script": script, "warmup": warmup, "kill_at": kill_at}
    return RunTask("tiny", "scripted", 0, "smoke", hparams, 0, out, out / "cache")


def _record(task: RunTask):
    return RunDir(run_path(task.out, task.experiment, task.method, task.seed, task.config)).read()


def _logits_of(state: dict, images: torch.Tensor) -> np.ndarray:
    net = build_backbone("tiny_cnn", 2, 1)
    net.load_state_dict(state)
    net.eval()
    with torch.no_grad():
        return net(images).numpy()


@pytest.mark.slow
@pytest.mark.parametrize(("script", "warmup", "expected"), [("valley", 0, 1), ("early", 0, 0), ("early", 1, 2)])
def test_the_selected_epoch_is_the_one_evaluated(tmp_path, tiny_experiment, script, warmup, expected):
    SNAPSHOTS.clear()
    task = _task(tmp_path, script, warmup)
    assert train_run(task, tiny_experiment, Scripted.spec, show_progress=False) == "ok"
    record = _record(task)
    selection = record.summary["selection"]
    assert selection["selected_epoch"] == expected
    assert selection["last_epoch"] == 2 and selection["last_val_loss"] == SCRIPT[script][2]
    assert record.summary["val_loss"] == SCRIPT[script][expected]
    assert [e["selectable"] for e in record.epochs] == [e >= warmup for e in range(3)]
    bundle = tiny_experiment.build(tiny_experiment.profile("smoke"), 0, tmp_path)
    images = bundle.tests["a"].batch(torch.arange(16)).images
    want = _logits_of(SNAPSHOTS[f"{script}-{warmup}"][expected], images)
    np.testing.assert_allclose(record.predictions("a")["logits"], want, rtol=0, atol=1e-5)
    run = RunDir(record.path)
    assert not run.best_path.exists() and not run.checkpoint_path.exists()


@pytest.mark.slow
def test_the_selection_survives_a_kill(tmp_path, tiny_experiment, monkeypatch):
    SNAPSHOTS.clear()
    straight = _task(tmp_path / "straight", "valley")
    train_run(straight, tiny_experiment, Scripted.spec, show_progress=False)
    SNAPSHOTS.clear()
    killed = _task(tmp_path / "killed", "valley", kill_at=2)  # dies after the best epoch (1) was saved
    with pytest.raises(Killed):
        train_run(killed, tiny_experiment, Scripted.spec, show_progress=False)
    run = RunDir(run_path(killed.out, "tiny", "scripted", 0, killed.config))
    assert run.read_best()["epoch"] == 1
    original = Scripted.on_epoch_start
    monkeypatch.setattr(Scripted, "on_epoch_start", lambda self, e: original(self, e) if e != 2 else
                        setattr(self, "epoch", e))
    assert train_run(killed, tiny_experiment, Scripted.spec, show_progress=False) == "ok"
    a, b = _record(straight), _record(killed)
    assert b.summary["selection"]["selected_epoch"] == 1
    np.testing.assert_allclose(a.predictions("b")["logits"], b.predictions("b")["logits"], rtol=0, atol=1e-6)


def test_best_epoch_rule():
    epochs = [{"epoch": 0, "val_loss": 0.1, "selectable": False}, {"epoch": 1, "val_loss": 0.5},
              {"epoch": 2, "val_loss": 0.5}, {"epoch": 3, "val_loss": float("nan")}]
    assert best_epoch(epochs)["epoch"] == 1  # ties go to the earlier epoch; NaN and unselectable never win
    assert best_epoch(epochs[:1]) is None


def _epochs(losses, selectable=None):
    return [{"epoch": i, "val_loss": v, "selectable": True if selectable is None else selectable[i]}
            for i, v in enumerate(losses)]


def test_still_improving_rule_with_known_answers():
    assert still_improving(_epochs([1.0, 0.9, 0.8, 0.7]))  # last quarter (1 epoch) beats the rest by > 1 %
    assert not still_improving(_epochs([1.0, 0.7, 0.8, 0.695]))  # 0.7 %: not an improvement
    assert not still_improving(_epochs([1.0, 0.5, 0.6, 0.7, 0.8]))  # last quarter = 2 epochs, both worse
    assert still_improving(_epochs([1.0, 0.5, 0.6, 0.7, 0.4]))
    assert still_improving(_epochs([0.1, 0.9, 0.8], [False, True, True]))  # calibration epochs do not count
    assert still_improving(_epochs([0.5]))  # nothing before the last quarter to compare with
    assert not still_improving(_epochs([0.5, 0.0008, 0.0004, 0.0001]))  # -88 % but under 0.001: a floor, not a gain
    assert still_improving(_epochs([0.5, 0.02, 0.01, 0.005]))


@pytest.mark.slow
def test_early_stopping_stops_once_the_run_no_longer_improves(tmp_path, tiny_experiment):
    import dataclasses

    profile = dataclasses.replace(tiny_experiment.profile("smoke"), epochs=6, min_epochs=3)
    experiment = dataclasses.replace(tiny_experiment, profiles={"smoke": profile, "cpu": profile, "paper": profile})
    SCRIPT["plateau"] = [1.0, 0.5, 0.52, 0.6, 0.4, 0.3]  # no longer improving after epoch 2: stops there
    task = _task(tmp_path, "plateau")
    assert train_run(task, experiment, Scripted.spec, show_progress=False) == "ok"
    record = _record(task)
    assert [e["epoch"] for e in record.epochs] == [0, 1, 2]
    assert record.summary["selection"]["stopped_early"] and record.summary["selection"]["selected_epoch"] == 1
