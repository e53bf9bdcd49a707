"""Evaluation of one test split: classification, explanation (heatmap) and bias metrics.

Pure functions on arrays (numpy or torch); no model, no I/O. The classification metrics the
report shows are listed once, in :mod:`~benchmarks.evaluation.catalogue`; the explanation measures
in :mod:`~benchmarks.evaluation.explanation`, the behaviour measures in
:mod:`~benchmarks.evaluation.behaviour`.
"""

from benchmarks.evaluation.bias_gaps import (
    biased_deceiving_gap,
    in_distribution_external_gap,
    split_gap,
)
from benchmarks.evaluation.catalogue import (
    PRIMARY,
    Metric,
    Scores,
    classification_metrics,
    metric,
    metrics,
    resampled,
)
from benchmarks.evaluation.classification import (
    AUCResult,
    batched_confusion_matrix,
    batched_metric,
    confusion_matrix,
    macro_ovr_auc,
    predicted_labels,
    resampled_macro_auc,
    scores_from_confusion,
    to_probabilities,
)
from benchmarks.evaluation.explanation import (
    background_relevance_share,
    pointing_game,
    relevance_inside_mask,
)

__all__ = [
    "PRIMARY",
    "AUCResult",
    "Metric",
    "Scores",
    "background_relevance_share",
    "batched_confusion_matrix",
    "batched_metric",
    "biased_deceiving_gap",
    "classification_metrics",
    "confusion_matrix",
    "in_distribution_external_gap",
    "macro_ovr_auc",
    "metric",
    "metrics",
    "pointing_game",
    "predicted_labels",
    "relevance_inside_mask",
    "resampled",
    "resampled_macro_auc",
    "scores_from_confusion",
    "split_gap",
    "to_probabilities",
]
