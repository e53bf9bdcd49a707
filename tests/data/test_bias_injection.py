"""Bias injection: markers avoid the mask, deceiving markers are never the true class's,
the bias strength is exact, and everything is deterministic by seed."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.data.bias import (
    GROUP_CLASS_MARKER,
    GROUP_NO_MARKER,
    GROUP_OTHER_MARKER,
    BiasConfig,
    BiasInjector,
    make_splits,
)
from benchmarks.data.markers import BANDS, SHAPES, dilate, free_positions, place_stamps, shape_stamp, text_stamp


def _blobs(n: int = 60, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random elliptic foreground blobs of varying size and position, 10 classes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    cy, cx = rng.uniform(10, 22, (2, n, 1, 1))
    ry, rx = rng.uniform(4, 11, (2, n, 1, 1))
    masks = (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1).astype(np.uint8)[:, None]
    images = (masks * rng.integers(120, 255, masks.shape)).astype(np.uint8)
    labels = rng.integers(0, 10, n)
    return images, masks, labels


def test_every_shape_is_distinct_and_nonempty() -> None:
    stamps = {name: shape_stamp(name, 10) for name in SHAPES}
    assert all(s.any() and s.shape == (10, 10) for s in stamps.values())
    flat = {name: s.tobytes() for name, s in stamps.items()}
    assert len(set(flat.values())) == len(SHAPES)
    assert text_stamp("L", 7).shape == (7, 5)


@pytest.mark.parametrize("kind", ["shape", "text", "band"])
def test_markers_never_overlap_the_dilated_mask(kind: str) -> None:
    images, masks, labels = _blobs()
    config = BiasConfig(num_classes=10, kind=kind, size=3 if kind == "band" else 8, margin=1)
    injector = BiasInjector(config)
    for mode, split in make_splits(injector, images, masks, labels, ("biased", "deceiving"), seed=3).items():
        forbidden = dilate(masks, 1)
        changed = (split.images != images)[:, 0]
        assert not (changed & forbidden).any(), f"{kind}/{mode}: a marker pixel touches the mask"
        placed = split.marker_class >= 0
        assert changed[placed].reshape(placed.sum(), -1).any(axis=1).all(), "a placed marker left no pixel"
        assert not changed[~placed].any()


def test_deceiving_never_carries_the_true_class_marker() -> None:
    images, masks, labels = _blobs(200)
    split = BiasInjector(BiasConfig(num_classes=10)).make_split(images, masks, labels, "deceiving",
                                                                np.random.default_rng(0))
    placed = split.marker_class >= 0
    assert placed.mean() > 0.9
    assert (split.marker_class[placed] != labels[placed]).all()
    assert (split.groups[placed] == GROUP_OTHER_MARKER).all()
    # every other class is used: the deceiving marker is drawn among all other classes
    assert len(np.unique(split.marker_class[placed])) == 10


@pytest.mark.parametrize("strength", [0.0, 0.3, 0.75, 1.0])
def test_bias_strength_is_the_share_of_marked_images(strength: float) -> None:
    images, masks, labels = _blobs(80)
    injector = BiasInjector(BiasConfig(num_classes=10, size=6, strength=strength))
    split = injector.make_split(images, masks, labels, "biased", np.random.default_rng(1))
    assert split.unplaced == 0
    assert (split.groups == GROUP_CLASS_MARKER).sum() == round(strength * 80)
    marked = split.marker_class >= 0
    assert (split.marker_class[marked] == labels[marked]).all()
    assert (split.groups[~marked] == GROUP_NO_MARKER).all()


def test_unbiased_split_is_untouched() -> None:
    images, masks, labels = _blobs(20)
    split = BiasInjector(BiasConfig(num_classes=10)).make_split(images, masks, labels, "unbiased",
                                                                np.random.default_rng(0))
    assert np.array_equal(split.images, images)
    assert (split.groups == GROUP_NO_MARKER).all()


def test_deterministic_by_seed() -> None:
    images, masks, labels = _blobs(40)
    injector = BiasInjector(BiasConfig(num_classes=10, strength=0.5))
    a = make_splits(injector, images, masks, labels, ("biased", "deceiving"), seed=7)
    b = make_splits(injector, images, masks, labels, ("biased", "deceiving"), seed=7)
    c = make_splits(injector, images, masks, labels, ("biased", "deceiving"), seed=8)
    for mode in a:
        assert np.array_equal(a[mode].images, b[mode].images)
        assert np.array_equal(a[mode].boxes, b[mode].boxes)
    assert not np.array_equal(a["biased"].images, c["biased"].images)


def test_no_room_shrinks_then_reports_unplaced() -> None:
    images = np.zeros((2, 1, 16, 16), dtype=np.uint8)
    masks = np.zeros_like(images)
    masks[0, 0, 2:14, 2:14] = 1  # leaves a 2-px ring, 1 px after the margin: nothing fits
    masks[1, 0, 6:16, 6:16] = 1  # the top-left corner stays free: a shrunken marker fits
    split = BiasInjector(BiasConfig(num_classes=2, size=8, min_size=3)).inject(
        images, masks, np.array([0, 1]), np.random.default_rng(0))
    assert split.unplaced == 1 and split.marker_class[0] == -1
    assert 3 <= split.sizes[1] < 8 and split.marker_class[1] == 1


def test_free_positions_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    forbidden = rng.random((3, 12, 12)) < 0.05
    fast = free_positions(forbidden, 4, 3)
    for n in range(3):
        for y in range(12 - 4 + 1):
            for x in range(12 - 3 + 1):
                assert fast[n, y, x] == (not forbidden[n, y:y + 4, x:x + 3].any())


def test_corner_placement_prefers_its_corner() -> None:
    forbidden = np.zeros((50, 32, 32), dtype=bool)
    pos = place_stamps(forbidden, 6, 6, np.random.default_rng(0), placement="br")
    assert (pos >= 20).all()


def test_bad_configs_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown marker kind"):
        BiasConfig(num_classes=2, kind="sticker")
    with pytest.raises(ValueError, match="strength"):
        BiasConfig(num_classes=2, strength=1.5)
    with pytest.raises(ValueError, match="at most"):
        BiasConfig(num_classes=len(BANDS) + 1, kind="band")
