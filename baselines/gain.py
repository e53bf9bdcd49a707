"""Extended GAIN (Li et al., "Tell me where to look: Guided Attention Inference Network",
CVPR 2018, section 4: GAIN with external supervision), on the profile's classifier.

Loss, for images ``I``, labels ``c`` and foreground masks ``M``::

    L = CE(f(I), c) + alpha * L_am + w * L_e

* ``A`` is the Grad-CAM of the true class at the classifier's last spatial feature map,
  computed with ``create_graph=True`` so that it is differentiable with respect to the
  weights, ReLU-ed, upsampled (bilinear) to the image and divided by its per-image maximum
  (so ``A`` lies in [0, 1]);
* attention mining: the soft mask ``T(A) = sigmoid(omega * (A - sigma))`` (omega = 10,
  sigma = 0.5) erases the attended region, ``I* = I - T(A) * I``; ``L_am`` is the true
  class's score on ``I*``, here its softmax probability (GAIN's ``s^c`` is a sigmoid score
  for multi-label data; a probability keeps the term bounded for single-label classes, where
  a logit could be driven to minus infinity), averaged over the batch; alpha = 0.3;
* external supervision: ``L_e = mean((A - M)^2)`` over pixels and images, w = 10.

alpha = 0.3 replaced the paper's alpha = 1 by the suite's validation sweep
(``python -m benchmarks.studies.sweep run``, the report's table "Validation sweep of the
baselines"): mean selected in-distribution validation accuracy over synthetic COVID-19 and
tuberculosis, seeds 0 and 1, 93.0 % against 90.5 % with alpha = 1 (w = 1: 89.8 %), with the
attention-mining pass kept out of the running statistics as below. No shifted or test split took
part.

Gradients are clipped at norm 1 by default (``grad_clip``): the second-order terms can
spike early in training.

The attention-mining pass does not update batch-normalisation running statistics (GAIN's
VGG has no BatchNorm, so the paper is silent): its erased images are not what the classifier
is evaluated on, and where the mask covers nearly the whole image (Decoy MNIST) they are nearly
blank. Before this rule, GAIN's Decoy MNIST seed 0 scored 53.6 % on validation with the running
statistics its training left and 97.6 % with the same weights once they were re-estimated on
clean training images (``python -m benchmarks.commands.batchnorm_check --experiment decoy_mnist
--method gain``, run before the rule). On the X-rays the rule raised alpha = 1's mean validation
accuracy in the sweep from 81.2 % to 90.5 %.

The "last spatial feature map" is found on the first forward pass: the output of the last
leaf module whose output is 4-D with more than one pixel (the last ReLU of the small CNN,
``features.norm5`` of DenseNet121 -- then ReLU-ed in place by torchvision, so Grad-CAM sees
the rectified features). Captum's ``LayerGradCam`` takes gradients without a graph, so the
differentiable Grad-CAM is our own; ``explain`` returns the same Grad-CAM (no graph),
``[B, 1, H, W]`` in [0, 1].
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.api import Batch, Method, ModelContext, register_method
from benchmarks.architectures import batchnorm_momentum


class GradCAM:
    """Grad-CAM at the last spatial feature map of ``model``, differentiable on request."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.layer_name: str | None = None

    def _locate(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """First call: forward with hooks on every leaf, remember the last spatial one."""
        seen: list[tuple[str, Tensor]] = []
        hooks = []
        for name, module in self.model.named_modules():
            if next(module.children(), None) is None:
                hooks.append(module.register_forward_hook(
                    lambda mod, inp, out, name=name: seen.append((name, out))
                    if isinstance(out, Tensor) and out.ndim == 4 and out.shape[-1] * out.shape[-2] > 1 else None
                ))
        try:
            logits = self.model(x)
        finally:
            for hook in hooks:
                hook.remove()
        if not seen:
            raise TypeError(f"{type(self.model).__name__} has no spatial feature map for Grad-CAM")
        self.layer_name, features = seen[-1]
        return logits, features

    @contextmanager
    def _tap(self) -> Iterator[list[Tensor]]:
        captured: list[Tensor] = []
        layer = self.model.get_submodule(self.layer_name)
        hook = layer.register_forward_hook(lambda mod, inp, out: captured.append(out))
        try:
            yield captured
        finally:
            hook.remove()

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(logits, last spatial feature map)`` of one forward pass."""
        if self.layer_name is None:
            return self._locate(x)
        with self._tap() as captured:
            logits = self.model(x)
        return logits, captured[-1]

    def __call__(self, x: Tensor, target: Tensor, create_graph: bool = False) -> tuple[Tensor, Tensor]:
        """``(logits [B, K], Grad-CAM [B, 1, H, W] in [0, 1])`` for class ``target`` ([B])."""
        with torch.enable_grad():
            logits, features = self.forward(x)
            score = logits.gather(1, target.view(-1, 1)).sum()
            (grads,) = torch.autograd.grad(score, features, create_graph=create_graph)
        return logits, normalised_cam(features, grads, x.shape[-2:])


def normalised_cam(features: Tensor, grads: Tensor, size: Any) -> Tensor:
    """Grad-CAM from feature maps and their gradients: ReLU(sum_k mean(dS/dF_k) F_k),
    upsampled to ``size`` and divided by its per-image maximum."""
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * features).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=tuple(size), mode="bilinear", align_corners=False)
    return cam / (cam.amax(dim=(2, 3), keepdim=True) + 1e-8)


def soft_mask(cam: Tensor, omega: float, sigma: float) -> Tensor:
    """GAIN's differentiable threshold ``T(A) = sigmoid(omega * (A - sigma))``."""
    return torch.sigmoid(omega * (cam - sigma))


def supervision_loss(cam: Tensor, masks: Tensor) -> Tensor:
    """External supervision ``L_e``: mean squared error between Grad-CAM and mask."""
    return F.mse_loss(cam, masks)


def attention_mining_loss(
    model: nn.Module, images: Tensor, cam: Tensor, labels: Tensor, omega: float, sigma: float
) -> Tensor:
    """``L_am``: mean true-class probability on the image with the attended region erased. The
    erased images do not enter the running statistics (see the module docstring)."""
    erased = images - soft_mask(cam, omega, sigma) * images
    with batchnorm_momentum(model, 0.0):  # the running statistics stay as the clean pass left them
        prob = F.softmax(model(erased), dim=1)
    return prob.gather(1, labels.view(-1, 1)).mean()


@register_method(
    "gain",
    needs_masks=True,
    defaults={
        "lr": 1e-3, "weight_decay": 0.0, "alpha": 0.3, "omega": 10.0, "sigma": 0.5, "w_e": 10.0, "grad_clip": 1.0
    },  # alpha: the validation sweep's choice (module docstring)
    search_space={
        "lr": ("loguniform", 1e-4, 3e-3),
        "alpha": [0.3, 1.0, 3.0],
        "w_e": [1.0, 3.0, 10.0, 30.0],
    },
    summary="Extended GAIN: Grad-CAM attention mining plus Grad-CAM supervised by the mask",
)
class ExtendedGAIN(Method):
    """Extended GAIN: Grad-CAM attention mining plus Grad-CAM supervised by the mask."""

    def __init__(self, ctx: ModelContext, **hparams: Any) -> None:
        super().__init__(ctx, **hparams)
        self.model = ctx.build_backbone(ctx.num_classes)
        self.gradcam = GradCAM(self.model)

    def training_step(self, batch: Batch) -> dict[str, Tensor]:
        if batch.masks is None:
            raise ValueError("gain needs foreground masks to supervise its Grad-CAM")
        hp = self.hparams
        logits, cam = self.gradcam(batch.images, batch.labels, create_graph=True)
        ce = F.cross_entropy(logits, batch.labels)
        omega, sigma = float(hp["omega"]), float(hp["sigma"])
        l_am = attention_mining_loss(self.model, batch.images, cam, batch.labels, omega, sigma)
        l_e = supervision_loss(cam, batch.masks)
        loss = ce + float(hp["alpha"]) * l_am + float(hp["w_e"]) * l_e
        return {
            "loss": loss,
            "logits": logits,
            "cross_entropy": ce.detach(),
            "attention_mining": l_am.detach(),
            "cam_supervision": l_e.detach(),
        }

    def export(self) -> nn.Module:
        return self.model

    def explain(self, images: Tensor, target: Tensor) -> Tensor:
        return self.gradcam(images.detach(), target)[1].detach()
