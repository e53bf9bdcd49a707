"""Through the experiments: masks that do not look like lung masks (noise, an X-ray in the
mask folder, inverted, blank, predicted) are refused with every offending file named in one
message, unless accepted deliberately; real-looking masks pass. Also: the experiments say
cheaply, in a line, why their data are missing."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmarks.data.real import Record
from benchmarks.data.real.segmenter import predict_masks, train_segmenter
from benchmarks.experiments import real_cxr

from .test_experiments import _smoke
from .trees import cxr, lungs, noise, qu_mask_files, save

ACCEPT = "ISNET_BENCHMARKS_ACCEPT_ODD_MASKS"


def _image_of(mask: Path) -> Path:
    return mask.parent.parent / "images" / mask.name


def test_noise_mask_is_refused_naming_the_file(covid_root: Path, tmp_path: Path) -> None:
    bad = qu_mask_files(covid_root / "covid-qu-ex")[0]
    save(bad, noise(24))
    with pytest.raises(ValueError, match="do not look like lung masks") as err:
        real_cxr.covid_real(_smoke("covid_real"), 0, tmp_path / "cache")
    assert str(bad) in str(err.value) and ACCEPT in str(err.value)


def test_xray_copied_into_the_mask_folder_is_refused(covid_root: Path, tmp_path: Path) -> None:
    bad = qu_mask_files(covid_root / "covid-qu-ex")[3]
    shutil.copyfile(_image_of(bad), bad)
    with pytest.raises(ValueError, match="do not look like lung masks") as err:
        real_cxr.covid_real(_smoke("covid_real"), 0, tmp_path / "cache")
    assert str(bad) in str(err.value) and "grey" in str(err.value)


def test_every_offending_file_in_one_message_and_the_flag_accepts_them(
    covid_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    masks = qu_mask_files(covid_root / "covid-qu-ex")
    save(masks[0], noise(24))
    shutil.copyfile(_image_of(masks[5]), masks[5])
    save(masks[7], 255 - lungs(24))  # inverted: the background is white
    blank = covid_root / "covid-chestxray-dataset" / "annotations" / "lungVAE-masks" / "sars1_mask.png"
    save(blank, np.full((28, 32), 255, np.uint8))  # blank white: all 'lung'
    with pytest.raises(ValueError, match=r"\(4 files;") as err:
        real_cxr.covid_real(_smoke("covid_real"), 0, tmp_path / "cache")
    for path in (masks[0], masks[5], masks[7], blank):
        assert str(path) in str(err.value)
    monkeypatch.setenv(ACCEPT, "1")
    bundle = real_cxr.covid_real(_smoke("covid_real"), 0, tmp_path / "cache")
    assert bundle.notes["odd_masks_accepted"] == sorted(str(p) for p in (masks[0], masks[5], masks[7], blank))
    # the check does not live in the cache: without the flag the cached build is refused again
    monkeypatch.delenv(ACCEPT)
    with pytest.raises(ValueError, match=r"\(4 files;"):
        real_cxr.covid_real(_smoke("covid_real"), 0, tmp_path / "cache")


def test_odd_predicted_mask_is_refused(tb_root: Path, tmp_path: Path) -> None:
    img = sorted((tb_root / "tbx11k" / "imgs" / "health").glob("*.png"))[0]
    bad = save(tb_root / "predicted-masks" / "tbx11k" / f"{img.stem}_mask.png", noise(32, seed=3))
    with pytest.raises(ValueError, match=r"\(1 file;") as err:
        real_cxr.tb_real(_smoke("tb_real"), 0, tmp_path / "cache")
    assert str(bad) in str(err.value) and "masks predict" in str(err.value)


def test_good_masks_pass_and_are_counted(covid_root: Path, tmp_path: Path) -> None:
    bundle = real_cxr.covid_real(_smoke("covid_real"), 0, tmp_path / "cache")
    assert bundle.notes["odd_masks_accepted"] == []
    checked = {name: s["stats"].get("masks_checked", 0) for name, s in bundle.notes["sources"].items()}
    assert checked["covid-qu-ex"] == len(qu_mask_files(covid_root / "covid-qu-ex"))
    assert checked["covid-chestxray-dataset"] > 0  # V7 masks with their 127-valued annotations pass


# --------------------------------------------------------------------------- the lung segmenter
def test_segmenter_training_refuses_odd_masks(tmp_path: Path) -> None:
    recs = [
        Record(str(save(tmp_path / f"{i}.png", cxr(32))), "normal", (str(save(tmp_path / f"{i}_m.png", m)),), "s")
        for i, m in enumerate((lungs(32), noise(32), lungs(32)))
    ]
    with pytest.raises(ValueError, match="1_m.png"):
        train_segmenter(recs, tmp_path / "s.pt", image_size=32, widths=(4, 8), epochs=1, log=lambda _: None)
    assert not (tmp_path / "s.pt").exists()


def test_predicted_masks_that_are_not_lung_like_are_counted(tmp_path: Path) -> None:
    recs = [
        Record(
            str(save(tmp_path / f"{i}.png", cxr(32))), "normal", (str(save(tmp_path / f"{i}_m.png", lungs(32))),), "s"
        )
        for i in range(3)
    ]
    model = tmp_path / "s.pt"
    train_segmenter(recs, model, image_size=32, widths=(4, 8), epochs=1, max_steps=1, device="cpu", log=lambda _: None)
    lines: list[str] = []
    # threshold 0 keeps every pixel: a mask covering the whole image, border included
    counts = predict_masks(
        model, recs, tmp_path / "pred", only_missing=False, threshold=0, device="cpu", log=lines.append
    )
    assert counts["written"] == 3 and counts["implausible"] == 3
    assert sum("does not look like a lung mask" in line for line in lines) == 3


# --------------------------------------------------------------------------- missing data, said once
@pytest.mark.parametrize("name", ["covid_real", "tb_real"])
def test_missing_data_is_told_in_a_few_lines(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = getattr(real_cxr, name).__experiment_spec__
    monkeypatch.delenv("ISNET_BENCHMARKS_DATA", raising=False)
    unset = spec.missing_data(tmp_path)
    assert unset and "ISNET_BENCHMARKS_DATA" in unset and "is not set" in unset
    monkeypatch.setenv("ISNET_BENCHMARKS_DATA", str(tmp_path / "nowhere"))
    nowhere = spec.missing_data(tmp_path)
    assert nowhere and "nowhere" in nowhere and "not a folder" in nowhere
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("ISNET_BENCHMARKS_DATA", str(tmp_path / "empty"))
    empty = spec.missing_data(tmp_path)
    required = "covid-qu-ex/" if name == "covid_real" else "shenzhen/"
    assert empty and required in empty and f"datasets/{name}.md" in empty
    for reason in (unset, nowhere, empty):
        assert len(reason.splitlines()) <= 3  # the full layout is in the card and the builder's error


def test_missing_external_source_is_told(covid_root: Path, tmp_path: Path) -> None:
    spec = real_cxr.covid_real.__experiment_spec__
    assert spec.missing_data(tmp_path) is None
    for folder in ("brixia", "covid-external"):
        shutil.rmtree(covid_root / folder, ignore_errors=True)
    reason = spec.missing_data(tmp_path)
    assert reason and "external" in reason and "brixia/" in reason and "covid-external/" in reason
