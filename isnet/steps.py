"""Propagation steps: one per graph node (or fused node chain) that relevance crosses.

A step knows which activations it reads and which rule of :mod:`isnet.rules` applies.
``propagate(R, acts, cfg)`` returns one relevance tensor (or ``None``) per input node.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from . import rules
from .canonizers import AffineChain


@dataclass
class RuleConfig:
    """How to propagate: layer rule, stabiliser, input-layer rule and its pixel bounds."""

    rule: str = "epsilon"  # "epsilon" | "zplus"
    epsilon: float = 0.01
    input_rule: str = "zb"  # "zb" | "epsilon" | "zplus"
    low: Tensor | None = None
    high: Tensor | None = None


@dataclass
class Step:
    """Base step: relevance at node ``out`` goes to the nodes ``ins``."""

    out: str
    ins: tuple[str, ...]
    path: str = ""

    def reads(self) -> tuple[str, ...]:
        """Activations this step needs (node names)."""
        return (self.out, *self.ins)

    def propagate(self, R: Tensor, acts: dict[str, Tensor], cfg: RuleConfig) -> Sequence[Tensor | None]:
        raise NotImplementedError


@dataclass
class PassStep(Step):
    """Element-wise or shape-only nodes (ReLU, Dropout, Identity, Flatten, view): relevance is unchanged."""

    def reads(self) -> tuple[str, ...]:
        return self.ins

    def propagate(self, R, acts, cfg):
        shape = acts[self.ins[0]].shape
        if tuple(R.shape[1:]) != tuple(shape):
            R = R.reshape(R.shape[0], *shape)
        return (R,)


@dataclass
class AffineStep(Step):
    """A Conv2d / Linear / BatchNorm chain (BN fused): epsilon, z+ or, at the input, z^B."""

    chain: AffineChain = field(default_factory=lambda: AffineChain(None))
    first: bool = False

    def reads(self) -> tuple[str, ...]:
        extra = tuple(n for n in (self.chain.pre_input, self.chain.post_input) if n)
        return (self.out, *self.ins, *extra)

    def propagate(self, R, acts, cfg):
        a, z = acts[self.ins[0]], acts[self.out]
        w, bias = self.chain.fused(acts)
        fwd, adj = self.chain.forward_fn, self.chain.adjoint_fn(a.shape)
        rule = cfg.input_rule if self.first else cfg.rule
        if rule == "zb":
            if self.chain.op is None:
                raise ValueError(f"z^B input rule needs a Conv2d or Linear first layer, got a BatchNorm "
                                 f"at '{self.path}'; use input_rule='epsilon'")
            zx = fwd(a, w) if bias is None else z - _bias_view(bias, z.ndim)
            low, high = _bounds_like(cfg.low, a), _bounds_like(cfg.high, a)
            return (rules.zbox_rule(R, a, zx, w, fwd, adj, low, high, cfg.epsilon),)
        if rule == "zplus":
            return (rules.zplus_rule(R, a, w, fwd, adj, cfg.epsilon),)
        return (rules.epsilon_rule(R, a, z, w, adj, cfg.epsilon),)


def _bias_view(b: Tensor, ndim: int) -> Tensor:
    return b.view(1, -1, *([1] * (ndim - 2)))


def _bounds_like(bound: Tensor | None, a: Tensor) -> Tensor:
    if bound is None:
        return a.new_zeros(())
    if bound.ndim == 0:
        return bound
    if a.ndim == 4 and bound.numel() == a.shape[1]:
        return bound.reshape(1, -1, 1, 1)
    if bound.numel() == a[0].numel():
        return bound.reshape(1, *a.shape[1:])
    raise ValueError(f"z^B bounds of shape {tuple(bound.shape)} do not match the first layer's input "
                     f"{tuple(a.shape[1:])}: pass scalars, one value per channel or a full image")


@dataclass
class PoolStep(Step):
    """A linear, weight-free pooling (average / adaptive average / mean): epsilon rule."""

    fn: Callable[[Tensor], Tensor] | None = None
    kernel: tuple[int, int] | None = None  # set when the pooling tiles its input exactly

    def propagate(self, R, acts, cfg):
        a, z = acts[self.ins[0]], acts[self.out]
        s = R / rules.stabilize(z, cfg.epsilon)
        return (a * self._adjoint(s, a.shape),)

    def _adjoint(self, s: Tensor, in_shape: torch.Size) -> Tensor:
        k, b = s.shape[:2]
        if self.kernel is not None and s.ndim == 5:
            kh, kw = in_shape[2] // s.shape[3], in_shape[3] // s.shape[4]
            if kh * s.shape[3] == in_shape[2] and kw * s.shape[4] == in_shape[3]:
                if s.shape[3] == 1 and s.shape[4] == 1:
                    return s.expand(k, b, s.shape[2], in_shape[2], in_shape[3]) / (kh * kw)
                up = s.repeat_interleave(kh, dim=3).repeat_interleave(kw, dim=4)
                return up / (kh * kw)
        flat = s.reshape(k * b, *s.shape[2:])
        create = torch.is_grad_enabled() and flat.requires_grad
        with torch.enable_grad():
            dummy = flat.new_zeros((k * b, *in_shape[1:]), requires_grad=True)
            (g,) = torch.autograd.grad(self.fn(dummy), dummy, flat, create_graph=create)
        return g.view(k, b, *in_shape[1:])


@dataclass
class MaxPoolStep(Step):
    """Max pooling: winner takes all (indices recomputed from the stored input)."""

    kwargs: dict = field(default_factory=dict)

    def reads(self) -> tuple[str, ...]:
        return self.ins

    def propagate(self, R, acts, cfg):
        a = acts[self.ins[0]]
        with torch.no_grad():
            _, idx = F.max_pool2d(a, return_indices=True, **self.kwargs)
        return (rules.maxpool_rule(R, a, idx),)


@dataclass
class SumStep(Step):
    """``z = sum_i w_i x_i`` (residual sums, subtraction, scaling by a constant): epsilon rule.

    ``operands`` holds, per argument, a node name or a constant; ``weights`` the factor of each.
    """

    operands: tuple = ()
    weights: tuple[float, ...] = ()

    def propagate(self, R, acts, cfg):
        vals = [acts[o] if isinstance(o, str) else o for o in self.operands]
        out = rules.sum_rule(R, vals, self.weights, acts[self.out], cfg.epsilon)
        by_name: dict[str, Tensor] = {}
        for o, r in zip(self.operands, out):
            if isinstance(o, str) and r is not None:
                by_name[o] = by_name[o] + r if o in by_name else r
        return tuple(by_name.get(n) for n in self.ins)


@dataclass
class CatStep(Step):
    """Concatenation: each input receives its slice (DenseNet's shared features accumulate)."""

    operands: tuple[str, ...] = ()
    dim: int = 0

    def reads(self) -> tuple[str, ...]:
        return self.operands

    def propagate(self, R, acts, cfg):
        sizes = [acts[o].shape[self.dim] for o in self.operands]
        parts = rules.cat_rule(R, sizes, self.dim)
        by_name: dict[str, Tensor] = {}
        for o, r in zip(self.operands, parts):
            by_name[o] = by_name[o] + r if o in by_name else r
        return tuple(by_name.get(n) for n in self.ins)
