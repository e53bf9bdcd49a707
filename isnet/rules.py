"""LRP rules as differentiable tensor functions, in "relevance = activation x g" form.

Relevance ``R_v`` at a node value ``v`` is carried as ``g_v`` with ``R_v = v * g_v`` (exactly
how LRP-epsilon reads as a modified gradient). A rule maps ``g`` at a node's output to ``g``
at its inputs; the input layer's z^B rule returns the relevance ``R`` itself. This form
lets one factor per layer, computed once from the forward activations, serve all K maps,
and lets a ReLU after a layer cost nothing (its mask folds into that factor).

``g`` tensors carry a leading *map* axis: ``[K, B, *shape]`` (K explanations of one batch),
activations are ``[B, *shape]`` and broadcast. Affine rules take the (BatchNorm-fused)
weight ``W`` and two closures: ``fwd(a, W) = W a`` (no bias) and ``adj(s, W) = W^T s``.
Nothing is detached: gradients flow into every weight and activation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

Linear = Callable[[Tensor, Tensor], Tensor]


def stabilize(z: Tensor, epsilon: float) -> Tensor:
    """``z + epsilon * sign(z)`` with ``sign(0) = +1`` (the LRP-epsilon denominator)."""
    pos = torch.tensor(epsilon, dtype=z.dtype, device=z.device)  # python scalars would become float32
    return z + torch.where(z >= 0, pos, -pos)


def scale(g: Tensor, factor: Tensor | None) -> Tensor:
    """``g * factor`` for ``g`` ``[K, B, ...]`` and ``factor`` ``[B, ...]`` (``None``: 1).

    The factor gets an explicit map axis so that, for K = 1, its gradient needs no reduction.
    """
    return g if factor is None else g * factor.unsqueeze(0)


def epsilon_factor(v: Tensor, z: Tensor, epsilon: float, after_relu: bool) -> Tensor:
    """``v / stab(z)``: turns ``g`` at the layer output into ``s = R / stab(z)``.

    ``v`` carries the relevance (``v = z``, or ``v = relu(z)`` when the layer's only consumer
    is a ReLU, which then needs no step of its own: ``relu(z) / stab(z) = v / (v + eps)``).
    """
    return SelfRatio.apply(v if after_relu else z, epsilon, after_relu)


def ratio(v: Tensor, d: Tensor, epsilon: float) -> Tensor:
    """``v / stab(d)`` for a denominator ``d`` other than ``v`` (the z+ and z^B factors)."""
    return Quotient.apply(v, stabilize(d, epsilon))


class SelfRatio(torch.autograd.Function):
    """``z / stab(z)``, with ``d/dz = eps sign(z) / stab(z)^2`` in two passes over ``z``.

    Autograd's own derivative of the quotient takes about three times as many passes (each a
    full read and write of an activation-sized tensor), which was most of the cost of the
    factor in a training step. ``nonneg``: ``z >= 0`` is known (a ReLU output), so
    ``stab(z) = z + eps``. Under ``create_graph`` the backward is built from differentiable
    operations instead, so higher derivatives stay exact.
    """

    @staticmethod
    def _stab(z: Tensor, epsilon: float, nonneg: bool) -> Tensor:
        return z + epsilon if nonneg else stabilize(z, epsilon)

    @staticmethod
    def forward(ctx, z: Tensor, epsilon: float, nonneg: bool) -> Tensor:
        t = SelfRatio._stab(z, epsilon, nonneg)
        ctx.save_for_backward(z, t)
        ctx.epsilon, ctx.nonneg = epsilon, nonneg
        return z / t

    @staticmethod
    def backward(ctx, grad: Tensor):
        z, t = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: a backward that is itself differentiable
            t = SelfRatio._stab(z, ctx.epsilon, ctx.nonneg)
            return ctx.epsilon * grad / (t * (t if ctx.nonneg else t.abs())), None, None
        q = torch.addcdiv(grad.new_zeros(()), grad, t, value=ctx.epsilon)  # eps * grad / t in one pass
        return q.div_(t if ctx.nonneg else t.abs()), None, None  # sign(z) / stab(z)^2 = 1 / (t |t|)


class Quotient(torch.autograd.Function):
    """``v / t``: ``d/dv = 1 / t``, ``d/dt = -v / t^2``, in two passes (``t = stab(d)`` is formed
    outside, where autograd passes its gradient straight through to ``d``). Under
    ``create_graph`` the backward is built from differentiable operations."""

    @staticmethod
    def forward(ctx, v: Tensor, t: Tensor) -> Tensor:
        f = v / t
        ctx.save_for_backward(v, t, f)
        return f

    @staticmethod
    def backward(ctx, grad: Tensor):
        v, t, f = ctx.saved_tensors
        q = grad / t
        if torch.is_grad_enabled():  # create_graph: a backward that is itself differentiable
            return q, -q * v / t
        grad_t = torch.addcmul(q.new_zeros(()), q, f, value=-1.0) if ctx.needs_input_grad[1] else None
        return q, grad_t


def epsilon_rule(g: Tensor, factor: Tensor | None, W: Tensor | None, adj: Linear) -> Tensor:
    """LRP-epsilon ``R_j = a_j sum_k w_jk R_k / (z_k + eps sign z_k)`` (``z`` with bias): returns ``g_a``.

    With ``factor=None`` (or a ReLU mask) this is the plain gradient, so gradient x input
    maps reuse the same sweep.
    """
    return adj(scale(g, factor), W)


def zplus_parts(v: Tensor, a: Tensor, W: Tensor, fwd: Linear, epsilon: float) -> tuple[Tensor, Tensor, Tensor | None]:
    """What LRP-z+ ``R_j = sum_k a_j w+_jk R_k / sum_j a_j w+_jk`` (bias ignored) needs besides
    ``g``: the factor ``v / stab(z+)`` and ``W+``, the same for every map of a batch. Negative
    inputs (no ReLU before the layer) pair with the negative weights (the alpha=1, beta=0
    form), so ``W-`` is returned too when ``a`` has negative entries; else ``None``."""
    wp = W.clamp(min=0)
    if not bool((a < 0).any()):
        return ratio(v, fwd(a, wp), epsilon), wp, None
    wn = W.clamp(max=0)
    return ratio(v, fwd(a.clamp(min=0), wp) + fwd(a.clamp(max=0), wn), epsilon), wp, wn


def zplus_apply(g: Tensor, parts: tuple[Tensor, Tensor, Tensor | None], a: Tensor, adj: Linear) -> Tensor:
    """LRP-z+ of ``g`` given :func:`zplus_parts`: returns ``g_a``."""
    factor, wp, wn = parts
    s = scale(g, factor)
    if wn is None:
        return adj(s, wp)
    return torch.where(a > 0, adj(s, wp), adj(s, wn))


ZBoxParts = tuple[Tensor, list[Tensor], list[Tensor]]


def zbox_parts(v: Tensor, x: Tensor, z: Tensor, offset: Tensor | None, W: Tensor, fwd: Linear, low: Tensor,
               high: Tensor, epsilon: float) -> ZBoxParts:
    """What LRP-z^B (box rule, bounds ``low <= x <= high``) needs besides ``g``.

    ``R_i = sum_j (x_i w_ij - l_i w+_ij - h_i w-_ij) R_j / z^B_j`` with
    ``z^B_j = sum_i (x_i w_ij - l_i w+_ij - h_i w-_ij)`` (biases cancel), stabilised by
    ``epsilon``; ``R_j = v_j g_j``. ``W x = z - offset`` comes from the forward pass (``offset``:
    the fused bias), or is recomputed when ``offset`` is ``None``. ``low`` / ``high``
    broadcast to ``x`` (batch axis of size 1). Returns the factor ``v / stab(z^B)``, the
    weights to transpose (``W`` and, for non-zero bounds, ``W+`` / ``W-``) and those bounds.
    """
    shift = None
    bounds: list[Tensor] = []
    weights = [W]
    for bound, w in ((low, W.clamp(min=0)), (high, W.clamp(max=0))):
        if bool(bound.ne(0).any()):
            bound = bound.expand((1, *x.shape[1:]))
            part = fwd(bound, w)  # one image: the bound's contribution
            shift = part if shift is None else shift + part
            bounds.append(bound)
            weights.append(w)
    if offset is None:
        zb = fwd(x, W) if shift is None else fwd(x, W) - shift
    else:  # z + (-c), not z - c: the gradient of the small c is negated, not that of the batch
        zb = z + -(offset if shift is None else offset + shift)
    return ratio(v, zb, epsilon), weights, bounds


def zbox_apply(g: Tensor, parts: ZBoxParts, x: Tensor, adj: Linear) -> Tensor:
    """LRP-z^B of ``g`` given :func:`zbox_parts`: returns the relevance ``R_x``."""
    factor, weights, bounds = parts
    transposed = adj_many(scale(g, factor), weights, adj)
    out = x.unsqueeze(0) * transposed[0]
    for bound, part in zip(bounds, transposed[1:], strict=True):
        out = out - bound * part
    return out


def adj_many(s: Tensor, weights: list[Tensor], adj: Linear) -> list[Tensor]:
    """``[W^T s for W in weights]`` in one call when the weights stack along the input axis."""
    if len(weights) == 1 or getattr(adj, "groups", 1) != 1:
        return [adj(s, w) for w in weights]
    stacked = adj(s, torch.cat(weights, dim=1))
    return list(stacked.chunk(len(weights), dim=2))


def sum_rule(g: Tensor, factor: Tensor | None, operands: Sequence[Tensor | float],
             weights: Sequence[float]) -> list[Tensor | None]:
    """LRP-epsilon for ``z = sum_i w_i x_i``: ``R_i = w_i x_i R / stab(z)``, i.e. ``g_i = w_i s``.

    Constant (non-tensor) operands act like a bias and absorb their share.
    """
    s = scale(g, factor)
    out: list[Tensor | None] = []
    for x, w in zip(operands, weights, strict=True):
        if not isinstance(x, Tensor):
            out.append(None)
            continue
        r = s if w == 1 else s * w
        out.append(_reduce_to(r, x.shape))
    return out


def _reduce_to(r: Tensor, shape: torch.Size) -> Tensor:
    """Sum a ``[K, *broadcast shape]`` tensor down to ``[K, *shape]``."""
    target = (r.shape[0], *shape)
    if tuple(r.shape) == target:
        return r
    lead = r.ndim - len(target)
    if lead:
        r = r.sum(dim=tuple(range(1, 1 + lead)))
    dims = tuple(i for i, (n, m) in enumerate(zip(r.shape, target, strict=True)) if n != m)
    return r.sum(dim=dims, keepdim=True) if dims else r


def maxpool_rule(g: Tensor, a: Tensor, indices: Tensor, kwargs: dict) -> Tensor:
    """Winner takes all: the arg-max input of each window gets the window's relevance (summed
    on overlap). This is max pooling's own backward kernel (differentiable in ``g``); ``kwargs``
    are the pooling's arguments, ``indices`` its arg-max from the forward pass."""
    k, b = g.shape[:2]
    flat = g.reshape(k * b, *g.shape[2:])
    idx = indices if k == 1 else indices.repeat(k, *([1] * (indices.ndim - 1)))
    like = a.new_empty(()).expand(k * b, *a.shape[1:])
    out = torch.ops.aten.max_pool2d_with_indices_backward(
        flat, like, _pair(kwargs["kernel_size"]), _pair(kwargs.get("stride") or kwargs["kernel_size"]),
        _pair(kwargs.get("padding", 0)), _pair(kwargs.get("dilation", 1)), bool(kwargs.get("ceil_mode", False)), idx)
    return out.view(k, *a.shape)


def _pair(v: int | Sequence[int]) -> list[int]:
    return [int(v), int(v)] if isinstance(v, int) else [int(x) for x in v]


def relu_rule(g: Tensor, a: Tensor) -> Tensor:
    """ReLU passes relevance unchanged: ``g_z = g_a`` where ``a > 0``, else 0."""
    return scale(g, (a > 0).to(g.dtype))


def cat_rule(g: Tensor, sizes: Sequence[int], dim: int) -> list[Tensor]:
    """Concatenation: each input keeps the relevance of its own slice."""
    return list(g.split(list(sizes), dim=dim + 1 if dim >= 0 else dim))


# --------------------------------------------------------------------------- output rules
# An output rule returns the multiplier ``m`` ([K, B, C]) with logit relevance ``R = y * m``.
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
