"""What a model does when an image's background changes: per-image measures of its
predictions on a counterfactual copy of a test split, against its predictions on the
intact images (explainer-free).

Every function takes aligned ``[N]`` integer arrays and returns one float per image,
``[N]``, NaN where the measure is undefined for that image; aggregate with ``np.nanmean``.
:data:`MEASURES` lists them once, as the classification catalogue lists its metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def correct(pred: np.ndarray, labels: np.ndarray, **_: np.ndarray) -> np.ndarray:
    """1 where the prediction on the changed image is the true class."""
    return (np.asarray(pred) == np.asarray(labels)).astype(np.float64)


def flipped(pred: np.ndarray, intact: np.ndarray, **_: np.ndarray) -> np.ndarray:
    """1 where the prediction on the changed image differs from the one on the intact image."""
    return (np.asarray(pred) != np.asarray(intact)).astype(np.float64)


def follows_background(pred: np.ndarray, labels: np.ndarray, background_class: np.ndarray,
                       **_: np.ndarray) -> np.ndarray:
    """1 where the prediction is the class the new background points to, 0 where it is not;
    NaN where the background points to no class or to the image's own class (there following
    the background and reading the foreground cannot be told apart)."""
    pred, labels, bg = (np.asarray(a) for a in (pred, labels, background_class))
    out = (pred == bg).astype(np.float64)
    out[(bg < 0) | (bg == labels)] = np.nan
    return out


@dataclass(frozen=True)
class Measure:
    """One behaviour measure: its key in records and tables, its name, whether lower is
    better (a model that ignores the background has low flip and follow rates), and its
    per-image function."""

    key: str
    name: str
    lower_is_better: bool
    per_image: Callable[..., np.ndarray]
    description: str


MEASURES: tuple[Measure, ...] = (
    Measure("accuracy", "accuracy", False, correct, "accuracy on the changed images"),
    Measure("flip_rate", "flip rate", True, flipped,
            "share of images whose predicted class changes when the background changes"),
    Measure("follows_background", "follows background", True, follows_background,
            "share of the images whose new background points to another class than their own (a class marker, "
            "or a hospital's majority class in training) that are assigned that class"),
)


def measure(key: str) -> Measure:
    for m in MEASURES:
        if m.key == key:
            return m
    raise KeyError(f"unknown behaviour measure {key!r}; known: {[m.key for m in MEASURES]}")


def per_image(pred: np.ndarray, intact: np.ndarray, labels: np.ndarray,
              background_class: np.ndarray) -> dict[str, np.ndarray]:
    """Every measure of :data:`MEASURES` for one counterfactual set, per image."""
    args = {"pred": pred, "intact": intact, "labels": labels, "background_class": background_class}
    return {m.key: m.per_image(**args) for m in MEASURES}


def summary(values: dict[str, np.ndarray]) -> dict[str, float]:
    """NaN-ignoring means of :func:`per_image`'s arrays, with ``<key>_n`` (images where defined)."""
    out: dict[str, float] = {}
    for key, v in values.items():
        ok = ~np.isnan(v)
        out[key] = float(v[ok].mean()) if ok.any() else float("nan")
        out[f"{key}_n"] = int(ok.sum())
    return out
