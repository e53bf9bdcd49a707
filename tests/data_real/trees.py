"""Tiny trees in the real collections' on-disk layouts, written by the tests themselves.

Every image is distinct random texture (so the content de-duplication never confuses two
of them) with a bright "body" ellipse; masks are two lung ellipses.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

_counter = iter(range(1, 1_000_000))


def cxr(h: int = 24, w: int | None = None, seed: int | None = None) -> np.ndarray:
    """A distinct grey-scale image (uint8 [h, w])."""
    w = w or h
    rng = np.random.default_rng(next(_counter) if seed is None else seed)
    yy, xx = np.mgrid[0:h, 0:w]
    body = (((yy - h / 2) / (0.45 * h)) ** 2 + ((xx - w / 2) / (0.45 * w)) ** 2) < 1
    coarse = rng.integers(0, 160, (h // 3 + 2, w // 3 + 2)).astype(np.uint8)
    texture = np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BILINEAR), dtype=np.int32)
    return (texture + 60 * body).clip(0, 255).astype(np.uint8)


def lungs(h: int = 24, w: int | None = None, side: str = "both") -> np.ndarray:
    """A 0/255 lung mask: two vertical ellipses (or only the left / right one)."""
    w = w or h
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.zeros((h, w), bool)
    for cx, name in ((0.3 * w, "left"), (0.7 * w, "right")):
        if side in ("both", name):
            out |= (((yy - h / 2) / (0.35 * h)) ** 2 + ((xx - cx) / (0.15 * w)) ** 2) < 1
    return out.astype(np.uint8) * 255


def save(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


# --------------------------------------------------------------------------- collections
QU_CLASSES = ("COVID-19", "Non-COVID", "Normal")


def make_covid_qu_ex(root: Path, per_cell: int = 2, missing_mask: int = 0) -> Path:
    base = root / "Lung Segmentation Data" / "Lung Segmentation Data"
    k = 0
    for split, n in (("Train", per_cell * 2), ("Val", per_cell), ("Test", per_cell)):
        for cls in QU_CLASSES:
            for i in range(n):
                name = f"{cls.lower().replace('-', '_')}_{split}_{i}.png"
                save(base / split / cls / "images" / name, cxr())
                k += 1
                if k > missing_mask:
                    save(base / split / cls / "lung masks" / name, lungs())
    return root


COHEN_HEADER = (
    "patientid,offset,sex,age,finding,RT_PCR_positive,survival,intubated,intubation_present,went_icu,in_icu,"
    "needed_supplemental_O2,extubated,temperature,pO2_saturation,leukocyte_count,neutrophil_count,"
    "lymphocyte_count,view,modality,date,location,folder,filename,doi,url,license,clinical_notes,other_notes"
)


def make_cohen(root: Path, v7: bool = True, n_patients: int = 4) -> Path:
    """Patients 1..n with COVID-19 (two images each), bacterial / viral pneumonia, No Finding,
    plus rows that must be left out: a lateral view, a CT, a 'todo' finding, a missing file."""
    rows = []

    def row(pid: str, finding: str, view: str, modality: str, filename: str, exists: bool = True) -> None:
        fields = dict.fromkeys(COHEN_HEADER.split(","), "")
        fields.update(patientid=pid, finding=finding, view=view, modality=modality, folder="images", filename=filename)
        rows.append(",".join(fields[c] for c in COHEN_HEADER.split(",")))
        if exists:
            save(root / "images" / filename, cxr(28, 32))

    for p in range(1, n_patients + 1):
        row(str(p), "Pneumonia/Viral/COVID-19", "PA", "X-ray", f"covid{p}a.png")
        row(str(p), "Pneumonia/Viral/COVID-19", "AP Supine", "X-ray", f"covid{p}b.png")
        row(str(100 + p), "Pneumonia/Bacterial/Streptococcus", "PA", "X-ray", f"bact{p}.png")
        row(str(200 + p), "Pneumonia/Viral/SARS", "AP", "X-ray", f"sars{p}.png")
        row(str(300 + p), "No Finding", "PA", "X-ray", f"normal{p}.png")
    row("900", "Pneumonia/Viral/COVID-19", "L", "X-ray", "lateral.png")
    row("901", "Pneumonia/Viral/COVID-19", "Axial", "CT", "ct.png")
    row("902", "todo", "PA", "X-ray", "todo.png")
    row("903", "Pneumonia/Viral/COVID-19", "PA", "X-ray", "gone.png", exists=False)
    (root / "metadata.csv").write_text(COHEN_HEADER + "\n" + "\n".join(rows) + "\n")
    vae = root / "annotations" / "lungVAE-masks"
    for img in sorted((root / "images").glob("*.png")):
        save(vae / f"{img.stem}_mask.png", lungs(28, 32))
    if v7:
        # V7 masks: lungs 255, other annotations 127 (must not count as lung)
        with zipfile.ZipFile(root / "semantic_masks_v7labs_lungs.zip", "w") as zf:
            for name in ("covid1a.png", "bact1.png"):
                m = lungs(28, 32, side="left")
                m[0:3, :] = 127
                buf = Path(root / f".tmp_{name}")
                Image.fromarray(m).save(buf)
                zf.write(buf, f"semantic_masks_v7labs_lungs/{name}")
                buf.unlink()
    return root


def write_dicom(path: Path, pixels: np.ndarray, photometric: str = "MONOCHROME2") -> Path:
    pydicom = pytest.importorskip("pydicom", reason="pydicom is needed to write the BrixIA DICOM test files")
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.PatientID = path.stem
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


BRIXIA_HEADER = (
    "Filename;Subject;Manufacturer;BrixiaScore;BrixiaScoreGlobal;ConsensusTestset;Sex;AgeAtStudyDateFiveYear;"
    "Modality;PhotometricInterpretation"
)


def make_brixia(root: Path, n_subjects: int = 3) -> Path:
    rows = []
    for s in range(n_subjects):
        for k in range(2):
            name = f"{1000 + 10 * s + k}.dcm"
            photometric = "MONOCHROME1" if k else "MONOCHROME2"
            px = cxr(20, 24).astype(np.uint16) * 16  # 12-bit content
            write_dicom(root / "dicom_clean" / name, px, photometric)
            rows.append(f"{name};{s};Acme;012300;6;{s % 2};M;50;CR;{photometric}")
    (root / "metadata_global_v2.csv").write_text(BRIXIA_HEADER + "\n" + "\n".join(rows) + "\n")
    return root


def make_montgomery(root: Path, n_per_class: int = 3, one_sided: int = 1, size: int = 32) -> Path:
    base = root / "MontgomerySet"
    k = 0
    for label in (0, 1):
        for _ in range(n_per_class):
            k += 1
            name = f"MCUCXR_{k:04d}_{label}.png"
            save(base / "CXR_png" / name, cxr(size))
            save(base / "ManualMask" / "leftMask" / name, lungs(size, side="left"))
            if k > one_sided:
                save(base / "ManualMask" / "rightMask" / name, lungs(size, side="right"))
    (base / "ClinicalReadings").mkdir(parents=True, exist_ok=True)
    return root


def make_shenzhen(root: Path, masks_root: Path | None, n_per_class: int = 4, unmasked: tuple[int, ...] = (2,)) -> Path:
    base = root / "ChinaSet_AllFiles"
    k = 0
    for label in (0, 1):
        for _ in range(n_per_class):
            k += 1
            stem = f"CHNCXR_{k:04d}_{label}"
            save(base / "CXR_png" / f"{stem}.png", cxr(30))
            if masks_root is not None and k not in unmasked:
                save(masks_root / "mask" / f"{stem}_mask.png", lungs(30))
    return root


def make_tbx11k(root: Path, n_per_class: int = 3, extra: dict[str, np.ndarray] | None = None) -> Path:
    """health/ (normal), sick/ (non-TB), tb/ (with boxes) plus ``extra`` {file_name: pixels}
    listed as healthy; a test/ image not in the trainval JSON."""
    images, annotations = [], []
    categories = [
        {"id": 1, "name": "ActiveTuberculosis", "supercategory": "Tuberculosis"},
        {"id": 2, "name": "ObsoletePulmonaryTuberculosis", "supercategory": "Tuberculosis"},
    ]
    entries = []
    for folder, prefix in (("health", "h"), ("sick", "s"), ("tb", "tb")):
        for i in range(n_per_class):
            entries.append((f"{folder}/{prefix}{i:04d}.png", cxr(32)))
    for name, pixels in (extra or {}).items():
        entries.append((name, pixels))
    for iid, (name, pixels) in enumerate(entries, start=1):
        save(root / "imgs" / name, pixels)
        images.append({"id": iid, "file_name": name, "width": pixels.shape[1], "height": pixels.shape[0]})
        if name.startswith("tb/"):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": iid,
                    "category_id": 1 + iid % 2,
                    "bbox": [2, 2, 8, 8],
                    "area": 64,
                    "iscrowd": 0,
                }
            )
    save(root / "imgs" / "test" / "t0001.png", cxr(32))
    coco = {"images": images, "annotations": annotations, "categories": categories}
    path = root / "annotations" / "json" / "TBX11K_trainval.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(coco))
    return root


def make_folder(root: Path, classes: dict[str, int], masks: str | None = "inside", size: int = 24) -> Path:
    for cls, n in classes.items():
        for i in range(n):
            save(root / cls / f"{cls}_{i}.png", cxr(size))
            if masks == "inside":
                save(root / "masks" / cls / f"{cls}_{i}.png", lungs(size))
            elif masks == "sibling":
                save(root.parent / f"{root.name}_masks" / cls / f"{cls}_{i}_mask.png", lungs(size))
    return root


# --------------------------------------------------------------------------- masks that are not masks
def noise(h: int = 24, w: int | None = None, seed: int = 0) -> np.ndarray:
    """Uniform 8-bit noise (what a corrupted or mis-generated mask file can hold)."""
    return np.random.default_rng(seed).integers(0, 256, (h, w or h)).astype(np.uint8)


def qu_mask_files(root: Path) -> list[Path]:
    """The lung-mask files of a COVID-QU-Ex tree (sorted)."""
    return sorted(root.rglob("lung masks/*.png"))


# --------------------------------------------------------------------------- data roots
def make_covid_root(root: Path) -> Path:
    """A data root for covid_real with all four sources (BrixIA only when pydicom exists)."""
    make_covid_qu_ex(root / "covid-qu-ex", per_cell=2)
    make_cohen(root / "covid-chestxray-dataset")
    try:
        import pydicom  # noqa: F401

        make_brixia(root / "brixia")
    except ImportError:
        pass
    make_folder(root / "covid-external", {"normal": 3, "pneumonia": 3}, masks=None)
    return root


def make_tb_root(root: Path) -> Path:
    """A data root for tb_real: Montgomery, Shenzhen with its masks, and TBX11K holding a named
    and a renamed, resized copy of a Montgomery image."""
    make_montgomery(root / "montgomery", size=64)
    make_shenzhen(root / "shenzhen", root / "shenzhen-masks")
    mc = np.asarray(Image.open(root / "montgomery" / "MontgomerySet" / "CXR_png" / "MCUCXR_0001_0.png"))
    copy_resized = np.asarray(Image.fromarray(mc).resize((48, 48), Image.Resampling.BILINEAR))
    make_tbx11k(
        root / "tbx11k",
        extra={
            "extra/mc/MCUCXR_0002_0.png": cxr(32),  # recognisable by name
            "health/h9999.png": copy_resized,  # a renamed, resized copy: caught by content
        },
    )
    return root
