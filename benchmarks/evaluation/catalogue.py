"""The metric catalogue: one record per classification metric of a test split.

A :class:`Metric` says what the metric is called (as a heading and inside a sentence), how it
is computed from one run's predictions, whether the report's bootstrap resamples it, which way
is better and how it is shown. Every report module reads this catalogue: ``tables/tidy.csv`` has
a column per entry, and every entry that the bootstrap resamples gets a table per experiment
(mean over seeds, t-interval over seeds, bootstrap interval over test images). Adding a metric
is one entry in :data:`METRICS` plus its known-answer test.

A metric is computed on :class:`Scores`: one run's labels and scores on one split, seen either
as tested (one value) or through bootstrap resamples of its images (one value per resample), so
that the point value and the bootstrap distribution come from the same function.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from sklearn import metrics as skm

from benchmarks.evaluation.classification import (
    ScoreKind,
    batched_confusion_matrix,
    integer_labels,
    macro_ovr_auc,
    resampled_macro_auc,
    scores_from_confusion,
    to_numpy,
    to_probabilities,
)

__all__ = ["METRICS", "PRIMARY", "Metric", "Scores", "classification_metrics", "metric", "metrics", "resampled"]

#: cap on resamples x images whose confusion matrices are counted at once
_CHUNK_ELEMENTS = 1 << 22


class Scores:
    """One run's predictions on one test split: labels ``[N]`` and class scores ``[N, K]``
    (``kind``: logits or probabilities), as tested (``indices=None``) or through bootstrap
    resamples ``indices [B, N]`` of the images. What metrics derive from them (predicted
    classes, probabilities, confusion matrices) is computed once and shared by every metric."""

    def __init__(self, labels: Any, scores: Any, indices: np.ndarray | None = None, kind: ScoreKind = "logits"):
        self.labels = integer_labels(labels)
        self.scores = np.asarray(to_numpy(scores), dtype=np.float64)
        if self.scores.ndim != 2 or len(self.scores) != len(self.labels):
            raise ValueError(f"scores must be [N, K] for {len(self.labels)} labels, got {self.scores.shape}")
        self.indices = indices
        self.kind = kind

    @property
    def num_classes(self) -> int:
        return self.scores.shape[1]

    @cached_property
    def predictions(self) -> np.ndarray:
        """Arg-max class per image ``[N]`` (logits and probabilities agree)."""
        return np.argmax(self.scores, 1)

    @cached_property
    def probabilities(self) -> np.ndarray:
        return to_probabilities(self.scores, self.kind)

    @cached_property
    def confusion(self) -> np.ndarray:
        """Confusion matrices ``[B, K, K]`` (``B = 1`` as tested), rows true classes."""
        k = self.num_classes
        if self.indices is None:
            return batched_confusion_matrix(self.labels[None], self.predictions[None], k)
        chunk = max(1, _CHUNK_ELEMENTS // max(1, len(self.labels)))
        parts = [batched_confusion_matrix(self.labels[sub], self.predictions[sub], k)
                 for sub in (self.indices[i : i + chunk] for i in range(0, len(self.indices), chunk))]
        return np.concatenate(parts) if parts else np.zeros((0, k, k), dtype=np.int64)

    @cached_property
    def confusion_scores(self) -> dict[str, np.ndarray]:
        """:func:`~benchmarks.evaluation.scores_from_confusion` of :attr:`confusion`."""
        return scores_from_confusion(self.confusion)


@dataclass(frozen=True)
class Metric:
    """One metric of the report.

    ``compute`` maps :class:`Scores` to one value per resample ``[B]`` (``[1]`` as tested).
    ``bootstrap``: resampled by the report's bootstrap over test images, and so given a table
    of its own per experiment; otherwise a column of ``tables/tidy.csv`` only. ``percent``:
    shown as a percentage with one decimal, otherwise as is with three decimals.
    """

    key: str
    name: str
    phrase: str
    compute: Callable[[Scores], np.ndarray]
    bootstrap: bool = True
    higher_is_better: bool = True
    percent: bool = True

    def point(self, labels: Any, scores: Any, kind: ScoreKind = "logits") -> float:
        """The metric of one run on one split, as tested."""
        return float(self.compute(Scores(labels, scores, kind=kind))[0])


def _from_confusion(key: str) -> Callable[[Scores], np.ndarray]:
    def compute(scores: Scores) -> np.ndarray:
        return np.asarray(scores.confusion_scores[key], dtype=np.float64)

    compute.__name__ = key
    return compute


def _macro_auc(scores: Scores) -> np.ndarray:
    if scores.indices is not None:
        return resampled_macro_auc(scores.labels, scores.probabilities, scores.indices)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.array([macro_ovr_auc(scores.labels, scores.probabilities).value])


#: every metric of a test split, in the order of the tidy table's columns
METRICS: tuple[Metric, ...] = (
    Metric("accuracy", "Accuracy", "accuracy", _from_confusion("accuracy")),
    Metric("balanced_accuracy", "Balanced accuracy", "balanced accuracy", _from_confusion("balanced_accuracy")),
    Metric("precision_macro", "Macro precision", "macro precision", _from_confusion("precision_macro"),
           bootstrap=False),
    Metric("recall_macro", "Macro recall", "macro recall", _from_confusion("recall_macro"), bootstrap=False),
    Metric("f1_macro", "Macro F1", "macro F1", _from_confusion("f1_macro")),
    Metric("auc_macro_ovr", "Macro one-vs-rest ROC AUC", "macro one-vs-rest ROC AUC", _macro_auc, percent=False),
)
#: the metric the claims and the per-split figures read
PRIMARY = "accuracy"


def metrics() -> tuple[Metric, ...]:
    """Every metric of the catalogue, in order."""
    return METRICS


def resampled() -> tuple[Metric, ...]:
    """The metrics the bootstrap resamples (each has a table per experiment), in order."""
    return tuple(m for m in metrics() if m.bootstrap)


def metric(key: str) -> Metric:
    """The catalogue entry ``key``."""
    for m in metrics():
        if m.key == key:
            return m
    raise KeyError(f"no metric {key!r} in the catalogue; known: {[m.key for m in metrics()]}")


# ------------------------------------------------------------------------ flat metric dict
def _key(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z]+", "_", str(name)).strip("_").lower() or "class"


def classification_metrics(
    labels: Any,
    probs: Any,
    class_names: Sequence[str],
    *,
    kind: ScoreKind = "auto",
) -> dict[str, float]:
    """All scalar metrics of one split as a flat ``{name: float}`` dict.

    Keys: ``n``, every catalogue metric (``accuracy``, ``balanced_accuracy``,
    ``precision_macro``, ``recall_macro``, ``f1_macro``, ``auc_macro_ovr``, ...), and per class
    ``f1_<name>`` and ``auc_<name>`` (class names lower-cased, non-alphanumerics replaced by
    ``_``). See :mod:`~benchmarks.evaluation.classification` for the NaN conventions; the reason
    for a NaN AUC is given by :func:`~benchmarks.evaluation.macro_ovr_auc`. Balanced accuracy
    is the mean recall over the classes *present* in ``labels``. The confusion matrix is
    separate: :func:`~benchmarks.evaluation.confusion_matrix`.
    """
    y = integer_labels(labels)
    p = to_probabilities(probs, kind)
    k = p.shape[1]
    names = list(class_names)
    if len(names) != k:
        raise ValueError(f"{len(names)} class names for {k} score columns")
    if len(y) != len(p):
        raise ValueError(f"{len(y)} labels for {len(p)} score rows")
    keys = [_key(n) for n in names]
    if len(set(keys)) != k:
        raise ValueError(f"class names {names} do not give distinct metric keys {keys}")
    scores = Scores(y, p, kind="probabilities")
    out: dict[str, float] = {"n": float(len(y))}
    out.update({m.key: float(m.compute(scores)[0]) for m in metrics()})
    with np.errstate(invalid="ignore", divide="ignore"):
        _, _, f1, _ = skm.precision_recall_fscore_support(
            y, scores.predictions, labels=np.arange(k), average=None, zero_division=np.nan
        )
    for key, value in zip(keys, f1, strict=True):
        out[f"f1_{key}"] = float(value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        auc = macro_ovr_auc(y, p, names)
    for key, value in zip(keys, auc.per_class, strict=True):
        out[f"auc_{key}"] = float(value)
    return out
