"""Explanation (heatmap) measures, listed once in :data:`MEASURES`, as the classification
catalogue lists its metrics (:mod:`~benchmarks.evaluation.catalogue`) and the behaviour tests
their measures (:mod:`~benchmarks.evaluation.behaviour`).

A measure reads :class:`Explained`: one explainer's heatmaps of a set of images, the images'
foreground masks and the logits the heatmaps explain. It is either

* **per image** (Quantus' localisation metrics): one float per image, ``[N]``, NaN where it is
  undefined for that image; a run records the NaN-ignoring mean over its explained images, and
  the values themselves where the entry says ``keep_per_image``;
* **per set**: one float over the images, from each heatmap's relevance sum and the logit it
  explains (does the heatmap account for the output it explains?).

The recorder (:func:`scores`) and the report read this list: every entry is a key of
``explanations.json``, and the report shows it in the table its entry names. Adding a measure is
one entry here plus its known answer in ``tests/evaluation/test_explanation_metrics.py``.

The per-image functions take ``heatmaps``: relevance ``[N, C, H, W]`` (numpy or torch), whose
channels are summed to one relevance value per pixel, and ``masks``: foreground ``[N, 1, H, W]``
(or ``[N, H, W]``) of 0/1, a pixel being foreground when its mask value is > 0.5; heatmaps and
masks share ``H, W``. The per-set functions take each heatmap's relevance sum and the logit it
explains, ``[N]`` each; images where either is not finite are left out.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import numpy as np
from scipy import ndimage

from benchmarks.evaluation.classification import to_numpy

__all__ = [
    "MEASURES",
    "Explained",
    "Measure",
    "absorbed_share",
    "background_relevance_share",
    "faithful",
    "measure",
    "pointing_game",
    "relevance_inside_mask",
    "scores",
    "shown_in",
    "sum_logit_correlation",
    "sum_over_logit",
]


def _prepare(heatmaps: Any, masks: Any) -> tuple[np.ndarray, np.ndarray]:
    r = to_numpy(heatmaps).astype(np.float64)
    m = to_numpy(masks)
    if r.ndim != 4:
        raise ValueError(f"heatmaps must be [N, C, H, W], got shape {r.shape}")
    if m.ndim == 4:
        if m.shape[1] != 1:
            raise ValueError(f"masks must be [N, 1, H, W], got shape {m.shape}")
        m = m[:, 0]
    if m.ndim != 3:
        raise ValueError(f"masks must be [N, 1, H, W], got shape {m.shape}")
    r = r.sum(axis=1)
    if r.shape != m.shape:
        raise ValueError(f"heatmaps {r.shape} and masks {m.shape} differ in N, H or W")
    return r, m > 0.5


def relevance_inside_mask(heatmaps: Any, masks: Any) -> np.ndarray:
    """Share of the *positive* relevance that falls inside the foreground, per image.

    ``sum(max(R, 0) * mask) / sum(max(R, 0))`` in ``[0, 1]`` (1: all positive evidence on the
    object; 0: all on the background). NaN for an image with no positive relevance.
    """
    r, m = _prepare(heatmaps, masks)
    pos = np.clip(r, 0.0, None)
    total = pos.sum(axis=(1, 2))
    inside = (pos * m).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, inside / total, np.nan)


def background_relevance_share(heatmaps: Any, masks: Any) -> np.ndarray:
    """Share of the *absolute* relevance that falls on the background, per image.

    ``sum(|R| * (1 - mask)) / sum(|R|)`` in ``[0, 1]``, the quantity ISNet's loss drives to 0.
    NaN for an all-zero heatmap.
    """
    r, m = _prepare(heatmaps, masks)
    a = np.abs(r)
    total = a.sum(axis=(1, 2))
    outside = (a * ~m).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, outside / total, np.nan)


def pointing_game(heatmaps: Any, masks: Any, tolerance: int = 0) -> np.ndarray:
    """Pointing game: does the pixel of maximal relevance lie on the foreground? Per image.

    ``tolerance`` (pixels) first dilates the mask by that many pixels in every direction
    (a square neighbourhood: a hit within Chebyshev distance ``tolerance`` of the object counts;
    the original pointing game used a 15 px tolerance at full resolution).

    The maximum is taken over the signed relevance. When several pixels share the maximum the
    result is the fraction of them inside the (dilated) mask, i.e. the expected hit rate under
    a uniformly random tie-break; a constant heatmap therefore scores the mask's area fraction,
    the chance level. 1.0 / 0.0 otherwise. NaN for an empty mask (nothing to point at).
    """
    if tolerance < 0:
        raise ValueError("tolerance must be >= 0")
    r, m = _prepare(heatmaps, masks)
    if tolerance > 0:
        square = np.ones((1, 2 * tolerance + 1, 2 * tolerance + 1), dtype=bool)
        m = ndimage.binary_dilation(m, structure=square)
    peak = r == r.max(axis=(1, 2), keepdims=True)
    n_peak = peak.sum(axis=(1, 2))
    hits = (peak & m).sum(axis=(1, 2))
    empty = ~m.any(axis=(1, 2))
    return np.where(empty, np.nan, hits / np.maximum(n_peak, 1))


#: a heatmap accounts for the logit it explains when its sums follow the logits across images
#: (Pearson r at least this) ...
FAITHFUL_MIN_CORRELATION = 0.5
#: ... and the part of the logits its sums leave out is at most this share of them
FAITHFUL_MAX_ABSORBED = 0.5
FAITHFULNESS_RULE = (
    f"a heatmap accounts for its model's output when, over the explained images, its relevance sums correlate with "
    f"the logits they explain at Pearson r ≥ {FAITHFUL_MIN_CORRELATION} and leave out at most "
    f"{FAITHFUL_MAX_ABSORBED:.0%} of them (the absorbed share Σ|logit − Σ relevance| / Σ|logit|, what biases, "
    "stabilisers and gating absorbed)"
)


def _finite_pairs(relevance_sums: Any, logits: Any) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(to_numpy(relevance_sums), dtype=np.float64).ravel()
    f = np.asarray(to_numpy(logits), dtype=np.float64).ravel()
    if r.shape != f.shape:
        raise ValueError(f"relevance sums {r.shape} and logits {f.shape} differ in length")
    ok = np.isfinite(r) & np.isfinite(f)
    return r[ok], f[ok]


def sum_over_logit(relevance_sums: Any, logits: Any) -> float:
    """The median over images of ``sum / logit`` (1 for a conserving explainer); NaN when every
    logit is 0."""
    r, f = _finite_pairs(relevance_sums, logits)
    nonzero = f != 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.median(r[nonzero] / f[nonzero])) if nonzero.any() else math.nan


def sum_logit_correlation(relevance_sums: Any, logits: Any) -> float:
    """Pearson r of the relevance sums and the logits over images; NaN when either is constant."""
    r, f = _finite_pairs(relevance_sums, logits)
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.corrcoef(r, f)[0, 1]) if len(r) > 1 and r.std() > 0 and f.std() > 0 else math.nan


def absorbed_share(relevance_sums: Any, logits: Any) -> float:
    """``sum |logit - sum| / sum |logit|``: the part of the logits that biases, stabilisers and
    gating absorbed instead of the pixels (0 for a conserving explainer); NaN when every logit is 0."""
    r, f = _finite_pairs(relevance_sums, logits)
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.abs(f - r).sum() / np.abs(f).sum()) if np.abs(f).sum() > 0 else math.nan


def meets_faithfulness_rule(correlation: float, absorbed: float) -> bool:
    """:data:`FAITHFULNESS_RULE` on a correlation and an absorbed share (NaN fails it)."""
    return bool(np.isfinite(correlation) and correlation >= FAITHFUL_MIN_CORRELATION and np.isfinite(absorbed)
                and absorbed <= FAITHFUL_MAX_ABSORBED)


def faithful(relevance_sums: Any, logits: Any) -> float:
    """1.0 when the heatmaps meet :data:`FAITHFULNESS_RULE` over these images, else 0.0; NaN
    when no image has a finite sum and logit."""
    if not len(_finite_pairs(relevance_sums, logits)[0]):
        return math.nan
    return float(meets_faithfulness_rule(sum_logit_correlation(relevance_sums, logits),
                                         absorbed_share(relevance_sums, logits)))


# --------------------------------------------------------------------------- the catalogue
class Explained:
    """What the measures read: one explainer's ``heatmaps`` ``[N, C, H, W]`` of a set of images,
    the images' foreground ``masks`` ``[N, 1, H, W]`` and the ``logits`` ``[N]`` the heatmaps
    explain (the true class's, before the softmax)."""

    def __init__(self, heatmaps: Any, masks: Any, logits: Any):
        self.heatmaps = heatmaps
        self.masks = masks
        self.logits = logits

    @cached_property
    def relevance_sums(self) -> np.ndarray:
        """Each heatmap summed over channels and pixels, ``[N]``, in the heatmaps' own dtype."""
        heatmaps = to_numpy(self.heatmaps)
        return heatmaps.reshape(len(heatmaps), -1).sum(1)


Over = Literal["image", "set"]
#: the report's tables of explanation measures: ``explanations`` gives a measure a table of its
#: own per experiment (method x explainer x split); ``faithfulness`` a column of the table that
#: sits beside each method's LRP background share
TableName = Literal["explanations", "faithfulness"]


@dataclass(frozen=True)
class Measure:
    """One explanation measure: its key in records and tables, its name (a heading) and short
    name (a column), whether it is per image or per set of images, how it is computed, which
    way is better (``None``: neither, e.g. a ratio whose ideal is 1), whether it is shown as a
    percentage (one decimal; otherwise two), the table of the report that shows it (``None``:
    recorded only), whether a run keeps its per-image values, and a description for captions."""

    key: str
    name: str
    short: str
    over: Over
    compute: Callable[[Explained], np.ndarray | float]
    higher_is_better: bool | None
    percent: bool
    table: TableName | None
    description: str
    keep_per_image: bool = False


def _of_heatmaps(function: Callable[[Any, Any], np.ndarray]) -> Callable[[Explained], np.ndarray]:
    def compute(explained: Explained) -> np.ndarray:
        return function(explained.heatmaps, explained.masks)

    compute.__name__ = function.__name__
    return compute


def _of_sums(function: Callable[[Any, Any], float]) -> Callable[[Explained], float]:
    def compute(explained: Explained) -> float:
        return function(explained.relevance_sums, explained.logits)

    compute.__name__ = function.__name__
    return compute


#: every explanation measure, in the order of a record's keys
MEASURES: tuple[Measure, ...] = (
    Measure("relevance_inside_mask", "Share of positive relevance inside the foreground mask", "inside mask",
            "image", _of_heatmaps(relevance_inside_mask), True, True, "explanations",
            "share of the positive relevance inside the foreground mask", keep_per_image=True),
    Measure("pointing_game", "Pointing game (relevance peak on the foreground)", "pointing game", "image",
            _of_heatmaps(pointing_game), True, True, "explanations",
            "whether the pixel of maximal relevance lies on the foreground"),
    Measure("background_relevance_share", "Share of absolute relevance on the background", "background share",
            "image", _of_heatmaps(background_relevance_share), False, True, "faithfulness",
            "share of the absolute relevance outside the foreground mask (what ISNet's loss drives down)",
            keep_per_image=True),
    Measure("sum_over_logit", "Relevance sum over the explained logit", "Σ R / logit", "set",
            _of_sums(sum_over_logit), None, False, "faithfulness",
            "median over images of the heatmap's sum over its logit (1 for a conserving explainer)"),
    Measure("sum_logit_correlation", "Correlation of relevance sums and logits", "r", "set",
            _of_sums(sum_logit_correlation), True, False, "faithfulness",
            "Pearson correlation of the sums and the logits over images"),
    Measure("absorbed_share", "Share of the logits absorbed outside the pixels", "absorbed", "set",
            _of_sums(absorbed_share), False, True, "faithfulness",
            "Σ|logit − Σ R| / Σ|logit|, the part of the logits that biases, stabilisers and gating absorbed "
            "instead of the pixels"),
    Measure("faithful", "Faithful heatmaps", "faithful", "set", _of_sums(faithful), True, False, None,
            "1 when the heatmaps meet the faithfulness rule over the run's explained images (the report applies "
            "the rule to the seed means instead)"),
)


def measure(key: str) -> Measure:
    """The catalogue entry ``key``."""
    for m in MEASURES:
        if m.key == key:
            return m
    raise KeyError(f"unknown explanation measure {key!r}; known: {[m.key for m in MEASURES]}")


def shown_in(table: TableName | None = None) -> tuple[Measure, ...]:
    """The measures the report shows, in catalogue order: those of ``table``, or of any table."""
    return tuple(m for m in MEASURES if m.table is not None and (table is None or m.table == table))


def scores(explained: Explained) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Every measure of :data:`MEASURES` on one explainer's heatmaps: the value a run records
    per measure (a per-image measure's NaN-ignoring mean over the images), and the per-image
    values of the measures that keep them."""
    values: dict[str, float] = {}
    kept: dict[str, np.ndarray] = {}
    for m in MEASURES:
        result = m.compute(explained)
        if m.over == "set":
            values[m.key] = float(result)
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: e.g. no positive relevance anywhere
            values[m.key] = float(np.nanmean(result))
        if m.keep_per_image:
            kept[m.key] = np.asarray(result)
    return values, kept
