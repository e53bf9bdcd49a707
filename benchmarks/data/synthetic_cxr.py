"""Synthetic chest X-rays with real lung shapes and a hospital shortcut.

No real radiograph can be downloaded here, so this generator reproduces the mechanism the
ISNet paper fights: training data pooled from several hospitals, each with its own
background style and burned-in markers, and class shares that differ by hospital, so that
"which hospital" predicts "which disease". The class signal itself lies inside the lungs
only. The external test set comes from hospitals never seen in training (balanced classes,
unseen styles and markers), so a classifier that learned the hospital drops there.

Lungs: the 517 real lung masks (V7 Labs annotations of Cohen's COVID-19 collection) shipped
in the ``torchxrayvision`` wheel (``data/semantic_masks_v7labs_lungs.zip``, read without
importing the package). When the wheel is absent, parametric lungs are used instead and
``DataBundle.notes["lung_source"]`` says so.

Every parameter is documented in ``datasets/synthetic_cxr.md``. Sizes in pixels are given
for a 64-px image and scaled with the image size.
"""

from __future__ import annotations

import importlib.util
import io
import math
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from benchmarks.api import DataBundle
from benchmarks.data.bias import (
    BiasConfig,
    BiasInjector,
    MarkedSplit,
    dilate,
    draw_stamps,
    place_stamps,
    single_thread,
)
from benchmarks.data.cache import cached

GENERATOR_VERSION = 1
REFERENCE_SIZE = 64  # pixel lengths below are given for this image size
TEMPLATE_RES = 128
LUNG_ZIP = ("data", "semantic_masks_v7labs_lungs.zip")
COVID_CLASSES = ("normal", "pneumonia", "covid")
TB_CLASSES = ("normal", "tb")


# --------------------------------------------------------------------------- hospitals
@dataclass(frozen=True)
class Hospital:
    """One simulated hospital: acquisition style, burned-in markers and class shares.

    background: grey level outside the body (0..1); tissue: soft-tissue level;
    gamma / contrast / offset: the detector's response ``contrast * x**gamma + offset``;
    gradient: amplitude and angle (degrees) of a linear intensity ramp across the image
    (heel effect, exposure); noise: standard deviation of the added grain; blur: Gaussian
    sigma of the detector's blur (px at 64); frame: width (px at 64) and level of a
    collimation frame along the image border (0: none); zoom: fraction of the image side
    that the lung template spans; markers: ``(kind, name, placement, size)`` burned-in
    markers (kinds of :mod:`benchmarks.data.bias`; size in px at 64; always white, outside
    the dilated lungs); shares: class shares of this hospital's images.
    """

    name: str
    background: float
    tissue: float
    gamma: float
    contrast: float
    offset: float
    gradient: tuple[float, float]
    noise: float
    blur: float
    frame: tuple[float, float]
    zoom: float
    markers: tuple[tuple[str, str, str, int], ...]
    shares: tuple[float, ...] = ()

    def with_shares(self, shares: Sequence[float]) -> Hospital:
        shares = tuple(float(s) for s in shares)
        if any(s < 0 for s in shares) or not math.isclose(sum(shares), 1.0, abs_tol=1e-6):
            raise ValueError(f"hospital {self.name}: class shares must be >= 0 and sum to 1, got {shares}")
        return replace(self, shares=shares)


#: the style library; experiments pick hospitals by name and give them class shares
STYLES: dict[str, Hospital] = {
    h.name: h
    for h in (
        Hospital("A", background=0.04, tissue=0.58, gamma=1.00, contrast=1.00, offset=0.00,
                 gradient=(0.00, 0.0), noise=0.015, blur=0.0, frame=(0, 0.0), zoom=0.74,
                 markers=(("text", "L", "tl", 9),)),
        Hospital("B", background=0.22, tissue=0.55, gamma=0.80, contrast=0.90, offset=0.05,
                 gradient=(0.15, 0.0), noise=0.035, blur=0.0, frame=(0, 0.0), zoom=0.66,
                 markers=(("text", "R", "tr", 9), ("band", "bottom-dashed", "", 2))),
        Hospital("C", background=0.10, tissue=0.62, gamma=1.25, contrast=1.05, offset=0.00,
                 gradient=(0.10, 90.0), noise=0.025, blur=0.7, frame=(3, 0.9), zoom=0.70,
                 markers=(("shape", "square", "bl", 7),)),
        Hospital("D", background=0.14, tissue=0.57, gamma=1.10, contrast=0.95, offset=0.02,
                 gradient=(0.12, 45.0), noise=0.028, blur=0.4, frame=(0, 0.0), zoom=0.69,
                 markers=(("text", "A", "br", 9),)),
        Hospital("E", background=0.02, tissue=0.60, gamma=0.90, contrast=1.00, offset=0.03,
                 gradient=(0.10, 270.0), noise=0.020, blur=0.0, frame=(2, 0.0), zoom=0.72,
                 markers=(("shape", "triangle", "tr", 7), ("text", "P", "bl", 7))),
        Hospital("F", background=0.18, tissue=0.52, gamma=1.05, contrast=1.05, offset=0.00,
                 gradient=(0.08, 180.0), noise=0.040, blur=0.5, frame=(0, 0.0), zoom=0.68,
                 markers=(("band", "left-double", "", 2), ("text", "S", "tr", 8))),
    )
}


