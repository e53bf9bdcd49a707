"""A tiny in-memory experiment and a batch-norm-free method for the DDP equivalence test.

Without batch norm, data-parallel training on shards must give the weights of one process
training on the whole batch (up to float summation order). 49 training images in batches
of 16 make three even batches and a last batch of one image, which leaves rank 1 without an
item (it trains on a weight-0 copy).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.api import (
    Batch,
    DataBundle,
    ExperimentProfile,
    ExperimentSpec,
    Method,
    ModelContext,
    TensorSplit,
    register_method,
)


def _split(n: int, seed: int) -> TensorSplit:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    images = (torch.rand(n, 1, 16, 16, generator=gen) * 100).to(torch.uint8)
    images[labels == 1, :, 4:12, 4:12] += 120
    masks = torch.zeros(n, 1, 16, 16, dtype=torch.uint8)
    masks[:, :, 4:12, 4:12] = 1
    return TensorSplit(images, labels, masks)


def _build(profile: ExperimentProfile, seed: int, cache_dir: Path) -> DataBundle:
    return DataBundle(train=_split(49, 1), val=_split(16, 2), tests={"a": _split(16, 3)}, class_names=("0", "1"),
                      in_channels=1, image_size=16, checksum="tiny-ddp")


def experiment() -> ExperimentSpec:
    profile = ExperimentProfile(backbone="tiny_cnn", image_size=16, epochs=3, batch_size=16)
    return ExperimentSpec(name="tiny_ddp", build=_build, test_splits=("a",), id_split="a", shift_splits=(),
                          profiles={"smoke": profile, "cpu": profile, "paper": profile})


@register_method("tiny_ddp", needs_masks=False, defaults={"lr": 0.05})
class TinyNet(Method):
    """Conv-ReLU-pool-conv-ReLU-GAP-linear (no batch norm), plus a head that is never used."""

    def __init__(self, ctx: ModelContext, **hparams) -> None:
        super().__init__(ctx, **hparams)
        self.model = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2),
        )
        self.unused = nn.Linear(2, 2)  # its gradient stays None on every rank

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        logits = self.model(batch.images)
        loss = F.cross_entropy(logits, batch.labels)
        return {"loss": loss, "logits": logits, "cross_entropy": loss.detach()}

    def export(self) -> nn.Module:
        return self.model

    def configure_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=float(self.hparams["lr"]), momentum=0.9)


def cli_args(out: Path) -> list[str]:
    """``python -m benchmarks run`` on the tiny run (needs :func:`plug_in` first)."""
    return ["run", "--methods", "tiny_ddp", "--experiments", "tiny_ddp", "--profile", "smoke", "--seeds", "0",
            "--out", str(out), "--cache-dir", str(Path(out) / "cache"), "--device", "cpu", "--no-progress"]


def plug_in(setattr=setattr) -> None:
    """Make the tiny experiment and method discoverable, as an installed plugin would be."""
    from benchmarks.commands import cli
    from benchmarks.executors import unit

    for module in (cli, unit):
        methods, experiments = module.discover_methods, module.discover_experiments
        setattr(module, "discover_methods", lambda methods=methods: {**methods(), "tiny_ddp": TinyNet.spec})
        setattr(module, "discover_experiments", lambda experiments=experiments: {**experiments(),
                                                                                   "tiny_ddp": experiment()})


def capture_weights(setattr=setattr) -> dict[str, torch.Tensor]:
    """A dict that receives the trained weights of the next run, just before its evaluation."""
    from benchmarks.run import training

    captured: dict[str, torch.Tensor] = {}
    evaluate = training._evaluate

    def capture(run, task, experiment, method, *args, **kwargs):
        captured.update({k: v.detach().clone() for k, v in method.state_dict().items()})
        return evaluate(run, task, experiment, method, *args, **kwargs)

    setattr(training, "_evaluate", capture)
    return captured
