"""Propagation steps: one per graph node (or fused node chain) that relevance crosses.

A step knows which activations it reads and how relevance crosses its node; affine layers
defer to the rules of :mod:`isnet.rules` (one per call, chosen by a
:class:`~isnet.rules.Composite`), weight-free nodes have rules of their own, below.
``propagate(g, acts, rules, memo)`` maps ``g`` at its output (``R = v * g``, see
:mod:`isnet.factors`) to one ``g`` (or ``None``) per input node; a step whose rule
``returns_relevance`` (the z^B input layer) returns the relevance itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from .canonizers import AffineChain
from .factors import scale
from .rules import Composite, Layer, Rule


class Memo:
    """Per-call cache: a layer's factor, fused weight and rule parts are the same for every
    chunk of maps of one :meth:`~isnet.engine.LRPEngine.relevance` call, so the chunks share
    them (and their backward) instead of recomputing them."""

    def __init__(self) -> None:
        self._table: dict[tuple, object] = {}

    def get(self, key: tuple, compute: Callable[[], object]):
        if key not in self._table:
            self._table[key] = compute()
        return self._table[key]


@dataclass
class Step:
    """Base step: relevance at node ``out`` goes to the nodes ``ins``.

    ``value`` names the node whose value carries the output relevance: ``out`` itself, or
    the ReLU that is ``out``'s only consumer (that ReLU is then folded into this step).
    """

    out: str
    ins: tuple[str, ...]
    path: str = ""
    value: str = ""

    def __post_init__(self) -> None:
        self.value = self.value or self.out

    @property
    def after_relu(self) -> bool:
        return self.value != self.out

    def returns_relevance(self, rules: Composite) -> bool:
        return False

    def reads(self) -> tuple[str, ...]:
        """Activations this step needs (node names)."""
        return (self.out, self.value, *self.ins)

    def propagate(self, g: Tensor, acts: dict[str, Tensor], rules: Composite,
                  memo: Memo) -> Sequence[Tensor | None]:
        raise NotImplementedError

    def factor(self, acts: dict[str, Tensor], rules: Composite, memo: Memo) -> Tensor | None:
        """The layer rule's ``v / stab(z)`` (for the gradient, the folded ReLU's mask or ``None``)."""
        return memo.get((self.out, "factor"),
                        lambda: rules.layer.factor(acts[self.value], acts[self.out], self.after_relu))


@dataclass
class PassStep(Step):
    """Shape-only nodes (Flatten, view, Identity, eval Dropout): relevance is unchanged.

    ``relu``: a ReLU not folded into its producer (``g`` is masked by ``a > 0``); ``fused``: a
    ReLU folded into its producer (passes ``g``); ``dropout``: an active Dropout (``g`` is
    rescaled by ``a_out / a_in`` so that relevance is unchanged).
    """

    kind: str = "pass"  # "pass" | "relu" | "fused" | "dropout"
    module: torch.nn.Module | None = None

    def reads(self) -> tuple[str, ...]:
        return (self.out, *self.ins) if self.kind in ("relu", "dropout") else self.ins

    def propagate(self, g, acts, rules, memo):
        a_in = acts[self.ins[0]]
        if self.kind == "relu":
            g = relu_rule(g, acts[self.out])
        elif self.kind == "dropout" and (self.module is None or self.module.training):
            a_out = acts[self.out]
            if a_out is not a_in:
                g = scale(g, torch.where(a_in != 0, a_out / a_in, torch.zeros_like(a_in)))
        if tuple(g.shape[1:]) != tuple(a_in.shape):
            g = g.reshape(g.shape[0], *a_in.shape)
        return (g,)


@dataclass
class AffineStep(Step):
    """A Conv2d / Linear / BatchNorm chain (BN fused): the composite's rule for its position."""

    chain: AffineChain = field(default_factory=lambda: AffineChain(None))
    first: bool = False

    def reads(self) -> tuple[str, ...]:
        extra = tuple(n for n in (self.chain.pre_input, self.chain.post_input) if n)
        return (*super().reads(), *extra)

    def rule(self, rules: Composite) -> Rule:
        return rules.first if self.first else rules.layer

    def returns_relevance(self, rules: Composite) -> bool:
        return self.rule(rules).returns_relevance

    def propagate(self, g, acts, rules, memo):
        rule = self.rule(rules)
        layer = memo.get((self.out, "layer"), lambda: self._layer(acts))
        parts = memo.get((self.out, rule.name), lambda: rule.denominator(layer))
        return (rule.propagate(g, parts, layer),)

    def _layer(self, acts: dict[str, Tensor]) -> Layer:
        a = acts[self.ins[0]]
        weight, bias = self.chain.fused(acts)
        return Layer(a, acts[self.out], acts[self.value], weight, bias, self.chain.forward_fn,
                     self.chain.adjoint_fn(a.shape), self.after_relu, self.path, self.chain.op is None)


