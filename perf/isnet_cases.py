"""What ``perf/isnet_speed.py`` measures: the batch, the backbones, one training step of each
ISNet variant (or of plain cross-entropy) and the heatmap candidates, on the CPU or on CUDA.

Only the public ``isnet`` API is used (``isnet.ISNet``, ``isnet.explain``, ``isnet.VARIANTS``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

import isnet
from benchmarks.architectures import SmallCNN

#: backbone name -> how the tables call it
BACKBONES = {"tiny": "SmallCNN (one stage of width 4)", "small": "SmallCNN", "resnet18": "ResNet18",
             "resnet50": "ResNet50", "densenet121": "DenseNet121", "vgg11": "VGG11"}
PRECISIONS = ("float32", "bf16", "float64")


@dataclass(frozen=True)
class Scale:
    """Where and at what size: the device, the batch size and the image side (3 channels)."""

    device: torch.device
    batch: int
    size: int


@dataclass
class Step:
    """One training step (``run``: forward, loss, backward, clipping at norm 1, SGD step) of a
    fixed batch, and what built it."""

    run: Callable[[], None]
    loss: Callable[[], dict[str, Tensor]]
    backbone: nn.Module
    model: nn.Module | None
    x: Tensor


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to bfloat16 for ``precision == "bf16"``, nothing otherwise."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def make_backbone(name: str, k: int) -> nn.Module:
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose from {sorted(BACKBONES)}")
    if name in ("tiny", "small"):
        return SmallCNN(k, in_channels=3, widths=(4,) if name == "tiny" else (16, 32, 64))
    return getattr(torchvision.models, name)(weights=None, num_classes=k)


def make_step(variant: str | None, k: int, backbone_name: str, scale: Scale, precision: str = "float32",
              compile_backend: str | None = None) -> Step:
    """A training-step closure (plain cross-entropy when ``variant`` is None), its batch fixed:
    images uniform in [0, 1], labels and weights from seed 0, the mask a centred square.
    ``precision``: float32, bf16 (autocast around the forward and the loss) or float64 (weights
    and batch converted: the rounding reference). ``compile_backend``: the ISNet module (or, for
    the plain step, the backbone) goes through ``torch.compile`` with that backend."""
    torch.manual_seed(0)
    backbone = make_backbone(backbone_name, k).train()
    x = torch.rand(scale.batch, 3, scale.size, scale.size)
    y = torch.randint(0, k, (scale.batch,))
    masks = torch.zeros(scale.batch, 1, scale.size, scale.size)
    lo, hi = scale.size * 3 // 16, scale.size * 13 // 16
    masks[:, :, lo:hi, lo:hi] = 1
    dtype = torch.float64 if precision == "float64" else torch.float32
    backbone = backbone.to(scale.device, dtype)
    x, y, masks = x.to(scale.device, dtype), y.to(scale.device), masks.to(scale.device, dtype)
    opt = torch.optim.SGD(backbone.parameters(), lr=1e-3, momentum=0.99)
    model = None if variant is None else isnet.ISNet(backbone, k, variant)
    plain, forward = backbone, model
    if compile_backend is not None and model is None:
        plain = torch.compile(backbone, backend=compile_backend)
    elif compile_backend is not None:
        forward = torch.compile(model, backend=compile_backend)

    def loss() -> dict[str, Tensor]:
        with autocast(scale.device, precision):
            if forward is None:
                ce = F.cross_entropy(plain(x), y)
                return {"loss": ce, "ce": ce}
            return forward(x, masks, y)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss()["loss"].backward()
        torch.nn.utils.clip_grad_norm_(backbone.parameters(), 1.0)
        opt.step()

    return Step(step, loss, backbone, model, x)


# --------------------------------------------------------------------------- heatmaps
def zennit_explainer(model: nn.Module, name: str) -> Callable[[Tensor, Tensor], Tensor]:
    """zennit 0.5 with the rule mapping of ``isnet.explain`` (LRP-epsilon, z^B at the input).
    Raises ImportError without zennit and NotImplementedError for a network zennit has no
    canonizer for (its BatchNorm would not be merged the way ours is)."""
    from zennit.attribution import Gradient
    from zennit.composites import SpecialFirstLayerMapComposite
    from zennit.layer import Sum
    from zennit.rules import Epsilon, Pass, ZBox
    from zennit.torchvision import ResNetCanonizer, VGGCanonizer
    from zennit.types import Activation, AvgPool, Convolution, Linear

    if name.startswith("resnet"):
        canonizer = ResNetCanonizer()
    elif name.startswith("vgg"):
        canonizer = VGGCanonizer()
    else:
        raise NotImplementedError(f"zennit has no canonizer for {name}")
    composite = SpecialFirstLayerMapComposite(
        layer_map=[(Activation, Pass()), (Sum, Epsilon(0.01)), (AvgPool, Epsilon(0.01)),
                   (Convolution, Epsilon(0.01)), (Linear, Epsilon(0.01))],
        first_map=[(Convolution, ZBox(0.0, 1.0, stabilizer=0.01))],
        canonizers=[canonizer],
    )

    def run(x: Tensor, target: Tensor) -> Tensor:
        onehot = F.one_hot(target, 10).to(x.dtype)
        with Gradient(model, composite) as attributor:
            _, rel = attributor(x, lambda out: out * onehot)
        return rel

    return run


def heatmap_candidates(name: str, scale: Scale) -> tuple[dict[str, Callable[[], object]], str]:
    """A plain input-gradient pass, our heatmap and zennit's on one model and batch; and why
    zennit is missing, if it is."""
    torch.manual_seed(0)
    model = make_backbone(name, 10).eval().to(scale.device)
    x = torch.rand(scale.batch, 3, scale.size, scale.size).to(scale.device)
    target = torch.randint(0, 10, (scale.batch,)).to(scale.device)

    def gradient() -> Tensor:
        xx = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(model(xx).gather(1, target.view(-1, 1)).sum(), xx)
        return g

    fns: dict[str, Callable[[], object]] = {"gradient": gradient, "ours": lambda: isnet.explain(model, x, target)}
    try:
        zennit = zennit_explainer(model, name)
    except (ImportError, NotImplementedError) as err:
        return fns, str(err)
    fns["zennit"] = lambda: zennit(x, target)
    return fns, ""
