"""Lung templates for the synthetic chest X-rays: real lung masks, or parametric ones.

The 517 real lung masks (V7 Labs annotations of Cohen's COVID-19 collection) shipped in the
``torchxrayvision`` wheel (``data/semantic_masks_v7labs_lungs.zip``) are read without
importing the package. When the wheel is absent, parametric lungs are used instead and the
returned description says so (see ``datasets/synthetic_cxr.md``).
"""

from __future__ import annotations

import importlib.util
import io
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from benchmarks.data.cache import cached

TEMPLATE_RES = 128
LUNG_ZIP = ("data", "semantic_masks_v7labs_lungs.zip")

def lung_zip_path() -> Path | None:
    """The V7 lung-mask zip inside the installed torchxrayvision wheel (not imported), or None."""
    spec = importlib.util.find_spec("torchxrayvision")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*LUNG_ZIP)
    return path if path.is_file() else None


def _normalise_template(lungs: np.ndarray, res: int) -> np.ndarray | None:
    """Keep the two largest lung components (holes filled), crop to their box, centre it
    (aspect kept) in a ``res`` square at 90 % of the side; ``None`` when the mask is not two
    lungs side by side."""
    from PIL import Image
    from scipy import ndimage

    labels, count = ndimage.label(lungs)
    if count < 2:
        return None
    areas = np.bincount(labels.ravel())[1:]
    order = np.argsort(areas)[::-1]
    if areas[order[1]] < 0.25 * areas[order[0]]:
        return None
    big = order[:2] + 1
    keep = ndimage.binary_fill_holes(labels == big[0]) | ndimage.binary_fill_holes(labels == big[1])
    col_index = np.broadcast_to(np.arange(labels.shape[1]), labels.shape).ravel()
    sums = np.bincount(labels.ravel(), weights=col_index, minlength=count + 1)
    cols = sums[big] / areas[big - 1]
    rows_any, cols_any = keep.any(1), keep.any(0)
    y0, y1 = np.argmax(rows_any), len(rows_any) - np.argmax(rows_any[::-1])
    x0, x1 = np.argmax(cols_any), len(cols_any) - np.argmax(cols_any[::-1])
    h, w = y1 - y0, x1 - x0
    if not (0.6 <= h / w <= 1.4) or abs(cols[0] - cols[1]) < 0.35 * w:
        return None
    scale = 0.9 * res / max(h, w)
    th, tw = max(1, round(h * scale)), max(1, round(w * scale))
    crop = Image.fromarray(keep[y0:y1, x0:x1].astype(np.uint8) * 255)
    small = np.asarray(crop.resize((tw, th), Image.Resampling.BOX)) > 127
    out = np.zeros((res, res), dtype=np.uint8)
    oy, ox = (res - th) // 2, (res - tw) // 2
    out[oy:oy + th, ox:ox + tw] = small
    return out