@dataclass
class PoolStep(Step):
    """A linear, weight-free pooling (average / adaptive average / mean): the layer rule's factor.

    ``tiles``: the pooling averages disjoint windows covering its input (kernel == stride,
    no padding, or adaptive with divisible sizes), so its adjoint is a plain up-sampling.
    """

    fn: Callable[[Tensor], Tensor] | None = None
    tiles: bool = False

    def propagate(self, g, acts, rules, memo):
        f = self.factor(acts, rules, memo)
        return (self._adjoint(scale(g, f), acts[self.ins[0]].shape),)

    def _adjoint(self, s: Tensor, in_shape: torch.Size) -> Tensor:
        k, b = s.shape[:2]
        if self.tiles and s.ndim == 5:
            kh, kw = in_shape[2] // s.shape[3], in_shape[3] // s.shape[4]
            if kh * s.shape[3] == in_shape[2] and kw * s.shape[4] == in_shape[3]:
                if s.shape[3] == 1 and s.shape[4] == 1:
                    return (s / (kh * kw)).expand(k, b, s.shape[2], in_shape[2], in_shape[3])
                return (s / (kh * kw)).repeat_interleave(kh, dim=3).repeat_interleave(kw, dim=4)
        flat = s.reshape(k * b, *s.shape[2:])
        create = torch.is_grad_enabled() and flat.requires_grad
        with torch.enable_grad():
            dummy = flat.new_zeros((k * b, *in_shape[1:]), requires_grad=True)
            (out,) = torch.autograd.grad(self.fn(dummy), dummy, flat, create_graph=create)
        return out.view(k, b, *in_shape[1:])


@dataclass
class MaxPoolStep(Step):
    """Max pooling: winner takes all (arg-max indices saved by the forward pass, else recomputed)."""

    kwargs: dict = field(default_factory=dict)
    indices: str = ""

    def reads(self) -> tuple[str, ...]:
        return (*self.ins, self.indices) if self.indices else self.ins

    def propagate(self, g, acts, rules, memo):
        a = acts[self.ins[0]]
        if self.indices:
            idx = acts[self.indices]
        else:
            with torch.no_grad():
                _, idx = F.max_pool2d(a, return_indices=True, **self.kwargs)
        return (maxpool_rule(g, a, idx, self.kwargs),)


@dataclass
class SumStep(Step):
    """``z = sum_i w_i x_i`` (residual sums, subtraction, scaling by a constant): the layer rule's factor.

    ``operands`` holds, per argument, a node name or a constant; ``weights`` the factor of each.
    """

    operands: tuple = ()
    weights: tuple[float, ...] = ()

    def propagate(self, g, acts, rules, memo):
        vals = [acts[o] if isinstance(o, str) else o for o in self.operands]
        out = sum_rule(g, self.factor(acts, rules, memo), vals, self.weights)
        return _by_name(self.ins, self.operands, out)


@dataclass
class CatStep(Step):
    """Concatenation: each input receives its slice (DenseNet's shared features accumulate)."""

    operands: tuple[str, ...] = ()
    dim: int = 0

    def reads(self) -> tuple[str, ...]:
        return self.operands

    def propagate(self, g, acts, rules, memo):
        sizes = [acts[o].shape[self.dim] for o in self.operands]
        return _by_name(self.ins, self.operands, cat_rule(g, sizes, self.dim))


def _by_name(ins: tuple[str, ...], operands: tuple, parts: Sequence[Tensor | None]) -> tuple[Tensor | None, ...]:
    acc: dict[str, Tensor] = {}
    for o, r in zip(operands, parts, strict=True):
        if isinstance(o, str) and r is not None:
            acc[o] = acc[o] + r if o in acc else r
    return tuple(acc.get(n) for n in ins)


# --------------------------------------------------------------------------- weight-free nodes
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
