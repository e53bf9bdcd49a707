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

Everything is deterministic given a :class:`numpy.random.Generator`; the markers' stamps and
their placement live in :mod:`benchmarks.data.markers`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from benchmarks.api import Counterfactual, DataBundle, ExperimentSpec, TensorSplit
from benchmarks.data.markers import KINDS, band_stamp, dilate, draw_stamps, place_stamps, shape_stamp, text_stamp

# --------------------------------------------------------------------------- split groups
GROUP_NO_MARKER, GROUP_CLASS_MARKER, GROUP_OTHER_MARKER = 0, 1, 2
GROUP_NAMES = ("no_marker", "class_marker", "other_class_marker")
MODES = ("biased", "unbiased", "deceiving")

class single_thread:
    """Run torch on one thread inside the block: data generation is many small tensor
    operations, which intra-op threads slow down (badly so on a busy machine)."""

    def __enter__(self) -> None:
        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.threads)


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
    for split in splits.values():  # a class marker points to its class
        split.background_class = split.marker_class.clone()
    share = {name: round(float((s.groups == GROUP_CLASS_MARKER).float().mean()), 4) for name, s in splits.items()}
    unplaced = {name: int(tensors[f"{name}/unplaced"]) for name in splits}
    biased = splits["biased"]
    rerendered = [Counterfactual("rerendered", mode, splits[mode].images, splits[mode].background_class,
                                 torch.full((len(biased),), -1, dtype=torch.long))
                  for mode in TEST_MODES if mode != "biased"]
    return DataBundle(
        train=splits["train"],
        val=splits["val"],
        tests={mode: splits[mode] for mode in TEST_MODES},
        counterfactuals={"biased": rerendered},  # the same digits with the marker removed / of another class
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
