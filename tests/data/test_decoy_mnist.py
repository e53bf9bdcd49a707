"""Decoy MNIST: the authors' swatch (position, size, shade) on hand-checked digits, the train
and test shade rules, the split contract, and where the shortcut sits: the swatch alone gives
the training label away and not the test label, and the foreground (everything but the
swatch) holds nothing of the shade."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from benchmarks.api import SCALES, TensorSplit
from benchmarks.audit.shortcut import cnn_predict
from benchmarks.data import decoy_swatches as data
from benchmarks.data.bias import GROUP_CLASS_MARKER, GROUP_OTHER_MARKER
from benchmarks.experiments import decoy_mnist as module

SPEC = module.decoy_mnist.__experiment_spec__
CORNERS = {(0, 0), (0, 24), (24, 0), (24, 24)}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """The cpu profile's data (all 5,000 digits; built in about a second)."""
    return module.decoy_mnist(SPEC.profile("cpu"), 0, tmp_path_factory.mktemp("cache"))


def _hand_digits() -> tuple[np.ndarray, np.ndarray]:
    """Three 28-px 'digits': a bar of ink in the middle, and one with ink in the top-left corner."""
    images = np.zeros((3, 1, 28, 28), dtype=np.uint8)
    images[:, :, 10:18, 13:15] = 200
    images[2, :, 0:2, 0:2] = 90  # ink where a swatch may go: the swatch overwrites it
    return images, np.array([0, 3, 9])


# ----------------------------------------------------------------------- the swatch by hand
def test_shades_are_255_minus_25_times_the_digit():
    assert data.shade(np.arange(10)).tolist() == [255, 230, 205, 180, 155, 130, 105, 80, 55, 30]
    assert data.digit_of_shade(np.array([255, 180, 30, 0, 100, 256])).tolist() == [0, 3, 9, -1, -1, -1]
    with pytest.raises(ValueError, match="digits 0..9"):
        data.shade(np.array([10]))


def test_swatches_are_4x4_in_a_corner_and_scale_with_the_image():
    top, left = np.array([True, True, False, False]), np.array([True, False, True, False])
    assert data.swatch_boxes(top, left, 28, 4).tolist() == [[0, 0, 4, 4], [0, 24, 4, 4], [24, 0, 4, 4], [24, 24, 4, 4]]
    assert data.swatch_side(28) == 4 and data.swatch_side(224) == 32 and data.swatch_side(56) == 8
    assert data.swatch_boxes(np.array([False]), np.array([False]), 224, 32).tolist() == [[192, 192, 32, 32]]


def test_stamping_three_hand_checked_digits():
    images, labels = _hand_digits()
    boxes = np.array([[0, 0, 4, 4], [24, 24, 4, 4], [0, 0, 4, 4]])
    marked, masks = data.stamp_swatches(images, boxes, labels)
    expected = images.copy()
    expected[0, 0, 0:4, 0:4] = 255  # label 0: white
    expected[1, 0, 24:28, 24:28] = 180  # label 3: 255 - 75
    expected[2, 0, 0:4, 0:4] = 30  # label 9: 255 - 225, over the corner ink
    assert np.array_equal(marked, expected)
    assert (masks == 0).sum(axis=(1, 2, 3)).tolist() == [16, 16, 16]
    assert masks[0, 0, :4, :4].max() == 0 and masks[1, 0, 24:, 24:].max() == 0 and masks[1, 0, :24].min() == 1
    assert np.array_equal(images, _hand_digits()[0])  # the input is left alone


def test_train_and_test_rules_on_the_hand_checked_digits():
    images, labels = _hand_digits()
    clean = {pool: (images, labels) for pool in ("train", "val", "test")}
    tensors = data.build_decoy_tensors(clean, 28, 4, seed=0)
    for name in ("train", "val", "biased"):
        assert tensors[f"{name}/marker_class"].tolist() == [0, 3, 9]
        swatch = tensors[f"{name}/images"][tensors[f"{name}/masks"] == 0].view(3, 16)
        assert swatch.tolist() == [[255] * 16, [180] * 16, [30] * 16]
    assert all((tensors["deceiving/marker_class"] != torch.tensor([0, 3, 9])).tolist())
    boxes = {name: tensors[f"{name}/boxes"] for name in data.TEST_SPLITS}
    assert all(tuple(b[:2]) in CORNERS for b in boxes["biased"].tolist())
    assert torch.equal(boxes["biased"], boxes["decoy"]) and torch.equal(boxes["biased"], boxes["deceiving"])
    with pytest.raises(ValueError, match="unknown shade rule"):
        data.shade_digits(labels, "random", np.random.default_rng(0))


