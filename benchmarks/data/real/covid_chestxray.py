"""Cohen et al.'s covid-chestxray-dataset (github ieee8023/covid-chestxray-dataset).

Frontal X-rays (``modality == "X-ray"``, PA / AP views) are labelled from the hierarchical
``finding`` column: any finding naming COVID-19 -> ``covid19``; other ``Pneumonia/...``
findings (bacterial, fungal, other viral, ...) -> ``pneumonia``; ``No Finding`` ->
``normal``; anything else (``todo``, ``Unknown``, tuberculosis, ...) is left out and counted.
``patientid`` is the patient id.

Lung masks, per image, in this order of preference:

1. the manual V7 Labs masks (``semantic_masks_v7labs_lungs``: a folder or zip in ``<root>``,
   else the zip shipped in the torchxrayvision wheel, found without importing it); lungs are
   the 255-valued pixels (127 marks other annotations);
2. the model-generated lungVAE masks ``annotations/lungVAE-masks/<stem>_mask.png``;
3. none.
"""

from __future__ import annotations

import csv
import importlib.util
import zipfile
from pathlib import Path, PurePosixPath

from benchmarks.data.real.records import ZIP_SEP, LayoutError, Record, require_dir, require_file

SOURCE = "covid-chestxray-dataset"
FOLDER = "covid-chestxray-dataset"
V7_NAME = "semantic_masks_v7labs_lungs"
FRONTAL_VIEWS = ("PA", "AP", "AP Supine", "AP semi erect", "AP erect")
MASK_CHOICES = ("auto", "v7", "lungvae", "none")
REQUIRED_COLUMNS = ("patientid", "finding", "view", "modality", "filename")
LAYOUT = """\
<root>/                                     (a clone of github.com/ieee8023/covid-chestxray-dataset)
  metadata.csv                              (columns include patientid, finding, view, modality, folder, filename)
  images/<filename>                         (the 'folder' column; 'images' when absent)
  annotations/lungVAE-masks/<stem>_mask.png (optional; model-generated lung masks)
  semantic_masks_v7labs_lungs.zip | semantic_masks_v7labs_lungs/<filename>
                                            (optional; else the zip in the torchxrayvision wheel:
                                             pip install --no-deps torchxrayvision==1.5.7)"""


def finding_to_class(finding: str) -> str | None:
    """``covid19`` / ``pneumonia`` / ``normal`` for a ``finding`` value, ``None`` to leave out."""
    f = finding.strip().lower()
    if "covid-19" in f or "covid19" in f:
        return "covid19"
    if f in ("no finding", "normal"):
        return "normal"
    if f.startswith("pneumonia"):
        return "pneumonia"
    return None


def torchxrayvision_v7_zip() -> Path | None:
    """The V7 lung-mask zip inside an installed torchxrayvision, located without importing it."""
    try:
        spec = importlib.util.find_spec("torchxrayvision")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / f"{V7_NAME}.zip"
    return path if path.is_file() else None


def v7_masks(root: Path, v7: Path | str | None = None) -> dict[str, str]:
    """Map image file name -> mask reference (path or ``zip::member``) of the V7 masks found
    at ``v7`` (a zip or folder), in ``<root>``, or in torchxrayvision; empty if none."""
    candidates = [Path(v7)] if v7 is not None else [root / f"{V7_NAME}.zip", root / V7_NAME, torchxrayvision_v7_zip()]
    for cand in candidates:
        if cand is None:
            continue
        if cand.is_dir():
            return {p.name: str(p) for p in sorted(cand.rglob("*")) if p.is_file()}
        if cand.is_file():
            with zipfile.ZipFile(cand) as zf:
                return {
                    PurePosixPath(m).name: f"{cand}{ZIP_SEP}{m}"
                    for m in zf.namelist()
                    if not m.endswith("/") and not PurePosixPath(m).name.startswith(".")
                }
    return {}


def load(
    root: Path | str,
    *,
    masks: str = "auto",
    v7: Path | str | None = None,
    views: tuple[str, ...] = FRONTAL_VIEWS,
    stats: dict | None = None,
) -> list[Record]:
    """Records of the frontal X-rays with a usable finding. ``masks``: ``auto`` (V7, else
    lungVAE, else none, per image), ``v7``, ``lungvae`` or ``none``. Images listed in the
    metadata but absent on disk are left out and counted as ``missing_image``."""
    if masks not in MASK_CHOICES:
        raise ValueError(f"masks must be one of {MASK_CHOICES}, got {masks!r}")
    root = require_dir(root, SOURCE, LAYOUT)
    meta = require_file(root / "metadata.csv", SOURCE, LAYOUT)
    stats = {} if stats is None else stats
    bump = lambda k: stats.__setitem__(k, stats.get(k, 0) + 1)  # noqa: E731
    v7_map = v7_masks(root, v7) if masks in ("auto", "v7") else {}
    v7_by_stem = {PurePosixPath(k).stem: v for k, v in v7_map.items()}
    v7_refs = set(v7_map.values())
    vae_dir = root / "annotations" / "lungVAE-masks"
    view_set = {v.lower() for v in views}
    records: list[Record] = []
    with open(meta, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise LayoutError(f"{SOURCE}: {meta} lacks columns {missing}. Expected layout:\n{LAYOUT}")
        for row in reader:
            if row["modality"].strip().lower() != "x-ray":
                bump("not_xray")
                continue
            if row["view"].strip().lower() not in view_set:
                bump("not_frontal")
                continue
            label = finding_to_class(row["finding"])
            if label is None:
                bump("finding_left_out")
                continue
            image = root / (row.get("folder") or "images").strip() / row["filename"].strip()
            if not image.is_file():
                bump("missing_image")
                continue
            mask = None
            if masks in ("auto", "v7"):
                mask = v7_map.get(image.name) or v7_by_stem.get(image.stem)
            if mask is None and masks in ("auto", "lungvae"):
                for name in (f"{image.stem}_mask.png", f"{image.name}_mask.png"):
                    if (vae_dir / name).is_file():
                        mask = str(vae_dir / name)
                        break
            bump("mask_v7" if mask in v7_refs else "mask_lungvae" if mask else "missing_mask")
            records.append(
                Record(str(image), label, (mask,) if mask else None, SOURCE, row["patientid"].strip() or None)
            )
    if not records:
        raise LayoutError(f"{SOURCE}: no frontal X-ray with a usable finding in {meta}. Expected layout:\n{LAYOUT}")
    return records
