"""Near-duplicate detection between collections: the same radiograph re-encoded or resized by
another collection, found by the correlation of small thumbnails."""

from __future__ import annotations

import torch
from torch import Tensor


def thumbnails(images: Tensor, side: int = 32, chunk: int = 1024) -> Tensor:
    """Zero-mean, unit-norm ``side x side`` thumbnails ``[N, side*side]`` of uint8 or float
    images ``[N, 1, H, W]``, for near-duplicate search (computed ``chunk`` images at a time,
    so that large uint8 collections are never converted to float whole)."""
    out = torch.empty(len(images), side * side)
    for start in range(0, len(images), chunk):
        x = images[start : start + chunk].float()
        if x.shape[-1] != side or x.shape[-2] != side:
            x = torch.nn.functional.interpolate(x, size=(side, side), mode="area")
        x = x.flatten(1)
        x = x - x.mean(dim=1, keepdim=True)
        out[start : start + chunk] = x / x.norm(dim=1, keepdim=True).clamp_min(1e-6)
    return out


def near_duplicates(reference: Tensor, candidates: Tensor, threshold: float = 0.99, chunk: int = 2048) -> Tensor:
    """``bool [len(candidates)]``: which candidate images correlate with some reference image
    at ``threshold`` or above, on 32x32 thumbnails (the same radiograph re-encoded or resized
    by another collection scores about 1, different patients well below). Images are
    ``[N, 1, H, W]``; 2-D inputs are taken as :func:`thumbnails` already computed."""
    if len(reference) == 0 or len(candidates) == 0:
        return torch.zeros(len(candidates), dtype=torch.bool)
    ref = reference if reference.ndim == 2 else thumbnails(reference)
    cands = candidates if candidates.ndim == 2 else thumbnails(candidates)
    out = torch.zeros(len(cands), dtype=torch.bool)
    for start in range(0, len(cands), chunk):
        cand = cands[start : start + chunk]
        best = torch.full((len(cand),), -1.0)
        for rs in range(0, len(ref), chunk):
            best = torch.maximum(best, (cand @ ref[rs : rs + chunk].T).max(dim=1).values)
        out[start : start + chunk] = best >= threshold
    return out
