"""Output rules: where relevance starts. Each returns the multiplier ``m`` (``[K, B, C]``) with
logit relevance ``R = y * m`` for K maps of a batch of logits ``y`` (docs/isnet.md, sections 2
and 5)."""

from __future__ import annotations

import torch
from torch import Tensor


def onehot_output(logits: Tensor, target: Tensor) -> Tensor:
    """Explain logit ``target`` alone (``R = y * one_hot``); ``target``: ``[K, B]`` indices."""
    mask = torch.zeros((*target.shape, logits.shape[-1]), dtype=logits.dtype, device=logits.device)
    return mask.scatter_(-1, target.unsqueeze(-1), 1.0)


def selective_output(logits: Tensor, target: Tensor) -> Tensor:
    """Class-selective softmax output rule for class ``target`` ([B]); returns ``[1, B, C]``.

    The explained quantity is ``eta_c = log(p_c / (1 - p_c))``, whose derivative with
    respect to the logits is ``1`` for ``c`` and ``-q_k = -softmax_{k != c}(y)_k`` for the
    others: ``R_k = y_k * d eta_c / d y_k`` (the logit of ``c`` minus the softmax-weighted
    logits of the competing classes). ``q`` stays differentiable.
    """
    onehot = torch.zeros_like(logits).scatter_(1, target.view(-1, 1), 1.0)
    q = torch.softmax(logits.masked_fill(onehot.bool(), float("-inf")), dim=1)
    return (onehot - q).unsqueeze(0)
