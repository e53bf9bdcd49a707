"""What a lung mask must look like (:mod:`benchmarks.data.real.mask_check`): the measures
on known good and bad masks, on a sample of the real V7 lung masks, and in the cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.data.real import Record, build_tensors, masks
from benchmarks.data.real.mask_check import mask_problems, measure_mask

from .trees import cxr, lungs, noise, save


def _problems(arr: np.ndarray) -> list[str]:
    return mask_problems(measure_mask([arr], masks.binarise(arr)))


def test_what_a_lung_mask_looks_like() -> None:
    v7 = lungs(64, side="left")
    v7[:6] = 127  # the V7 masks' other annotations: mid-grey, but few
    for good in (
        lungs(64),
        lungs(64, side="right"),
        (lungs(40) > 0).astype(np.uint8),
        v7,
        lungs(48).astype(np.uint16) * 257,
    ):
        assert _problems(good) == [], good.dtype
    assert any("mid-grey" in p for p in _problems(noise(64)))
    assert any("mid-grey" in p for p in _problems(cxr(64)))
    speckle = (noise(64) > 127).astype(np.uint8) * 255  # black and white, but no regions
    assert [p for p in _problems(speckle) if "two largest regions" in p]
    assert any("border" in p for p in _problems(255 - lungs(64)))
    assert any("foreground covers 100% of the image" in p for p in _problems(np.full((32, 32), 255, np.uint8)))
    dot = np.zeros((64, 64), np.uint8)
    dot[30:32, 30:32] = 255
    assert any("foreground covers 0% of the image" in p for p in _problems(dot))


def test_a_sample_of_the_real_v7_lung_masks_passes() -> None:
    import zipfile

    from benchmarks.data.real.covid_chestxray import torchxrayvision_v7_zip

    archive = torchxrayvision_v7_zip()
    if archive is None:
        pytest.skip("torchxrayvision (which ships the V7 lung masks) is not installed")
    with zipfile.ZipFile(archive) as zf:
        names = sorted(m for m in zf.namelist() if not m.endswith("/"))[::10]
    checked = 0
    for name in names:
        arr = masks.read_mask_file(f"{archive}::{name}")
        if arr.max() > 127:  # 82 of the 517 V7 masks are empty (refused as such elsewhere)
            assert _problems(arr) == [], name
            checked += 1
    assert checked >= 40


def test_measures_are_cached_with_the_tensors(tmp_path: Path) -> None:
    img = save(tmp_path / "a.png", cxr(24))
    good = Record(str(img), "normal", (str(save(tmp_path / "good.png", lungs(24))),), "s")
    bad = Record(str(img), "normal", (str(save(tmp_path / "bad.png", noise(24))),), "s")
    none = Record(str(img), "normal", None, "s")
    tensors, _ = build_tensors([good, bad, none], 16, tmp_path / "cache", "unit")
    stats = tensors["mask_stats"]
    assert stats.shape == (3, 4) and stats[2].isnan().all()
    assert mask_problems(stats[0].tolist()) == [] and mask_problems(stats[1].tolist())
