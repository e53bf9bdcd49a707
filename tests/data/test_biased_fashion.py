"""Biased Fashion-MNIST: IDX reading, the search order, and the missing-data message."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.data import fashion
from benchmarks.data.bias import GROUP_CLASS_MARKER, GROUP_OTHER_MARKER
from benchmarks.data.markers import dilate
from benchmarks.experiments import biased_fashion_mnist as module

SPEC = module.biased_fashion_mnist.__experiment_spec__


def _write_idx(folder: Path, n_train: int = 200, n_test: int = 60, seed: int = 0) -> None:
    """Tiny Fashion-MNIST look-alike in the real IDX format: a bright 'garment' box whose
    size depends on the class, on a black background."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for part, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        for i, c in enumerate(labels):
            half = 5 + c // 2
            images[i, 14 - half:14 + half, 14 - half:14 + half] = rng.integers(80, 255)
        header = (2051).to_bytes(4, "big") + n.to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
        (folder / f"{part}-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + images.tobytes()))
        header = (2049).to_bytes(4, "big") + n.to_bytes(4, "big")
        (folder / f"{part}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(header + labels.astype(np.uint8).tobytes()))


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """No Debian package, no override folder, no download allowed."""
    monkeypatch.setattr(fashion, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.delenv(fashion.DIR_ENV, raising=False)
    monkeypatch.delenv(fashion.DOWNLOAD_ENV, raising=False)
    return tmp_path


def test_missing_data_names_both_ways(nowhere) -> None:
    with pytest.raises(fashion.FashionMNISTNotFound) as info:
        module.biased_fashion_mnist(SPEC.profile("smoke"), 0, nowhere / "cache")
    message = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "ISNET_BENCHMARKS_ALLOW_DOWNLOAD=1" in message
    assert str(nowhere / "no-debian") in message
    assert isinstance(info.value, FileNotFoundError)


def test_download_is_not_attempted_without_opt_in(nowhere, monkeypatch) -> None:
    def forbidden(*args, **kwargs):
        raise AssertionError("downloaded without the user's consent")

    monkeypatch.setattr(fashion, "_download", forbidden)
    monkeypatch.setenv(fashion.DOWNLOAD_ENV, "0")
    with pytest.raises(fashion.FashionMNISTNotFound):
        fashion.find_fashion_mnist(nowhere / "cache")
    calls = []
    monkeypatch.setattr(fashion, "_download", lambda folder: calls.append(folder))
    monkeypatch.setenv(fashion.DOWNLOAD_ENV, "1")
    with pytest.raises(fashion.FashionMNISTNotFound):  # the fake download wrote nothing
        fashion.find_fashion_mnist(nowhere / "cache")
    assert calls == [nowhere / "cache"]


def test_idx_files_from_the_override_folder(nowhere, monkeypatch) -> None:
    _write_idx(nowhere / "fm")
    monkeypatch.setenv(fashion.DIR_ENV, str(nowhere / "fm"))
    paths = fashion.find_fashion_mnist(nowhere / "cache")
    data = fashion.load_fashion_mnist(paths)
    assert data["train"][0].shape == (200, 28, 28) and data["test"][1].shape == (60,)
    assert data["train"][1][:10].tolist() == list(range(10))


def test_corrupt_idx_is_reported(tmp_path) -> None:
    bad = tmp_path / "x-images-idx3-ubyte"
    bad.write_bytes((1234).to_bytes(4, "big") + bytes(12))
    with pytest.raises(ValueError, match="magic"):
        fashion.read_idx(bad)
    short = tmp_path / "y-images-idx3-ubyte"
    short.write_bytes((2051).to_bytes(4, "big") + (5).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + bytes(10))
    with pytest.raises(ValueError, match="header says"):
        fashion.read_idx(short)


def test_bundle_from_tiny_idx(nowhere, monkeypatch) -> None:
    _write_idx(nowhere / "fm")
    monkeypatch.setenv(fashion.DIR_ENV, str(nowhere / "fm"))
    from dataclasses import replace

    profile = replace(SPEC.profile("smoke"), data={**SPEC.profile("smoke").data, "n_train": 100, "n_val": 40,
                                                     "n_test": 50})
    bundle = module.biased_fashion_mnist(profile, 0, nowhere / "cache")
    assert bundle.class_names == fashion.FASHION_CLASSES
    assert len(bundle.train) == 100 and len(bundle.tests["deceiving"]) == 50
    assert (bundle.train.groups == GROUP_CLASS_MARKER).float().mean() > 0.95
    deceiving = bundle.tests["deceiving"]
    placed = deceiving.marker_class >= 0
    assert (deceiving.groups[placed] == GROUP_OTHER_MARKER).all()
    assert (deceiving.marker_class[placed] != deceiving.labels[placed]).all()
    changed = (deceiving.images != bundle.tests["unbiased"].images)[:, 0].numpy()
    assert not (changed & dilate(deceiving.masks, 1)).any()
    # the garment mask is the filled object: every garment pixel is inside it
    assert bool(((bundle.tests["unbiased"].images > 10) <= (bundle.tests["unbiased"].masks > 0)).all())
    again = module.biased_fashion_mnist(profile, 3, nowhere / "cache")
    assert again.checksum == bundle.checksum and torch.equal(again.train.images, bundle.train.images)


@pytest.mark.skipif(not fashion.DEBIAN_DIR.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_real_debian_files_read() -> None:
    data = fashion.load_fashion_mnist(fashion.find_fashion_mnist(None, allow_download=False))
    assert data["train"][0].shape == (60000, 28, 28) and data["test"][0].shape == (10000, 28, 28)
    assert np.bincount(data["test"][1]).tolist() == [1000] * 10
