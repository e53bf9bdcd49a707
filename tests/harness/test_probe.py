"""The background probe: known answers on hand-made models, and a probed run's weights are the
run's selected weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from baselines.standard import StandardClassifier
from benchmarks.api import TensorSplit
from benchmarks.probe import background_only, probe_accuracy, probe_run


def _split(n: int = 64) -> TensorSplit:
    """Label 1: a bright square in the foreground and a grey background; label 0: dark both."""
    labels = torch.arange(n) % 2
    images = torch.zeros(n, 1, 8, 8)
    masks = torch.zeros(n, 1, 8, 8)
    masks[:, :, 2:6, 2:6] = 1
    images[labels == 1] += 0.3  # background level names the class (the shortcut)
    images[labels == 1, :, 3:5, 3:5] = 1.0  # and so does the object (the signal)
    return TensorSplit(images, labels, masks)


class Reads(nn.Module):
    """Logits from the mean level of the background (``where="background"``) or from the brightest
    foreground pixel (the object's detail, which a flat foreground loses)."""

    def __init__(self, where: str) -> None:
        super().__init__()
        inside = torch.zeros(1, 1, 8, 8)
        inside[:, :, 2:6, 2:6] = 1
        self.register_buffer("region", inside if where == "foreground" else 1 - inside)
        self.where = where
        self.cut = 0.15 if where == "background" else 0.7

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.where == "background":
            level = (x * self.region).sum((1, 2, 3)) / self.region.sum()
        else:
            level = (x * self.region).amax((1, 2, 3))
        return torch.stack([self.cut - level, level - self.cut], 1)


def test_background_only_keeps_the_background_and_flattens_the_foreground():
    split = _split(4)
    batch = split.batch(torch.arange(4))
    out = background_only(batch.images, batch.masks)
    assert torch.equal(out * (1 - batch.masks), batch.images * (1 - batch.masks))
    inside = out[1, 0, 2:6, 2:6]
    assert torch.allclose(inside, torch.full_like(inside, (0.3 * 12 + 1.0 * 4) / 16))


def test_a_model_reading_the_background_keeps_its_accuracy_one_reading_the_object_falls_to_chance():
    split = _split()
    shortcut = probe_accuracy(Reads("background"), split)
    honest = probe_accuracy(Reads("foreground"), split)
    assert {k: shortcut[k] for k in ("intact", "background_only", "chance")} == {"intact": 1.0, "background_only": 1.0,
                                                                              "chance": 0.5}
    assert honest["intact"] == 1.0 and honest["background_only"] == 0.5
    assert np.isnan(shortcut["lrp_background_share"])  # a model the LRP engine cannot walk: no share, no error


@pytest.mark.slow
def test_a_probed_run_is_the_runs_selected_model(tmp_path, tiny_experiment):
    result = probe_run(tiny_experiment, StandardClassifier.spec, 0, "smoke", tmp_path, tmp_path / "cache")
    again = probe_run(tiny_experiment, StandardClassifier.spec, 0, "smoke", tmp_path, tmp_path / "cache")
    assert result == again  # the kept weights are reused, not retrained
    assert 0 <= result["selected_epoch"] < 3 and result["chance"] == 0.5
    assert 0.0 <= result["background_only"] <= 1.0 and result["intact"] >= 0.5
    assert 0.0 <= result["lrp_background_share"] <= 1.0
