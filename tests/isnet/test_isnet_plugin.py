"""The ISNet variants as benchmark methods: contract, C1/C2 warm-up, optimiser choice, state."""

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
        assert (d["P"], d["d"], d["E"], d["w1"], d["w2"], d["epsilon"], d["grad_clip"]) == ("auto", 0.9, 1.0, 1.0,
                                                                                             3.0, 0.01, 1.0)
        assert set(spec.search_space) <= set(d)
        assert spec.search_space["P"] == [0.3, 0.5, 0.7, 0.9]


def test_P_auto_is_the_papers_value_at_paper_scale_and_lower_on_short_schedules():
    resolve_P = iv.resolve_P
    assert resolve_P("auto", "paper") == 0.7
    assert resolve_P("auto", "cpu") == resolve_P("auto", "smoke") == 0.3
    assert resolve_P(0.5, "paper") == resolve_P("0.5", "cpu") == 0.5
    assert CLASSES["isnet"](context()).isnet.P == 0.3


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


@pytest.mark.parametrize("name", ["isnet_selective", "isnet_dual"])
def test_warmup_tunes_constants_then_starts_heatmap_loss(name):
    torch.manual_seed(0)
    method = CLASSES[name](context("cpu"), tune_steps=4, tune_restart=True)
    opt = method.configure_optimizer()
    b = batch()
    keys = []
    for _ in range(6):
        out = method.training_step(b)
        keys.append("heatmap_loss" in out)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    assert keys == [False] * 4 + [True] * 2
    for c1, c2 in method.isnet.constants.values():
        assert (c1, c2) != (iv.NATURE_C1, iv.NATURE_C2) and 0 < c1 <= c2
    assert len(method.isnet.constants) == (2 if name == "isnet_dual" else 1)
    state = method.extra_state()
    clone = CLASSES[name](context("cpu"), tune_steps=4)
    clone.load_extra_state(state)
    assert clone.step == 6 and clone.isnet.constants == method.isnet.constants


def test_given_constants_and_sgd():
    method = CLASSES["isnet"](context("paper"), C1=2.0, C2=30.0)
    assert method.tune_steps == 0 and method.isnet.constants["heatmap"] == (2.0, 30.0)
    opt = method.configure_optimizer()
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0.99
