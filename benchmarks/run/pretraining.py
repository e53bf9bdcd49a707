"""Backbone weights learnt on another domain, standing in for the ImageNet start of the ISNet
authors' chest X-ray models (no ImageNet weights can be had offline here).

``fashion_mnist``: the profile's backbone trained as a 10-class classifier on the first
:data:`IMAGES` Fashion-MNIST training images (Debian's ``dataset-fashion-mnist``), resized to
the experiment's image size, for :data:`EPOCHS` epochs (Adam, lr 1e-3, batch 64, seed 0, one
thread). Like ImageNet for the authors' DenseNet, it is another domain's supervised task: it
gives general edge and texture features and has seen neither a lung, a disease label nor a
hospital's style. The weights are cached (``<cache>/pretrained-...pt``), so every run that asks
for them starts from the same ones; a run loads every tensor whose name and shape match (all
but the classification head, which keeps its random initialisation).
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.architectures import build_backbone
from benchmarks.data.cache import fingerprint
from benchmarks.store import atomic_write_bytes

SOURCES = ("fashion_mnist",)
IMAGES = 20_000
EPOCHS = 3
BATCH = 64


def pretrained_state(source: str, backbone: str, in_channels: int, image_size: int, cache_dir: Path
                     ) -> dict[str, Tensor]:
    """The state dict of ``backbone`` pretrained on ``source`` (built once, then read from the cache)."""
    if source not in SOURCES:
        raise ValueError(f"unknown pretraining source {source!r}; known: {SOURCES}")
    key = fingerprint({"pretraining": source, "backbone": backbone, "in_channels": in_channels,
                       "image_size": image_size, "images": IMAGES, "epochs": EPOCHS, "batch": BATCH, "version": 1})
    path = Path(cache_dir) / f"pretrained-{source}-{backbone}-{image_size}px-{key[:12]}.pt"
    if path.exists():
        return torch.load(path, weights_only=True)
    state = _train(backbone, in_channels, image_size, Path(cache_dir))
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return state


def _train(backbone: str, in_channels: int, image_size: int, cache_dir: Path) -> dict[str, Tensor]:
    from benchmarks.data.fashion import find_fashion_mnist, load_fashion_mnist

    images, labels = load_fashion_mnist(find_fashion_mnist(cache_dir))["train"]
    x = torch.from_numpy(images[:IMAGES]).float().div_(255)[:, None]
    x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False).clamp_(0, 1)
    x = x.expand(-1, in_channels, -1, -1).contiguous()
    y = torch.from_numpy(labels[:IMAGES])
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = build_backbone(backbone, 10, in_channels)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model.train()
        for _ in range(EPOCHS):
            for idx in torch.randperm(len(y), generator=generator).split(BATCH):
                loss = F.cross_entropy(model(x[idx]), y[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    finally:
        torch.set_num_threads(before)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def load_matching(module: nn.Module, state: dict[str, Tensor]) -> list[str]:
    """Copy into ``module`` every tensor of ``state`` whose name and shape match; returns the
    names copied (the rest, such as a head for another number of classes, is left as it is)."""
    own = module.state_dict()
    taken = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not taken:
        raise ValueError("no pretrained tensor matches the module (another backbone?)")
    module.load_state_dict({**own, **taken})
    return sorted(taken)

