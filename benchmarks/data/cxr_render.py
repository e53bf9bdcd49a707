"""Image formation of the synthetic chest X-rays: anatomy, lesions, acquisition, markers.

A radiograph is formed twice from the same anatomy: once for the lungs, with patient and
acquisition effects drawn per image from :class:`Acquisition` (the same for every
hospital), and once for everything else, with the constants of its :class:`Hospital`. Lung
pixels (the foreground mask) come from the first image, all other pixels from the second,
so the hospital lives outside the lungs only and the class signal inside them only. Lengths
in pixels are given for a 64-px image and scaled with the image size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from benchmarks.data.bias import BiasConfig, BiasInjector, single_thread
from benchmarks.data.markers import dilate, draw_stamps, place_stamps

REFERENCE_SIZE = 64  # pixel lengths below are given for this image size


@dataclass(frozen=True)
class Hospital:
    """One simulated hospital: its look outside the lungs, burned-in markers and class shares.

    Everything here acts outside the lung mask only (the lungs are rendered by
    :class:`Acquisition`, the same for every hospital). background: grey level outside the
    body (0..1); tissue: soft-tissue level; gamma / contrast / offset: the detector's
    response ``contrast * x**gamma + offset``; gradient: amplitude and angle (degrees) of a
    linear intensity ramp across the image (heel effect, exposure); noise: standard deviation
    of the added grain; blur: Gaussian sigma of the detector's blur (px at 64); frame: width
    (px at 64) and level of a collimation frame along the image border (0: none); markers:
    ``(kind, name, placement, size)`` burned-in markers (kinds of :mod:`benchmarks.data.bias`;
    size in px at 64; always white, outside the dilated lungs); shares: class shares of this
    hospital's images.
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
    markers: tuple[tuple[str, str, str, int], ...]
    shares: tuple[float, ...] = ()

    def with_shares(self, shares: Sequence[float]) -> Hospital:
        shares = tuple(float(s) for s in shares)
        if any(s < 0 for s in shares) or not math.isclose(sum(shares), 1.0, abs_tol=1e-6):
            raise ValueError(f"hospital {self.name}: class shares must be >= 0 and sum to 1, got {shares}")
        return replace(self, shares=shares)


@dataclass(frozen=True)
class Acquisition:
    """Patient and acquisition effects of the lungs: per image, each value is drawn uniformly
    from its range, with the same ranges for every hospital (external ones included), so the
    lungs vary but carry no hospital information. Fields as in :class:`Hospital` (``gradient``:
    the amplitude, its angle uniform in 0..360 degrees), plus ``zoom``: the fraction of the
    image side that the lung template spans (it sets the lung mask's size). The ranges span
    the hospitals' values."""

    background: tuple[float, float] = (0.02, 0.22)
    tissue: tuple[float, float] = (0.52, 0.62)
    gamma: tuple[float, float] = (0.80, 1.25)
    contrast: tuple[float, float] = (0.90, 1.05)
    offset: tuple[float, float] = (0.00, 0.05)
    gradient: tuple[float, float] = (0.00, 0.15)
    noise: tuple[float, float] = (0.015, 0.040)
    blur: tuple[float, float] = (0.0, 0.7)
    zoom: tuple[float, float] = (0.62, 0.78)


ACQUISITION = Acquisition()


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


def _col(values: Tensor) -> Tensor:
    return values.view(-1, 1, 1, 1)


def _generator(seed: Sequence[int], stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(np.random.SeedSequence([*seed, stream]).generate_state(1)[0]))


@dataclass
class Rendered:
    images: np.ndarray  # uint8 [N, 1, S, S]
    masks: np.ndarray  # uint8 [N, 1, S, S]
    boxes: np.ndarray  # int64 [N, M, 4] marker boxes (y, x, h, w), -1 rows: none


@dataclass
class _Body:
    """Where the lungs landed and the class-free anatomy around them (see :func:`_place`)."""

    lungs: Tensor  # bool [n, 1, S, S]: the foreground mask
    z: Tensor  # 0 apex .. 1 base of the lungs
    p: Tensor  # 0 medial .. 1 lateral
    side: Tensor  # -1 / +1: which lung
    body: Tensor  # soft body silhouette 0..1
    structure: Tensor  # additive anatomy: lung air, ribs, spine, heart


def render(*args, **kwargs) -> Rendered:
    """Render ``len(labels)`` radiographs of one hospital; see :func:`_render` (run on one thread)."""
    with single_thread():
        return _render(*args, **kwargs)


