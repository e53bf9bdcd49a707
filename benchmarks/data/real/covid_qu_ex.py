"""COVID-QU-Ex (Tahir et al. 2021; Kaggle ``anasmohammedtahir/covidqu``): 33,920 chest X-rays
in three classes with lung masks, shipped with an official Train / Val / Test split.

COVID-QU-Ex is itself compiled from several public collections (its COVID-19 class includes
images of Cohen's covid-chestxray-dataset, among others); it has no patient ids, so each
image is its own patient and the official split is kept.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.data.real.records import LayoutError, Record, UnknownClassError, list_images, require_dir

SOURCE = "covid-qu-ex"
FOLDER = "covid-qu-ex"
SUBSETS = {"lung": "Lung Segmentation Data", "infection": "Infection Segmentation Data"}
CLASS_FOLDERS = {"COVID-19": "covid19", "Non-COVID": "pneumonia", "Normal": "normal"}
SPLIT_FOLDERS = {"Train": "train", "Val": "val", "Test": "test"}
LAYOUT = """\
<root>/                                   (the Kaggle archive, unpacked)
  Lung Segmentation Data/Lung Segmentation Data/
    {Train,Val,Test}/{COVID-19,Non-COVID,Normal}/images/*.png
    {Train,Val,Test}/{COVID-19,Non-COVID,Normal}/lung masks/*.png   (same file name as the image)
  Infection Segmentation Data/...         (same shape; read with subset="infection")
<root> may also be either 'Lung Segmentation Data' folder itself.
Classes: COVID-19 -> covid19, Non-COVID -> pneumonia, Normal -> normal."""


def _split_base(root: Path, subset: str) -> Path:
    name = SUBSETS[subset]
    for base in (root / name / name, root / name, root):
        if base.is_dir() and any((base / s).is_dir() for s in SPLIT_FOLDERS):
            return base
    raise LayoutError(f"{SOURCE}: no {'/'.join(SPLIT_FOLDERS)} folders under {str(root)!r}. Expected layout:\n{LAYOUT}")


def load(root: Path | str, *, subset: str = "lung", stats: dict | None = None) -> list[Record]:
    """Records of every image, labelled by class folder, with the mask of the same name in
    ``lung masks/`` (``None`` when absent, counted as ``missing_mask``) and the official split
    (``train`` / ``val`` / ``test``)."""
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {sorted(SUBSETS)}, got {subset!r}")
    root = require_dir(root, SOURCE, LAYOUT)
    base = _split_base(root, subset)
    stats = {} if stats is None else stats
    records: list[Record] = []
    for split_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        split = SPLIT_FOLDERS.get(split_dir.name)
        if split is None:
            continue
        for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            if class_dir.name not in CLASS_FOLDERS:
                raise UnknownClassError(
                    f"{class_dir}: unknown class folder {class_dir.name!r}; expected {sorted(CLASS_FOLDERS)}"
                )
            label = CLASS_FOLDERS[class_dir.name]
            images = list_images(class_dir / "images")
            if not images:
                raise LayoutError(f"{SOURCE}: no images in {str(class_dir / 'images')!r}. Expected layout:\n{LAYOUT}")
            mask_dir = class_dir / "lung masks"
            for img in images:
                mask = mask_dir / img.name
                if not mask.is_file():
                    stats["missing_mask"] = stats.get("missing_mask", 0) + 1
                records.append(Record(str(img), label, (str(mask),) if mask.is_file() else None, SOURCE, None, split))
    if not records:
        raise LayoutError(f"{SOURCE}: no images found under {str(base)!r}. Expected layout:\n{LAYOUT}")
    return records
