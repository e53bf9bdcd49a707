"""Propagation steps: one per graph node (or fused node chain) that relevance crosses.

A step knows which activations it reads and which rule of :mod:`isnet.rules` applies.
``propagate(g, acts, cfg)`` maps ``g`` at its output (``R = v * g``, see :mod:`isnet.rules`)
to one ``g`` (or ``None``) per input node; steps with ``returns_relevance`` (the z^B input
layer) return the relevance itself.
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

    rule: str = "epsilon"  # "epsilon" | "zplus" | "gradient"
    epsilon: float = 0.01
    input_rule: str = "zb"  # "zb" | "epsilon" | "zplus" | "gradient"
    low: Tensor | None = None
    high: Tensor | None = None
    memo_table: dict = field(default_factory=dict, repr=False)

    def memo(self, key: tuple, compute: Callable[[], object]):
        """Per-call cache: a layer's factor, fused weight and rule parts are the same for
        every chunk of maps of one :meth:`~isnet.engine.LRPEngine.relevance` call, so the
        chunks share them (and their backward) instead of recomputing them."""
        if key not in self.memo_table:
            self.memo_table[key] = compute()
        return self.memo_table[key]


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

    def returns_relevance(self, cfg: RuleConfig) -> bool:
        return False

    def reads(self) -> tuple[str, ...]:
        """Activations this step needs (node names)."""
        return (self.out, self.value, *self.ins)

    def propagate(self, g: Tensor, acts: dict[str, Tensor], cfg: RuleConfig) -> Sequence[Tensor | None]:
        raise NotImplementedError

    def factor(self, acts: dict[str, Tensor], cfg: RuleConfig, rule: str | None = None) -> Tensor | None:
        """``v / stab(z)`` for the epsilon rule; for the gradient, the folded ReLU's mask (or ``None``)."""
        rule = rule or cfg.rule
        return cfg.memo((self.out, "factor", rule), lambda: self._factor(acts, cfg, rule))

    def _factor(self, acts: dict[str, Tensor], cfg: RuleConfig, rule: str) -> Tensor | None:
        if rule == "gradient":
            return (acts[self.value] > 0).to(acts[self.value].dtype) if self.after_relu else None
        return rules.epsilon_factor(acts[self.value], acts[self.out], cfg.epsilon, self.after_relu)


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

    def propagate(self, g, acts, cfg):
        a_in = acts[self.ins[0]]
        if self.kind == "relu":
            g = rules.relu_rule(g, acts[self.out])
        elif self.kind == "dropout" and (self.module is None or self.module.training):
            a_out = acts[self.out]
            if a_out is not a_in:
                g = rules.scale(g, torch.where(a_in != 0, a_out / a_in, torch.zeros_like(a_in)))
        if tuple(g.shape[1:]) != tuple(a_in.shape):
            g = g.reshape(g.shape[0], *a_in.shape)
        return (g,)


@dataclass
class AffineStep(Step):
    """A Conv2d / Linear / BatchNorm chain (BN fused): epsilon, z+ or, at the input, z^B."""

    chain: AffineChain = field(default_factory=lambda: AffineChain(None))
    first: bool = False

    def reads(self) -> tuple[str, ...]:
        extra = tuple(n for n in (self.chain.pre_input, self.chain.post_input) if n)
        return (*super().reads(), *extra)

    def _rule(self, cfg: RuleConfig) -> str:
        return cfg.input_rule if self.first else cfg.rule

    def returns_relevance(self, cfg: RuleConfig) -> bool:
        return self._rule(cfg) == "zb"

    def propagate(self, g, acts, cfg):
        a, z, v = acts[self.ins[0]], acts[self.out], acts[self.value]
        w, bias = cfg.memo((self.out, "fused"), lambda: self.chain.fused(acts))
        fwd, adj = self.chain.forward_fn, self.chain.adjoint_fn(a.shape)
        rule = self._rule(cfg)
        if rule == "zb":
            if self.chain.op is None:
                raise ValueError(f"z^B input rule needs a Conv2d or Linear first layer, got a BatchNorm "
                                 f"at '{self.path}'; use input_rule='epsilon'")
            offset = None if bias is None else _bias_view(bias, z.ndim)
            low, high = _bounds_like(cfg.low, a), _bounds_like(cfg.high, a)
            parts = cfg.memo((self.out, "zb"),
                             lambda: rules.zbox_parts(v, a, z, offset, w, fwd, low, high, cfg.epsilon))
            return (rules.zbox_apply(g, parts, a, adj),)
        if rule == "zplus":
            parts = cfg.memo((self.out, "zplus"), lambda: rules.zplus_parts(v, a, w, fwd, cfg.epsilon))
            return (rules.zplus_apply(g, parts, a, adj),)
        return (rules.epsilon_rule(g, self.factor(acts, cfg, rule), w, adj),)


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
    """A linear, weight-free pooling (average / adaptive average / mean): epsilon rule.

    ``tiles``: the pooling averages disjoint windows covering its input (kernel == stride,
    no padding, or adaptive with divisible sizes), so its adjoint is a plain up-sampling.
    """

    fn: Callable[[Tensor], Tensor] | None = None
    tiles: bool = False

    def propagate(self, g, acts, cfg):
        f = self.factor(acts, cfg)
        return (self._adjoint(rules.scale(g, f), acts[self.ins[0]].shape),)

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

    def propagate(self, g, acts, cfg):
        a = acts[self.ins[0]]
        if self.indices:
            idx = acts[self.indices]
        else:
            with torch.no_grad():
                _, idx = F.max_pool2d(a, return_indices=True, **self.kwargs)
        return (rules.maxpool_rule(g, a, idx, self.kwargs),)


@dataclass
class SumStep(Step):
    """``z = sum_i w_i x_i`` (residual sums, subtraction, scaling by a constant): epsilon rule.

    ``operands`` holds, per argument, a node name or a constant; ``weights`` the factor of each.
    """

    operands: tuple = ()
    weights: tuple[float, ...] = ()

    def propagate(self, g, acts, cfg):
        vals = [acts[o] if isinstance(o, str) else o for o in self.operands]
        out = rules.sum_rule(g, self.factor(acts, cfg), vals, self.weights)
        return _by_name(self.ins, self.operands, out)


@dataclass
class CatStep(Step):
    """Concatenation: each input receives its slice (DenseNet's shared features accumulate)."""

    operands: tuple[str, ...] = ()
    dim: int = 0

    def reads(self) -> tuple[str, ...]:
        return self.operands

    def propagate(self, g, acts, cfg):
        sizes = [acts[o].shape[self.dim] for o in self.operands]
        return _by_name(self.ins, self.operands, rules.cat_rule(g, sizes, self.dim))


def _by_name(ins: tuple[str, ...], operands: tuple, parts: Sequence[Tensor | None]) -> tuple[Tensor | None, ...]:
    acc: dict[str, Tensor] = {}
    for o, r in zip(operands, parts, strict=True):
        if isinstance(o, str) and r is not None:
            acc[o] = acc[o] + r if o in acc else r
    return tuple(acc.get(n) for n in ins)
