"""TBX11K (Liu et al., CVPR 2020): 11,200 chest X-rays (512x512) labelled healthy, sick but
not TB, and TB, with TB bounding boxes in COCO JSON; licence CC BY-NC-SA (per the
torchxrayvision docstring).

Labels come from the COCO JSON of the labelled split (``TBX11K_trainval.json`` by default;
the official test split's labels are not public): an image with a tuberculosis box is
``tuberculosis``; otherwise its folder decides (``health/`` -> ``normal``, ``sick/`` ->
``sick``, ``tb/`` -> ``tuberculosis``); images of the ``extra/`` sets use their ``n`` /
``p`` name prefix (normal / TB), copies of Montgomery / Shenzhen images their ``_0`` /
``_1`` suffix. No patient ids are published, so each image is its own
patient.

TBX11K's extra sets and later releases hold copies of public TB collections; when
Montgomery or Shenzhen are used in the same experiment, pass them in ``exclude`` to drop
TBX11K images that carry their names (``MCUCXR_*`` / ``CHNCXR_*``, or an ``extra/``
sub-folder named after them). Copies renamed beyond recognition are caught later by the
experiment's content check (``duplicates.near_duplicates``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath

from benchmarks.data.real.records import LayoutError, Record, UnknownClassError, require_dir

SOURCE = "tbx11k"
FOLDER = "tbx11k"
DEFAULT_JSON = ("TBX11K_trainval.json",)
FALLBACK_JSON = ("TBX11K_train.json", "TBX11K_val.json")
FOLDER_LABELS = {"health": "normal", "sick": "sick", "tb": "tuberculosis"}
TB_WORDS = ("tuberculosis", "tb")
NLM_PATTERNS = {
    "montgomery": (re.compile(r"^MCUCXR_", re.IGNORECASE), ("mc", "montgomery")),
    "shenzhen": (re.compile(r"^CHNCXR_", re.IGNORECASE), ("sh", "shenzhen", "chinaset")),
}
NLM_NAME = re.compile(r"^(?:MCUCXR|CHNCXR)_\d+_([01])$", re.IGNORECASE)
LAYOUT = """\
<root>/
  imgs/{health,sick,tb,test}/*.png           (and imgs/extra/... for the extra sets)
  annotations/json/TBX11K_trainval.json      (COCO: images[].file_name relative to imgs/,
                                              annotations[].category_id, categories[].name;
                                              or TBX11K_train.json + TBX11K_val.json)
Labels: a TB box or tb/ -> tuberculosis; health/ -> normal; sick/ -> sick (non-TB disease)."""


def _json_files(root: Path, names: tuple[str, ...] | None) -> list[Path]:
    folder = root / "annotations" / "json"
    if names is not None:
        paths = [folder / n if not Path(n).is_absolute() else Path(n) for n in names]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise LayoutError(f"{SOURCE}: {missing} missing. Expected layout:\n{LAYOUT}")
        return paths
    for group in (DEFAULT_JSON, FALLBACK_JSON):
        paths = [folder / n for n in group]
        if all(p.is_file() for p in paths):
            return paths
    raise LayoutError(
        f"{SOURCE}: no COCO JSON ({DEFAULT_JSON[0]} or {' + '.join(FALLBACK_JSON)}) in {str(folder)!r}. "
        f"Expected layout:\n{LAYOUT}"
    )


def _label(file_name: str, has_tb_box: bool, where: str) -> str:
    if has_tb_box:
        return "tuberculosis"
    parts = PurePosixPath(file_name).parts
    if parts and parts[0] in FOLDER_LABELS:
        return FOLDER_LABELS[parts[0]]
    nlm = NLM_NAME.match(PurePosixPath(file_name).stem)
    if nlm:  # a copy of a Montgomery / Shenzhen image: its name carries the label
        return "tuberculosis" if nlm.group(1) == "1" else "normal"
    if parts and parts[0] == "extra":
        prefix = PurePosixPath(file_name).name[:1].lower()
        if prefix in ("n", "p"):
            return "normal" if prefix == "n" else "tuberculosis"
    raise UnknownClassError(
        f"{where}: cannot tell the class of {file_name!r} "
        f"(expected under {sorted(FOLDER_LABELS)}/ or extra/ with an n/p prefix)"
    )


def is_nlm_copy(file_name: str, collection: str) -> bool:
    """Whether a TBX11K ``file_name`` is recognisably an image of ``collection``
    (``montgomery`` / ``shenzhen``)."""
    pattern, folders = NLM_PATTERNS[collection]
    path = PurePosixPath(file_name)
    in_folder = path.parts[:1] == ("extra",) and any(p.lower() in folders for p in path.parts[1:-1])
    return bool(pattern.match(path.name)) or in_folder


def load(
    root: Path | str,
    *,
    json_files: tuple[str, ...] | None = None,
    exclude: tuple[str, ...] = (),
    stats: dict | None = None,
) -> list[Record]:
    """Records of the images listed in the labelled COCO JSON(s), minus recognisable copies of
    the collections named in ``exclude`` (counted as ``overlap_<name>``). Images listed but
    absent from ``imgs/`` are left out and counted as ``missing_image``."""
    unknown = set(exclude) - set(NLM_PATTERNS)
    if unknown:
        raise ValueError(f"exclude takes {sorted(NLM_PATTERNS)}, got {sorted(unknown)}")
    root = require_dir(root, SOURCE, LAYOUT)
    imgs = root / "imgs"
    if not imgs.is_dir():
        raise LayoutError(f"{SOURCE}: {str(imgs)!r} is missing. Expected layout:\n{LAYOUT}")
    stats = {} if stats is None else stats
    bump = lambda k: stats.__setitem__(k, stats.get(k, 0) + 1)  # noqa: E731
    records: list[Record] = []
    seen: set[str] = set()
    for path in _json_files(root, json_files):
        try:
            coco = json.loads(path.read_text(encoding="utf-8"))
            categories = {c["id"]: c for c in coco.get("categories", [])}
            images = coco["images"]
            annotations = coco.get("annotations", [])
        except (ValueError, KeyError, TypeError) as err:
            raise LayoutError(f"{SOURCE}: {path} is not a COCO JSON ({err}). Expected layout:\n{LAYOUT}") from err
        tb_cats = {
            cid
            for cid, c in categories.items()
            if any(w in (str(c.get("name", "")) + " " + str(c.get("supercategory", ""))).lower() for w in TB_WORDS)
        }
        tb_images = {a["image_id"] for a in annotations if a.get("category_id") in tb_cats}
        for entry in images:
            file_name = str(entry["file_name"]).replace("\\", "/").lstrip("/")
            if file_name.startswith("imgs/"):
                file_name = file_name[5:]
            if file_name in seen:
                continue
            seen.add(file_name)
            if any(is_nlm_copy(file_name, c) for c in exclude):
                for c in exclude:
                    if is_nlm_copy(file_name, c):
                        bump(f"overlap_{c}")
                continue
            image = imgs / file_name
            if not image.is_file():
                bump("missing_image")
                continue
            label = _label(file_name, entry["id"] in tb_images, str(path))
            records.append(Record(str(image), label, None, SOURCE, None))
    if not records:
        raise LayoutError(f"{SOURCE}: no listed image found under {str(imgs)!r}. Expected layout:\n{LAYOUT}")
    return records
