"""Synthetic chest X-rays: hospitals, external split, markers, class signal, determinism."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from benchmarks.api import SCALES
from benchmarks.data import cxr_hospitals as cxr
from benchmarks.data import cxr_render
from benchmarks.data import lung_templates as lungs
from benchmarks.data.markers import dilate
from benchmarks.experiments import synthetic_cxr as module

COVID = module.synthetic_covid.__experiment_spec__
TB = module.synthetic_tb.__experiment_spec__
TINY = {"n_train": 60, "n_val": 15, "n_in_distribution": 30, "n_external": 30, "lungs": "parametric",
        "max_templates": 12}


def _tiny(spec, **data):
    profile = spec.profile("smoke")
    return replace(profile, data={**profile.data, **TINY, **data})


@pytest.fixture(scope="module")
def covid(tmp_path_factory):
    return module.synthetic_covid(_tiny(COVID), 0, tmp_path_factory.mktemp("cache"))


def test_registration() -> None:
    for spec, k in ((COVID, 3), (TB, 2)):
        assert spec.test_splits == ("in_distribution", "external")
        assert spec.id_split == "in_distribution" and spec.shift_splits == ("external",)
        assert set(spec.profiles) == set(SCALES) and "cxr" in spec.tags and "has_normal_class" in spec.tags
        assert 32 <= spec.profile("cpu").image_size <= 128 and spec.profile("paper").image_size == 224
        for hospital_shares in spec.profile("cpu").data["train_hospitals"].values():
            assert len(hospital_shares) == k


def test_bundle_contract(covid) -> None:
    assert covid.class_names == ("normal", "pneumonia", "covid") and covid.in_channels == 1
    for split in [covid.train, covid.val, *covid.tests.values()]:
        assert split.images.dtype == torch.uint8 and split.images.shape[1:] == (1, 32, 32)
        assert set(split.masks.unique().tolist()) == {0, 1}
        assert (split.masks.flatten(1).sum(1) > 20).all(), "every image has lungs"
    assert covid.notes["lung_source"].startswith("parametric")
    assert len(covid.train) == 60 and len(covid.tests["external"]) == 30


def test_external_hospitals_never_in_training(covid) -> None:
    names = covid.train.group_names
    train_groups = {names[g] for g in covid.train.groups.tolist()} | {names[g] for g in covid.val.groups.tolist()}
    external = {names[g] for g in covid.tests["external"].groups.tolist()}
    in_dist = {names[g] for g in covid.tests["in_distribution"].groups.tolist()}
    assert train_groups == {"hospital_A", "hospital_B", "hospital_C"} == in_dist
    assert external == {"hospital_D", "hospital_E"}
    assert not train_groups & external
    assert set(covid.notes["external_hospitals"]) == external


def test_class_shares_differ_by_hospital(covid) -> None:
    groups, labels = covid.train.groups.numpy(), covid.train.labels.numpy()
    majority = {g: np.bincount(labels[groups == g], minlength=3).argmax() for g in np.unique(groups)}
    assert sorted(majority.values()) == [0, 1, 2]  # each training hospital favours another class
    ext = covid.tests["external"]
    counts = np.bincount(ext.labels.numpy(), minlength=3)
    assert counts.max() - counts.min() <= 2  # external hospitals are balanced


def test_markers_stay_outside_the_dilated_lungs(covid) -> None:
    for split in [covid.train, *covid.tests.values()]:
        boxes = split.marker_boxes.numpy()
        forbidden = dilate(split.masks, 1)
        for i, per_image in enumerate(boxes):
            for y, x, h, w in per_image:
                if y >= 0 and h < 30 and w < 30:  # boxed shapes / text (bands are clipped pixel-wise)
                    assert not forbidden[i, y:y + h, x:x + w].any()
        assert (boxes[:, 0, 0] >= 0).mean() > 0.9, "most images carry their hospital's marker"


def _render(hospital, labels, task, seed=(3,)):
    templates = torch.from_numpy(lungs.parametric_templates(4, seed=1))
    return cxr_render.render(templates, lungs.template_geometry(templates), np.arange(4), np.asarray(labels),
                             hospital, task, 64, 1.0, seed=seed)


def _all_hospitals(k: int):
    return [h.with_shares([1 / k] * k) for h in cxr.STYLES.values()]


def test_lungs_are_the_same_in_every_hospital() -> None:
    """Same seed, any hospital: the same lung mask and the same pixels inside it (size,
    position, intensity transfer, blur and grain of the lungs carry no hospital), while the
    hospitals differ outside the lungs."""
    for task, k in (("covid", 3), ("tb", 2)):
        labels = np.arange(4) % k
        first, *others = [_render(h, labels, task) for h in _all_hospitals(k)]
        inside = first.masks.astype(bool)
        for other in others:
            assert np.array_equal(other.masks, first.masks)
            assert np.array_equal(other.images[inside], first.images[inside])
            assert (other.images[~inside] != first.images[~inside]).mean() > 0.5


def test_class_signal_lies_inside_the_lungs() -> None:
    for task, classes in (("covid", (1, 2)), ("tb", (1,))):
        for hospital in _all_hospitals(3 if task == "covid" else 2):
            normal = _render(hospital, np.zeros(4, dtype=int), task)
            for c in classes:
                sick = _render(hospital, np.full(4, c), task)
                assert np.array_equal(sick.masks, normal.masks)
                diff = sick.images != normal.images
                assert diff.any(axis=(1, 2, 3)).all(), f"{task} class {c} left no trace"
                assert not (diff & (normal.masks == 0)).any(), f"{task} class {c} leaks outside the lungs"


def test_lungs_vary_from_image_to_image() -> None:
    """Per-image acquisition: lung size and mean intensity are not constants."""
    out = _render(cxr.STYLES["A"].with_shares((0.5, 0.5)), np.zeros(4, dtype=int), "tb", seed=(5,))
    inside = out.masks.astype(bool)
    means = [out.images[i][inside[i]].mean() for i in range(4)]
    assert np.ptp(inside.sum((1, 2, 3))) > 20 and np.ptp(means) > 2


def test_deterministic_and_independent_of_the_run_seed(covid, tmp_path) -> None:
    again = module.synthetic_covid(_tiny(COVID), 7, tmp_path)
    assert again.checksum == covid.checksum
    for name in ("in_distribution", "external"):
        assert torch.equal(again.tests[name].images, covid.tests[name].images)
    other = module.synthetic_covid(_tiny(COVID, data_seed=1), 0, tmp_path)
    assert other.checksum != covid.checksum
    assert not torch.equal(other.train.images, covid.train.images)


def test_tb_task(tmp_path) -> None:
    bundle = module.synthetic_tb(_tiny(TB), 0, tmp_path)
    assert bundle.class_names == ("normal", "tb")
    names = bundle.train.group_names
    assert {names[g] for g in bundle.tests["external"].groups.tolist()} == {"hospital_D", "hospital_F"}


def test_bad_hospital_specs_are_rejected(tmp_path) -> None:
    with pytest.raises(ValueError, match="must differ"):
        module.synthetic_tb(_tiny(TB, external_hospitals={"A": (0.5, 0.5)}), 0, tmp_path)
    with pytest.raises(ValueError, match="sum to 1"):
        module.synthetic_tb(_tiny(TB, train_hospitals={"A": (0.5, 0.6)}), 0, tmp_path)
    with pytest.raises(ValueError, match="unknown hospital style"):
        module.synthetic_tb(_tiny(TB, train_hospitals={"Z": (0.5, 0.5)}), 0, tmp_path)


@pytest.mark.skipif(lungs.lung_zip_path() is None, reason="torchxrayvision wheel not installed")
def test_real_v7_lung_templates() -> None:
    templates = lungs.load_v7_templates(lungs.lung_zip_path(), res=64, max_templates=6)
    assert templates.ndim == 3 and templates.shape[1:] == (64, 64) and 3 <= len(templates) <= 6
    fill = templates.reshape(len(templates), -1).mean(1)
    assert ((fill > 0.2) & (fill < 0.8)).all()
    # two lungs side by side: the middle column is (nearly) empty, both halves are not
    assert (templates[:, :, :28].sum((1, 2)) > 100).all() and (templates[:, :, 36:].sum((1, 2)) > 100).all()


def test_parametric_fallback_when_the_wheel_is_absent(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(lungs, "lung_zip_path", lambda: None)
    templates, source, _ = lungs.lung_templates("v7", tmp_path, 5)
    assert "parametric" in source and "not installed" in source and templates.shape == (5, 128, 128)


def test_cache_is_reused(tmp_path, monkeypatch) -> None:
    first = module.synthetic_tb(_tiny(TB), 0, tmp_path)

    def no_rebuild(*args, **kwargs):
        raise AssertionError("rendered again although the cache holds the data")

    monkeypatch.setattr(cxr, "build_cxr_tensors", no_rebuild)
    second = module.synthetic_tb(_tiny(TB), 2, tmp_path)
    assert second.checksum == first.checksum and torch.equal(second.train.images, first.train.images)