def _place(templates: Tensor, geometry: Tensor, tidx: Tensor, zoom: Tensor, size: int, scale: float,
           gen: torch.Generator) -> _Body:
    """Warp each lung template into the image (``zoom`` of the side, small shift and rotation)
    and build the anatomy around it; every draw comes from ``gen``."""
    n = len(tidx)
    geo = geometry[tidx]
    cx = _u(gen, n, -0.04, 0.04)
    cy = 0.08 + _u(gen, n, -0.04, 0.04)
    angle = torch.deg2rad(_u(gen, n, -5, 5))
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos / zoom, sin / zoom
    theta[:, 1, 0], theta[:, 1, 1] = -sin / zoom, cos / zoom
    theta[:, 0, 2] = -(cos * cx + sin * cy) / zoom
    theta[:, 1, 2] = -(-sin * cx + cos * cy) / zoom
    grid = F.affine_grid(theta, (n, 1, size, size), align_corners=False)  # template coords per pixel
    u, v = grid[..., 0][:, None], grid[..., 1][:, None]  # [n, 1, S, S]
    lungs = F.grid_sample(templates[tidx][:, None].float(), grid, mode="bilinear", align_corners=False) > 0.5
    lung = lungs.float()
    top, bottom, half, mid = (geo[:, i].view(n, 1, 1, 1) for i in range(4))
    z = ((v - top) / (bottom - top)).clamp(-0.3, 1.3)
    p = ((u - mid).abs() / half).clamp(0, 1.5)

    body = (((u - mid) / (half * 1.22)).abs() ** 4 + ((v - 0.25) / 1.55).abs() ** 4 <= 1).float()
    body = torch.maximum(body, ((v > 0.9) & ((u - mid).abs() < half * 1.25)).float())
    body = torch.maximum(body, (((u - mid).abs() < 0.22) & (v < top)).float())  # neck
    body = _blur(body, 1.2 * scale)
    structure = -0.30 * _blur(lung, 0.8 * scale)  # air in the lungs
    period = (bottom - top) / 7.0
    ribs = torch.cos(2 * math.pi * (v - top - 0.35 * (u - mid) ** 2 / half) / period)
    cage = ((u - mid).abs() < half * 1.08) & (v > top - 0.1) & (v < bottom + 0.05)
    structure = structure + 0.07 * (ribs > 0.55).float() * cage.float() * body
    structure = structure + 0.10 * ((u - mid).abs() < 0.07).float() * body  # spine
    heart = (((u - mid - 0.22 * half) / (0.42 * half)) ** 2 + ((z - 0.78) / 0.28) ** 2 <= 1).float()
    structure = structure + 0.12 * _blur(heart * (1 - lung), 1.5 * scale)
    return _Body(lungs, z, p, torch.sign(u - mid), body, structure)


def _lesions(task: str, labels: Tensor, b: _Body, lesion_contrast: float, size: int,
             gen: torch.Generator) -> Tensor:
    """The class signal ``[n, 1, S, S]`` (zero for ``normal``), in lung coordinates."""
    n = len(labels)
    z, p, side = b.z, b.p, b.side
    signal = torch.zeros(n, 1, size, size)
    amp = lesion_contrast * _col(_u(gen, n, 0.6, 1.0))
    if task == "covid":
        ggo = torch.sigmoid(2.5 * _smooth_noise(n, size, 5, gen))  # bilateral patchy haze
        weight = (0.35 + 0.65 * z.clamp(0, 1)) * (0.25 + 0.75 * p.clamp(0, 1))  # lower, peripheral
        signal += _col((labels == 2).float()) * amp * 0.30 * ggo * weight
        s = _col(torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0))
        z0, p0 = _col(_u(gen, n, 0.45, 0.85)), _col(_u(gen, n, 0.35, 0.7))
        rz, rp = _col(_u(gen, n, 0.16, 0.28)), _col(_u(gen, n, 0.25, 0.4))
        d = ((z - z0) / rz) ** 2 + ((p - p0) / rp) ** 2
        lobar = torch.sigmoid(6 * (1 - d)) * (side == s).float()  # dense, one lung, sharp border
        signal += _col((labels == 1).float()) * amp * 0.30 * lobar
    elif task == "tb":
        k = 6
        zk = _u(gen, n * k, 0.02, 0.38).view(n, k, 1, 1)
        sk = torch.where(torch.rand(n * k, generator=gen) < 0.5, -1.0, 1.0).view(n, k, 1, 1)
        pk = _u(gen, n * k, 0.2, 0.85).view(n, k, 1, 1)
        active = (torch.arange(k).view(1, k) < torch.randint(2, k + 1, (n, 1), generator=gen)).float()
        rk = _u(gen, n * k, 0.05, 0.09).view(n, k, 1, 1)
        dk = ((z - zk) / rk) ** 2 + ((p - pk) / (rk * 1.6)) ** 2 + 50 * (side != sk).float()
        nodules = (torch.exp(-dk) * active.view(n, k, 1, 1)).sum(1, keepdim=True).clamp(max=1.2)
        cz, cp = _col(_u(gen, n, 0.05, 0.3)), _col(_u(gen, n, 0.3, 0.75))
        cs = _col(torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0))
        cr = _col(_u(gen, n, 0.07, 0.11))
        dc = torch.sqrt(((z - cz) / cr) ** 2 + ((p - cp) / (cr * 1.6)) ** 2) + 9 * (side != cs).float()
        has_cavity = _col((torch.rand(n, generator=gen) < 0.6).float())
        cavity = has_cavity * (torch.exp(-((dc - 1.0) / 0.3) ** 2) - 0.5 * (dc < 0.8).float())
        signal += _col((labels == 1).float()) * amp * (0.32 * nodules + 0.30 * cavity)
    else:
        raise ValueError(f"unknown task {task!r}; use 'covid' or 'tb'")
    return signal


