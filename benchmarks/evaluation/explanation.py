"""Explanation (heatmap) metrics against a foreground mask, one function per metric.

In the spirit of Quantus' localisation metrics. Every function takes

* ``heatmaps``: relevance ``[N, C, H, W]`` or ``[N, 1, H, W]`` (numpy or torch); channels are
  summed to one relevance value per pixel, ``[N, H, W]``;
* ``masks``: foreground ``[N, 1, H, W]`` (or ``[N, H, W]``) of 0/1; a pixel is foreground when
  its mask value is > 0.5. Heatmaps and masks must share ``H, W``;

and returns one float per image, ``[N]``, NaN where the metric is undefined for that image.
Aggregate a split with ``np.nanmean`` and report how many images were NaN
(:func:`explanation_metrics` does both).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import ndimage

from benchmarks.evaluation.classification import to_numpy

__all__ = [
    "background_relevance_share",
    "explanation_metrics",
    "faithfulness",
    "pointing_game",
    "relevance_inside_mask",
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


def faithfulness(relevance_sums: Any, logits: Any) -> dict[str, float]:
    """Does a heatmap account for the logit it explains? Over images, with ``relevance_sums``
    ``[N]`` (each heatmap summed over channels and pixels) and the explained ``logits`` ``[N]``:

    * ``sum_over_logit``: the median of ``sum / logit`` (1 for a conserving explainer);
    * ``sum_logit_correlation``: Pearson r of the sums and the logits (NaN when either is constant);
    * ``absorbed_share``: ``sum |logit - sum| / sum |logit|``, the part of the logits that
      biases, stabilisers and gating absorbed instead of the pixels (0 for a conserving explainer);
    * ``faithful``: 1.0 when r and the absorbed share meet :data:`FAITHFULNESS_RULE`, else 0.0.
    """
    r = np.asarray(to_numpy(relevance_sums), dtype=np.float64).ravel()
    f = np.asarray(to_numpy(logits), dtype=np.float64).ravel()
    if r.shape != f.shape:
        raise ValueError(f"relevance sums {r.shape} and logits {f.shape} differ in length")
    ok = np.isfinite(r) & np.isfinite(f)
    r, f = r[ok], f[ok]
    if not len(r):
        return {"sum_over_logit": math.nan, "sum_logit_correlation": math.nan, "absorbed_share": math.nan,
                "faithful": math.nan}
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = float(np.median(r[f != 0] / f[f != 0])) if (f != 0).any() else math.nan
        corr = float(np.corrcoef(r, f)[0, 1]) if len(r) > 1 and r.std() > 0 and f.std() > 0 else math.nan
        unexplained = float(np.abs(f - r).sum() / np.abs(f).sum()) if np.abs(f).sum() > 0 else math.nan
    faithful = (not math.isnan(corr) and corr >= FAITHFUL_MIN_CORRELATION and not math.isnan(unexplained)
                and unexplained <= FAITHFUL_MAX_ABSORBED)
    return {"sum_over_logit": ratio, "sum_logit_correlation": corr, "absorbed_share": unexplained,
            "faithful": float(faithful)}


def explanation_metrics(heatmaps: Any, masks: Any, *, tolerance: int = 0) -> dict[str, float]:
    """All explanation metrics of a batch as a flat dict of NaN-ignoring means.

    Keys: ``relevance_inside_mask``, ``background_relevance_share``, ``pointing_game``, each with
    ``<key>_n`` (number of images where the metric was defined, i.e. not NaN).
    """
    out: dict[str, float] = {}
    per_image = {
        "relevance_inside_mask": relevance_inside_mask(heatmaps, masks),
        "background_relevance_share": background_relevance_share(heatmaps, masks),
        "pointing_game": pointing_game(heatmaps, masks, tolerance=tolerance),
    }
    for name, values in per_image.items():
        ok = ~np.isnan(values)
        out[name] = float(values[ok].mean()) if ok.any() else float("nan")
        out[f"{name}_n"] = float(ok.sum())
    return out
