"""Standard classifier: the profile's backbone trained with cross-entropy alone.

The reference point of every comparison: DenseNet121 at paper scale (as in the ISNet
paper), the small CNN at cpu scale, any torchvision or timm model by the profile's
backbone name. It never sees the masks.

``explain`` is LRP (``isnet.explain``: epsilon rule, z^B at the input) when the ``isnet``
engine is installed and supports the network; otherwise input x gradient (with a warning
naming the reason when the engine is there but refuses the network).
"""

from __future__ import annotations

from torch import Tensor, nn

from benchmarks.api import CrossEntropyMethod, ModelContext, lrp_or_input_x_gradient, register_method


@register_method(
    "standard",
    needs_masks=False,
    defaults={"lr": 1e-3, "weight_decay": 0.0},
    search_space={"lr": ("loguniform", 1e-4, 3e-3), "weight_decay": [0.0, 1e-5, 1e-4]},
    summary="Standard classifier (the profile's backbone, cross-entropy only)",
    role="plain_baseline",
)
class StandardClassifier(CrossEntropyMethod):
    """Standard classifier (the profile's backbone, cross-entropy only)."""

    def build_model(self, ctx: ModelContext) -> nn.Module:
        return ctx.build_backbone(ctx.num_classes)

    def explain(self, images: Tensor, target: Tensor) -> Tensor:
        return lrp_or_input_x_gradient(self.model, images, target)