def load_v7_templates(zip_path: Path, res: int = TEMPLATE_RES, max_templates: int | None = None) -> np.ndarray:
    """Real lung templates ``uint8 [T, res, res]`` from the V7 zip (lungs = 255; files in
    name order; the first ``max_templates`` files only, when given). Masks are reduced to
    at most ``2 * res`` pixels a side before they are measured, which keeps this fast."""
    from PIL import Image

    out = []
    with zipfile.ZipFile(zip_path) as archive:
        names = sorted(n for n in archive.namelist() if not n.endswith("/"))
        if max_templates is not None:
            names = names[: int(max_templates)]
        for name in names:
            image = Image.open(io.BytesIO(archive.read(name)))
            image.draft("L", (2 * res, 2 * res))  # JPEG: decode at reduced size
            image = image.convert("L")
            factor = max(1, max(image.size) // (2 * res))
            if factor > 1:
                image = image.reduce(factor)
            template = _normalise_template(np.asarray(image) >= 192, res)  # 255 = lungs (JPEG-safe)
            if template is not None:
                out.append(template)
    if not out:
        raise ValueError(f"{zip_path}: no usable lung mask")
    return np.stack(out)


def parametric_templates(count: int, res: int = TEMPLATE_RES, seed: int = 0) -> np.ndarray:
    """Procedural lung pairs ``uint8 [count, res, res]`` (the fallback without torchxrayvision):
    each lung a rounded, apex-tapered shape with a flat medial border; the left lung (image
    right) has a cardiac notch."""
    rng = np.random.default_rng(seed)
    c = (np.arange(res) + 0.5) / res * 2 - 1
    y, x = np.meshgrid(c, c, indexing="ij")
    out = np.zeros((count, res, res), dtype=np.uint8)
    for i in range(count):
        top, bottom = rng.uniform(-0.9, -0.75), rng.uniform(0.75, 0.9)
        gap = rng.uniform(0.08, 0.16)
        for side in (-1, 1):
            width = rng.uniform(0.7, 0.85)
            t = np.clip((y - top) / (bottom - top), 0, 1)  # 0 at apex, 1 at base
            half = width * np.sqrt(np.clip(t, 0, 1)) ** 0.6 * (1 - 0.25 * t ** 4)
            centre = side * (gap + half * 0.5 + 0.02)
            base = bottom - 0.15 * np.abs(x - side * gap)
            inside = (np.abs(x - centre) <= half / 2 + 0.02) & (y >= top) & (y <= base)
            if side == 1:  # cardiac notch of the left lung (image right)
                notch = ((x - gap) / rng.uniform(0.25, 0.35)) ** 2 + ((y - 0.55) / 0.35) ** 2 <= 1
                inside &= ~notch
            inside &= side * x > gap
            out[i] |= inside.astype(np.uint8)
    return out


def lung_templates(source: str, cache_dir: Path, max_templates: int | None) -> tuple[Tensor, str, str]:
    """``(templates uint8 [T, 128, 128], lung_source, key)``: the V7 masks when ``source`` is
    ``"v7"`` and the wheel is installed, else parametric lungs (labelled as such)."""
    from benchmarks.data.mnist import content_fingerprint

    zip_path = lung_zip_path() if source == "v7" else None
    if source not in ("v7", "parametric"):
        raise ValueError(f"unknown lung source {source!r}; use 'v7' or 'parametric'")
    if zip_path is not None:
        desc = {"zip": content_fingerprint(zip_path), "res": TEMPLATE_RES, "max": max_templates, "v": 2}
        tensors, key = cached(Path(cache_dir), "lung_templates_v7", desc,
                              lambda: {"templates": torch.from_numpy(load_v7_templates(zip_path, TEMPLATE_RES,
                                                                                       max_templates))})
        return tensors["templates"], "v7 (real lung masks from torchxrayvision 1.5.7)", key
    count = max_templates or 200
    desc = {"count": count, "res": TEMPLATE_RES, "v": 1}
    tensors, key = cached(Path(cache_dir), "lung_templates_parametric", desc,
                          lambda: {"templates": torch.from_numpy(parametric_templates(count, TEMPLATE_RES))})
    why = "requested" if source == "parametric" else "torchxrayvision not installed"
    return tensors["templates"], f"parametric (synthetic lung shapes; {why})", key


def template_geometry(templates: Tensor) -> Tensor:
    """Per template ``[T, 4]``: top and bottom row of the lungs and the half-width, in the
    template's normalised coordinates ([-1, 1]), and the centre column."""
    t = templates.bool()
    res = t.shape[-1]
    coords = (torch.arange(res) + 0.5) / res * 2 - 1
    rows, cols = t.any(2), t.any(1)
    big = torch.tensor(9.0)
    top = torch.where(rows, coords, big).min(1).values
    bottom = torch.where(rows, coords, -big).max(1).values
    left = torch.where(cols, coords, big).min(1).values
    right = torch.where(cols, coords, -big).max(1).values
    return torch.stack([top, bottom, (right - left) / 2, (right + left) / 2], 1)