def _draw_acquisition(acq: Acquisition, n: int, gen: torch.Generator) -> dict[str, Tensor]:
    """Per-image values ``[n]`` of every :class:`Acquisition` range, and a gradient angle."""
    out = {f: _u(gen, n, *getattr(acq, f)) for f in
           ("background", "tissue", "gamma", "contrast", "offset", "gradient", "noise", "blur", "zoom")}
    out["angle"] = _u(gen, n, 0.0, 360.0)
    return out


def _hospital_values(h: Hospital, n: int) -> dict[str, Tensor]:
    """The hospital's constants in the form of :func:`_draw_acquisition`."""
    values = {"background": h.background, "tissue": h.tissue, "gamma": h.gamma, "contrast": h.contrast,
              "offset": h.offset, "gradient": h.gradient[0], "angle": h.gradient[1], "noise": h.noise,
              "blur": h.blur}
    return {k: torch.full((n,), float(v)) for k, v in values.items()}


def _expose(anatomy: Tensor, body: Tensor, s: Mapping[str, Tensor], scale: float,
            gen: torch.Generator) -> Tensor:
    """Image formation with per-image values ``s``: tissue over background, detector response,
    exposure ramp, detector blur and grain (noise drawn from ``gen``)."""
    size = anatomy.shape[-1]
    img = _col(s["background"]) + _col(s["tissue"] - s["background"]) * body + anatomy
    img = img.clamp(0, 1) ** _col(s["gamma"]) * _col(s["contrast"]) + _col(s["offset"])
    coords = (torch.arange(size) + 0.5) / size * 2 - 1
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    a = torch.deg2rad(s["angle"])
    img = img + _col(s["gradient"]) * 0.5 * (_col(torch.cos(a)) * xx + _col(torch.sin(a)) * yy)
    blurred = torch.empty_like(img)
    for sigma in torch.unique(s["blur"]):
        sel = s["blur"] == sigma
        blurred[sel] = _blur(img[sel], float(sigma) * scale)
    return blurred + _col(s["noise"]) * torch.randn(img.shape, generator=gen)


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
    acquisition: Acquisition = ACQUISITION,
) -> Rendered:
    """Render ``len(labels)`` radiographs of one hospital (vectorised over the batch).

    Two images are formed from the same anatomy: the lungs' (placement, acquisition, texture
    and lesions drawn from the ``patient`` stream, whose draws never depend on the hospital)
    and the hospital's (its constants, its own grain stream, no lesions). Lung pixels come
    from the first, all others from the second, so every pixel inside the lung mask is the
    same whichever hospital renders it, and no lesion reaches outside the mask."""
    n = len(labels)
    patient, site = _generator(seed, 0), _generator(seed, 1)
    scale = size / REFERENCE_SIZE
    style = _draw_acquisition(acquisition, n, patient)
    b = _place(templates, geometry, torch.as_tensor(template_idx, dtype=torch.long), style["zoom"], size, scale,
               patient)
    lung = b.lungs.float()
    texture = 0.025 * _smooth_noise(n, size, max(4, size // 4), patient) * lung
    signal = _lesions(task, torch.as_tensor(labels, dtype=torch.long), b, lesion_contrast, size, patient) * lung
    inside = _expose(b.structure + texture + signal, b.body, style, scale, patient)
    outside = _expose(b.structure, b.body, _hospital_values(hospital, n), scale, site)
    width, level = hospital.frame
    if width:
        w = max(1, round(width * scale))
        frame = torch.ones(size, size, dtype=torch.bool)
        frame[w:-w, w:-w] = False
        outside = torch.where(frame, torch.tensor(level), outside)
    img = torch.where(b.lungs, inside, outside)
    images = (img.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    masks = b.lungs.to(torch.uint8).numpy()
    boxes = _burn_markers(images, masks, hospital, size, scale, seed, max_markers)
    return Rendered(images, masks, boxes)


def _burn_markers(images: np.ndarray, masks: np.ndarray, hospital: Hospital, size: int, scale: float,
                  seed: Sequence[int], max_markers: int) -> np.ndarray:
    """Burn the hospital's markers (white, outside the dilated lungs, at its corners) into
    ``images`` in place; returns their boxes ``[N, M, 4]``."""
    n = len(images)
    width = hospital.frame[0]
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
    return boxes
