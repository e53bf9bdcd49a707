"""The ISNet heatmap loss, the total loss and C1/C2 tuning (docs/isnet.md, sections 4 and 6)."""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import DEFAULT_LOSS, LossConfig, check_fraction


class HeatmapLossTerms(NamedTuple):
    """``loss = w1 * background + w2 * foreground`` (batch means); ``nonfinite``: values replaced."""

    loss: Tensor
    background: Tensor
    foreground: Tensor
    nonfinite: int


def prepare_masks(masks: Tensor, batch: int, size: tuple[int, int]) -> Tensor:
    """Check masks are binary ``[B, 1, H, W]`` (or ``[B, H, W]``) and resize them to ``size``.

    Up-sampling uses nearest neighbours; down-sampling uses the area fraction, thresholded
    at 1/2 (a cell is foreground when most of it is).
    """
    if masks.ndim == 3:
        masks = masks.unsqueeze(1)
    if masks.ndim != 4 or masks.shape[0] != batch or masks.shape[1] != 1:
        raise ValueError(f"masks must have shape [B, 1, H, W] (or [B, H, W]) with B={batch}, "
                         f"got {tuple(masks.shape)}")
    masks = masks.detach()
    if not bool(((masks == 0) | (masks == 1)).all()):
        raise ValueError(f"masks must be binary (0 = background, 1 = foreground); found values in "
                         f"[{masks.min().item():.4g}, {masks.max().item():.4g}]: threshold them first, "
                         "e.g. (masks > 0.5).float()")
    masks = masks.float() if not masks.is_floating_point() else masks
    if tuple(masks.shape[-2:]) != tuple(size):
        if masks.shape[-2] >= size[0] and masks.shape[-1] >= size[1]:
            masks = (F.adaptive_avg_pool2d(masks, size) >= 0.5).to(masks.dtype)
        else:
            masks = F.interpolate(masks, size=size, mode="nearest")
    return masks


def sanitize(A: Tensor, M: Tensor) -> tuple[Tensor, int]:
    """Replace NaN by the map's foreground mean and +-inf by its largest finite value; returns the
    repaired maps and how many values were replaced (``ISNet`` returns the count as
    ``nonfinite``; the harness logs its mean per step as ``train_nonfinite`` in ``metrics.jsonl``)."""
    finite = torch.isfinite(A)
    bad = int((~finite).sum())
    if not bad:
        return A, 0
    warnings.warn(f"isnet.heatmap_loss: replaced {bad} non-finite relevance values (NaN -> foreground mean, "
                  "inf -> map maximum)", stacklevel=3)
    with torch.no_grad():
        A0 = torch.where(finite, A, torch.zeros_like(A))
        fg = (A0 * M * finite).sum((2, 3, 4)) / (M * finite).sum((2, 3, 4)).clamp(min=1)
        top = A0.amax((2, 3, 4))
    view = (*A.shape[:2], 1, 1, 1)
    A = torch.where(torch.isnan(A), fg.view(view).expand_as(A), A)
    return torch.where(torch.isinf(A), top.view(view).expand_as(A), A), bad


def gwrp(values: Tensor, d: float) -> Tensor:
    """Global weighted ranked pooling over the last axis: ``sum_i d^i s_i / sum_i d^i`` (s sorted descending).

    Only the ranks whose weight exceeds ``1e-12`` of the first are sorted (``topk``). For
    non-negative values (the heatmap loss pools absolute relevance) the ranks left out change
    the result by at most ``1e-12 d / (1 - d)`` of it (9e-12 for d = 0.9): below float32
    rounding. ``d = 1`` is the mean, ``d = 0`` the max.
    """
    n = values.shape[-1]
    if d >= 1.0:
        return values.mean(-1)
    if d <= 0.0:
        return values.amax(-1)
    k = min(n, int(math.ceil(math.log(1e-12) / math.log(d))) + 1)
    s = values.topk(k, dim=-1).values if k < n else values.sort(dim=-1, descending=True).values
    ar = torch.arange(n, dtype=values.dtype, device=values.device)
    w = torch.pow(torch.tensor(float(d), dtype=values.dtype, device=values.device), ar)
    return (s * w[:k]).sum(-1) / w.sum()


