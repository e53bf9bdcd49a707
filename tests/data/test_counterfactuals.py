"""Counterfactual test images: exact re-renderings keep the object, composites paste by the mask."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from benchmarks.api import TensorSplit
from benchmarks.data import counterfactuals as cf
from benchmarks.experiments import biased_mnist as mnist_module
from benchmarks.experiments import synthetic_cxr as cxr_module

TINY_CXR = {"n_train": 60, "n_val": 15, "n_in_distribution": 30, "n_external": 30, "lungs": "parametric",
            "max_templates": 12}


@pytest.fixture(scope="module")
def covid(tmp_path_factory):
    spec = cxr_module.synthetic_covid.__experiment_spec__
    profile = spec.profile("smoke")
    return spec.build(replace(profile, data={**profile.data, **TINY_CXR}), 0, tmp_path_factory.mktemp("cache"))


def test_every_test_image_is_rerendered_by_every_hospital_with_identical_lungs_and_masks(covid):
    names = covid.tests["in_distribution"].group_names
    for split_name in ("in_distribution", "external"):
        split = covid.tests[split_name]
        copies = covid.counterfactuals[split_name]
        assert [c.name for c in copies] == [f"rerendered:{n}" for n in names]
        lungs = split.masks.bool()
        for copy in copies:
            assert copy.kind == "rerendered" and copy.images.shape == split.images.shape
            assert torch.equal(copy.images[lungs], split.images[lungs])  # every lung pixel is the original's
            own = split.groups == copy.source
            assert torch.equal(copy.images[own], split.images[own])  # its own hospital re-renders it unchanged
            if (~own).any():  # another hospital changes what lies outside the lungs
                assert not torch.equal(copy.images[~own], split.images[~own])


def test_rerendered_backgrounds_point_to_the_hospitals_training_majority(covid):
    split = covid.tests["in_distribution"]
    shares = {f"hospital_{h}": s for h, s in cxr_module.COVID_HOSPITALS["train_hospitals"].items()}
    for copy in covid.counterfactuals["in_distribution"]:
        hospital = split.group_names[copy.source]
        expected = int(np.argmax(shares[hospital])) if hospital in shares else -1
        assert set(copy.background_class.tolist()) == {expected}
    majority = [int(np.argmax(shares[n])) if n in shares else -1 for n in split.group_names]
    assert split.background_class.tolist() == [majority[g] for g in split.groups.tolist()]


def _toy_split() -> TensorSplit:
    """Six 8x8 one-channel images: object value 200 in a 2x2 square at a per-image place, the
    background constant per image (its background class marks which); a class marker pixel."""
    images = torch.zeros(6, 1, 8, 8, dtype=torch.uint8)
    masks = torch.zeros(6, 1, 8, 8, dtype=torch.uint8)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    for i in range(6):
        images[i] = 10 * (i + 1)
        y, x = 1 + i % 4, 1 + (i * 3) % 5
        images[i, 0, y:y + 2, x:x + 2] = 200
        masks[i, 0, y:y + 2, x:x + 2] = 1
    split = TensorSplit(images, labels, masks)
    split.background_class = labels.clone()
    return split


def test_composites_keep_the_foreground_and_take_no_part_of_the_donors_object():
    split = _toy_split()
    made = {c.name: c for c in cf.composites("toy", split)}
    fg = split.masks.bool().expand_as(split.images)
    for name, copy in made.items():
        assert torch.equal(copy.images[fg], split.images[fg]), name  # the recipient's object, exactly
        assert not (copy.images[~fg] == 200).any(), name  # no donor object pixel outside the mask
    background = made["only_foreground"].images[~fg]
    assert background.unique().numel() == 1  # one constant for the whole split
    expected = round(float(split.images[~fg].double().mean()))
    assert int(background.unique()) == expected
    for name, same in (("mixed_same", True), ("mixed_random", False)):
        donor = made[name].donor
        assert (donor >= 0).all() and (donor != torch.arange(6)).all()
        pointed = split.background_class[donor]
        assert bool(((pointed == split.labels) if same else (pointed != split.labels)).all()), name
        assert torch.equal(made[name].background_class, pointed)
        for i in range(6):  # the background is the donor's own (its value per image is 10 (donor + 1))
            assert set(made[name].images[i][~fg[i]].unique().tolist()) == {10 * (int(donor[i]) + 1)}


def test_composites_are_the_same_for_every_call():
    split = _toy_split()
    a, b = cf.composites("toy", split), cf.composites("toy", split)
    assert all(torch.equal(x.images, y.images) and torch.equal(x.donor, y.donor) for x, y in zip(a, b, strict=True))


def test_backgrounds_that_point_nowhere_mix_by_class_and_groups_name_the_majority():
    split = _toy_split()
    split.background_class = None
    split.groups = torch.tensor([0, 0, 0, 1, 1, 1])
    train = TensorSplit(torch.zeros(5, 1, 8, 8), torch.tensor([2, 2, 1, 0, 0]), groups=torch.tensor([0, 0, 0, 1, 1]))
    assert cf.background_classes(split, train).tolist() == [2, 2, 2, 0, 0, 0]
    assert cf.background_classes(split, None).tolist() == [-1] * 6
    rng = np.random.default_rng(0)
    donors = cf._donors(split.labels.numpy(), np.full(6, -1), same=False, rng=rng)
    assert (split.labels.numpy()[donors] != split.labels.numpy()).all()


def test_fill_foreground_takes_the_nearest_background_pixel():
    image = np.array([[[[1, 2, 3, 4]]]], dtype=np.uint8)
    mask = np.array([[[[0, 1, 1, 0]]]], dtype=np.uint8)
    filled = cf.fill_foreground(image, mask)
    assert filled[0, 0, 0].tolist() in ([1, 1, 4, 4], [1, 4, 4, 4], [1, 1, 1, 4])
    assert filled[0, 0, 0, 0] == 1 and filled[0, 0, 0, 3] == 4


def test_biased_mnist_rerenders_the_same_digits_with_another_marker(tmp_path):
    spec = mnist_module.biased_mnist.__experiment_spec__
    bundle = spec.build(spec.profile("smoke"), 0, tmp_path)
    biased = bundle.tests["biased"]
    copies = {c.name: c for c in bundle.counterfactuals["biased"]}
    assert set(copies) == {"unbiased", "deceiving"}
    for name, copy in copies.items():
        other = bundle.tests[name]
        assert torch.equal(copy.images, other.images) and torch.equal(other.masks, biased.masks)
        assert torch.equal(other.labels, biased.labels)
        digit = biased.masks.bool()
        assert torch.equal(copy.images[digit], biased.images[digit])  # the digit is untouched
    marked = copies["deceiving"].background_class
    assert ((marked != biased.labels) | (marked < 0)).all() and (marked >= 0).float().mean() > 0.9
    assert (copies["unbiased"].background_class == -1).all()


def test_the_no_shortcut_control_is_every_patient_in_one_hospitals_style(covid, tmp_path):
    spec = cxr_module.synthetic_covid_control.__experiment_spec__
    profile = spec.profile("smoke")
    control = spec.build(replace(profile, data={**profile.data, **TINY_CXR}), 0, tmp_path)
    assert control.counterfactuals == {}  # one style: nothing to re-render
    style = cxr_module.CONTROL_STYLE
    for name in ("train", "in_distribution", "external"):
        main = covid.train if name == "train" else covid.tests[name]
        shown = control.train if name == "train" else control.tests[name]
        assert torch.equal(shown.masks, main.masks) and torch.equal(shown.labels, main.labels)
        assert torch.equal(shown.groups, main.groups)  # the same hospitals, shares and patients
        if name != "train":  # exactly the experiment's re-rendering in the shared style
            copy = next(c for c in covid.counterfactuals[name] if c.name == f"rerendered:hospital_{style}")
            assert torch.equal(shown.images, copy.images)
