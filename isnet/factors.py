"""The stabilised denominators of the LRP rules: the per-layer factor ``v / stab(d)``.

Relevance ``R_v`` at a node value ``v`` is carried as ``g_v`` with ``R_v = v * g_v`` (exactly
how LRP-epsilon reads as a modified gradient). Every rule of :mod:`isnet.rules` divides the
relevance of a layer's output by a stabilised denominator; in this form that is one factor
``v / stab(d)`` per layer, computed once from the forward activations, that turns ``g`` at the
output into ``s = R / stab(d)`` for all K maps of a batch at once (a ReLU folded after the
layer costs nothing: its mask is part of the factor). ``g`` tensors carry a leading *map*
axis, ``[K, B, *shape]``; activations are ``[B, *shape]`` and broadcast.

Two of the factors are autograd Functions with hand-written backward passes (fewer passes
over activation-sized tensors than autograd's own), differentiable again under
``create_graph`` so that second derivatives of a heatmap stay exact.
"""

from __future__ import annotations

import torch
from torch import Tensor


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
