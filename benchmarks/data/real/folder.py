"""A generic folder layout, for any other collection (another hospital, a private set):
one folder of images per class, lung masks in a parallel tree.

Masks live in ``<root>/masks/<class>/`` when that folder exists, else in the sibling tree
``<root>_masks/<class>/``; a mask has the image's file name, or its stem plus ``_mask.png``.
Patients can be given in an optional ``<root>/patients.csv`` (columns ``image,patient``,
``image`` relative to ``<root>``); without it each image is its own patient.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from benchmarks.data.real.records import LayoutError, Record, canonical_class, list_images, require_dir

LAYOUT = """\
<root>/
  <class>/*.png|*.jpg|*.dcm      one folder per class: normal, pneumonia, covid19 (COVID-19, covid),
                                 tuberculosis (tb), ... (case-insensitive)
  masks/<class>/<image name> or <stem>_mask.png     (optional lung masks; 'masks' is not a class)
  patients.csv                   (optional; columns image,patient; image relative to <root>)
<root>_masks/<class>/...         (alternative place for the masks, used when <root>/masks/ is absent)"""


def mask_root(root: Path) -> Path | None:
    """Where the generic layout's masks are: ``<root>/masks`` first, else ``<root>_masks``."""
    for cand in (root / "masks", root.parent / f"{root.name}_masks"):
        if cand.is_dir():
            return cand
    return None


def load(
    root: Path | str,
    *,
    classes: Sequence[str] | None = None,
    source: str | None = None,
    stats: dict | None = None,
) -> list[Record]:
    """Records of every image in ``<root>/<class>/``; a class folder whose name does not
    map to one of ``classes`` (canonical names) raises :class:`UnknownClassError`."""
    root = require_dir(root, source or "folder", LAYOUT)
    source = source or root.name
    stats = {} if stats is None else stats
    masks = mask_root(root)
    patients: dict[str, str] = {}
    if (root / "patients.csv").is_file():
        with open(root / "patients.csv", newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if not {"image", "patient"} <= set(reader.fieldnames or []):
                raise LayoutError(
                    f"{source}: {root / 'patients.csv'} needs columns image,patient. Expected layout:\n{LAYOUT}"
                )
            patients = {row["image"].strip().replace("\\", "/"): row["patient"].strip() for row in reader}
    records: list[Record] = []
    for class_dir in sorted(
        p for p in root.iterdir() if p.is_dir() and p.name != "masks" and not p.name.startswith(".")
    ):
        label = canonical_class(class_dir.name, classes, where=str(class_dir))
        for img in list_images(class_dir):
            mask = None
            if masks is not None:
                for name in (img.name, f"{img.stem}_mask.png"):
                    if (masks / class_dir.name / name).is_file():
                        mask = (str(masks / class_dir.name / name),)
                        break
            if mask is None:
                stats["missing_mask"] = stats.get("missing_mask", 0) + 1
            rel = f"{class_dir.name}/{img.name}"
            records.append(Record(str(img), label, mask, source, patients.get(rel)))
    if not records:
        raise LayoutError(f"{source}: no images in class folders under {str(root)!r}. Expected layout:\n{LAYOUT}")
    return records