# ---------------------------------------------------------------------------- the experiment
def test_registration():
    assert SPEC.name == "decoy_mnist" and SPEC.test_splits == ("biased", "decoy", "deceiving")
    assert SPEC.id_split == "biased" and SPEC.shift_splits == ("decoy", "deceiving")
    assert SPEC.extended and "RRR" in SPEC.extended and set(SPEC.profiles) == set(SCALES)
    cpu = SPEC.profile("cpu")
    assert cpu.data["n_train"] + cpu.data["n_val"] + cpu.data["n_test"] == 5000  # every bundled digit
    assert (cpu.backbone, cpu.image_size) == ("narrow_cnn", 28) and SPEC.profile("paper").image_size == 224


def test_bundle_contract(bundle):
    assert bundle.num_classes == 10 and bundle.in_channels == 1 and bundle.image_size == 28 and bundle.has_masks
    assert (len(bundle.train), len(bundle.val)) == (3500, 500) and set(bundle.tests) == set(SPEC.test_splits)
    for split in [bundle.train, bundle.val, *bundle.tests.values()]:
        assert isinstance(split, TensorSplit) and split.images.dtype == torch.uint8
        assert split.images.shape[1:] == (1, 28, 28) and split.masks.dtype == torch.uint8
        background = (split.masks == 0).view(len(split), -1).sum(1)
        assert (background == 16).all()  # the swatch, and nothing else, is outside the mask
        assert all(tuple(b[:2]) in CORNERS and tuple(b[2:]) == (4, 4) for b in split.marker_boxes.tolist())


def _swatch_values(split) -> np.ndarray:
    """The grey level of each image's swatch, read where its mask is 0."""
    values = split.images[split.masks == 0].view(len(split), -1)
    assert (values == values[:, :1]).all()  # one flat shade
    return values[:, 0].numpy()


def test_corners_are_uniform_and_independent_of_the_label(bundle):
    boxes = bundle.train.marker_boxes.numpy()
    corner = (boxes[:, 0] > 0) * 2 + (boxes[:, 1] > 0)
    assert np.all(np.abs(np.bincount(corner, minlength=4) / len(corner) - 0.25) < 0.03)
    labels = bundle.train.labels.numpy()
    for digit in range(10):  # 350 images per class: each corner within 0.25 +- 0.08 (about 3.5 sd)
        assert np.all(np.abs(np.bincount(corner[labels == digit], minlength=4) / 350 - 0.25) < 0.08)


def test_the_shade_gives_the_label_away_in_training_only(bundle):
    """The swatch alone: its shade read back as a digit is the label on every training,
    validation and in-distribution test image, about one test image in ten on ``decoy`` and
    none on ``deceiving``."""
    splits = {"train": bundle.train, "val": bundle.val, **bundle.tests}
    read = {name: data.digit_of_shade(_swatch_values(s)) for name, s in splits.items()}
    labels = {name: s.labels.numpy() for name, s in splits.items()}
    for name in ("train", "val", "biased"):
        assert np.array_equal(read[name], labels[name]) and splits[name].groups.eq(GROUP_CLASS_MARKER).all()
    decoy = np.mean(read["decoy"] == labels["decoy"])
    assert 0.06 <= decoy <= 0.14  # uniform digits: 1 in 10 (binomial sd 0.0095 on 1,000 images)
    assert np.all(np.abs(np.bincount(read["decoy"], minlength=10) / 1000 - 0.1) < 0.04)
    assert np.mean(read["deceiving"] == labels["deceiving"]) == 0.0
    assert bundle.tests["deceiving"].groups.eq(GROUP_OTHER_MARKER).all()
    assert bundle.notes["own_label_shade_share"]["train"] == 1.0


