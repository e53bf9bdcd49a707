"""A tiny in-memory experiment for harness tests (no entry point needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmarks.api import DataBundle, ExperimentProfile, ExperimentSpec, TensorSplit


def _split(n: int, seed: int) -> TensorSplit:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    images = (torch.rand(n, 1, 16, 16, generator=gen) * 100).to(torch.uint8)
    images[labels == 1, :, 4:12, 4:12] += 120  # a learnable signal inside the mask
    masks = torch.zeros(n, 1, 16, 16, dtype=torch.uint8)
    masks[:, :, 4:12, 4:12] = 1
    return TensorSplit(images, labels, masks)


def _build(profile: ExperimentProfile, seed: int, cache_dir: Path) -> DataBundle:
    return DataBundle(
        train=_split(48, 1),
        val=_split(16, 2),
        tests={"a": _split(16, 3), "b": _split(16, 4)},
        class_names=("zero", "one"),
        in_channels=1,
        image_size=16,
        checksum="tiny",
    )


@pytest.fixture
def tiny_experiment() -> ExperimentSpec:
    profile = ExperimentProfile(backbone="tiny_cnn", image_size=16, epochs=3, batch_size=16)
    return ExperimentSpec(
        name="tiny",
        build=_build,
        test_splits=("a", "b"),
        id_split="a",
        shift_splits=("b",),
        profiles={"smoke": profile, "cpu": profile, "paper": profile},
    )
