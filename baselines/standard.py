"""Standard classifier: the profile's backbone trained with cross-entropy alone.

The reference point of every comparison: DenseNet121 at paper scale (as in the ISNet
paper), the small CNN at cpu scale, any torchvision or timm model by the profile's
backbone name. It never sees the masks.

``explain`` is LRP (``isnet.explain``: epsilon rule, z^B at the input) when the ``isnet``
engine is installed and supports the network; otherwise input x gradient (with a warning
naming the reason when the engine is there but refuses the network).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.api import Batch, Method, ModelContext, lrp_or_input_x_gradient, register_method


@register_method(
    "standard",
    needs_masks=False,
    defaults={"lr": 1e-3, "weight_decay": 0.0},
    search_space={"lr": ("loguniform", 1e-4, 3e-3), "weight_decay": [0.0, 1e-5, 1e-4]},
    summary="Standard classifier (the profile's backbone, cross-entropy only)",
    role="plain_baseline",
)
class StandardClassifier(Method):
    """Standard classifier (the profile's backbone, cross-entropy only)."""

    def __init__(self, ctx: ModelContext, **hparams: Any) -> None:
        super().__init__(ctx, **hparams)
        self.model = ctx.build_backbone(ctx.num_classes)

    def training_step(self, batch: Batch) -> dict[str, Tensor]:
        logits = self.model(batch.images)
        loss = F.cross_entropy(logits, batch.labels)
        return {"loss": loss, "logits": logits, "cross_entropy": loss.detach()}

    def export(self) -> nn.Module:
        return self.model

    def explain(self, images: Tensor, target: Tensor) -> Tensor:
        return lrp_or_input_x_gradient(self.model, images, target)

    def configure_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(
            self.parameters(), lr=float(self.hparams["lr"]), weight_decay=float(self.hparams["weight_decay"])
        )

