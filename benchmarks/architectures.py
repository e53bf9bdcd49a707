"""Reusable networks for methods and data tools: the cpu-profile CNN, a U-Net, and the
backbone factory that turns a profile's backbone name into a classifier.

Like ``benchmarks.api`` this module imports nothing else of the harness, so plugins may
use it. Backbones come from torchvision or timm by name; weights are never downloaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SmallCNN(nn.Sequential):
    """A VGG-style CNN for the cpu profile: (conv-BN-ReLU) x2 + max-pool per stage, then
    global average pooling and a linear head. Every layer is one the LRP engine knows."""

    def __init__(self, num_classes: int, in_channels: int = 1, widths: tuple[int, ...] = (16, 32, 64)) -> None:
        layers: list[nn.Module] = []
        c_in = in_channels
        for i, width in enumerate(widths):
            layers += [
                nn.Conv2d(c_in, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            c_in = width
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes)]
        super().__init__(*layers)


def _double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """A U-Net (Ronneberger et al. 2015) with ``len(widths)`` resolution levels.

    ``forward`` returns segmentation logits ``[B, out_channels, H, W]``; ``encode`` returns
    the bottleneck features and the skip tensors so that a classification head can sit on
    the bottleneck (multi-task U-Net). Input sides must be divisible by
    ``2 ** (len(widths) - 1)``.
    """

    def __init__(
        self, in_channels: int = 1, out_channels: int = 1, widths: tuple[int, ...] = (16, 32, 64, 128)
    ) -> None:
        super().__init__()
        self.widths = tuple(widths)
        self.down = nn.ModuleList()
        c_in = in_channels
        for width in widths:
            self.down.append(_double_conv(c_in, width))
            c_in = width
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(c_in, width, 2, stride=2))
            self.dec.append(_double_conv(2 * width, width))
            c_in = width
        self.head = nn.Conv2d(c_in, out_channels, 1)

    @property
    def bottleneck_channels(self) -> int:
        return self.widths[-1]

    def encode(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        factor = 2 ** (len(self.widths) - 1)
        if x.shape[-1] % factor or x.shape[-2] % factor:
            raise ValueError(f"UNet input sides must be divisible by {factor}, got {tuple(x.shape[-2:])}")
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < len(self.down) - 1:
                skips.append(x)
                x = self.pool(x)
        return x, skips

    def decode(self, x: Tensor, skips: list[Tensor]) -> Tensor:
        for up, dec, skip in zip(self.up, self.dec, reversed(skips), strict=True):
            x = dec(torch.cat([up(x), skip], dim=1))
        return self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(*self.encode(x))


def unet_widths_for(image_size: int, widths: tuple[int, ...]) -> tuple[int, ...]:
    """The longest prefix of ``widths`` whose U-Net accepts ``image_size`` (at least 2 levels)."""
    levels = len(widths)
    while levels > 2 and image_size % (2 ** (levels - 1)):
        levels -= 1
    if image_size % (2 ** (levels - 1)):
        raise ValueError(f"image side {image_size} must be even for a U-Net")
    return tuple(widths[:levels])


def segmentation_loss(seg_logits: Tensor, masks: Tensor, smooth: float = 1.0) -> tuple[Tensor, Tensor]:
    """(BCE, soft Dice loss) of segmentation logits ``[B, 1, H, W]`` against 0/1 masks."""
    bce = F.binary_cross_entropy_with_logits(seg_logits, masks)
    prob = torch.sigmoid(seg_logits).flatten(1)
    target = masks.flatten(1)
    dice = 1.0 - (2.0 * (prob * target).sum(1) + smooth) / (prob.sum(1) + target.sum(1) + smooth)
    return bce, dice.mean()


def build_backbone(name: str, num_classes: int, in_channels: int) -> nn.Module:
    """A randomly initialised classifier by name.

    ``narrow_cnn`` (cpu profile: the SmallCNN at widths 8 / 16 / 32), ``small_cnn`` (widths 16 / 32 /
    64), ``tiny_cnn`` (smoke profile), any torchvision classification
    model (``resnet18``, ``vgg11_bn``, ``densenet121``, ...) or ``timm:<name>`` for timm.
    Grey-scale inputs are fed to 3-channel torchvision / timm models by adapting the first
    layer's input channels, so images are never copied three times.
    """
    if name == "small_cnn":
        return SmallCNN(num_classes, in_channels)
    if name == "narrow_cnn":
        return SmallCNN(num_classes, in_channels, widths=(8, 16, 32))
    if name == "tiny_cnn":
        return SmallCNN(num_classes, in_channels, widths=(8, 16))
    if name.startswith("timm:"):
        import timm

        return timm.create_model(name[5:], pretrained=False, num_classes=num_classes, in_chans=in_channels)
    import torchvision

    try:
        model = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    except ValueError as err:
        examples = sorted(torchvision.models.list_models())[:8]
        known = ", ".join(["narrow_cnn", "small_cnn", "tiny_cnn", "timm:<name>", *examples, "..."])
        raise ValueError(f"unknown backbone {name!r}; use one of {known}") from err
    if in_channels != 3:
        _adapt_first_conv(model, in_channels)
    return model


def _adapt_first_conv(model: nn.Module, in_channels: int) -> None:
    """Replace the first Conv2d by one reading ``in_channels`` channels (same geometry)."""
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                setattr(
                    parent,
                    child_name,
                    nn.Conv2d(
                        in_channels,
                        child.out_channels,
                        child.kernel_size,
                        child.stride,
                        child.padding,
                        child.dilation,
                        child.groups,
                        child.bias is not None,
                    ),
                )
                return
    raise ValueError(f"{type(model).__name__} has no Conv2d whose input channels could be adapted")


@contextmanager
def batchnorm_momentum(model: nn.Module, momentum: float | None) -> Iterator[None]:
    """Every BatchNorm layer of ``model`` uses ``momentum`` inside the block, its own after it:
    0 leaves the running statistics untouched by training-mode passes, ``None`` makes them a
    cumulative average of the batches seen."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in layers]
    for m in layers:
        m.momentum = momentum
    try:
        yield
    finally:
        for m, before in zip(layers, saved, strict=True):
            m.momentum = before
