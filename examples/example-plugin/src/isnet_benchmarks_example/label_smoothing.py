"""Label smoothing (Szegedy et al. 2016) as an out-of-tree benchmark method.

It needs no masks and changes only the loss, which makes it a short, complete template:
subclass ``Method``, decorate it with ``register_method``, declare the module in the
``isnet_benchmarks.methods`` entry-point group, and check it with ``python -m benchmarks check
label_smoothing``. The optimiser is the ``Method`` base's (Adam at the hyper-parameter ``lr``).
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.api import Batch, Method, ModelContext, register_method


@register_method(
    "label_smoothing",
    needs_masks=False,
    # what the claims compare it as: a competing method ISNet must beat (see the plugin's README)
    role="comparison",
    # draw 0 of `run --n-hparams N`; draws 1..N-1 are sampled from the search space
    defaults={"lr": 1e-3, "smoothing": 0.1},
    search_space={"lr": ("loguniform", 1e-4, 3e-3), "smoothing": [0.05, 0.1, 0.2]},
)
class LabelSmoothing(Method):
    """Standard classifier trained with label-smoothed cross-entropy."""

    def __init__(self, ctx: ModelContext, **hparams: Any) -> None:
        super().__init__(ctx, **hparams)
        self.model = ctx.build_backbone(ctx.num_classes)

    def training_step(self, batch: Batch) -> dict[str, Tensor]:
        logits = self.model(batch.images)
        loss = F.cross_entropy(logits, batch.labels, label_smoothing=float(self.hparams["smoothing"]))
        return {"loss": loss, "logits": logits}

    def export(self) -> nn.Module:
        return self.model