def hospitals_from(spec: Mapping[str, Sequence[float]]) -> list[Hospital]:
    """``{style name: class shares}`` -> hospitals (in the given order)."""
    out = []
    for name, shares in spec.items():
        if name not in STYLES:
            raise ValueError(f"unknown hospital style {name!r}; known: {sorted(STYLES)}")
        out.append(STYLES[name].with_shares(shares))
    return out


# --------------------------------------------------------------------------- lung templates
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


# --------------------------------------------------------------------------- rendering
def _smooth_noise(n: int, size: int, cells: int, gen: torch.Generator) -> Tensor:
    """Smooth random fields ``[n, 1, size, size]`` of unit-ish scale (bicubic upsampled noise)."""
    low = torch.randn(n, 1, cells, cells, generator=gen)
    return F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)


def _blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of ``[N, 1, H, W]`` (replicated borders, radius ``ceil(3 sigma)``),
    with scipy's line filters: far cheaper than a one-channel convolution on a CPU."""
    if sigma <= 0.05:
        return x
    from scipy import ndimage

    radius = max(1, int(math.ceil(3 * sigma)))
    a = x.detach().cpu().numpy().astype(np.float32, copy=True)
    for axis in (3, 2):
        a = ndimage.gaussian_filter1d(a, sigma, axis=axis, mode="nearest", radius=radius)
    return torch.from_numpy(a).to(x.dtype)


def _u(gen: torch.Generator, n: int, low: float, high: float) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=gen)


@dataclass
class Rendered:
    images: np.ndarray  # uint8 [N, 1, S, S]
    masks: np.ndarray  # uint8 [N, 1, S, S]
    boxes: np.ndarray  # int64 [N, M, 4] marker boxes (y, x, h, w), -1 rows: none


def render(*args, **kwargs) -> Rendered:
    """Render ``len(labels)`` radiographs of one hospital; see :func:`_render` (run on one thread)."""
    with single_thread():
        return _render(*args, **kwargs)


