"""ISNet: background-bias mitigation by optimising differentiable LRP heatmaps.

Public API::

    isnet.explain(model, x, target, rule="epsilon", input_rule="zb", epsilon=0.01,
                  bounds=(0.0, 1.0), create_graph=False)
    isnet.heatmap_loss(heatmaps, masks, d=0.9, E=1.0, C1=1.0, C2=25.0, w1=1.0, w2=3.0)
    isnet.total_loss(logits, labels, heatmap_term, P=0.7)
    isnet.tune_constants(totals) / isnet.RelevanceStats
    isnet.ISNet(backbone, num_classes, variant="original" | "dual" | "selective" | "stochastic" | "grad_input")

The package imports torch (and numpy through it) only.
"""

from .engine import LRPEngine, explain
from .graph import UnsupportedOperationError
from .loss import HeatmapLossTerms, RelevanceStats, heatmap_loss, heatmap_loss_terms, total_loss, tune_constants
from .model import VARIANTS, ISNet

__all__ = [
    "VARIANTS",
    "HeatmapLossTerms",
    "ISNet",
    "LRPEngine",
    "RelevanceStats",
    "UnsupportedOperationError",
    "explain",
    "heatmap_loss",
    "heatmap_loss_terms",
    "total_loss",
    "tune_constants",
]
