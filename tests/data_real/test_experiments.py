"""The covid_real / tb_real experiments on tiny data roots: protocol, splits, overlaps, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from benchmarks.api import ExperimentProfile
from benchmarks.data.real import LayoutError
from benchmarks.experiments import real_cxr

from .trees import lungs, save


def _smoke(name: str, **data) -> ExperimentProfile:  # noqa: ANN003
    spec = getattr(real_cxr, name).__experiment_spec__
    base = spec.profile("smoke")
    return ExperimentProfile(
        base.backbone, base.image_size, base.epochs, base.batch_size, base.lr, {**base.data, **data}
    )


def _groups(split) -> set[str]:  # noqa: ANN001
    return {split.group_names[int(g)] for g in split.groups.unique()}


def test_specs() -> None:
    for name in ("covid_real", "tb_real"):
        spec = getattr(real_cxr, name).__experiment_spec__
        assert spec.name == name and spec.test_splits == ("in_distribution", "external")
        assert spec.id_split == "in_distribution" and spec.shift_splits == ("external",)
        assert {"user-data", "cxr", "has_normal_class"} <= spec.tags
        assert spec.profile("cpu").image_size == 64 and spec.profile("cpu").backbone == "small_cnn"
        assert spec.profile("paper").image_size == 224 and spec.profile("paper").backbone == "densenet121"


def test_unset_or_missing_data_root_prints_the_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ISNET_BENCHMARKS_DATA", raising=False)
    with pytest.raises(FileNotFoundError) as err:
        real_cxr.covid_real(_smoke("covid_real"), 0, tmp_path / "cache")
    assert (
        "ISNET_BENCHMARKS_DATA" in str(err.value) and "covid-qu-ex/" in str(err.value) and "brixia/" in str(err.value)
    )
    monkeypatch.setenv("ISNET_BENCHMARKS_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="shenzhen-masks|montgomery/"):
        real_cxr.tb_real(_smoke("tb_real"), 0, tmp_path / "cache")
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("ISNET_BENCHMARKS_DATA", str(tmp_path / "empty"))
    with pytest.raises(LayoutError, match="covid-qu-ex"):
        real_cxr.covid_real(_smoke("covid_real"), 0, tmp_path / "cache")


def test_covid_real_protocol(covid_root: Path, tmp_path: Path) -> None:
    bundle = real_cxr.covid_real(_smoke("covid_real"), 0, tmp_path / "cache")
    assert bundle.class_names == ("normal", "pneumonia", "covid19") and bundle.in_channels == 1
    assert set(bundle.tests) == {"in_distribution", "external"}
    train_sources = {"covid-qu-ex", "covid-chestxray-dataset"}
    for split in (bundle.train, bundle.val, bundle.tests["in_distribution"]):
        assert _groups(split) <= train_sources
        assert split.images.shape[1:] == (1, 32, 32)
    external = _groups(bundle.tests["external"])
    assert external and not external & train_sources  # external hospitals never seen in training
    assert (
        bundle.has_masks and bundle.train.masks is not None and bool((bundle.train.masks.flatten(1).sum(1) > 0).all())
    )
    assert set(bundle.train.labels.tolist()) == {0, 1, 2}
    notes = bundle.notes
    assert notes["protocol"]["train"] == ["covid-qu-ex", "covid-chestxray-dataset"]
    assert "covid-external" in notes["protocol"]["external"]
    assert notes["sources"]["covid-chestxray-dataset"]["stats"]["finding_left_out"] == 1
    # the external generic folder has no masks: its test split carries none
    assert notes["split_has_masks"]["external"] is False and bundle.tests["external"].masks is None
    # same inputs -> same checksum and same data; another seed -> another split
    again = real_cxr.covid_real(_smoke("covid_real"), 0, tmp_path / "cache")
    assert again.checksum == bundle.checksum and torch.equal(again.train.images, bundle.train.images)
    other = real_cxr.covid_real(_smoke("covid_real"), 1, tmp_path / "cache")
    assert other.checksum != bundle.checksum


def test_covid_real_cohen_patients_stay_in_one_split(covid_root: Path, tmp_path: Path) -> None:
    from benchmarks.data.real import covid_chestxray
    from benchmarks.data.real.bundle import DEFAULT_FRACTIONS
    from benchmarks.data.real.splitting import patient_split

    recs = covid_chestxray.load(covid_root / "covid-chestxray-dataset")
    for seed in range(5):
        split = patient_split(recs, DEFAULT_FRACTIONS, seed)
        for pid in {r.patient for r in recs}:
            assert len({s for r, s in zip(recs, split, strict=True) if r.patient == pid}) == 1


def test_tb_real_overlap_removal_and_unmasked_training_images(tb_root: Path, tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="without a lung mask"):
        bundle = real_cxr.tb_real(_smoke("tb_real"), 0, tmp_path / "cache")
    notes = bundle.notes
    tbx = notes["sources"]["tbx11k"]["stats"]
    assert tbx["overlap_montgomery"] == 1  # named copy, by file name
    assert tbx["class_left_out:sick"] == 3  # TBX11K's non-TB disease is not 'normal'
    assert notes["removed"]["tbx11k_duplicates_of_montgomery+shenzhen"] == 1  # renamed, resized copy, by content
    assert notes["removed"]["train_without_mask"] >= 1  # TBX11K has no masks
    assert _groups(bundle.tests["external"]) == {"montgomery"}
    for split in (bundle.train, bundle.val, bundle.tests["in_distribution"]):
        assert "montgomery" not in _groups(split)
    assert bundle.class_names == ("normal", "tuberculosis")
    # with masks predicted into predicted-masks/<source>/, unmasked images are kept
    for source, folder in (("tbx11k", "tbx11k/imgs"), ("shenzhen", "shenzhen")):
        for img in sorted((tb_root / folder).rglob("*.png")):
            save(tb_root / "predicted-masks" / source / f"{img.stem}_mask.png", lungs(*Image.open(img).size[::-1]))
    full = real_cxr.tb_real(_smoke("tb_real"), 0, tmp_path / "cache")
    assert "train_without_mask" not in full.notes["removed"]
    assert len(full.train) > len(bundle.train) and "tbx11k" in _groups(full.train)
    for p in (tb_root / "predicted-masks").rglob("*.png"):
        p.unlink()
    with pytest.raises(ValueError, match="no lung mask"):
        real_cxr.tb_real(_smoke("tb_real", unmasked_train="error"), 0, tmp_path / "cache")


def test_missing_required_source(tb_root: Path, tmp_path: Path) -> None:
    import shutil

    shutil.rmtree(tb_root / "shenzhen")
    with pytest.raises(LayoutError, match="shenzhen"):
        real_cxr.tb_real(_smoke("tb_real"), 0, tmp_path / "cache")
