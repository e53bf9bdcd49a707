"""Montgomery County chest X-ray set (NLM; Jaeger et al. 2014): 138 frontal X-rays, 80 normal
and 58 with tuberculosis, from one US county's TB programme, with manual lung masks stored
as separate left- and right-lung images (OR-ed here into one lung mask).

The label is the last digit of the file name ``MCUCXR_NNNN_{0|1}.png`` (1 = TB). Each
number is taken as its own patient (the set has one image per patient, unverified).
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.data.real.nlm import parse_nlm_name
from benchmarks.data.real.records import LayoutError, Record, list_images, require_dir

SOURCE = "montgomery"
FOLDER = "montgomery"
PREFIX = "MCUCXR"
LAYOUT = """\
<root>/
  MontgomerySet/CXR_png/MCUCXR_NNNN_{0|1}.png          (0 = normal, 1 = tuberculosis)
  MontgomerySet/ManualMask/leftMask/<same file name>
  MontgomerySet/ManualMask/rightMask/<same file name>
<root> may also be the MontgomerySet folder itself."""


def load(root: Path | str, *, stats: dict | None = None) -> list[Record]:
    """Records of every ``CXR_png`` image, with its left and right masks (whichever exist;
    ``None`` and counted as ``missing_mask`` when neither does)."""
    root = require_dir(root, SOURCE, LAYOUT)
    base = root / "MontgomerySet" if (root / "MontgomerySet").is_dir() else root
    images = list_images(base / "CXR_png", (".png",))
    if not images:
        raise LayoutError(f"{SOURCE}: no PNG in {str(base / 'CXR_png')!r}. Expected layout:\n{LAYOUT}")
    stats = {} if stats is None else stats
    records = []
    for img in images:
        patient, label = parse_nlm_name(img.stem, PREFIX, str(img))
        parts = [base / "ManualMask" / side / img.name for side in ("leftMask", "rightMask")]
        found = tuple(str(p) for p in parts if p.is_file())
        if len(found) == 1:
            stats["one_lung_mask"] = stats.get("one_lung_mask", 0) + 1
        if not found:
            stats["missing_mask"] = stats.get("missing_mask", 0) + 1
        records.append(Record(str(img), label, found or None, SOURCE, patient))
    return records
