"""Shared reading, masks, cache, patient-level splitting and duplicate detection; bad inputs."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks.data.real import BadImageError, EmptyMaskError, Record, build_tensors, preprocess, read_image, read_mask
from benchmarks.data.real.duplicates import near_duplicates
from benchmarks.data.real.records import UnknownClassError, canonical_class
from benchmarks.data.real.splitting import check_patient_disjoint, patient_split, subsample

from .trees import cxr, lungs, save


def _rec(
    tmp: Path, name: str, label: str = "normal", patient: str | None = None, mask: bool = True, size: int = 24
) -> Record:
    img = save(tmp / f"{name}.png", cxr(size))
    m = save(tmp / f"{name}_mask.png", lungs(size)) if mask else None
    return Record(str(img), label, (str(m),) if m else None, "src", patient)


def test_read_image_modes(tmp_path: Path) -> None:
    a = cxr(20)
    assert np.array_equal(read_image(save(tmp_path / "a.png", a)), a)
    rgb = np.stack([a, a, a], -1)
    assert np.array_equal(read_image(save(tmp_path / "rgb.png", rgb)), a)
    sixteen = a.astype(np.uint16) * 200 + 7
    Image.fromarray(sixteen).save(tmp_path / "16.png")
    out = read_image(tmp_path / "16.png")
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255  # min-max scaled


def test_corrupt_image_names_the_file_or_is_skipped_and_counted(tmp_path: Path) -> None:
    good = _rec(tmp_path, "good")
    bad_path = tmp_path / "broken.png"
    bad_path.write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    bad = Record(str(bad_path), "normal", None, "src")
    with pytest.raises(BadImageError, match="broken.png"):
        read_image(bad_path)
    with pytest.raises(BadImageError, match="broken.png"):
        build_tensors([good, bad], 16, None, "t")
    tensors, _ = build_tensors([good, bad], 16, None, "t", on_bad="skip")
    assert tensors["status"].tolist() == [0, 1]
    with pytest.raises(ValueError, match="on_bad"):
        build_tensors([good], 16, None, "t", on_bad="ignore")


def test_mask_of_another_size_is_resized_with_a_warning(tmp_path: Path) -> None:
    m = save(tmp_path / "m.png", lungs(48))
    with pytest.warns(UserWarning, match="m.png.*resized and binarised"):
        out = read_mask([str(m)], (24, 24))
    assert out.shape == (24, 24) and out.dtype == bool
    assert abs(int(out.sum()) - int((lungs(24) > 0).sum())) <= 12
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_mask([str(m)], (48, 48))  # same size: no warning


def test_mask_binarisation_rules(tmp_path: Path) -> None:
    zero_one = (lungs(16) > 0).astype(np.uint8)
    assert read_mask([str(save(tmp_path / "01.png", zero_one))]).sum() == zero_one.sum()
    v7 = lungs(16).copy()
    v7[0] = 127  # other annotations in the V7 masks
    assert read_mask([str(save(tmp_path / "v7.png", v7))])[0].sum() == 0


def test_empty_mask_names_the_file(tmp_path: Path) -> None:
    empty = save(tmp_path / "empty_mask.png", np.zeros((24, 24), np.uint8))
    with pytest.raises(EmptyMaskError, match="empty_mask.png"):
        read_mask([str(empty)], (24, 24))
    rec = Record(str(save(tmp_path / "x.png", cxr(24))), "normal", (str(empty),), "src")
    with pytest.raises(EmptyMaskError, match="empty_mask.png"):
        build_tensors([rec], 16, None, "t")
    tensors, _ = build_tensors([rec], 16, None, "t", on_bad="skip")  # kept, without its mask
    assert tensors["status"].tolist() == [2] and not tensors["has_mask"].any()


def test_build_tensors_shapes_and_cache_reuse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recs = [_rec(tmp_path, f"i{i}", size=30) for i in range(3)] + [_rec(tmp_path, "nomask", mask=False)]
    cache = tmp_path / "cache"
    tensors, key = build_tensors(recs, 16, cache, "unit")
    assert tensors["images"].shape == (4, 1, 16, 16) and tensors["images"].dtype == torch.uint8
    assert tensors["masks"].shape == (4, 1, 16, 16) and set(tensors["masks"].unique().tolist()) <= {0, 1}
    assert tensors["has_mask"].tolist() == [True, True, True, False]
    assert len(list(cache.glob("unit-*.pt"))) == 1

    def boom(ref):  # noqa: ANN001, ANN202
        raise AssertionError("the second build must come from the cache")

    monkeypatch.setattr(preprocess, "read_image", boom)
    again, key2 = build_tensors(recs, 16, cache, "unit")
    assert key2 == key and torch.equal(again["images"], tensors["images"])
    # a changed source file changes the key
    monkeypatch.undo()
    save(Path(recs[0].image), cxr(31))
    with pytest.warns(UserWarning, match="resized and binarised"):  # its mask is 30x30 now
        _, key3 = build_tensors(recs, 16, cache, "unit")
    assert key3 != key


def test_patient_split_keeps_patients_together_and_is_deterministic() -> None:
    recs = []
    for p in range(30):
        label = ("normal", "covid19", "pneumonia")[p % 3]
        for k in range(1 + p % 3):
            recs.append(Record(f"/x/{p}_{k}.png", label, None, "src", f"P{p}"))
    recs += [Record(f"/x/anon{i}.png", "normal", None, "src") for i in range(6)]
    fr = {"train": 0.6, "val": 0.2, "in_distribution": 0.2}
    a = patient_split(recs, fr, seed=1)
    assert a == patient_split(recs, fr, seed=1)
    assert a != patient_split(recs, fr, seed=2)
    check_patient_disjoint(recs, a)
    for split in fr:  # every split gets every class
        assert {r.label for r, s in zip(recs, a, strict=True) if s == split} == {"normal", "covid19", "pneumonia"}
    by_patient: dict[str, set[str]] = {}
    for r, s in zip(recs, a, strict=True):
        if r.patient:
            by_patient.setdefault(r.patient, set()).add(s)
    assert all(len(v) == 1 for v in by_patient.values())
    assert recs[1].patient == recs[2].patient == "P1"
    with pytest.raises(ValueError, match="P1"):
        check_patient_disjoint(recs[1:3], ["train", "val"])


def test_official_split_is_kept() -> None:
    recs = [Record(f"/x/{i}.png", "normal", None, "qu", None, ("train", "val", "test")[i % 3]) for i in range(9)]
    out = patient_split(
        recs,
        {"train": 0.7, "val": 0.1, "in_distribution": 0.2},
        0,
        official={"train": "train", "val": "val", "test": "in_distribution"},
    )
    assert out == ["train", "val", "in_distribution"] * 3


def test_subsample_caps_cells_by_patient() -> None:
    recs = [Record(f"/x/{p}_{k}.png", "normal", None, "s", f"P{p}") for p in range(10) for k in range(2)]
    out = subsample(recs, 5)
    patients = {r.patient for r in out}
    assert 5 <= len(out) <= 6 and all(sum(r.patient == p for r in out) == 2 for p in patients)
    assert subsample(recs, None) == recs


def test_near_duplicates_find_resized_copies_only() -> None:
    from benchmarks.data.real.images import resize_image

    originals = [cxr(64) for _ in range(8)]
    copy = np.asarray(Image.fromarray(originals[3]).resize((48, 48), Image.Resampling.BILINEAR))
    to_t = lambda xs: torch.stack([torch.from_numpy(resize_image(np.array(x), 32).copy())[None] for x in xs])  # noqa: E731
    found = near_duplicates(to_t(originals), to_t([copy, cxr(64), cxr(48)]))
    assert found.tolist() == [True, False, False]


def test_canonical_class() -> None:
    assert canonical_class("COVID-19") == "covid19"
    assert canonical_class("Normal", ("normal", "tuberculosis")) == "normal"
    with pytest.raises(UnknownClassError, match="fracture"):
        canonical_class("fracture")
