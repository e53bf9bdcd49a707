"""Each collection adapter on a tiny tree in its real layout, awkward parts included."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from benchmarks.data.real import (
    COLLECTIONS,
    LayoutError,
    UnknownClassError,
    brixia,
    covid_chestxray,
    covid_qu_ex,
    folder,
    load_collection,
    montgomery,
    read_image,
    read_mask,
    shenzhen,
    tbx11k,
)

from .trees import (
    cxr,
    lungs,
    make_brixia,
    make_cohen,
    make_covid_qu_ex,
    make_folder,
    make_montgomery,
    make_shenzhen,
    make_tbx11k,
    save,
)


# --------------------------------------------------------------------------- COVID-QU-Ex
def test_covid_qu_ex_classes_masks_and_official_split(tmp_path: Path) -> None:
    root = make_covid_qu_ex(tmp_path / "qu", per_cell=1, missing_mask=1)
    stats: dict = {}
    recs = covid_qu_ex.load(root, stats=stats)
    assert len(recs) == 3 * (2 + 1 + 1)
    assert {r.label for r in recs} == {"covid19", "pneumonia", "normal"}
    assert {r.split for r in recs} == {"train", "val", "test"}
    assert sum(r.split == "train" for r in recs) == 6
    assert stats["missing_mask"] == 1 and sum(r.mask is None for r in recs) == 1
    for r in recs:
        assert r.source == "covid-qu-ex" and r.patient is None
        if r.mask:  # the mask has the image's own file name, in 'lung masks/'
            assert Path(r.mask[0]).name == Path(r.image).name and Path(r.mask[0]).parent.name == "lung masks"
    non_covid = [r for r in recs if "/Non-COVID/" in r.image]
    assert non_covid and all(r.label == "pneumonia" for r in non_covid)
    # pointing at the inner folder works too
    inner = root / "Lung Segmentation Data" / "Lung Segmentation Data"
    assert len(covid_qu_ex.load(inner)) == len(recs)


def test_covid_qu_ex_unknown_class_and_missing_root(tmp_path: Path) -> None:
    root = make_covid_qu_ex(tmp_path / "qu", per_cell=1)
    save(root / "Lung Segmentation Data" / "Lung Segmentation Data" / "Train" / "Influenza" / "images" / "x.png", cxr())
    with pytest.raises(UnknownClassError, match="Influenza"):
        covid_qu_ex.load(root)
    with pytest.raises(LayoutError) as err:
        covid_qu_ex.load(tmp_path / "nowhere")
    assert "lung masks" in str(err.value) and "Expected layout" in str(err.value)
    assert isinstance(err.value, FileNotFoundError)


# --------------------------------------------------------------------------- Cohen
def test_cohen_filters_findings_views_and_prefers_v7_masks(tmp_path: Path) -> None:
    root = make_cohen(tmp_path / "cohen", n_patients=2)
    stats: dict = {}
    recs = covid_chestxray.load(root, stats=stats)
    names = {Path(r.image).name: r for r in recs}
    assert "lateral.png" not in names and "ct.png" not in names and "todo.png" not in names
    assert stats == {**stats, "not_frontal": 1, "not_xray": 1, "finding_left_out": 1, "missing_image": 1}
    assert names["covid1a.png"].label == "covid19" and names["covid1b.png"].label == "covid19"  # AP Supine kept
    assert names["bact1.png"].label == "pneumonia" and names["sars1.png"].label == "pneumonia"
    assert names["normal1.png"].label == "normal"
    assert names["covid1a.png"].patient == names["covid1b.png"].patient == "1"
    # V7 (zip) where it exists, lungVAE elsewhere
    assert "::" in names["covid1a.png"].mask[0] and names["covid1a.png"].mask[0].endswith("covid1a.png")
    assert names["covid2a.png"].mask[0].endswith("lungVAE-masks/covid2a_mask.png")
    assert stats["mask_v7"] == 2
    # V7 masks: only the 255-valued pixels are lung (127 marks other annotations)
    m = read_mask(names["covid1a.png"].mask, (28, 32))
    assert not m[0:3].any() and m.sum() == (lungs(28, 32, side="left") > 0).sum()
    # choices
    none = covid_chestxray.load(root, masks="none")
    assert all(r.mask is None for r in none)
    vae = covid_chestxray.load(root, masks="lungvae")
    assert all("lungVAE" in r.mask[0] for r in vae)


def test_cohen_v7_folder_and_missing_metadata(tmp_path: Path) -> None:
    root = make_cohen(tmp_path / "cohen", v7=False, n_patients=1)
    v7 = tmp_path / "v7"
    save(v7 / "normal1.png", lungs(28, 32))
    recs = covid_chestxray.load(root, v7=v7)
    by = {Path(r.image).name: r for r in recs}
    assert by["normal1.png"].mask == (str(v7 / "normal1.png"),)
    (root / "metadata.csv").unlink()
    with pytest.raises(LayoutError, match="metadata.csv"):
        covid_chestxray.load(root)


# --------------------------------------------------------------------------- BrixIA
def test_brixia_semicolon_csv_dicom_and_monochrome1(tmp_path: Path) -> None:
    pytest.importorskip("pydicom", reason="BrixIA ships DICOM; reading it needs pydicom")
    root = make_brixia(tmp_path / "brixia", n_subjects=3)
    recs = brixia.load(root)
    assert len(recs) == 6 and {r.label for r in recs} == {"covid19"}
    assert {r.patient for r in recs} == {"0", "1", "2"}
    img = read_image(recs[0].image)
    assert img.dtype == np.uint8 and img.shape == (20, 24) and img.max() == 255
    # MONOCHROME1 is inverted: the same pixel data reads as the negative image
    from .trees import write_dicom

    px = cxr(20, 24).astype(np.uint16) * 16
    a = read_image(write_dicom(tmp_path / "m2.dcm", px, "MONOCHROME2"))
    b = read_image(write_dicom(tmp_path / "m1.dcm", px, "MONOCHROME1"))
    assert np.array_equal(a.astype(int), 255 - b.astype(int))
    # a comma-separated copy is refused with the reason (columns not found)
    text = (root / "metadata_global_v2.csv").read_text()
    (root / "metadata_global_v2.csv").write_text(text.replace(";", "|"))
    with pytest.raises(LayoutError, match="Filename"):
        brixia.load(root)


def test_brixia_missing_dicom_folder(tmp_path: Path) -> None:
    root = tmp_path / "brixia"
    root.mkdir()
    (root / "metadata_global_v2.csv").write_text("Filename;Subject\n1.dcm;1\n")
    with pytest.raises(LayoutError, match="dicom_clean"):
        brixia.load(root)


# --------------------------------------------------------------------------- Montgomery
def test_montgomery_left_and_right_masks_are_ored(tmp_path: Path) -> None:
    root = make_montgomery(tmp_path / "mc", n_per_class=2, one_sided=1)
    stats: dict = {}
    recs = montgomery.load(root, stats=stats)
    assert [r.label for r in recs] == ["normal", "normal", "tuberculosis", "tuberculosis"]
    assert recs[0].patient == "MCUCXR_0001"
    assert len(recs[0].mask) == 1 and stats["one_lung_mask"] == 1  # only a left mask there
    both = recs[1]
    assert len(both.mask) == 2
    m = read_mask(both.mask, (32, 32))
    assert m[:, :16].any() and m[:, 16:].any()  # left lung and right lung
    assert m.sum() == ((lungs(32, side="left") > 0) | (lungs(32, side="right") > 0)).sum()
    # the MontgomerySet folder itself is accepted as root
    assert len(montgomery.load(root / "MontgomerySet")) == 4


def test_montgomery_bad_name_is_unknown_class(tmp_path: Path) -> None:
    root = make_montgomery(tmp_path / "mc", n_per_class=1)
    save(root / "MontgomerySet" / "CXR_png" / "MCUCXR_0099_7.png", cxr())
    with pytest.raises(UnknownClassError, match="MCUCXR_0099_7"):
        montgomery.load(root)


# --------------------------------------------------------------------------- Shenzhen
def test_shenzhen_mask_suffix_and_missing_masks(tmp_path: Path) -> None:
    root = make_shenzhen(tmp_path / "sz", tmp_path / "sz-masks", n_per_class=3, unmasked=(2, 5))
    stats: dict = {}
    recs = shenzhen.load(root, masks_root=tmp_path / "sz-masks", stats=stats)
    assert len(recs) == 6 and stats["missing_mask"] == 2
    assert [r.label for r in recs].count("tuberculosis") == 3
    masked = [r for r in recs if r.mask]
    assert all(Path(r.mask[0]).name == Path(r.image).stem + "_mask.png" for r in masked)
    assert recs[1].mask is None and recs[1].patient == "CHNCXR_0002"
    # without the mask download every mask is missing, which is allowed
    assert all(r.mask is None for r in shenzhen.load(root))
    with pytest.raises(LayoutError, match="_mask"):
        shenzhen.load(root, masks_root=tmp_path / "absent")


# --------------------------------------------------------------------------- TBX11K
def test_tbx11k_coco_labels_and_overlap_exclusion(tmp_path: Path) -> None:
    root = make_tbx11k(
        tmp_path / "tbx",
        n_per_class=2,
        extra={
            "extra/mc/MCUCXR_0001_1.png": cxr(32),
            "extra/da+db/train/p0001.png": cxr(32),
            "extra/sh/CHNCXR_0003_0.png": cxr(32),
        },
    )
    stats: dict = {}
    recs = tbx11k.load(root, exclude=("montgomery", "shenzhen"), stats=stats)
    labels = {Path(r.image).name: r.label for r in recs}
    assert labels["h0000.png"] == "normal" and labels["s0001.png"] == "sick" and labels["tb0000.png"] == "tuberculosis"
    assert labels["p0001.png"] == "tuberculosis"
    assert "t0001.png" not in labels  # test images carry no public labels
    assert "MCUCXR_0001_1.png" not in labels and "CHNCXR_0003_0.png" not in labels
    assert stats["overlap_montgomery"] == 1 and stats["overlap_shenzhen"] == 1
    kept = tbx11k.load(root, exclude=("shenzhen",))  # Montgomery not used: its copy stays
    assert any(Path(r.image).name == "MCUCXR_0001_1.png" for r in kept)
    assert all(r.mask is None and r.patient is None for r in recs)


def test_tbx11k_train_val_fallback_and_bad_json(tmp_path: Path) -> None:
    root = make_tbx11k(tmp_path / "tbx", n_per_class=1)
    folder_json = root / "annotations" / "json"
    text = (folder_json / "TBX11K_trainval.json").read_text()
    (folder_json / "TBX11K_trainval.json").unlink()
    with pytest.raises(LayoutError, match="TBX11K_trainval.json"):
        tbx11k.load(root)
    (folder_json / "TBX11K_train.json").write_text(text)
    (folder_json / "TBX11K_val.json").write_text('{"images": [], "annotations": [], "categories": []}')
    assert len(tbx11k.load(root)) == 3
    (folder_json / "TBX11K_val.json").write_text("{not json")
    with pytest.raises(LayoutError, match="COCO"):
        tbx11k.load(root)


# --------------------------------------------------------------------------- generic folder
@pytest.mark.parametrize("where", ["inside", "sibling"])
def test_generic_folder_masks_inside_or_sibling(tmp_path: Path, where: str) -> None:
    root = make_folder(tmp_path / "hosp", {"Normal": 2, "COVID-19": 2}, masks=where)
    recs = folder.load(root, classes=("normal", "pneumonia", "covid19"))
    assert sorted(r.label for r in recs) == ["covid19", "covid19", "normal", "normal"]
    assert all(r.mask is not None and r.source == "hosp" for r in recs)


def test_generic_folder_unknown_class_patients_csv_and_missing_root(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "hosp", {"normal": 2, "tuberculosis": 1}, masks=None)
    with pytest.raises(UnknownClassError, match="tuberculosis"):
        folder.load(root, classes=("normal", "pneumonia", "covid19"))
    (root / "patients.csv").write_text("image,patient\nnormal/normal_0.png,P1\nnormal/normal_1.png,P1\n")
    recs = folder.load(root, classes=("normal", "tuberculosis"))
    assert [r.patient for r in recs if r.label == "normal"] == ["P1", "P1"]
    with pytest.raises(LayoutError) as err:
        folder.load(tmp_path / "missing")
    assert "<class>/" in str(err.value)


def test_registry_and_load_collection(tmp_path: Path) -> None:
    assert set(COLLECTIONS) == {"covid-qu-ex", "covid-chestxray-dataset", "brixia", "montgomery", "shenzhen", "tbx11k"}
    make_shenzhen(tmp_path / "shenzhen", tmp_path / "shenzhen-masks", n_per_class=1, unmasked=())
    recs = load_collection("shenzhen", data_root=tmp_path)
    assert len(recs) == 2 and all(r.mask for r in recs)  # shenzhen-masks/ found beside it
    with pytest.raises(KeyError, match="known"):
        load_collection("chexpert", tmp_path)
    with pytest.raises(LayoutError, match="MontgomerySet"):
        load_collection("montgomery", data_root=tmp_path)


def test_zip_member_reference(tmp_path: Path) -> None:
    save(tmp_path / "m.png", lungs(16))
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        zf.write(tmp_path / "m.png", "dir/m.png")
    assert read_mask([f"{tmp_path / 'a.zip'}::dir/m.png"], (16, 16)).sum() == (lungs(16) > 0).sum()
