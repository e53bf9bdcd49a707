"""ISNet: background-bias mitigation by optimising differentiable LRP heatmaps.

Bassi, Dertkigil, Cavalli, Nature Communications 15, 291 (2024); Bassi, Decherchi, Cavalli,
Faster ISNet, IEEE Access 12 (2024). The definitions this package implements are in
docs/isnet.md; the package itself is described in isnet/README.md.

Public API (defaults from ``DEFAULT_LRP`` and ``DEFAULT_LOSS``, :mod:`isnet.config`)::

    isnet.explain(model, x, target, rule="epsilon", input_rule="zb", epsilon=0.01,
                  bounds=(0.0, 1.0), create_graph=False)
    isnet.LossConfig(P=0.7, d=0.9, E=1.0, C1=1.0, C2=25.0, w1=1.0, w2=3.0)   # checked when built
    isnet.heatmap_loss(heatmaps, masks, config=DEFAULT_LOSS, **fields)
    isnet.total_loss(logits, labels, heatmap_term, P=0.7)
    isnet.tune_constants(totals) / isnet.RelevanceStats
    isnet.ISNet(backbone, num_classes, variant="original" | "dual" | "selective" | "stochastic" | "grad_input",
                loss=DEFAULT_LOSS, **fields)

``fields`` are LossConfig constants given one by one (``C1=0.5``); they replace those of the config.

The package imports torch (and numpy through it) only.
"""

from .config import DEFAULT_LOSS, DEFAULT_LRP, LossConfig, LRPConfig
from .engine import LRPEngine, explain
from .graph import UnsupportedOperationError
from .loss import HeatmapLossTerms, RelevanceStats, heatmap_loss, heatmap_loss_terms, total_loss, tune_constants
from .model import VARIANTS, ISNet

__all__ = [
    "DEFAULT_LOSS",
    "DEFAULT_LRP",
    "VARIANTS",
    "HeatmapLossTerms",
    "ISNet",
    "LRPConfig",
    "LRPEngine",
    "LossConfig",
    "RelevanceStats",
    "UnsupportedOperationError",
    "explain",
    "heatmap_loss",
    "heatmap_loss_terms",
    "total_loss",
    "tune_constants",
]
