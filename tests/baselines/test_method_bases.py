"""The Method base's optimiser and the cross-entropy-only base, with known answers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from benchmarks.api import Batch, CrossEntropyMethod, ModelContext, register_method
from benchmarks.architectures import build_backbone
from benchmarks.registry import discover_methods


def context(scale: str = "smoke") -> ModelContext:
    return ModelContext(num_classes=3, in_channels=1, image_size=32, scale=scale, backbone="tiny_cnn",
                        build_backbone=lambda k: build_backbone("tiny_cnn", k, 1),
                        class_names=("normal", "covid", "pneumonia"))


@register_method("zero_linear", needs_masks=False, defaults={"lr": 0.1, "weight_decay": 0.01, "optimizer": "adam",
                                                             "momentum": 0.5})
class ZeroLinear(CrossEntropyMethod):
    """A linear classifier with zero weights: every logit is 0."""

    def build_model(self, ctx: ModelContext) -> nn.Module:
        model = nn.Sequential(nn.Flatten(), nn.Linear(ctx.image_size**2 * ctx.in_channels, ctx.num_classes))
        nn.init.zeros_(model[1].weight)
        nn.init.zeros_(model[1].bias)
        return model


def test_cross_entropy_base_trains_and_exports_its_model():
    method = ZeroLinear(context())
    batch = Batch(torch.rand(4, 1, 32, 32), torch.tensor([0, 1, 2, 1]), None, torch.zeros(4, dtype=torch.long))
    out = method.training_step(batch)
    assert out["loss"].item() == pytest.approx(math.log(3))  # zero logits: uniform over 3 classes
    assert out["cross_entropy"].item() == out["loss"].item() and not out["cross_entropy"].requires_grad
    assert out["logits"].shape == (4, 3) and method.export() is method.model


def test_base_optimiser_reads_lr_weight_decay_and_optimizer():
    adam = ZeroLinear(context()).configure_optimizer()
    assert type(adam) is torch.optim.Adam
    assert (adam.defaults["lr"], adam.defaults["weight_decay"], adam.defaults["betas"]) == (0.1, 0.01, (0.9, 0.999))
    sgd = ZeroLinear(context(), optimizer="sgd").configure_optimizer()
    assert type(sgd) is torch.optim.SGD
    assert (sgd.defaults["lr"], sgd.defaults["weight_decay"], sgd.defaults["momentum"]) == (0.1, 0.01, 0.5)
    with pytest.raises(ValueError, match=r"zero_linear: optimizer must be one of \('adam', 'sgd'\), got 'lbfgs'"):
        ZeroLinear(context(), optimizer="lbfgs").configure_optimizer()


#: what each built-in method trains with: (optimiser, lr, weight decay, momentum) at smoke and paper scale
EXPECTED = {
    "standard": ("Adam", 1e-3, 0.0), "multitask_unet": ("Adam", 1e-3, 0.0), "ag_sononet": ("Adam", 1e-3, 1e-5),
    "segment_then_classify": ("Adam", 1e-3, 0.0), "gain": ("Adam", 1e-3, 0.0), "ham": ("Adam", 1e-3, 0.0),
    "rrr": ("Adam", 1e-3, 0.0), "vit": ("AdamW", 5e-4, 0.0),  # ViT: weight decay 0 since the validation sweep
    **{name: ("Adam", 1e-3, 0.0) for name in ("isnet", "isnet_dual", "isnet_selective", "isnet_stochastic",
                                              "isnet_grad_input")},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_built_in_method_keeps_its_optimiser(name):
    """Every parameter optimised once, with the optimiser and settings the method has always used
    (ISNet: SGD with momentum 0.99 at paper scale, Adam below)."""
    spec = discover_methods()[name]
    method = spec.cls(context())
    opt = method.configure_optimizer()
    kind, lr, decay = EXPECTED[name]
    assert type(opt).__name__ == kind and opt.defaults["lr"] == lr
    assert opt.param_groups[0]["weight_decay"] == decay
    optimised = [p for group in opt.param_groups for p in group["params"]]
    assert sorted(map(id, optimised)) == sorted(map(id, method.parameters()))
    if name.startswith("isnet"):
        paper = spec.cls(context("paper")).configure_optimizer()
        assert type(paper) is torch.optim.SGD and paper.defaults["momentum"] == 0.99
