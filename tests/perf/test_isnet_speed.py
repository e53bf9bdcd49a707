"""perf/isnet_speed.py --quick on the CPU at the smallest sizes: every section's structure,
the CUDA-only parts skipped with a message, and torch.compile agreeing with eager."""

from __future__ import annotations

import json
import math

import pytest
import torch

from perf import isnet_speed
from perf.isnet_cases import Scale, make_step
from perf.isnet_numerics import compile_row, loss_and_gradients, relative_errors

TINY = ["--quick", "--reps", "1", "--batch", "2", "--size", "16"]


@pytest.mark.slow
def test_quick_run_structure(tmp_path, capsys):
    out, js = tmp_path / "speed.md", tmp_path / "speed.json"
    isnet_speed.main([*TINY, "--only", "heatmap,train,breakdown,export,memory,precision",
                      "--variants", "selective,original", "--output", str(out), "--json", str(js)])
    results = json.loads(js.read_text())
    (heat,) = results["heatmap"]
    assert heat["model"] == "resnet18" and heat["ours_s"] > 0 and heat["gradient_s"] > 0
    (train,) = results["train"]
    assert (train["backbone"], train["K"]) == ("small", 2) and train["selective"] > 0 and train["original"] > 0
    (split,) = results["breakdown"]
    assert set(split["plain"]) == {"conv", "other", "gap", "total"}
    assert split["plain"]["total"] == pytest.approx(1.0) and split["selective"]["gap"] == 0.0  # CPU: no gap
    assert results["export"]["exported_s"] > 0
    assert results["memory"] == []  # CUDA only in --quick
    assert [r["candidate"] for r in results["precision"]] == ["plain", "selective", "original"]
    for row in results["precision"]:
        assert row["float32_s"] > 0 and row["float32_vs_float64"]["grad_rel"] < 1e-3
        # bf16 either runs (errors reported) or fails with its error recorded, never silently
        assert (row["bf16_vs_float32"] is not None) != row["bf16_failure"].startswith("fails")
    text = out.read_text()
    for title in ("## Heatmap", "## Training step / plain cross-entropy step (SmallCNN", "## Where a training step",
                  "## Inference of the exported classifier", "## bf16 autocast against float32"):
        assert title in text
    assert "Peak memory: skipped (peak CUDA memory needs --device cuda" in text
    assert "CUDA-only parts skipped on the CPU" in capsys.readouterr().out


def test_loss_and_gradients_leave_the_weights_alone():
    step = make_step("selective", 2, "small", Scale(torch.device("cpu"), 2, 16))
    before = [p.detach().clone() for p in step.backbone.parameters()]
    values, grads = loss_and_gradients(step)
    assert set(values) == {"loss", "heatmap_loss"} and grads.dtype == torch.float64
    assert all(torch.equal(a, b) for a, b in zip(before, step.backbone.parameters(), strict=True))
    again = loss_and_gradients(step)
    assert relative_errors((values, grads), again) == {"loss_rel": 0.0, "heatmap_loss_rel": 0.0, "grad_rel": 0.0,
                                                       "grad_cos": pytest.approx(1.0)}


def test_relative_errors_known_answer():
    errors = relative_errors(({"loss": 2.0}, torch.tensor([3.0, 4.0], dtype=torch.float64)),
                             ({"loss": 2.2}, torch.tensor([3.0, 4.5], dtype=torch.float64)))
    assert errors["loss_rel"] == pytest.approx(0.1)
    assert errors["grad_rel"] == pytest.approx(0.5 / 5)
    assert errors["grad_cos"] == pytest.approx((9 + 18) / (5 * math.hypot(3, 4.5)))


@pytest.mark.slow
def test_compiled_isnet_step_matches_eager():
    """torch.compile (AOTAutograd, the part that differentiates the relevance sweep) keeps the
    gradient of the heatmap loss exact: equal to eager up to float32 rounding."""
    row = compile_row("selective", 2, "tiny", Scale(torch.device("cpu"), 2, 16), reps=1, backend="aot_eager")
    errors = row["compiled_vs_eager"]
    assert errors["loss_rel"] < 1e-6 and errors["heatmap_loss_rel"] < 1e-6
    assert errors["grad_rel"] < 1e-5 and errors["grad_cos"] > 1 - 1e-9
    assert row["first_call_s"] > 0 and row["compiled_s"] > 0
