"""Background-bias injection for any dataset with foreground masks.

A *marker* is a small synthetic pattern burned into the background: a geometric shape, a
hospital-style text tag (``L``, ``R``, ...) or a border band. :class:`BiasInjector` maps each
class to one marker and draws markers only outside the foreground mask dilated by
``margin`` pixels, so a marker never touches the object that carries the class signal.
From the same images it builds the three standard splits:

- ``biased``: a share ``strength`` of the images carries its own class's marker (the
  training distribution; ``strength=1`` at test time);
- ``unbiased``: no marker at all;
- ``deceiving``: every image carries the marker of another class, drawn uniformly among the
  other classes, never the true class's.

Everything is deterministic given a :class:`numpy.random.Generator`; placement is
vectorised (integral images of the forbidden area give every free position at once).
The lower-level :func:`place_stamps` and :func:`draw_stamps` are reused by the synthetic
chest X-ray generator for its per-hospital burned-in markers.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from benchmarks.api import DataBundle, ExperimentSpec, TensorSplit

# --------------------------------------------------------------------------- split groups
GROUP_NO_MARKER, GROUP_CLASS_MARKER, GROUP_OTHER_MARKER = 0, 1, 2
GROUP_NAMES = ("no_marker", "class_marker", "other_class_marker")
MODES = ("biased", "unbiased", "deceiving")

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


class single_thread:
    """Run torch on one thread inside the block: data generation is many small tensor
    operations, which intra-op threads slow down (badly so on a busy machine)."""

    def __enter__(self) -> None:
        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.threads)


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


# --------------------------------------------------------------------------- the injector
@dataclass(frozen=True)
class BiasConfig:
    """How class-correlated markers are drawn.

    kind: ``"shape"`` (one geometric shape per class), ``"text"`` (a burned-in letter tag
    per class, as hospitals print ``L`` / ``R``) or ``"band"`` (a border band, side and
    style per class).
    size: marker side in pixels (shapes), glyph height (text) or band thickness (bands).
    min_size: when the marker does not fit beside the mask, smaller sizes down to this one
    are tried (default: ``max(3, size // 2)``); an image where nothing fits stays unmarked
    and is counted in ``InjectedSplit.unplaced``.
    margin: the mask is dilated by this many pixels before placement, so a marker never
    touches the object.
    value: marker intensity (0..255 for uint8 images).
    strength: share of images of a ``biased`` split that carry their class's marker.
    placement: ``"random"`` or a corner (``"tl"``, ``"tr"``, ``"bl"``, ``"br"``); ignored by bands.
    markers: the marker name per class (default: the kind's first ``num_classes`` names).
    border: minimum distance of a marker from the image edge, in pixels.
    """

    num_classes: int
    kind: str = "shape"
    size: int = 8
    min_size: int | None = None
    margin: int = 1
    value: float = 255.0
    strength: float = 1.0
    placement: str = "random"
    markers: tuple[str, ...] | None = None
    border: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown marker kind {self.kind!r}; known: {', '.join(KINDS)}")
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"bias strength must lie in [0, 1], got {self.strength}")
        if self.num_classes > len(KINDS[self.kind]) and self.markers is None:
            raise ValueError(f"{self.kind} markers exist for at most {len(KINDS[self.kind])} classes; "
                             "pass `markers` explicitly")
        names = self.marker_names
        if len(names) != self.num_classes or len(set(names)) != len(names):
            raise ValueError(f"need {self.num_classes} distinct {self.kind} markers, got {names}")
        unknown = set(names) - set(KINDS[self.kind]) if self.kind != "text" else set()
        if unknown:
            raise ValueError(f"unknown {self.kind} markers {sorted(unknown)}; known: {KINDS[self.kind]}")

    @property
    def marker_names(self) -> tuple[str, ...]:
        return tuple(self.markers) if self.markers is not None else KINDS[self.kind][: self.num_classes]

    def describe(self) -> dict:
        """A JSON-able description (for cache keys and dataset cards)."""
        return {
            "kind": self.kind, "size": self.size, "min_size": self.resolved_min_size, "margin": self.margin,
            "value": self.value, "strength": self.strength, "placement": self.placement,
            "markers": list(self.marker_names), "border": self.border,
        }

    @property
    def resolved_min_size(self) -> int:
        return self.min_size if self.min_size is not None else max(3, self.size // 2)


@dataclass
class InjectedSplit:
    """Images with markers burned in, and what was drawn where.

    images: ``[N, C, H, W]`` (same dtype as the input); marker_class: ``[N]`` class whose
    marker was drawn (``-1``: none); groups: ``[N]`` one of ``GROUP_NAMES``; boxes: ``[N, 4]``
    (y, x, h, w) of each marker's bounding box (``-1`` rows: none); unplaced: how many
    images should have carried a marker but had no room for one.
    """

    images: np.ndarray
    marker_class: np.ndarray
    groups: np.ndarray
    boxes: np.ndarray
    unplaced: int = 0
    sizes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


class BiasInjector:
    """Draws class-correlated markers into the background of masked images."""

    def __init__(self, config: BiasConfig) -> None:
        self.config = config

    def stamp(self, marker_class: int, size: int, height: int, width: int) -> np.ndarray:
        """The boolean stamp of class ``marker_class`` at ``size`` (bands: image-sized)."""
        name = self.config.marker_names[marker_class]
        if self.config.kind == "shape":
            return shape_stamp(name, size)
        if self.config.kind == "text":
            return text_stamp(name, size)
        return band_stamp(name, size, height, width)

    def inject(
        self,
        images: np.ndarray,
        masks: np.ndarray,
        marker_class: np.ndarray,
        rng: np.random.Generator,
    ) -> InjectedSplit:
        """Draw marker ``marker_class[i]`` (``-1``: none) into a copy of ``images[i]``.

        images: ``[N, C, H, W]`` (uint8 or float); masks: ``[N, 1, H, W]`` or ``[N, H, W]``
        of 0/1 foreground. The marker keeps ``margin`` pixels away from the foreground.
        """
        cfg = self.config
        images = np.array(images, copy=True)
        n, _, height, width = images.shape
        marker_class = np.asarray(marker_class, dtype=np.int64)
        forbidden = dilate(masks, cfg.margin)
        boxes = np.full((n, 4), -1, dtype=np.int64)
        sizes = np.zeros(n, dtype=np.int64)
        pending = marker_class >= 0
        if cfg.kind == "band":
            for k in range(cfg.num_classes):
                sel = np.flatnonzero(marker_class == k)
                if sel.size == 0:
                    continue
                stamp = self.stamp(k, cfg.size, height, width)
                pos = np.zeros((sel.size, 2), dtype=np.int64)
                sub = images[sel]
                draw_stamps(sub, stamp, pos, cfg.value, forbidden=forbidden[sel])
                images[sel] = sub
                ys, xs = np.nonzero(stamp)
                boxes[sel] = [ys.min(), xs.min(), ys.max() - ys.min() + 1, xs.max() - xs.min() + 1]
                sizes[sel] = cfg.size
            pending[:] = False
        size = cfg.size
        while pending.any() and size >= cfg.resolved_min_size:
            for k in range(cfg.num_classes):
                sel = np.flatnonzero(pending & (marker_class == k))
                if sel.size == 0:
                    continue
                stamp = self.stamp(k, size, height, width)
                h, w = stamp.shape
                pos = place_stamps(forbidden[sel], h, w, rng, cfg.placement, cfg.border)
                sub = images[sel]
                draw_stamps(sub, stamp, pos, cfg.value)
                images[sel] = sub
                ok = pos[:, 0] >= 0
                boxes[sel[ok]] = np.column_stack([pos[ok], np.full((ok.sum(), 2), [h, w])])
                sizes[sel[ok]] = size
                pending[sel[ok]] = False
            size -= 1
        unplaced = int(pending.sum())
        drawn = np.where(pending, -1, marker_class)
        return InjectedSplit(images, drawn, np.zeros(n, dtype=np.int64), boxes, unplaced, sizes)

    def assign(
        self, labels: np.ndarray, mode: str, rng: np.random.Generator, strength: float | None = None
    ) -> np.ndarray:
        """The marker class per image for a split ``mode`` (``-1``: no marker).

        ``biased``: exactly ``round(strength * N)`` images, chosen at random, get their own
        class's marker; ``unbiased``: none; ``deceiving``: each image gets the marker of a
        class drawn uniformly among the *other* classes.
        """
        labels = np.asarray(labels, dtype=np.int64)
        n, k = labels.shape[0], self.config.num_classes
        if mode == "biased":
            strength = self.config.strength if strength is None else strength
            if not 0.0 <= strength <= 1.0:
                raise ValueError(f"bias strength must lie in [0, 1], got {strength}")
            out = np.full(n, -1, dtype=np.int64)
            chosen = rng.permutation(n)[: int(round(strength * n))]
            out[chosen] = labels[chosen]
            return out
        if mode == "unbiased":
            return np.full(n, -1, dtype=np.int64)
        if mode == "deceiving":
            if k < 2:
                raise ValueError("a deceiving split needs at least two classes")
            return (labels + rng.integers(1, k, size=n)) % k
        raise ValueError(f"unknown split mode {mode!r}; use one of {MODES}")

    def make_split(
        self,
        images: np.ndarray,
        masks: np.ndarray,
        labels: np.ndarray,
        mode: str,
        rng: np.random.Generator,
        strength: float | None = None,
    ) -> InjectedSplit:
        """Build one split (``biased`` / ``unbiased`` / ``deceiving``) from clean images."""
        wanted = self.assign(labels, mode, rng, strength)
        out = self.inject(images, masks, wanted, rng)
        labels = np.asarray(labels, dtype=np.int64)
        out.groups = np.where(
            out.marker_class < 0, GROUP_NO_MARKER,
            np.where(out.marker_class == labels, GROUP_CLASS_MARKER, GROUP_OTHER_MARKER),
        ).astype(np.int64)
        return out


def make_splits(
    injector: BiasInjector,
    images: np.ndarray,
    masks: np.ndarray,
    labels: np.ndarray,
    modes: Sequence[str],
    seed: int,
    strength: float | None = None,
) -> dict[str, InjectedSplit]:
    """Build several splits from the same clean images, each with its own child generator
    of ``seed`` (so adding a mode never changes the others)."""
    children = np.random.SeedSequence(seed).spawn(len(MODES))
    out = {}
    for mode in modes:
        rng = np.random.default_rng(children[MODES.index(mode)])
        out[mode] = injector.make_split(images, masks, labels, mode, rng, strength if mode == "biased" else 1.0)
    return out


# --------------------------------------------------------------------------- bundles
TEST_MODES = ("biased", "unbiased", "deceiving")


class MarkedSplit(TensorSplit):
    """A :class:`TensorSplit` that also remembers where its markers were drawn
    (``marker_boxes`` ``[N, 4]`` (y, x, h, w), ``-1`` rows: none; ``marker_class`` ``[N]``),
    for galleries and tests. The harness sees an ordinary TensorSplit."""

    def __init__(self, *args, marker_boxes: torch.Tensor | None = None,
                 marker_class: torch.Tensor | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        n = len(self)
        self.marker_boxes = torch.full((n, 4), -1, dtype=torch.long) if marker_boxes is None else marker_boxes
        self.marker_class = torch.full((n,), -1, dtype=torch.long) if marker_class is None else marker_class


def build_bias_tensors(
    clean: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    injector: BiasInjector,
    train_strength: float,
    seed: int,
) -> dict[str, torch.Tensor]:
    """Inject markers into clean ``{"train"|"val"|"test": (images, masks, labels)}`` arrays.

    ``train`` and ``val`` become biased splits of strength ``train_strength``; ``test``
    becomes the three test splits ``biased`` (strength 1), ``unbiased`` and ``deceiving``,
    all from the same test images. Each split draws from its own child of ``seed``.
    Returns flat ``"<split>/<field>"`` tensors (images, masks, labels, groups, boxes,
    marker_class) ready for :func:`benchmarks.data.cache.cached`.
    """
    out: dict[str, torch.Tensor] = {}
    plan = [("train", "train", "biased", train_strength), ("val", "val", "biased", train_strength)]
    plan += [(mode, "test", mode, 1.0) for mode in TEST_MODES]
    for i, (name, source, mode, strength) in enumerate(plan):
        images, masks, labels = clean[source]
        rng = np.random.default_rng(np.random.SeedSequence([seed, i]))
        split = injector.make_split(images, masks, labels, mode, rng, strength)
        out[f"{name}/images"] = torch.from_numpy(np.ascontiguousarray(split.images))
        out[f"{name}/masks"] = torch.from_numpy(np.ascontiguousarray(masks)).to(torch.uint8)
        out[f"{name}/labels"] = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        out[f"{name}/groups"] = torch.from_numpy(split.groups)
        out[f"{name}/boxes"] = torch.from_numpy(split.boxes)
        out[f"{name}/marker_class"] = torch.from_numpy(split.marker_class)
        out[f"{name}/unplaced"] = torch.tensor(split.unplaced)
    return out


def split_from_tensors(tensors: dict[str, torch.Tensor], name: str,
                       group_names: Sequence[str] = GROUP_NAMES) -> MarkedSplit:
    """The :class:`MarkedSplit` stored under ``"<name>/..."`` in ``tensors``."""
    return MarkedSplit(
        tensors[f"{name}/images"], tensors[f"{name}/labels"], tensors[f"{name}/masks"],
        tensors[f"{name}/groups"], group_names,
        marker_boxes=tensors.get(f"{name}/boxes"), marker_class=tensors.get(f"{name}/marker_class"),
    )


def bias_bundle(
    tensors: dict[str, torch.Tensor],
    checksum: str,
    class_names: Sequence[str],
    image_size: int,
    notes: dict | None = None,
) -> DataBundle:
    """The :class:`DataBundle` (train, val, biased / unbiased / deceiving tests) of tensors
    made by :func:`build_bias_tensors`. ``notes`` gain the measured share of marked images
    per split and the count of images that had no room for a marker."""
    splits = {name: split_from_tensors(tensors, name) for name in ("train", "val", *TEST_MODES)}
    share = {name: round(float((s.groups == GROUP_CLASS_MARKER).float().mean()), 4) for name, s in splits.items()}
    unplaced = {name: int(tensors[f"{name}/unplaced"]) for name in splits}
    return DataBundle(
        train=splits["train"],
        val=splits["val"],
        tests={mode: splits[mode] for mode in TEST_MODES},
        class_names=tuple(class_names),
        in_channels=int(tensors["train/images"].shape[1]),
        image_size=int(image_size),
        checksum=checksum,
        notes={**(notes or {}), "class_marker_share": share, "unplaced_markers": unplaced,
               "split_sizes": {name: len(s) for name, s in splits.items()}},
    )


def with_bias_strength(spec: ExperimentSpec, strength: float, name: str | None = None) -> ExperimentSpec:
    """A copy of a bias experiment (one whose profiles' data take ``bias_strength``, such as
    ``biased_mnist``) whose training and validation images carry their class's marker with
    share ``strength``; the test splits are unchanged. For bias-strength sweeps::

        specs = [with_bias_strength(spec, s) for s in (0.5, 0.8, 0.95, 1.0)]
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"bias strength must lie in [0, 1], got {strength}")
    profiles = {scale: replace(p, data={**p.data, "bias_strength": float(strength)})
                for scale, p in spec.profiles.items()}
    return replace(spec, name=name or f"{spec.name}@strength={strength:g}", profiles=profiles)
