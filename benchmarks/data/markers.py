"""Markers and where they go: the stamps of burned-in background markers (geometric shapes,
hospital-style text tags, border bands) and their placement outside a dilated foreground.

Placement is vectorised (integral images of the forbidden area give every free position at
once) and deterministic given a :class:`numpy.random.Generator`. :mod:`benchmarks.data.bias`
maps classes to markers with these; the synthetic chest X-ray generator draws its per-hospital
markers with :func:`place_stamps` and :func:`draw_stamps`.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

# --------------------------------------------------------------------------- marker kinds
SHAPES = ("square", "circle", "triangle", "cross", "diamond", "ring", "bar", "plus", "star", "hexagon",
          "frame", "vbar")
TEXT_TAGS = ("L", "R", "A", "P", "S", "H", "T", "X", "K", "E", "N", "U")
BANDS = tuple(f"{side}-{style}" for style in ("solid", "dashed", "double")
              for side in ("top", "bottom", "left", "right"))
KINDS = {"shape": SHAPES, "text": TEXT_TAGS, "band": BANDS}

# 5x7 bitmap glyphs (rows top to bottom) for the text tags.
_GLYPHS = {
    "A": ("01110", "10001", "10001", "11111", "10001", "10001", "10001"),
    "E": ("11111", "10000", "10000", "11110", "10000", "10000", "11111"),
    "H": ("10001", "10001", "10001", "11111", "10001", "10001", "10001"),
    "K": ("10001", "10010", "10100", "11000", "10100", "10010", "10001"),
    "L": ("10000", "10000", "10000", "10000", "10000", "10000", "11111"),
    "N": ("10001", "11001", "10101", "10011", "10001", "10001", "10001"),
    "P": ("11110", "10001", "10001", "11110", "10000", "10000", "10000"),
    "R": ("11110", "10001", "10001", "11110", "10100", "10010", "10001"),
    "S": ("01111", "10000", "10000", "01110", "00001", "00001", "11110"),
    "T": ("11111", "00100", "00100", "00100", "00100", "00100", "00100"),
    "U": ("10001", "10001", "10001", "10001", "10001", "10001", "01110"),
    "X": ("10001", "10001", "01010", "00100", "01010", "10001", "10001"),
}


def _polygon(px: np.ndarray, py: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test of the points (px, py) against ``vertices`` [V, 2]."""
    inside = np.zeros(px.shape, dtype=bool)
    x0, y0 = vertices[:, 0], vertices[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    for a, b, c, d in zip(x0, y0, x1, y1, strict=True):
        crosses = (b > py) != (d > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = a + (py - b) * (c - a) / (d - b)
        inside ^= crosses & (px < x_at)
    return inside


def _regular(n: int, radius: float, phase: float) -> np.ndarray:
    t = phase + 2 * np.pi * np.arange(n) / n
    return np.stack([radius * np.cos(t), radius * np.sin(t)], axis=1)


@functools.lru_cache(maxsize=512)
def shape_stamp(name: str, size: int, supersample: int = 4) -> np.ndarray:
    """Boolean ``[size, size]`` rendering of a geometric shape (area-coverage >= 1/2).
    Cached: the returned array is read-only."""
    if size < 1:
        raise ValueError(f"marker size must be >= 1, got {size}")
    n = size * supersample
    c = (np.arange(n) + 0.5) / n * 2 - 1  # pixel centres in [-1, 1]
    y, x = np.meshgrid(c, c, indexing="ij")  # y grows downwards
    r = np.hypot(x, y)
    box = (np.abs(x) <= 0.95) & (np.abs(y) <= 0.95)
    t = 0.34  # stroke half-width of crosses and bars
    if name == "square":
        m = box
    elif name == "circle":
        m = r <= 0.95
    elif name == "triangle":
        m = _polygon(x, y, np.array([[0.0, -0.95], [0.95, 0.95], [-0.95, 0.95]]))
    elif name == "cross":
        m = box & ((np.abs(x - y) <= t * 1.1) | (np.abs(x + y) <= t * 1.1))
    elif name == "diamond":
        m = np.abs(x) + np.abs(y) <= 0.98
    elif name == "ring":
        m = (r <= 0.95) & (r >= 0.5)
    elif name == "bar":
        m = (np.abs(x) <= 0.95) & (np.abs(y) <= t)
    elif name == "vbar":
        m = (np.abs(y) <= 0.95) & (np.abs(x) <= t)
    elif name == "plus":
        m = box & ((np.abs(x) <= t) | (np.abs(y) <= t))
    elif name == "star":
        outer = _regular(5, 1.0, -np.pi / 2)
        inner = _regular(5, 0.45, -np.pi / 2 + np.pi / 5)
        verts = np.empty((10, 2))
        verts[0::2], verts[1::2] = outer, inner
        m = _polygon(x, y, verts)
    elif name == "hexagon":
        hexagon = _polygon(x, y, _regular(6, 0.98, 0.0))
        m = hexagon & ~_polygon(x, y, _regular(6, 0.42, 0.0))  # hollow, unlike the circle
    elif name == "frame":
        m = box & ~((np.abs(x) <= 0.45) & (np.abs(y) <= 0.45))
    else:
        raise ValueError(f"unknown shape {name!r}; known: {', '.join(SHAPES)}")
    cover = m.reshape(size, supersample, size, supersample).mean(axis=(1, 3)) >= 0.5
    cover.flags.writeable = False
    return cover


def text_stamp(tag: str, height: int) -> np.ndarray:
    """Boolean rendering of a text tag from the 5x7 bitmap font, ``height`` pixels tall."""
    glyphs = []
    for ch in tag:
        if ch not in _GLYPHS:
            raise ValueError(f"no glyph for {ch!r}; known: {''.join(sorted(_GLYPHS))}")
        glyphs.append(np.array([[c == "1" for c in row] for row in _GLYPHS[ch]], dtype=bool))
        glyphs.append(np.zeros((7, 1), dtype=bool))
    bitmap = np.concatenate(glyphs[:-1], axis=1)  # [7, w]
    height = max(int(height), 5)
    rows = np.minimum((np.arange(height) * 7) // height, 6)
    width = max(int(round(bitmap.shape[1] * height / 7)), 3)
    cols = np.minimum((np.arange(width) * bitmap.shape[1]) // width, bitmap.shape[1] - 1)
    return bitmap[rows][:, cols]


def band_stamp(name: str, thickness: int, height: int, width: int) -> np.ndarray:
    """Boolean ``[height, width]`` image-sized border band (side + style)."""
    side, style = name.split("-")
    if side not in ("top", "bottom", "left", "right") or style not in ("solid", "dashed", "double"):
        raise ValueError(f"unknown band {name!r}; known: {', '.join(BANDS)}")
    length = width if side in ("top", "bottom") else height
    t = max(int(thickness), 1)
    strip = np.zeros((2 * t + 1 if style == "double" else t, length), dtype=bool)
    if style == "solid":
        strip[:] = True
    elif style == "dashed":
        period = max(2 * t, 4)
        strip[:, (np.arange(length) % period) < period // 2] = True
    else:  # double: two thin lines of thickness ceil(t/2) with a gap of t
        half = max((t + 1) // 2, 1)
        strip[:half] = True
        strip[-half:] = True
    out = np.zeros((height, width), dtype=bool)
    d = strip.shape[0]
    if side == "top":
        out[:d] = strip
    elif side == "bottom":
        out[height - d:] = strip[::-1]
    elif side == "left":
        out[:, :d] = strip.T
    else:
        out[:, width - d:] = strip[::-1].T
    return out


# --------------------------------------------------------------------------- placement
def dilate(masks: np.ndarray | torch.Tensor, radius: int) -> np.ndarray:
    """Square dilation by ``radius`` pixels of boolean masks ``[N, H, W]`` (or ``[N, 1, H, W]``)."""
    t = torch.as_tensor(np.asarray(masks) if not isinstance(masks, torch.Tensor) else masks)
    if t.ndim == 4:
        t = t[:, 0]
    return square_dilation((t > 0).float()[:, None], radius)[:, 0].numpy() > 0


def square_dilation(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Dilation of ``[N, 1, H, W]`` 0/1 maps by a ``(2r+1)`` square, as two 1-D running
    maxima (separable, constant time per pixel whatever the radius)."""
    if radius <= 0:
        return x
    from scipy import ndimage

    k = 2 * radius + 1
    a = x.detach().cpu().numpy() > 0
    a = ndimage.maximum_filter1d(a, size=k, axis=2, mode="constant", cval=0)
    a = ndimage.maximum_filter1d(a, size=k, axis=3, mode="constant", cval=0)
    return torch.from_numpy(a).to(x.dtype)


def free_positions(forbidden: np.ndarray, h: int, w: int, border: int = 0) -> np.ndarray:
    """Boolean ``[N, H-h+1, W-w+1]``: top-left corners where an ``h x w`` box avoids ``forbidden``.

    Uses an integral image per sample, so every position of every image is tested at once.
    ``border`` keeps the box that many pixels away from the image edge.
    """
    n, height, width = forbidden.shape
    if h > height or w > width:
        return np.zeros((n, 0, 0), dtype=bool)
    integral = np.zeros((n, height + 1, width + 1), dtype=np.int32)
    integral[:, 1:, 1:] = forbidden.astype(np.int32).cumsum(1).cumsum(2)
    window = (integral[:, h:, w:] - integral[:, :-h, w:] - integral[:, h:, :-w] + integral[:, :-h, :-w])
    free = window == 0
    if border > 0:
        free[:, :border] = False
        free[:, :, :border] = False
        free[:, free.shape[1] - border:] = False
        free[:, :, free.shape[2] - border:] = False
    return free


def place_stamps(
    forbidden: np.ndarray,
    h: int,
    w: int,
    rng: np.random.Generator,
    placement: str = "random",
    border: int = 0,
) -> np.ndarray:
    """Top-left ``[N, 2]`` (y, x) of an ``h x w`` box per image, ``-1`` where nothing fits.

    ``placement`` is ``"random"`` (uniform over all free positions) or a corner
    (``"tl"``, ``"tr"``, ``"bl"``, ``"br"``: the free position nearest that corner, with a
    jitter of a few pixels so that positions still vary).
    """
    free = free_positions(forbidden, h, w, border)
    n = forbidden.shape[0]
    out = np.full((n, 2), -1, dtype=np.int64)
    if free.size == 0:
        return out
    hv, wv = free.shape[1:]
    noise = rng.random((n, hv, wv))
    if placement == "random":
        score = noise
    elif placement in ("tl", "tr", "bl", "br"):
        yy = np.arange(hv)[:, None] if placement[0] == "t" else (hv - 1 - np.arange(hv))[:, None]
        xx = np.arange(wv)[None, :] if placement[1] == "l" else (wv - 1 - np.arange(wv))[None, :]
        score = -(yy + xx)[None].astype(np.float64) + 3.0 * noise
    else:
        raise ValueError(f"unknown placement {placement!r}; use random, tl, tr, bl or br")
    score = np.where(free, score, -np.inf)
    flat = score.reshape(n, -1).argmax(axis=1)
    ok = free.reshape(n, -1)[np.arange(n), flat]
    out[ok, 0] = flat[ok] // wv
    out[ok, 1] = flat[ok] % wv
    return out


def draw_stamps(
    images: np.ndarray,
    stamp: np.ndarray,
    positions: np.ndarray,
    values: np.ndarray | float,
    forbidden: np.ndarray | None = None,
) -> None:
    """Burn ``stamp`` (bool ``[h, w]``) into ``images`` (``[N, C, H, W]``, in place) at the
    top-left ``positions`` ``[N, 2]`` (rows with ``-1`` are skipped) with intensity
    ``values`` (scalar or ``[N]``). Pixels in ``forbidden`` are never written."""
    ok = positions[:, 0] >= 0
    if not ok.any():
        return
    idx = np.flatnonzero(ok)
    dy, dx = np.nonzero(stamp)
    ys = positions[idx, 0][:, None] + dy[None]
    xs = positions[idx, 1][:, None] + dx[None]
    vals = np.broadcast_to(np.asarray(values, dtype=np.float64), (images.shape[0],))[idx]
    vals = np.broadcast_to(vals[:, None], ys.shape).astype(images.dtype)
    if forbidden is not None:
        keep = ~forbidden[idx[:, None], ys, xs]
    else:
        keep = np.ones(ys.shape, dtype=bool)
    rows = np.broadcast_to(idx[:, None], ys.shape)
    for c in range(images.shape[1]):
        images[rows[keep], c, ys[keep], xs[keep]] = vals[keep]