def heatmap_loss_terms(heatmaps: Tensor, masks: Tensor, config: LossConfig = DEFAULT_LOSS,
                       **fields: float) -> HeatmapLossTerms:
    """The heatmap loss and its terms; see :func:`heatmap_loss`."""
    config = config.replace(**fields)
    if heatmaps.ndim == 4:
        heatmaps = heatmaps.unsqueeze(1)
    if heatmaps.ndim != 5:
        raise ValueError(f"heatmaps must be [B, K, C, H, W] (or [B, C, H, W]), got {tuple(heatmaps.shape)}")
    B, K, C, H, W = heatmaps.shape
    M = prepare_masks(masks, B, (H, W)).to(heatmaps.dtype).unsqueeze(1)  # [B, 1, 1, H, W]
    if bool((M.sum((2, 3, 4)) == 0).any()):
        warnings.warn("isnet.heatmap_loss: a mask has no foreground pixel; its normalisation divides by 1e-10",
                      stacklevel=2)
    A, bad = sanitize(heatmaps.abs(), M)
    fg_abs = (A * M).sum((2, 3, 4))  # [B, K]: un-normalised foreground relevance
    fg_mean = fg_abs / (M.sum((2, 3, 4)) * C).clamp(min=1)
    A_hat = A / (fg_mean + 1e-10).view(B, K, 1, 1, 1)
    g = gwrp((A_hat * (1 - M)).flatten(3), config.d)  # [B, K, C]
    background = torch.log1p(g / config.E).mean((1, 2))  # [B]
    C1, C2 = config.C1, config.C2
    over = (fg_abs.clamp(max=C1) - C1) ** 2 + (fg_abs.clamp(min=C2) - C2) ** 2
    foreground = (over / C1**2).mean(1)  # [B]
    loss = (config.w1 * background + config.w2 * foreground).mean()
    return HeatmapLossTerms(loss, background.mean(), foreground.mean(), bad)


def heatmap_loss(heatmaps: Tensor, masks: Tensor, config: LossConfig = DEFAULT_LOSS, **fields: float) -> Tensor:
    """ISNet heatmap loss ``L_H = w1 * L_bg + w2 * L_fg`` averaged over the batch.

    heatmaps: ``[B, K, C, H, W]`` relevance (``[B, C, H, W]`` for one map per image);
    masks: binary ``[B, 1, H', W']`` foreground masks (resized to ``H, W`` when needed);
    config: the constants (``d``, ``E``, ``C1``, ``C2``, ``w1``, ``w2``; ``P`` is not used here);
    ``fields``: constants given one by one (``C1=0.5``) replace those of ``config``.
    ``L_bg``: the absolute maps are normalised by their foreground mean, the background
    values pooled by GWRP (``d -> 0``: max, ``d = 1``: mean over all pixels) and mapped by
    ``log(1 + g / E)``. ``L_fg``: zero while the map's total foreground relevance ``F``
    lies in ``[C1, C2]``, else ``((min(F, C1) - C1)^2 + (max(F, C2) - C2)^2) / C1^2``.
    NaN relevance is replaced by the foreground mean, infinities by the map maximum
    (warned and counted).
    """
    return heatmap_loss_terms(heatmaps, masks, config, **fields).loss


def total_loss(logits: Tensor, labels: Tensor, heatmap_term: Tensor, P: float = DEFAULT_LOSS.P) -> Tensor:
    """``(1 - P) * CrossEntropy(logits, labels) + P * L_H``."""
    check_fraction("P", P)
    return (1 - P) * F.cross_entropy(logits, labels) + P * heatmap_term


# --------------------------------------------------------------------------- C1 / C2 tuning
def tune_constants(totals: Tensor) -> tuple[float, float]:
    """C1, C2 from each heatmap's total absolute relevance over the calibration epoch.

    ``C1 = max(mu / 5, mu - 3 sigma)``, ``C2 = min(25 C1, mu + 3 sigma)`` (docs/isnet.md, section 6).
    """
    t = totals.detach().double().flatten()
    t = t[torch.isfinite(t)]
    if t.numel() < 2:
        raise ValueError("tune_constants needs at least two finite relevance totals")
    mu, sigma = t.mean().item(), t.std().item()
    c1 = max(mu / 5, mu - 3 * sigma)
    c2 = min(25 * c1, mu + 3 * sigma)
    if not (math.isfinite(c1) and c1 > 0):
        raise ValueError(f"tuned C1 is not positive (mu={mu:.4g}, sigma={sigma:.4g})")
    return c1, max(c2, c1)


class RelevanceStats:
    """Accumulates per-heatmap total absolute relevance for :func:`tune_constants`."""

    def __init__(self) -> None:
        self._totals: list[Tensor] = []

    def update(self, heatmaps: Tensor) -> None:
        """Add ``[B, K, C, H, W]`` (or ``[B, C, H, W]``) heatmaps."""
        h = heatmaps.detach()
        h = h.unsqueeze(1) if h.ndim == 4 else h
        self._totals.append(h.abs().sum((2, 3, 4)).flatten().cpu())

    def __len__(self) -> int:
        return sum(t.numel() for t in self._totals)

    def constants(self) -> tuple[float, float]:
        return tune_constants(torch.cat(self._totals))

    def totals(self) -> list[float]:
        """The recorded totals (for checkpoints)."""
        return torch.cat(self._totals).tolist() if self._totals else []

    def load(self, totals: list[float]) -> None:
        """Replace the recorded totals (from :meth:`totals`)."""
        self._totals = [torch.tensor(totals, dtype=torch.float64)] if totals else []

    def reset(self) -> None:
        self._totals.clear()
