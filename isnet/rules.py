"""LRP rules as differentiable tensor functions.

Every rule maps the relevance ``R`` at a node's output to the relevance at its inputs.
Relevance tensors carry a leading *map* axis: ``R`` is ``[K, B, *shape]`` (K explanations
of the same batch computed together), activations are ``[B, *shape]`` and broadcast.

Affine rules receive the layer as two closures over its (BatchNorm-fused) weight ``W``:
``fwd(a, W)`` computes ``W a`` (no bias) and ``adj(s, W)`` computes ``W^T s``; both accept
the extra leading map axis. Nothing here detaches anything: gradients flow into every
weight and activation, which is what the ISNet loss trains through.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

Linear = Callable[[Tensor, Tensor], Tensor]


def stabilize(z: Tensor, epsilon: float) -> Tensor:
    """``z + epsilon * sign(z)`` with ``sign(0) = +1`` (the LRP-epsilon denominator)."""
    return z + torch.where(z >= 0, epsilon, -epsilon)


def epsilon_rule(R: Tensor, a: Tensor, z: Tensor, W: Tensor | None, adj: Linear, epsilon: float) -> Tensor:
    """LRP-epsilon: ``R_j = a_j * sum_k w_jk R_k / (z_k + eps sign z_k)``; ``z`` includes the bias."""
    return a * adj(R / stabilize(z, epsilon), W)


def zplus_rule(R: Tensor, a: Tensor, W: Tensor, fwd: Linear, adj: Linear, epsilon: float) -> Tensor:
    """LRP-z+: ``R_j = sum_k a_j w+_jk R_k / sum_j a_j w+_jk`` (bias ignored).

    Negative inputs (no ReLU before the layer) are paired with the negative weights
    (alpha=1, beta=0 form), so the rule is defined for any sign of ``a``.
    """
    wp = W.clamp(min=0)
    if not bool((a < 0).any()):
        return a * adj(R / stabilize(fwd(a, wp), epsilon), wp)
    wn = W.clamp(max=0)
    ap, an = a.clamp(min=0), a.clamp(max=0)
    s = R / stabilize(fwd(ap, wp) + fwd(an, wn), epsilon)
    return ap * adj(s, wp) + an * adj(s, wn)


def zbox_rule(
    R: Tensor,
    x: Tensor,
    zx: Tensor,
    W: Tensor,
    fwd: Linear,
    adj: Linear,
    low: Tensor,
    high: Tensor,
    epsilon: float,
) -> Tensor:
    """LRP-z^B (box rule) for the input layer with pixel bounds ``low <= x <= high``.

    ``R_i = sum_j (x_i w_ij - l_i w+_ij - h_i w-_ij) R_j / z^B_j`` with
    ``z^B_j = sum_i (x_i w_ij - l_i w+_ij - h_i w-_ij)`` (biases cancel), stabilised by
    ``epsilon``. ``zx = W x`` is passed in because the forward pass already holds it.
    ``low`` / ``high`` broadcast to ``x``'s shape (batch axis of size 1).
    """
    zb = zx
    terms: list[tuple[Tensor, Tensor]] = []
    if bool(low.ne(0).any()):
        wp = W.clamp(min=0)
        lo = low.expand((1, *x.shape[1:]))
        zb = zb - fwd(lo, wp)
        terms.append((lo, wp))
    if bool(high.ne(0).any()):
        wn = W.clamp(max=0)
        hi = high.expand((1, *x.shape[1:]))
        zb = zb - fwd(hi, wn)
        terms.append((hi, wn))
    s = R / stabilize(zb, epsilon)
    out = x * adj(s, W)
    for bound, w in terms:
        out = out - bound * adj(s, w)
    return out


def sum_rule(R: Tensor, operands: Sequence[Tensor | float], signs: Sequence[float], z: Tensor,
             epsilon: float) -> list[Tensor | None]:
    """LRP-epsilon for ``z = sum_i sign_i * x_i``: each tensor operand gets ``sign_i x_i R / stab(z)``.

    Constant (non-tensor) operands act like a bias and absorb their share.
    """
    s = R / stabilize(z, epsilon)
    out: list[Tensor | None] = []
    for x, sign in zip(operands, signs):
        if not isinstance(x, Tensor):
            out.append(None)
            continue
        r = s * x if sign == 1 else s * (sign * x)
        out.append(_reduce_to(r, x.shape))
    return out


def _reduce_to(r: Tensor, shape: torch.Size) -> Tensor:
    """Sum a ``[K, B', *shape']`` relevance down to ``[K, *shape]`` after broadcasting."""
    target = (r.shape[0], *shape)
    if tuple(r.shape) == target:
        return r
    lead = r.ndim - len(target)
    if lead:
        r = r.sum(dim=tuple(range(1, 1 + lead)))
    dims = tuple(i for i, (n, m) in enumerate(zip(r.shape, target)) if n != m)
    return r.sum(dim=dims, keepdim=True) if dims else r


def maxpool_rule(R: Tensor, a: Tensor, indices: Tensor) -> Tensor:
    """Winner takes all: relevance goes to the arg-max position of each window (summed on overlap)."""
    k, b, c = R.shape[:3]
    flat = R.reshape(k, b, c, -1)
    idx = indices.reshape(1, b, c, -1).expand(k, -1, -1, -1)
    out = flat.new_zeros((k, b, c, a[0, 0].numel()))
    return out.scatter_add(3, idx, flat).view(k, *a.shape)


def cat_rule(R: Tensor, sizes: Sequence[int], dim: int) -> list[Tensor]:
    """Concatenation: each input keeps the relevance of its own slice."""
    return list(R.split(list(sizes), dim=dim + 1 if dim >= 0 else dim))


# --------------------------------------------------------------------------- output rules
def onehot_output(logits: Tensor, target: Tensor) -> Tensor:
    """Relevance at the logits for explaining logit ``target`` alone: ``y * one_hot``.

    ``target``: ``[K, B]`` class indices; returns ``[K, B, C]``.
    """
    mask = torch.zeros((*target.shape, logits.shape[-1]), dtype=logits.dtype, device=logits.device)
    mask.scatter_(-1, target.unsqueeze(-1), 1.0)
    return logits.unsqueeze(0) * mask


def selective_output(logits: Tensor, target: Tensor) -> Tensor:
    """Class-selective softmax output rule for class ``target`` ([B]); returns ``[1, B, C]``.

    The explained quantity is ``eta_c = log(p_c / (1 - p_c))``. Its gradient with respect
    to the logits is ``1`` for ``c`` and ``-q_k = -softmax_{k != c}(y)_k`` for the others,
    so the logit relevance is ``R_k = y_k * d eta_c / d y_k`` (gradient x logit), i.e. the
    logit of ``c`` minus the softmax-weighted logits of the competing classes. ``q`` stays
    differentiable.
    """
    onehot = torch.zeros_like(logits).scatter_(1, target.view(-1, 1), 1.0)
    others = logits.masked_fill(onehot.bool(), float("-inf"))
    q = torch.softmax(others, dim=1)
    return (logits * (onehot - q)).unsqueeze(0)
