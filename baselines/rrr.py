"""Right for the Right Reasons (Ross, Hughes & Doshi-Velez, IJCAI 2017) on the profile's
classifier.

Loss, for images ``x``, labels ``y`` and foreground masks ``M`` (Ross et al.'s annotation
``A`` marks the irrelevant pixels, here the background ``A = 1 - M``)::

    L = CE(f(x), y) + lambda * mean_b sum_{c,h,w} (A * d(sum_k log p_k(x_b)) / dx)^2

The input gradient of the summed log-probabilities is taken with ``create_graph=True``
(double back-propagation), so the penalty trains the weights. ``lambda = 0.05``, chosen by the
suite's validation sweep (``python -m benchmarks.studies.sweep run``, the report's table
"Validation sweep of the baselines"): mean selected in-distribution validation accuracy over
synthetic COVID-19 and tuberculosis, seeds 0 and 1, 93.3 % against 90.5 % with the ISNet authors'
``lambda = 0.5`` (and 82.6 % with 5); no shifted or test split took part. The squared
gradients are summed over channels and pixels of each image and averaged over the batch (Ross
et al. sum over the batch too; the mean makes lambda independent of the batch size). Ross et
al.'s L2 weight term is the ``weight_decay`` hyper-parameter (0 by default, as the ISNet
comparison had none).

``explain`` is the input-gradient saliency the method constrains: ``|d log p_target / dx|``,
``[B, C, H, W]``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.api import Batch, Method, ModelContext, register_method


def rrr_penalty(model: nn.Module, images: Tensor, masks: Tensor) -> tuple[Tensor, Tensor]:
    """``(logits, penalty)``: the squared input gradient of ``sum_k log p_k`` on the
    background (mask 0), summed per image, averaged over the batch; differentiable."""
    x = images.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        log_prob_sum = F.log_softmax(logits, dim=1).sum()
        (grad,) = torch.autograd.grad(log_prob_sum, x, create_graph=True)
    background = 1.0 - masks
    penalty = (background * grad).pow(2).flatten(1).sum(1).mean()
    return logits, penalty


@register_method(
    "rrr",
    needs_masks=True,
    defaults={"lr": 1e-3, "weight_decay": 0.0, "lambda_rrr": 0.05},  # lambda: the validation sweep's choice
    search_space={"lr": ("loguniform", 1e-4, 3e-3), "lambda_rrr": [0.05, 0.5, 5.0, 50.0]},
    summary="Right for the Right Reasons: input-gradient penalty outside the mask",
)
class RightForTheRightReasons(Method):
    """Right for the Right Reasons: input-gradient penalty outside the mask."""

    def __init__(self, ctx: ModelContext, **hparams: Any) -> None:
        super().__init__(ctx, **hparams)
        self.model = ctx.build_backbone(ctx.num_classes)

    def training_step(self, batch: Batch) -> dict[str, Tensor]:
        if batch.masks is None:
            raise ValueError("rrr needs foreground masks to know where the background is")
        logits, penalty = rrr_penalty(self.model, batch.images, batch.masks)
        ce = F.cross_entropy(logits, batch.labels)
        loss = ce + float(self.hparams["lambda_rrr"]) * penalty
        return {"loss": loss, "logits": logits, "cross_entropy": ce.detach(), "rrr_penalty": penalty.detach()}

    def export(self) -> nn.Module:
        return self.model

    def explain(self, images: Tensor, target: Tensor) -> Tensor:
        x = images.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            log_prob = F.log_softmax(self.model(x), dim=1).gather(1, target.view(-1, 1)).sum()
            (grad,) = torch.autograd.grad(log_prob, x)
        return grad.abs()