def _render(
    templates: Tensor,
    geometry: Tensor,
    template_idx: np.ndarray,
    labels: np.ndarray,
    hospital: Hospital,
    task: str,
    size: int,
    lesion_contrast: float,
    seed: Sequence[int],
    max_markers: int = 2,
) -> Rendered:
    """Render ``len(labels)`` radiographs of one hospital (vectorised over the batch)."""
    n = len(labels)
    gen = torch.Generator().manual_seed(int(np.random.SeedSequence(list(seed)).generate_state(1)[0]))
    scale = size / REFERENCE_SIZE
    labels_t = torch.as_tensor(labels, dtype=torch.long)
    tidx = torch.as_tensor(template_idx, dtype=torch.long)
    geo = geometry[tidx]  # [n, 4]

    # geometry: where the lung template lands (zoom, shift, small rotation)
    span = hospital.zoom * _u(gen, n, 0.93, 1.07)
    cx = _u(gen, n, -0.04, 0.04)
    cy = 0.08 + _u(gen, n, -0.04, 0.04)
    angle = torch.deg2rad(_u(gen, n, -5, 5))
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos / span, sin / span
    theta[:, 1, 0], theta[:, 1, 1] = -sin / span, cos / span
    theta[:, 0, 2] = -(cos * cx + sin * cy) / span
    theta[:, 1, 2] = -(-sin * cx + cos * cy) / span
    grid = F.affine_grid(theta, (n, 1, size, size), align_corners=False)  # template coords per pixel
    u, v = grid[..., 0][:, None], grid[..., 1][:, None]  # [n, 1, S, S]
    lungs = F.grid_sample(templates[tidx][:, None].float(), grid, mode="bilinear", align_corners=False) > 0.5
    lung = lungs.float()

    top, bottom, half, mid = (geo[:, i].view(n, 1, 1, 1) for i in range(4))
    z = ((v - top) / (bottom - top)).clamp(-0.3, 1.3)  # 0 apex .. 1 base
    p = ((u - mid).abs() / half).clamp(0, 1.5)  # 0 medial .. 1 lateral
    side = torch.sign(u - mid)

    # anatomy: body, lungs (air), ribs, spine, heart, vascular texture
    body = (((u - mid) / (half * 1.22)).abs() ** 4 + ((v - 0.25) / 1.55).abs() ** 4 <= 1).float()
    body = torch.maximum(body, ((v > 0.9) & ((u - mid).abs() < half * 1.25)).float())
    neck = ((u - mid).abs() < 0.22) & (v < top)
    body = torch.maximum(body, neck.float())
    body = _blur(body, 1.2 * scale)
    img = hospital.background + (hospital.tissue - hospital.background) * body
    img = img - 0.30 * _blur(lung, 0.8 * scale)
    period = (bottom - top) / 7.0
    ribs = torch.cos(2 * math.pi * (v - top - 0.35 * (u - mid) ** 2 / half) / period)
    cage = ((u - mid).abs() < half * 1.08) & (v > top - 0.1) & (v < bottom + 0.05)
    img = img + 0.07 * (ribs > 0.55).float() * cage.float() * body
    img = img + 0.10 * ((u - mid).abs() < 0.07).float() * body  # spine
    heart = (((u - mid - 0.22 * half) / (0.42 * half)) ** 2 + ((z - 0.78) / 0.28) ** 2 <= 1).float()
    img = img + 0.12 * _blur(heart * (1 - lung), 1.5 * scale)
    texture = _smooth_noise(n, size, max(4, size // 4), gen)
    img = img + 0.025 * texture * lung

    # class signal: inside the lungs only
    signal = torch.zeros_like(img)
    amp = lesion_contrast * _u(gen, n, 0.6, 1.0).view(n, 1, 1, 1)
    if task == "covid":
        ggo = torch.sigmoid(2.5 * _smooth_noise(n, size, 5, gen))  # bilateral patchy haze
        weight = (0.35 + 0.65 * z.clamp(0, 1)) * (0.25 + 0.75 * p.clamp(0, 1))  # lower, peripheral
        signal += ((labels_t == 2).float().view(n, 1, 1, 1)) * amp * 0.30 * ggo * weight
        s = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0).view(n, 1, 1, 1)
        z0 = _u(gen, n, 0.45, 0.85).view(n, 1, 1, 1)
        p0 = _u(gen, n, 0.35, 0.7).view(n, 1, 1, 1)
        rz, rp = _u(gen, n, 0.16, 0.28).view(n, 1, 1, 1), _u(gen, n, 0.25, 0.4).view(n, 1, 1, 1)
        d = ((z - z0) / rz) ** 2 + ((p - p0) / rp) ** 2
        lobar = torch.sigmoid(6 * (1 - d)) * (side == s).float()  # dense, one lung, sharp border
        signal += ((labels_t == 1).float().view(n, 1, 1, 1)) * amp * 0.30 * lobar
    elif task == "tb":
        k = 6
        zk = _u(gen, n * k, 0.02, 0.38).view(n, k, 1, 1)
        sk = torch.where(torch.rand(n * k, generator=gen) < 0.5, -1.0, 1.0).view(n, k, 1, 1)
        pk = _u(gen, n * k, 0.2, 0.85).view(n, k, 1, 1)
        active = (torch.arange(k).view(1, k) < torch.randint(2, k + 1, (n, 1), generator=gen)).float()
        rk = _u(gen, n * k, 0.05, 0.09).view(n, k, 1, 1)
        dk = ((z - zk) / rk) ** 2 + ((p - pk) / (rk * 1.6)) ** 2 + 50 * (side != sk).float()
        nodules = (torch.exp(-dk) * active.view(n, k, 1, 1)).sum(1, keepdim=True).clamp(max=1.2)
        cz, cp = _u(gen, n, 0.05, 0.3).view(n, 1, 1, 1), _u(gen, n, 0.3, 0.75).view(n, 1, 1, 1)
        cs = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0).view(n, 1, 1, 1)
        cr = _u(gen, n, 0.07, 0.11).view(n, 1, 1, 1)
        dc = torch.sqrt(((z - cz) / cr) ** 2 + ((p - cp) / (cr * 1.6)) ** 2) + 9 * (side != cs).float()
        has_cavity = (torch.rand(n, generator=gen) < 0.6).float().view(n, 1, 1, 1)
        cavity = has_cavity * (torch.exp(-((dc - 1.0) / 0.3) ** 2) - 0.5 * (dc < 0.8).float())
        signal += ((labels_t == 1).float().view(n, 1, 1, 1)) * amp * (0.32 * nodules + 0.30 * cavity)
    else:
        raise ValueError(f"unknown task {task!r}; use 'covid' or 'tb'")
    img = img + signal * lung

    # hospital style: detector response, exposure gradient, blur, grain, collimation frame
    img = img.clamp(0, 1) ** hospital.gamma * hospital.contrast + hospital.offset
    amp_g, ang = hospital.gradient
    if amp_g:
        coords = (torch.arange(size) + 0.5) / size * 2 - 1
        yy, xx = torch.meshgrid(coords, coords, indexing="ij")
        a = math.radians(ang)
        img = img + amp_g * 0.5 * (math.cos(a) * xx + math.sin(a) * yy)
    img = _blur(img, hospital.blur * scale)
    img = img + hospital.noise * torch.randn(img.shape, generator=gen)
    width, level = hospital.frame
    if width:
        w = max(1, round(width * scale))
        frame = torch.ones(size, size, dtype=torch.bool)
        frame[w:-w, w:-w] = False
        img = torch.where(frame, torch.tensor(level), img)
    images = (img.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    masks = lungs.to(torch.uint8).numpy()

    # burned-in markers: white, outside the dilated lungs, at the hospital's corners
    rng = np.random.default_rng(np.random.SeedSequence([*seed, 7]))
    forbidden = dilate(masks, max(1, round(2 * scale)))
    boxes = np.full((n, max_markers, 4), -1, dtype=np.int64)
    for m, (kind, name, placement, msize) in enumerate(hospital.markers[:max_markers]):
        px = max(3, round(msize * scale))
        injector = BiasInjector(BiasConfig(num_classes=1, kind=kind, size=px, markers=(name,),
                                           placement=placement or "random", border=max(0, round(width * scale))))
        stamp = injector.stamp(0, px, size, size)
        if kind == "band":
            pos = np.zeros((n, 2), dtype=np.int64)
            draw_stamps(images, stamp, pos, 255, forbidden=forbidden)
            ys, xs = np.nonzero(stamp)
            boxes[:, m] = [ys.min(), xs.min(), ys.max() - ys.min() + 1, xs.max() - xs.min() + 1]
        else:
            h, w_ = stamp.shape
            pos = place_stamps(forbidden, h, w_, rng, placement or "random",
                               border=max(0, round(width * scale)) + 1)
            draw_stamps(images, stamp, pos, 255)
            ok = pos[:, 0] >= 0
            boxes[ok, m] = np.column_stack([pos[ok], np.full((ok.sum(), 2), [h, w_])])
    return Rendered(images, masks, boxes)


# --------------------------------------------------------------------------- datasets
CXR_DEFAULTS: dict = {
    "n_train": 2000,
    "n_val": 400,
    "n_in_distribution": 900,
    "n_external": 900,
    "lungs": "v7",
    "max_templates": None,
    "template_test_share": 0.3,
    "lesion_contrast": 1.0,
    "train_hospitals": {},
    "external_hospitals": {},
    "data_seed": 0,
}


def _labels_for(hospital: Hospital, count: int, rng: np.random.Generator) -> np.ndarray:
    """Exactly ``round(share * count)`` images per class (rest to the largest share), shuffled."""
    shares = np.asarray(hospital.shares)
    counts = np.floor(shares * count + 1e-9).astype(int)
    counts[np.argmax(shares)] += count - counts.sum()
    return rng.permutation(np.repeat(np.arange(len(shares)), counts))


def _split_counts(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (i < extra) for i in range(parts)]


def build_cxr_tensors(
    task: str,
    classes: Sequence[str],
    p: Mapping,
    image_size: int,
    templates: Tensor,
) -> dict[str, Tensor]:
    """All four splits of one synthetic CXR task as flat ``"<split>/<field>"`` tensors."""
    train_h = hospitals_from(p["train_hospitals"])
    ext_h = hospitals_from(p["external_hospitals"])
    if {h.name for h in train_h} & {h.name for h in ext_h}:
        raise ValueError("external hospitals must differ from the training hospitals")
    for h in train_h + ext_h:
        if len(h.shares) != len(classes):
            raise ValueError(f"hospital {h.name}: {len(h.shares)} shares for {len(classes)} classes")
    all_h = train_h + ext_h
    geometry = template_geometry(templates)
    seed = int(p["data_seed"])
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    order = rng.permutation(templates.shape[0])
    n_test_t = max(1, int(round(p["template_test_share"] * len(order))))
    pools = {"fit": order[n_test_t:] if len(order) > n_test_t else order, "test": order[:n_test_t]}
    plan = [("train", train_h, "fit", p["n_train"]), ("val", train_h, "fit", p["n_val"]),
            ("in_distribution", train_h, "test", p["n_in_distribution"]),
            ("external", ext_h, "test", p["n_external"])]
    out: dict[str, Tensor] = {}
    for s_idx, (split, hospitals, pool, total) in enumerate(plan):
        parts = {k: [] for k in ("images", "masks", "labels", "groups", "boxes")}
        counts = _split_counts(int(total), len(hospitals))
        for h_idx, (hospital, count) in enumerate(zip(hospitals, counts, strict=True)):
            if count == 0:
                continue
            r = np.random.default_rng(np.random.SeedSequence([seed, 1, s_idx, h_idx]))
            labels = _labels_for(hospital, count, r)
            tidx = r.choice(pools[pool], size=count, replace=True)
            for start in range(0, count, 256):  # bounded memory at 224 px
                sl = slice(start, start + 256)
                rendered = render(templates, geometry, tidx[sl], labels[sl], hospital, task, image_size,
                                  float(p["lesion_contrast"]), seed=(seed, 2, s_idx, h_idx, start))
                parts["images"].append(rendered.images)
                parts["masks"].append(rendered.masks)
                parts["boxes"].append(rendered.boxes)
            parts["labels"].append(labels)
            parts["groups"].append(np.full(count, all_h.index(hospital), dtype=np.int64))
        perm = np.random.default_rng(np.random.SeedSequence([seed, 3, s_idx])).permutation(int(total))
        for key, chunks in parts.items():
            out[f"{split}/{key}"] = torch.from_numpy(np.ascontiguousarray(np.concatenate(chunks)[perm]))
    return out


def build_cxr_bundle(
    *,
    recipe: str,
    task: str,
    classes: Sequence[str],
    data: Mapping,
    image_size: int,
    cache_dir: Path,
) -> DataBundle:
    """Build (or load from the cache) a synthetic CXR task as a DataBundle with test splits
    ``in_distribution`` (training hospitals) and ``external`` (unseen hospitals)."""
    unknown = set(data) - set(CXR_DEFAULTS)
    if unknown:
        raise ValueError(f"{recipe}: unknown data parameters {sorted(unknown)}; known: {sorted(CXR_DEFAULTS)}")
    p = {**CXR_DEFAULTS, **dict(data)}
    templates, lung_source, template_key = lung_templates(p["lungs"], Path(cache_dir), p["max_templates"])
    hospitals = hospitals_from(p["train_hospitals"]) + hospitals_from(p["external_hospitals"])
    description = {"generator_version": GENERATOR_VERSION, "task": task, "classes": list(classes), "data": p,
                   "image_size": image_size, "templates": template_key,
                   "styles": [asdict(h) for h in hospitals]}
    def build() -> dict[str, Tensor]:
        with single_thread():
            return build_cxr_tensors(task, classes, p, image_size, templates)

    tensors, key = cached(Path(cache_dir), recipe, description, build)
    names = tuple(f"hospital_{h.name}" for h in hospitals)
    splits = {
        name: MarkedSplit(tensors[f"{name}/images"], tensors[f"{name}/labels"], tensors[f"{name}/masks"],
                          tensors[f"{name}/groups"], names, marker_boxes=tensors[f"{name}/boxes"])
        for name in ("train", "val", "in_distribution", "external")
    }
    n_train_h = len(p["train_hospitals"])
    notes = {
        "recipe": recipe,
        "lung_source": lung_source,
        "lung_templates": int(templates.shape[0]),
        "train_hospitals": list(names[:n_train_h]),
        "external_hospitals": list(names[n_train_h:]),
        "class_shares": {f"hospital_{h.name}": list(h.shares) for h in hospitals},
        "data": {k: v for k, v in p.items() if k not in ("train_hospitals", "external_hospitals")},
        "split_sizes": {k: len(v) for k, v in splits.items()},
    }
    return DataBundle(
        train=splits["train"], val=splits["val"],
        tests={"in_distribution": splits["in_distribution"], "external": splits["external"]},
        class_names=tuple(classes), in_channels=1, image_size=int(image_size), checksum=key, notes=notes,
    )
