"""Classification metrics for one test split.

Inputs are integer labels ``[N]`` and per-class scores ``[N, K]`` (logits or probabilities;
see :func:`to_probabilities`), as stored in a run record's predictions. The point metrics are
scikit-learn's; this module only fixes the conventions that a benchmark table needs:

* every metric is computed over the *full* label set ``0..K-1`` given by ``class_names``, so a
  class that is absent from a split still has a column;
* precision, recall and F1 of a class are undefined (0/0) when the class is neither present nor
  predicted; such values are NaN and are left out of the macro averages (scikit-learn's
  ``zero_division=np.nan``), instead of counting as 0;
* the macro one-vs-rest AUC is NaN, with a stated reason, when any class is absent or is the
  only class present (its OvR AUC is undefined); binary AUC scores the positive class (index 1).

The batched helpers (:func:`batched_confusion_matrix`, :func:`scores_from_confusion`,
:func:`resampled_macro_auc`) compute the same scores for many resamples of a split at once, so
that the bootstrap can score thousands of resamples without a Python loop. Which metrics the
report shows, and how each is computed from these helpers, is :mod:`~benchmarks.evaluation.catalogue`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.special import softmax
from sklearn import metrics as skm

ScoreKind = Literal["auto", "probabilities", "logits"]
NAN = float("nan")

__all__ = [
    "AUCResult",
    "batched_confusion_matrix",
    "batched_metric",
    "confusion_matrix",
    "integer_labels",
    "macro_ovr_auc",
    "predicted_labels",
    "resampled_macro_auc",
    "scores_from_confusion",
    "to_numpy",
    "to_probabilities",
]


def to_numpy(x: Any) -> np.ndarray:
    """``np.asarray`` that also accepts torch tensors (detached and moved to the CPU)."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def integer_labels(labels: Any) -> np.ndarray:
    """Labels ``[N]`` as an integer array (torch tensors and whole-valued floats accepted)."""
    y = to_numpy(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D [N], got shape {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError("labels must be integers")
        y = y.astype(np.int64)
    return y


def to_probabilities(scores: Any, kind: ScoreKind = "auto") -> np.ndarray:
    """Class probabilities ``[N, K]`` from logits or probabilities.

    ``kind="auto"`` takes ``scores`` as probabilities when every value lies in ``[0, 1]`` and
    every row sums to 1 (within 1e-4), and as logits (softmax applied) otherwise; pass ``kind``
    explicitly when the scores could be either. A 1-D ``[N]`` input is the positive-class
    probability of a binary problem and becomes ``[1 - p, p]``.
    """
    s = to_numpy(scores).astype(np.float64)
    if s.ndim == 1:
        if kind == "logits":
            raise ValueError("1-D scores must be positive-class probabilities")
        if np.any((s < 0) | (s > 1)):
            raise ValueError("1-D scores must be probabilities in [0, 1]")
        return np.stack([1.0 - s, s], axis=1)
    if s.ndim != 2:
        raise ValueError(f"scores must be [N, K], got shape {s.shape}")
    if kind == "auto":
        is_prob = bool(s.size == 0 or (np.all((s >= 0) & (s <= 1)) and np.allclose(s.sum(axis=1), 1.0, atol=1e-4)))
        kind = "probabilities" if is_prob else "logits"
    if kind == "logits":
        return softmax(s, axis=1)
    if kind != "probabilities":
        raise ValueError(f"unknown score kind {kind!r}")
    return s


def predicted_labels(scores: Any) -> np.ndarray:
    """Arg-max class ``[N]`` of ``[N, K]`` scores (logits and probabilities agree); 1-D scores
    are binary positive-class probabilities, thresholded at 0.5."""
    s = to_numpy(scores)
    if s.ndim == 1:
        return (s >= 0.5).astype(np.int64)
    return np.argmax(s, axis=1).astype(np.int64)


def confusion_matrix(
    labels: Any,
    scores_or_preds: Any,
    num_classes: int | None = None,
    *,
    normalize: Literal["true", "pred", "all"] | None = None,
) -> np.ndarray:
    """Confusion matrix ``[K, K]``: rows are true classes, columns predicted classes.

    ``scores_or_preds`` is either predicted labels ``[N]`` (integers) or scores ``[N, K]``
    (arg-max taken). ``num_classes`` defaults to ``K`` of the scores, else to
    ``max(label, prediction) + 1``. ``normalize`` is scikit-learn's (rows, columns or total);
    a row of an absent class normalised by ``"true"`` is all zeros.
    """
    y = integer_labels(labels)
    p = to_numpy(scores_or_preds)
    if p.ndim == 2:
        num_classes = p.shape[1] if num_classes is None else num_classes
        p = predicted_labels(p)
    else:
        p = integer_labels(p)
    if num_classes is None:
        num_classes = int(max(y.max(initial=-1), p.max(initial=-1))) + 1
    return skm.confusion_matrix(y, p, labels=np.arange(num_classes), normalize=normalize)


# --------------------------------------------------------------------------------- AUC
@dataclass(frozen=True)
class AUCResult:
    """Macro one-vs-rest ROC AUC with its per-class values.

    ``value`` is NaN when any per-class AUC is undefined; ``reason`` then says why ("" when
    defined). For two classes ``value`` is the AUC of the positive class (index 1) and
    ``per_class`` holds that same value for both classes.
    """

    value: float
    per_class: tuple[float, ...]
    reason: str = ""


def macro_ovr_auc(labels: Any, probs: Any, class_names: Sequence[str] | None = None) -> AUCResult:
    """Macro-averaged one-vs-rest ROC AUC (unweighted mean of the per-class AUCs).

    ``probs`` are ``[N, K]`` scores (logits are converted to probabilities by softmax first, so
    the result matches ``sklearn.metrics.roc_auc_score(multi_class="ovr", average="macro")``).
    """
    y = integer_labels(labels)
    p = to_probabilities(probs)
    k = p.shape[1]
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"{len(names)} class names for {k} score columns")
    counts = np.bincount(y, minlength=k) if y.size else np.zeros(k, dtype=int)
    if y.size and (y.min() < 0 or y.max() >= k):
        raise ValueError(f"labels outside 0..{k - 1}")
    if k == 2:
        if counts.min() == 0:
            absent = names[int(np.argmin(counts))]
            return AUCResult(NAN, (NAN,) * 2, f"class {absent!r} absent: AUC undefined")
        auc = float(skm.roc_auc_score(y == 1, p[:, 1]))
        return AUCResult(auc, (auc, auc))
    per_class: list[float] = []
    problems: list[str] = []
    for c in range(k):
        pos = y == c
        if counts[c] == 0:
            problems.append(f"class {names[c]!r} absent")
            per_class.append(NAN)
        elif counts[c] == y.size:
            problems.append(f"only class {names[c]!r} present")
            per_class.append(NAN)
        else:
            per_class.append(float(skm.roc_auc_score(pos, p[:, c])))
    if problems:
        reason = "; ".join(problems) + ": one-vs-rest AUC undefined for that class"
        return AUCResult(NAN, tuple(per_class), reason)
    return AUCResult(float(np.mean(per_class)), tuple(per_class))


def _nanmean(x: np.ndarray, axis: int | None = None) -> Any:
    x = np.asarray(x, dtype=np.float64)
    finite = ~np.isnan(x)
    count = finite.sum(axis=axis)
    total = np.where(finite, x, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    return float(mean) if np.ndim(mean) == 0 else mean


# ------------------------------------------------------------------ batched (vectorised)
def batched_confusion_matrix(labels: Any, preds: Any, num_classes: int) -> np.ndarray:
    """Confusion matrices ``[B, K, K]`` of ``B`` label / prediction vectors ``[B, N]`` at once
    (one ``np.bincount``). Rows are true classes."""
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(preds, dtype=np.int64)
    if y.shape != p.shape or y.ndim != 2:
        raise ValueError(f"labels and preds must both be [B, N], got {y.shape} and {p.shape}")
    k = int(num_classes)
    b = y.shape[0]
    flat = (np.arange(b, dtype=np.int64)[:, None] * k + y) * k + p
    return np.bincount(flat.ravel(), minlength=b * k * k).reshape(b, k, k)


def scores_from_confusion(cm: Any) -> dict[str, np.ndarray]:
    """Accuracy, balanced accuracy and macro precision / recall / F1 from confusion matrices
    ``[..., K, K]``, with the conventions above (undefined per-class
    values are NaN and left out of the macro mean). Returns arrays of shape ``[...]``."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    true_n = cm.sum(axis=-1)
    pred_n = cm.sum(axis=-2)
    total = true_n.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(pred_n > 0, tp / pred_n, np.nan)
        recall = np.where(true_n > 0, tp / true_n, np.nan)
        denom = true_n + pred_n
        f1 = np.where(denom > 0, 2 * tp / denom, np.nan)
        accuracy = np.where(total > 0, tp.sum(axis=-1) / total, np.nan)
    recall_macro = _nanmean(recall, axis=-1)
    return {
        "accuracy": accuracy,
        "balanced_accuracy": recall_macro,
        "precision_macro": _nanmean(precision, axis=-1),
        "recall_macro": recall_macro,
        "f1_macro": _nanmean(f1, axis=-1),
    }


def batched_metric(name: str, num_classes: int) -> Any:
    """A vectorised metric for :func:`benchmarks.stats.bootstrap_ci` (``vectorized=True``):
    ``fn(labels [B, N], preds [B, N]) -> [B]`` for ``name`` in ``accuracy``,
    ``balanced_accuracy``, ``precision_macro``, ``recall_macro``, ``f1_macro``. ``preds`` are
    predicted labels (use :func:`predicted_labels` on the scores first)."""
    valid = ("accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro")
    if name not in valid:
        raise ValueError(f"unknown batched metric {name!r}; choose from {valid}")

    def fn(labels: Any, preds: Any) -> np.ndarray:
        return scores_from_confusion(batched_confusion_matrix(labels, preds, num_classes))[name]

    fn.__name__ = f"{name}_batched"
    return fn


def resampled_macro_auc(labels: Any, probs: Any, indices: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Macro one-vs-rest ROC AUC (as :func:`macro_ovr_auc`: the positive class for two classes)
    of every bootstrap resample ``indices [B, N]``, without sorting each resample: a resample is
    a multiset of the original images, so its AUC is the Mann-Whitney statistic with each image
    weighted by how often it was drawn. NaN where a class is absent or alone (the AUC is
    undefined)."""
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(probs, dtype=np.float64)
    n, k = p.shape
    counts = np.bincount(y, minlength=k)
    classes = [1] if k == 2 else list(range(k))
    out = np.full(len(indices), NAN)
    if (k == 2 and counts.min() == 0) or any(counts[c] in (0, n) for c in classes):
        return out
    ranked = [np.unique(p[:, c], return_inverse=True) for c in classes]
    for start in range(0, len(indices), chunk):
        sub = indices[start : start + chunk]
        b = len(sub)
        rows = np.arange(b)[:, None]
        weights = np.bincount((rows * n + sub).ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
        total = np.zeros(b)
        for c, (values, inverse) in zip(classes, ranked, strict=True):
            pos = y == c
            wp = _weights_per_value(weights, inverse, pos, len(values))
            wn = _weights_per_value(weights, inverse, ~pos, len(values))
            below = np.cumsum(wn, axis=1) - wn
            with np.errstate(invalid="ignore", divide="ignore"):
                total += (wp * (below + 0.5 * wn)).sum(1) / (wp.sum(1) * wn.sum(1))
        out[start : start + b] = total / len(classes)
    return out


def _weights_per_value(weights: np.ndarray, inverse: np.ndarray, mask: np.ndarray, u: int) -> np.ndarray:
    """``[B, U]``: per resample, how many drawn images of ``mask`` have each distinct score."""
    b = weights.shape[0]
    flat = (np.arange(b)[:, None] * u + inverse[mask][None, :]).ravel()
    return np.bincount(flat, weights=weights[:, mask].ravel(), minlength=b * u).reshape(b, u)
