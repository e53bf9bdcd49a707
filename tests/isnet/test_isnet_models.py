"""Whole torchvision models: conservation (ResNet18, VGG11-BN, DenseNet121) and agreement with zennit.

Models come from ``torchvision.models`` with ``weights=None`` (no download). VGG's
classifier is narrowed (25088 -> 64 -> 64 -> 10 instead of 25088 -> 4096 -> 4096 -> 1000) to keep
float64 tests fast; its features, adaptive 7x7 pooling, ReLUs and Dropouts are as they come.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import isnet


def narrow_vgg(batch_norm: bool, classes: int = 10) -> nn.Module:
    """torchvision's VGG class and VGG11 ("A") features, with a narrower classifier."""
    from torchvision.models.vgg import VGG, cfgs, make_layers

    m = VGG.__new__(VGG)
    nn.Module.__init__(m)
    m.features = make_layers(cfgs["A"], batch_norm=batch_norm)
    m.avgpool = nn.AdaptiveAvgPool2d((7, 7))
    m.classifier = nn.Sequential(nn.Linear(512 * 7 * 7, 64), nn.ReLU(True), nn.Dropout(), nn.Linear(64, 64),
                                 nn.ReLU(True), nn.Dropout(), nn.Linear(64, classes))
    return m


def build(name: str) -> nn.Module:
    if name.startswith("vgg"):
        return narrow_vgg(name.endswith("_bn"))
    return getattr(torchvision.models, name)(weights=None, num_classes=10)


@pytest.mark.parametrize("name", ["resnet18", "vgg11_bn", "densenet121"])
@pytest.mark.parametrize("input_rule", ["zb", "epsilon"])
def test_conservation(name, input_rule, lib):
    """Zero biases (BN shifts and running means included) and eps -> 0: input relevance sums to the logit."""
    model = lib.zero_biases(lib.randomize_bn(build(name), zero_shift=True)).double().eval()
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    target = torch.tensor([1, 7])
    R = isnet.explain(model, x, target, input_rule=input_rule, epsilon=1e-12)
    logits = model(x).detach().gather(1, target.view(-1, 1))[:, 0]
    assert R.shape == (2, 3, 32, 32)
    err = (R.sum((1, 2, 3)) - logits).abs().max() / logits.abs().max()
    assert err < 1e-7, f"{name}: relative conservation error {err:.3g}"


def test_densenet_blocks_longer_than_nine_layers_conserve(lib):
    """DenseNet121's blocks 3 and 4 have 24 and 16 layers: every consumer of a feature map counts."""
    model = lib.zero_biases(lib.randomize_bn(build("densenet121"), zero_shift=True)).double().eval()
    engine = isnet.LRPEngine(model)
    x = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    block4 = [n for n, p in engine.plan.paths.items() if p.startswith("features.denseblock4.denselayer16")]
    assert block4
    with torch.no_grad():
        logits, acts = engine.forward(x)
        m = torch.zeros(1, 1, 10, dtype=torch.float64)
        m[0, 0, 3] = 1
        keep = [engine.node_for("features.transition3"), engine.node_for("features.denseblock4")]
        R, kept = engine.relevance(acts, m, epsilon=1e-12, keep=keep)
    for name in keep:  # relevance is conserved at the block boundaries too
        assert abs(kept[name].sum().item() - logits[0, 3].item()) < 1e-7 * abs(logits[0, 3].item())


def zennit_heatmap(model, x, target, eps, canonizer):
    from zennit.attribution import Gradient
    from zennit.composites import SpecialFirstLayerMapComposite
    from zennit.layer import Sum
    from zennit.rules import Epsilon, Pass, ZBox
    from zennit.types import Activation, AvgPool, Convolution, Linear

    composite = SpecialFirstLayerMapComposite(
        layer_map=[(Activation, Pass()), (Sum, Epsilon(eps)), (AvgPool, Epsilon(eps)),
                   (Convolution, Epsilon(eps)), (Linear, Epsilon(eps))],
        first_map=[(Convolution, ZBox(0.0, 1.0, stabilizer=eps))],
        canonizers=[canonizer()],
    )
    onehot = torch.nn.functional.one_hot(target, 10).to(x.dtype)
    with Gradient(model, composite) as attributor:
        _, relevance = attributor(x, lambda out: out * onehot)
    return relevance


@pytest.mark.parametrize("name", ["vgg11", "vgg11_bn", "resnet18"])
def test_agrees_with_zennit(name, lib):
    """Same rule mapping: epsilon on Conv/Linear/AvgPool/sums, ZBox (stabiliser = eps) first, ReLU passes.

    BatchNorm eps is set to 0: zennit's merged BN keeps dividing by sqrt(1 + eps) (docs/isnet.md, section 7).
    """
    zennit = pytest.importorskip("zennit")
    from zennit.torchvision import ResNetCanonizer, VGGCanonizer

    assert zennit is not None
    model = lib.randomize_bn(build(name), eps=0.0).double().eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.normal_(0, 0.05)
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    target = torch.tensor([3, 7])
    ours = isnet.explain(model, x, target, epsilon=0.01)
    canon = ResNetCanonizer if name.startswith("resnet") else VGGCanonizer
    ref = zennit_heatmap(model, x, target, 0.01, canon)
    rel_err = ((ours - ref).abs().max() / ref.abs().max()).item()
    assert rel_err <= 1e-5, f"{name}: max relative error vs zennit {rel_err:.3g}"
    print(f"zennit {name}: max |ours - zennit| / max |zennit| = {rel_err:.3g}")


@pytest.mark.parametrize("name", ["resnet18", "densenet121"])
def test_timm_models_as_they_come_conserve(name, lib):
    """timm's BatchNormAct2d (BN with a built-in ReLU) and its classifier heads are handled too."""
    timm = pytest.importorskip("timm")
    model = timm.create_model(name, pretrained=False, num_classes=5)
    model = lib.zero_biases(lib.randomize_bn(model, zero_shift=True)).double().eval()
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    R = isnet.explain(model, x, 2, epsilon=1e-12)
    logits = model(x).detach()[:, 2]
    err = (R.sum((1, 2, 3)) - logits).abs().max() / logits.abs().max()
    assert err < 1e-7, f"timm {name}: relative conservation error {err:.3g}"


def test_timm_norm_with_other_activation_is_reported():
    timm = pytest.importorskip("timm")
    model = timm.create_model("efficientnet_b0", pretrained=False, num_classes=3).eval()
    with pytest.raises(isnet.UnsupportedOperationError, match="BatchNormAct2d with activation SiLU at module path"):
        isnet.explain(model, torch.rand(1, 3, 32, 32), 0)
