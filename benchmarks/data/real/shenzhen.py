"""Shenzhen chest X-ray set (NLM; Shenzhen No.3 People's Hospital; Jaeger et al. 2014): 662
frontal X-rays, 326 normal and 336 with tuberculosis.

The label is the last digit of ``CHNCXR_NNNN_{0|1}.png`` (1 = TB); each number is taken as
its own patient. The lung masks are a separate download (Stirenko et al.; Kaggle
``yoctoman/shcxr-lung-mask``, Mendeley doi 10.17632/8gf9vpkhgy.2) named with a ``_mask``
suffix, ``CHNCXR_NNNN_{0|1}_mask.png``; they cover 566 of the 662 images, so missing masks
are allowed (``None``) and counted as ``missing_mask``.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.data.real.nlm import parse_nlm_name
from benchmarks.data.real.records import LayoutError, Record, list_images, require_dir

SOURCE = "shenzhen"
FOLDER = "shenzhen"
MASK_FOLDER = "shenzhen-masks"
PREFIX = "CHNCXR"
LAYOUT = """\
<root>/                        (shenzhen/)
  ChinaSet_AllFiles/CXR_png/CHNCXR_NNNN_{0|1}.png   (0 = normal, 1 = tuberculosis;
                                                    <root> may also be ChinaSet_AllFiles itself)
<masks_root>/                  (shenzhen-masks/, optional; masks may be missing for some images)
  mask/CHNCXR_NNNN_{0|1}_mask.png                   (note the _mask suffix; or directly in <masks_root>/)"""


def _mask_dirs(masks_root: Path | None) -> list[Path]:
    if masks_root is None:
        return []
    masks_root = Path(masks_root)
    return [d for d in (masks_root / "mask", masks_root / "masks", masks_root) if d.is_dir()]


def load(root: Path | str, *, masks_root: Path | str | None = None, stats: dict | None = None) -> list[Record]:
    """Records of every ``CXR_png`` image with its ``<stem>_mask.png`` from ``masks_root``
    (or ``<root>/mask/``) when one exists."""
    root = require_dir(root, SOURCE, LAYOUT)
    base = root / "ChinaSet_AllFiles" if (root / "ChinaSet_AllFiles").is_dir() else root
    images = list_images(base / "CXR_png", (".png",))
    if not images:
        raise LayoutError(f"{SOURCE}: no PNG in {str(base / 'CXR_png')!r}. Expected layout:\n{LAYOUT}")
    if masks_root is not None and not Path(masks_root).is_dir():
        raise LayoutError(f"{SOURCE}: masks folder {str(masks_root)!r} is missing. Expected layout:\n{LAYOUT}")
    dirs = _mask_dirs(Path(masks_root) if masks_root is not None else None) + _mask_dirs(root)
    stats = {} if stats is None else stats
    records = []
    for img in images:
        patient, label = parse_nlm_name(img.stem, PREFIX, str(img))
        mask = next((d / f"{img.stem}_mask.png" for d in dirs if (d / f"{img.stem}_mask.png").is_file()), None)
        if mask is None:
            stats["missing_mask"] = stats.get("missing_mask", 0) + 1
        records.append(Record(str(img), label, (str(mask),) if mask else None, SOURCE, patient))
    return records