def test_the_foreground_holds_nothing_of_the_shade(bundle):
    """Everything but the swatch is the same image in the three test splits (same digits, same
    corners, different shades): no classifier of the foreground can tell them apart."""
    tests = bundle.tests
    views = {name: s.images * s.masks for name, s in tests.items()}
    assert torch.equal(views["biased"], views["decoy"]) and torch.equal(views["biased"], views["deceiving"])
    assert torch.equal(tests["biased"].masks, tests["decoy"].masks)
    assert not torch.equal(tests["biased"].images, tests["decoy"].images)


def _half_split(split) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(0).permutation(len(split))
    return np.sort(order[0::2]), np.sort(order[1::2])


@pytest.mark.slow
def test_learned_readers_find_the_shade_in_the_swatch_only(bundle):
    """The audit's CNN, fitted on half of ``decoy`` (where the shade is independent of the label)
    and tested on the other half, reads the shade's digit from the swatch alone and not from the
    foreground; fitted on training images' swatch alone, it predicts the label in distribution
    and not at test."""
    split = bundle.tests["decoy"]
    x = split.images.float().numpy() / 255
    m = split.masks.numpy().astype(np.float32)
    shade_digit = split.marker_class.numpy()
    fit, test = _half_split(split)
    for view, low, high in ((x * (1 - m), 0.9, 1.0), (x * m, 0.0, 0.16)):
        pred = cnn_predict(view[fit], shade_digit[fit], view[test], 10)
        assert low <= np.mean(pred == shade_digit[test]) <= high

    def swatch_only(s) -> np.ndarray:
        return (s.images.float() / 255 * (1 - s.masks.float())).numpy()

    names = list(bundle.tests)
    pred = cnn_predict(swatch_only(bundle.train), bundle.train.labels.numpy(),
                       np.concatenate([swatch_only(bundle.tests[n]) for n in names]), 10)
    labels = np.concatenate([bundle.tests[n].labels.numpy() for n in names])
    accuracy = dict(zip(names, np.mean((pred == labels).reshape(len(names), -1), axis=1), strict=True))
    assert accuracy["biased"] >= 0.95 and accuracy["decoy"] <= 0.16 and accuracy["deceiving"] <= 0.05


def test_data_do_not_depend_on_the_run_seed_and_the_cache_is_reused(bundle, tmp_path, monkeypatch):
    first = module.decoy_mnist(SPEC.profile("smoke"), 0, tmp_path)
    assert len(list(tmp_path.glob("decoy_mnist-*.pt"))) == 1

    def no_source(*args, **kwargs):
        raise AssertionError("the source was read again although the cache holds the data")

    monkeypatch.setattr(module, "load_mnist_5k", no_source)
    again = module.decoy_mnist(SPEC.profile("smoke"), 7, tmp_path)
    assert again.checksum == first.checksum and torch.equal(again.tests["decoy"].images, first.tests["decoy"].images)


def test_other_image_sizes_scale_the_digit_and_the_swatch(tmp_path):
    profile = replace(SPEC.profile("smoke"), image_size=56, data={"n_train": 20, "n_val": 10, "n_test": 10})
    built = module.decoy_mnist(profile, 0, tmp_path)
    split = built.tests["biased"]
    assert split.images.shape[1:] == (1, 56, 56) and (split.masks == 0).view(10, -1).sum(1).eq(64).all()
    assert all(tuple(b[:2]) in {(0, 0), (0, 48), (48, 0), (48, 48)} for b in split.marker_boxes.tolist())
    assert np.array_equal(data.digit_of_shade(_swatch_values(split)), split.labels.numpy())


def test_unknown_data_parameter_is_rejected(tmp_path):
    profile = replace(SPEC.profile("smoke"), data={"n_train": 10, "swatch_sise": 5})
    with pytest.raises(ValueError, match="swatch_sise"):
        module.decoy_mnist(profile, 0, tmp_path)
