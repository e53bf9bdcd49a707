"""The promise across machines: float noise of the size another CPU's kernels make (every
initial weight times 1 + 1e-6 N(0, 1)) changes the numbers but not the schedule, and the
selected model's validation accuracy moves by at most :data:`TOLERANCE`.

A small configuration of the real path: biased MNIST's smoke data, the standard classifier,
twelve epochs under the harness's own rule (every epoch trained, the lowest validation loss
kept)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from benchmarks.executors.unit import CPU_THREADS, fixed_threads
from benchmarks.registry import discover_experiments, discover_methods
from benchmarks.run.task import RunTask, profile_settings
from benchmarks.run.training import perturb_weights, train_run

#: the largest change of the selected model's validation accuracy the promise allows
TOLERANCE = 0.05
EPOCHS = 12


def _train(tmp_path, perturbation):
    experiment = discover_experiments()["biased_mnist"]
    profile = dataclasses.replace(experiment.profile("smoke"), epochs=EPOCHS)
    experiment = dataclasses.replace(experiment, profiles={**experiment.profiles, "smoke": profile})
    spec = discover_methods()["standard"]
    task = RunTask("biased_mnist", "standard", 0, "smoke", dict(spec.defaults), 0, tmp_path / "runs",
                   tmp_path / "cache", experiment_profile=profile_settings(profile), perturbation=perturbation)
    with fixed_threads(CPU_THREADS):  # as every executor trains a CPU run
        assert train_run(task, experiment, spec, show_progress=False) == "ok"
    summary = json.loads((task.folder / "summary.json").read_text())
    epochs = [json.loads(line) for line in (task.folder / "metrics.jsonl").read_text().splitlines()]
    return summary["selection"], epochs


@pytest.mark.slow
def test_a_perturbation_of_1e6_keeps_the_schedule_and_the_selected_accuracy(tmp_path):
    plain, plain_epochs = _train(tmp_path, None)
    moved, moved_epochs = _train(tmp_path, (1e-6, 1))
    assert plain_epochs[0]["train_loss"] != moved_epochs[0]["train_loss"]  # the perturbation did change the run
    assert plain["epochs"] == moved["epochs"] == EPOCHS  # the schedule does not depend on the noise
    assert abs(plain["selected_val_accuracy"] - moved["selected_val_accuracy"]) <= TOLERANCE


def test_the_perturbation_is_relative_and_leaves_the_global_random_state_alone():
    import torch

    torch.manual_seed(0)
    layer = torch.nn.Linear(50, 50)
    before = layer.weight.detach().clone()
    state = torch.get_rng_state()
    perturb_weights(layer, 1e-6, draw=1)
    assert torch.equal(torch.get_rng_state(), state)
    relative = ((layer.weight - before) / before).abs()
    assert 0 < relative.max() < 1e-5 and relative.median() < 2e-6
