"""The ISNet variants as benchmark methods: contract, C1/C2 calibration, optimiser choice, state."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("benchmarks.api")

import baselines.isnet_variants as iv  # noqa: E402
from benchmarks.api import Batch, Method, ModelContext  # noqa: E402
from benchmarks.architectures import build_backbone  # noqa: E402

NAMES = ["isnet", "isnet_dual", "isnet_selective", "isnet_stochastic", "isnet_grad_input"]
CLASSES = {cls.spec.name: cls for cls in (iv.ISNetOriginal, iv.ISNetDual, iv.ISNetSelective,
                                          iv.ISNetStochastic, iv.ISNetGradInput)}


def context(scale: str = "smoke", k: int = 3) -> ModelContext:
    return ModelContext(num_classes=k, in_channels=1, image_size=16, scale=scale, backbone="tiny_cnn",
                        build_backbone=lambda n: build_backbone("tiny_cnn", n, 1))


def batch(n: int = 4) -> Batch:
    images = torch.rand(n, 1, 16, 16)
    masks = torch.zeros(n, 1, 16, 16)
    masks[:, :, 3:13, 3:13] = 1
    return Batch(images, torch.arange(n) % 3, masks, torch.zeros(n, dtype=torch.long))


def test_all_variants_registered_with_paper_defaults():
    assert sorted(CLASSES) == sorted(NAMES)
    for cls in CLASSES.values():
        spec = cls.spec
        assert spec.needs_masks
        d = spec.defaults
        assert (d["P"], d["d"], d["E"], d["w1"], d["w2"], d["epsilon"], d["grad_clip"]) == (0.7, 0.9, 1.0, 1.0,
                                                                                             3.0, 0.01, 1.0)
        assert d["tune_restart"] is None
        assert set(spec.search_space) <= set(d)
        assert spec.search_space["P"] == [0.3, 0.5, 0.7, 0.9]


def test_P_is_the_authors_value_at_every_profile():
    for scale in ("smoke", "cpu", "paper"):
        assert CLASSES["isnet"](context(scale)).isnet.loss.P == 0.7
    assert CLASSES["isnet"](context(), P=0.5).isnet.loss.P == 0.5



@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("hparams,message", [({"P": 1.5}, r"P must lie in \[0, 1\], got 1.5"),
                                             ({"d": -0.2}, r"d must lie in \[0, 1\], got -0.2"),
                                             ({"C1": 5.0, "C2": 1.0}, "need 0 < C1 <= C2")])
def test_a_bad_loss_constant_fails_when_the_method_is_built(name, hparams, message):
    with pytest.raises(ValueError, match=message):
        CLASSES[name](context(), **hparams)

def test_roles_and_extended_grid():
    assert CLASSES["isnet"].spec.role == "reference"
    for name in NAMES[1:]:
        assert CLASSES[name].spec.role == "reference_variant"
    assert CLASSES["isnet_grad_input"].spec.extended
    assert not any(CLASSES[name].spec.extended for name in NAMES[:-1])
    assert CLASSES["isnet_selective"].spec.defaults["selective_class"] == "predicted"


@pytest.mark.parametrize("name", NAMES)
def test_train_explain_export(name):
    torch.manual_seed(0)
    method = CLASSES[name](context())
    opt = method.configure_optimizer()
    assert isinstance(opt, torch.optim.Adam)  # "auto" at smoke / cpu scale
    b = batch()
    losses = []
    for _ in range(3):
        torch.manual_seed(1)
        out = method.training_step(b)
        assert {"loss", "logits", "ce", "heatmap_loss", "background", "foreground"} <= set(out)
        opt.zero_grad()
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(method.parameters(), 1.0)
        opt.step()
        losses.append(out["loss"].item())
    assert losses[-1] < losses[0]
    method.eval()
    heat = method.explain(b.images, b.labels)
    assert heat.shape == (4, 1, 16, 16) and torch.isfinite(heat).all()
    exported = method.export()
    assert not isinstance(exported, Method)
    assert torch.equal(exported(b.images), method.predict(b.images))


def test_masks_are_required():
    method = CLASSES["isnet"](context())
    b = batch()
    with pytest.raises(ValueError, match="needs foreground masks"):
        method.training_step(Batch(b.images, b.labels, None, b.groups))


def _train_epoch(method, opt, b, epoch, steps=2):
    method.on_epoch_start(epoch)
    seen = []
    for _ in range(steps):
        out = method.training_step(b)
        seen.append("heatmap_loss" in out)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    return seen


@pytest.mark.parametrize("name", ["isnet_selective", "isnet_dual"])
def test_calibration_epochs_tune_constants_then_retrain_from_scratch(name):
    torch.manual_seed(0)
    method = CLASSES[name](context("cpu"), tune_epochs=2, tune_restart=True)
    opt = method.configure_optimizer()
    b = batch()
    assert _train_epoch(method, opt, b, 0) == [False, False] and not method.selectable
    assert _train_epoch(method, opt, b, 1) == [False, False] and not method.selectable
    assert all(s.totals()[0] > 0 for s in method.stats.values())  # measured during the last calibration epoch
    torch.manual_seed(5)
    fresh = [p.detach().clone() for p in CLASSES[name](context("cpu")).parameters()]
    torch.manual_seed(5)
    method.on_epoch_start(2)  # calibration ends: constants set, weights re-initialised
    assert all(torch.equal(p, q) for p, q in zip(method.parameters(), fresh, strict=True))
    assert not opt.state
    assert method.selectable
    assert _train_epoch(method, opt, b, 2) == [True, True]
    for c1, c2 in method.isnet.constants.values():
        assert (c1, c2) != (iv.NATURE_C1, iv.NATURE_C2) and 0 < c1 <= c2
    assert len(method.isnet.constants) == (2 if name == "isnet_dual" else 1)
    clone = CLASSES[name](context("cpu"), tune_epochs=2)
    clone.load_extra_state(method.extra_state())
    clone.on_epoch_start(3)  # a resumed run past calibration keeps the tuned constants
    assert clone.isnet.constants == method.isnet.constants and clone.selectable


@pytest.mark.parametrize("name", ["isnet", "isnet_selective"])
def test_validation_step_is_the_objective_without_side_effects(name):
    torch.manual_seed(0)
    method = CLASSES[name](context("cpu"), tune_epochs=0)
    method.eval()
    b = batch()
    before = [p.detach().clone() for p in method.parameters()]
    torch.manual_seed(3)
    val = method.validation_step(b)
    torch.manual_seed(3)
    train = method.training_step(b)
    assert torch.allclose(val["loss"], train["loss"])
    assert not val["heatmap_loss"].requires_grad and train["heatmap_loss"].requires_grad  # no second-order graph
    assert all(torch.equal(p, q) for p, q in zip(method.parameters(), before, strict=True))


def test_calibration_defaults_by_scale():
    assert CLASSES["isnet"](context("smoke")).tune_epochs == 0
    assert CLASSES["isnet"](context("cpu")).tune_epochs == 1
    assert CLASSES["isnet"](context("paper")).tune_epochs == 5
    assert [CLASSES["isnet"](context(s)).tune_restart for s in ("smoke", "cpu", "paper")] == [False, False, True]


def test_without_restart_the_heatmap_loss_continues_from_the_calibrated_classifier():
    torch.manual_seed(0)
    method = CLASSES["isnet_selective"](context("cpu"), tune_epochs=1)
    opt = method.configure_optimizer()
    _train_epoch(method, opt, batch(), 0)
    weights = [p.detach().clone() for p in method.parameters()]
    method.on_epoch_start(1)
    assert all(torch.equal(p, q) for p, q in zip(method.parameters(), weights, strict=True))
    assert method.isnet.constants["heatmap"] != (iv.NATURE_C1, iv.NATURE_C2)


def test_given_constants_and_sgd():
    method = CLASSES["isnet"](context("paper"), C1=2.0, C2=30.0)
    assert method.tune_epochs == 0 and method.isnet.constants["heatmap"] == (2.0, 30.0)
    opt = method.configure_optimizer()
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0.99
