"""Explanation metrics of a trained method, with several explainers.

No method is judged only by the explainer it was trained on: every method is explained by
its own heatmap (``Method.explain``), by LRP-epsilon (``isnet.explain`` on the exported
network, when the engine supports it), by Grad-CAM at the last convolution and by
input x gradient (both from captum). Each explainer's heatmaps are scored by every measure of
the explanation catalogue (:mod:`benchmarks.evaluation.explanation`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.api import DataBundle, Method, TensorSplit
from benchmarks.evaluation.explanation import Explained, scores

EXPLAINED_IMAGES = {"smoke": 8, "cpu": 128, "paper": 256}
GALLERY_IMAGES = 6

Explainer = Callable[[Method, Tensor, Tensor], Tensor]


def _own(method: Method, x: Tensor, target: Tensor) -> Tensor:
    return method.explain(x, target)


def _lrp(method: Method, x: Tensor, target: Tensor) -> Tensor:
    import isnet

    return isnet.explain(method.export(), x, target)


def _input_x_gradient(method: Method, x: Tensor, target: Tensor) -> Tensor:
    from captum.attr import InputXGradient

    return InputXGradient(method.export()).attribute(x.clone().requires_grad_(True), target=target)


def _last_conv(model: nn.Module) -> nn.Module:
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise TypeError(f"{type(model).__name__} has no Conv2d for Grad-CAM")
    return convs[-1]


def _gradcam(method: Method, x: Tensor, target: Tensor) -> Tensor:
    from captum.attr import LayerAttribution, LayerGradCam

    model = method.export()
    cam = LayerGradCam(model, _last_conv(model)).attribute(x, target=target)
    return LayerAttribution.interpolate(F.relu(cam), x.shape[-2:], interpolate_mode="bilinear")


EXPLAINERS: dict[str, Explainer] = {
    "own": _own,
    "lrp": _lrp,
    "gradcam": _gradcam,
    "input_x_gradient": _input_x_gradient,
}


def _resize(heatmap: Tensor, size: Sequence[int]) -> Tensor:
    if tuple(heatmap.shape[-2:]) == tuple(size):
        return heatmap
    return F.interpolate(heatmap.float(), size=tuple(size), mode="bilinear", align_corners=False)


def _first_images(split: Any, n: int) -> tuple[Tensor, Tensor, Tensor | None]:
    indices = torch.arange(min(n, len(split)))
    if isinstance(split, TensorSplit):
        batch = split.batch(indices)
        return batch.images, batch.labels, batch.masks
    samples = [split[int(i)] for i in indices]
    masks = [s.get("mask") for s in samples]
    return (
        torch.stack([s["image"] for s in samples]),
        torch.tensor([s["label"] for s in samples]),
        None if any(m is None for m in masks) else torch.stack(masks),
    )


@torch.no_grad()
def explained_logits(method: Method, images: Tensor, labels: Tensor, device: torch.device, chunk: int) -> np.ndarray:
    """The logit each heatmap explains (the true class's, before the softmax), per image."""
    model = method.export()
    out = [model(images[i : i + chunk].to(device)).gather(1, labels[i : i + chunk].view(-1, 1).to(device))[:, 0].cpu()
           for i in range(0, len(images), chunk)]
    return torch.cat(out).double().numpy()


def explanation_record(
    method: Method,
    bundle: DataBundle,
    splits: Sequence[str],
    scale: str,
    device: torch.device,
    chunk: int = 32,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Per split and explainer: every measure of the explanation catalogue
    (:data:`benchmarks.evaluation.explanation.MEASURES`, JSON) and arrays (the per-image values
    of the measures that keep them, each heatmap's relevance sum beside the logit it explains, a
    small gallery of the method's own heatmaps with their images and masks).

    Images are explained for their true class. An explainer that cannot handle the
    method's network is recorded with its reason instead of scores.
    """
    method.eval()
    n = EXPLAINED_IMAGES.get(scale, 128)
    record: dict[str, Any] = {"explained_images": n, "target": "true class",
                              "class_names": list(bundle.class_names), "splits": {}}
    arrays: dict[str, np.ndarray] = {}
    for split_name in splits:
        images, labels, masks = _first_images(bundle.tests[split_name], n)
        if masks is None:
            continue
        explained = explained_logits(method, images, labels, device, chunk)
        arrays[f"{split_name}/explained_logit"] = explained.astype(np.float32)
        per_split: dict[str, Any] = {}
        for name, explainer in EXPLAINERS.items():
            try:
                heatmaps = []
                for start in range(0, len(images), chunk):
                    x = images[start : start + chunk].to(device)
                    y = labels[start : start + chunk].to(device)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        heat = explainer(method, x, y)
                    heatmaps.append(_resize(heat.detach(), x.shape[-2:]).sum(1, keepdim=True).cpu())
                heat = torch.cat(heatmaps).numpy()
            except Exception as err:  # noqa: BLE001 - recorded, never hidden
                per_split[name] = {"error": f"{type(err).__name__}: {err}"}
                continue
            measured = Explained(heat, masks.numpy(), explained)
            per_split[name], per_image = scores(measured)
            for key, values in per_image.items():
                arrays[f"{split_name}/{name}/{key}"] = values.astype(np.float32)
            arrays[f"{split_name}/{name}/relevance_sum"] = measured.relevance_sums.astype(np.float32)
            if name == "own":
                arrays[f"{split_name}/gallery/heatmaps"] = heat[:GALLERY_IMAGES, 0].astype(np.float16)
                arrays[f"{split_name}/gallery/images"] = images[:GALLERY_IMAGES].numpy().astype(np.float16)
                arrays[f"{split_name}/gallery/masks"] = masks[:GALLERY_IMAGES, 0].numpy().astype(np.uint8)
                arrays[f"{split_name}/gallery/labels"] = labels[:GALLERY_IMAGES].numpy()
        record["splits"][split_name] = per_split
    return record, arrays
