"""``python -m benchmarks check``: the contract checks name what a broken method does wrong."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks import contract
from benchmarks.api import Batch, Method, ModelContext, register_method
from benchmarks.commands import cli


@register_method("frozen", needs_masks=False, defaults={"lr": 1e-3}, search_space={"lr": [1e-3], "momentum": [0.9]})
class Frozen(Method):
    """Never learns (its optimiser has no parameters) and exports itself instead of a plain module."""

    def __init__(self, ctx: ModelContext, **hparams: Any) -> None:
        super().__init__(ctx, **hparams)
        self.model = ctx.build_backbone(ctx.num_classes)

    def training_step(self, batch: Batch) -> dict[str, Tensor]:
        logits = self.model(batch.images)
        return {"loss": F.cross_entropy(logits, batch.labels), "logits": logits}

    def export(self) -> nn.Module:
        return self

    def configure_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=float(self.hparams["lr"]))


@register_method("self_export", needs_masks=True, defaults={"lr": 1e-3})
class SelfExport(Frozen):
    """Learns, but exports itself, so what is tested would not be the plain classifier."""

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images)

    def configure_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=float(self.hparams["lr"]))


def test_a_broken_method_fails_the_checks_it_breaks(monkeypatch, capsys):
    monkeypatch.setattr(cli, "discover_methods", lambda: {"frozen": Frozen.spec})
    assert cli.main(["check", "fro*"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "  FAIL  Every searched hyper-parameter has a default, and the space can be sampled: searched " \
                     "hyper-parameters without a default: ['momentum'] (draw 0 is the defaults)"
    assert out[3].startswith("  FAIL  Three optimiser steps on the tiny batch lower the loss by at least 0.01 %: "
                             "the loss did not fall")
    assert out[4] == "  skip  A method that does not need masks trains on a batch without them: not run: loss_falls " \
                     "did not pass"
    assert out[-1] == "1 method(s) checked: frozen broke the contract"
    assert [r.status for r in contract.check_method(Frozen.spec)] == ["FAIL", "pass", "FAIL", "skip", "skip", "skip",
                                                                      "skip"]


def test_a_method_exported_as_itself_fails_the_export_check():
    results = {r.check: r for r in contract.check_method(SelfExport.spec)}
    assert [r.status for r in results.values()] == ["pass", "pass", "pass", "skip", "pass", "pass", "FAIL"]
    assert results["trains_without_masks"].message == "the method needs masks"
    assert results["exports"].message == "export must give a plain nn.Module (what is tested), got SelfExport"
