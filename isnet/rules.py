"""LRP rules as objects, kept apart from the code that walks the graph (as zennit does).

A rule says how relevance crosses an affine layer ``z = W a + b`` (a Conv2d / Linear with its
BatchNorms fused, or a lone BatchNorm): ``R_j = sum_k c_jk R_k / stab(sum_j c_jk)``, where
``c_jk`` is what the rule counts as input ``j``'s contribution to output ``k`` (docs/isnet.md,
section 3). It has two parts:

* :meth:`Rule.denominator`: the stabilised denominator, as the factor ``v / stab(D)``
  (:mod:`isnet.factors`), and the weights the second part transposes. Both are the same for
  every map of a batch: the engine computes them once per layer and call.
* :meth:`Rule.contribution`: ``s = R / stab(D)`` sent back through the transposed weights and
  weighted by the inputs, as the rule counts them: ``g`` at the input (``R_a = a * g_a``), or
  the relevance ``R_a`` itself for :attr:`Rule.returns_relevance` rules.

Weight-free nodes (pooling, sums) take the layer rule's :meth:`Rule.factor` of ``v / stab(z)``.

Adding a rule: one subclass of :class:`Rule` listed in :data:`RULES` (its ``name`` is what
``explain(rule=...)`` accepts), plus its slow matrix form in ``tests/isnet/test_isnet_rules.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from .factors import epsilon_factor, ratio, scale

Linear = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Layer:
    """What a rule sees of one affine layer in one sweep.

    ``fwd(a, W) = W a`` (no bias) and ``adj(s, W) = W^T s`` (``s``: ``[K, B, *out]``) are the
    layer's linear map and its adjoint; ``bias`` is the fused per-channel bias, ``None`` when
    it is not constant (a BatchNorm before a padded convolution).
    """

    a: Tensor  # input activation [B, *in]
    z: Tensor  # output, bias included [B, *out]
    v: Tensor  # the value carrying the output relevance: z, or the ReLU folded after the layer
    weight: Tensor
    bias: Tensor | None
    fwd: Linear
    adj: Linear
    after_relu: bool  # v is the output of a ReLU folded after the layer
    path: str  # module path, for messages
    batchnorm_only: bool  # a lone BatchNorm (a diagonal map, no Conv2d / Linear)


@dataclass(frozen=True)
class Parts:
    """A layer's share of a rule that every map of a batch reuses: the factor ``v / stab(D)``
    (``None``: 1), the weights to transpose and, for z^B, the bounds that pair with them."""

    factor: Tensor | None
    weights: tuple[Tensor, ...]
    bounds: tuple[Tensor, ...] = ()


class Rule(ABC):
    """An LRP rule with stabiliser ``epsilon``; subclasses define :meth:`denominator` and
    :meth:`contribution`."""

    name: ClassVar[str]
    input_only: ClassVar[bool] = False  # needs the input's value range: only for layers reading the input
    returns_relevance: ClassVar[bool] = False  # contribution() returns R at the input, not g

    def __init__(self, epsilon: float) -> None:
        self.epsilon = epsilon

    @classmethod
    def create(cls, epsilon: float, x: Tensor, bounds: tuple[float | Tensor, float | Tensor]) -> Rule:
        """The rule for one explanation of input ``x`` (only input rules read ``x`` and ``bounds``)."""
        return cls(epsilon)

    def factor(self, v: Tensor, z: Tensor, after_relu: bool) -> Tensor | None:
        """``v / stab(z)``: the stabilised denominator of LRP-epsilon, also used by weight-free nodes."""
        return epsilon_factor(v, z, self.epsilon, after_relu)

    @abstractmethod
    def denominator(self, layer: Layer) -> Parts:
        """The factor ``v / stab(D)`` and the weights :meth:`contribution` transposes."""

    @abstractmethod
    def contribution(self, s: Tensor, parts: Parts, layer: Layer) -> Tensor:
        """``s = g * factor`` at the layer output to ``g`` (or ``R``) at its input."""

    def propagate(self, g: Tensor, parts: Parts, layer: Layer) -> Tensor:
        """``g`` at the layer output to ``g`` (or ``R``) at its input."""
        return self.contribution(scale(g, parts.factor), parts, layer)


class Epsilon(Rule):
    """LRP-epsilon: ``R_j = a_j sum_k w_jk R_k / stab(z_k)``, ``z`` with its bias (``c_jk = a_j w_jk``)."""

    name = "epsilon"

    def denominator(self, layer: Layer) -> Parts:
        return Parts(self.factor(layer.v, layer.z, layer.after_relu), (layer.weight,))

    def contribution(self, s: Tensor, parts: Parts, layer: Layer) -> Tensor:
        return layer.adj(s, parts.weights[0])


class Gradient(Epsilon):
    """Gradient x input: LRP-epsilon with the factor 1, so ``g`` is the plain gradient of the
    explained output and ``R_a = a * g_a`` (the ``grad_input`` ablation, docs/isnet.md, section 5).

    A ReLU folded after the layer leaves only its mask in the factor.
    """

    name = "gradient"

    def factor(self, v: Tensor, z: Tensor, after_relu: bool) -> Tensor | None:
        return (v > 0).to(v.dtype) if after_relu else None


class ZPlus(Rule):
    """LRP-z+: ``R_j = sum_k a_j w+_jk R_k / stab(sum_j a_j w+_jk)``, biases ignored.

    Negative inputs (no ReLU before the layer) pair with the negative weights (the alpha = 1,
    beta = 0 form), so ``W-`` is transposed too when ``a`` has negative entries.
    """

    name = "zplus"

    def denominator(self, layer: Layer) -> Parts:
        a, w, fwd = layer.a, layer.weight, layer.fwd
        wp = w.clamp(min=0)
        if not bool((a < 0).any()):
            return Parts(ratio(layer.v, fwd(a, wp), self.epsilon), (wp,))
        wn = w.clamp(max=0)
        return Parts(ratio(layer.v, fwd(a.clamp(min=0), wp) + fwd(a.clamp(max=0), wn), self.epsilon), (wp, wn))

    def contribution(self, s: Tensor, parts: Parts, layer: Layer) -> Tensor:
        if len(parts.weights) == 1:
            return layer.adj(s, parts.weights[0])
        wp, wn = parts.weights
        return torch.where(layer.a > 0, layer.adj(s, wp), layer.adj(s, wn))


class ZBox(Rule):
    """LRP-z^B (the box rule) for inputs within ``low <= x <= high``: returns the relevance ``R_x``.

    ``c_ij = x_i w_ij - l_i w+_ij - h_i w-_ij`` (biases cancel), stabilised by ``epsilon``.
    ``low`` / ``high``: scalars, one value per channel or a full image.
    """

    name = "zb"
    input_only = True
    returns_relevance = True

    def __init__(self, epsilon: float, low: Tensor, high: Tensor) -> None:
        super().__init__(epsilon)
        self.low, self.high = low, high

    @classmethod
    def create(cls, epsilon: float, x: Tensor, bounds: tuple[float | Tensor, float | Tensor]) -> Rule:
        low, high = (torch.as_tensor(b, dtype=x.dtype, device=x.device) for b in bounds)
        check_bounds(x, low, high)
        return cls(epsilon, low, high)

    def denominator(self, layer: Layer) -> Parts:
        """The factor ``v / stab(z^B)`` with ``z^B = W x - W+ l - W- h``; ``W x = z - bias`` comes
        from the forward pass (recomputed when the bias is not constant)."""
        if layer.batchnorm_only:
            raise ValueError(f"z^B input rule needs a Conv2d or Linear first layer, got a BatchNorm "
                             f"at '{layer.path}'; use input_rule='epsilon'")
        x, z, w, fwd = layer.a, layer.z, layer.weight, layer.fwd
        shift = None
        bounds: list[Tensor] = []
        weights = [w]
        low, high = _bounds_like(self.low, x), _bounds_like(self.high, x)
        for bound, part_w in ((low, w.clamp(min=0)), (high, w.clamp(max=0))):
            if bool(bound.ne(0).any()):
                bound = bound.expand((1, *x.shape[1:]))
                part = fwd(bound, part_w)  # one image: the bound's contribution
                shift = part if shift is None else shift + part
                bounds.append(bound)
                weights.append(part_w)
        if layer.bias is None:
            zb = fwd(x, w) if shift is None else fwd(x, w) - shift
        else:  # z + (-c), not z - c: the gradient of the small c is negated, not that of the batch
            offset = layer.bias.view(1, -1, *([1] * (z.ndim - 2)))
            zb = z + -(offset if shift is None else offset + shift)
        return Parts(ratio(layer.v, zb, self.epsilon), tuple(weights), tuple(bounds))

    def contribution(self, s: Tensor, parts: Parts, layer: Layer) -> Tensor:
        transposed = _adj_many(s, parts.weights, layer.adj)
        out = layer.a.unsqueeze(0) * transposed[0]
        for bound, part in zip(parts.bounds, transposed[1:], strict=True):
            out = out - bound * part
        return out


def _adj_many(s: Tensor, weights: tuple[Tensor, ...], adj: Linear) -> list[Tensor]:
    """``[W^T s for W in weights]`` in one call when the weights stack along the input axis."""
    if len(weights) == 1 or getattr(adj, "groups", 1) != 1:
        return [adj(s, w) for w in weights]
    stacked = adj(s, torch.cat(weights, dim=1))
    return list(stacked.chunk(len(weights), dim=2))


def _bounds_like(bound: Tensor, a: Tensor) -> Tensor:
    if bound.ndim == 0:
        return bound
    if a.ndim == 4 and bound.numel() == a.shape[1]:
        return bound.reshape(1, -1, 1, 1)
    if bound.numel() == a[0].numel():
        return bound.reshape(1, *a.shape[1:])
    raise ValueError(f"z^B bounds of shape {tuple(bound.shape)} do not match the first layer's input "
                     f"{tuple(a.shape[1:])}: pass scalars, one value per channel or a full image")


def check_bounds(x: Tensor, low: Tensor, high: Tensor, tol: float = 1e-5) -> None:
    """Raise if ``x`` leaves the declared z^B box (the rule is meaningless outside it)."""
    lo = low.reshape(1, -1, *([1] * (x.ndim - 2))) if low.ndim == 1 and x.ndim > 2 else low
    hi = high.reshape(1, -1, *([1] * (x.ndim - 2))) if high.ndim == 1 and x.ndim > 2 else high
    with torch.no_grad():
        below = bool((x < lo - tol).any())
        above = bool((x > hi + tol).any())
    if below or above:
        raise ValueError(
            f"input values lie outside the z^B bounds (input range [{x.min().item():.4g}, {x.max().item():.4g}], "
            f"bounds low={_fmt(low)}, high={_fmt(high)}): pass bounds= matching the input range "
            "(per-channel tensors for normalised images) or input_rule='epsilon'")


def _fmt(t: Tensor) -> str:
    return f"{t.item():.4g}" if t.numel() == 1 else str([round(v, 4) for v in t.flatten().tolist()])


# --------------------------------------------------------------------------- the rules by name
RULES: dict[str, type[Rule]] = {cls.name: cls for cls in (Epsilon, ZPlus, Gradient, ZBox)}
LAYER_RULES = tuple(name for name, cls in RULES.items() if not cls.input_only)
INPUT_RULES = (*(name for name, cls in RULES.items() if cls.input_only), *LAYER_RULES)


@dataclass(frozen=True)
class Composite:
    """Which rule applies where: ``first`` at the affine layers reading the input, ``layer`` at
    every other affine layer and (through its :meth:`Rule.factor`) at pooling and sums."""

    layer: Rule
    first: Rule


def composite(rule: str, input_rule: str | None, epsilon: float, x: Tensor,
              bounds: tuple[float | Tensor, float | Tensor]) -> Composite:
    """The rules of one explanation of ``x``, by name (``input_rule=None``: same as ``rule``)."""
    if rule not in LAYER_RULES:
        raise ValueError(f"rule must be one of {LAYER_RULES}, got {rule!r}")
    input_rule = rule if input_rule is None else input_rule
    if input_rule not in INPUT_RULES:
        raise ValueError(f"input_rule must be one of {INPUT_RULES} or None, got {input_rule!r}")
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0 (use a tiny value such as 1e-12 for LRP-0), got {epsilon}")
    epsilon = float(epsilon)
    return Composite(RULES[rule].create(epsilon, x, bounds), RULES[input_rule].create(epsilon, x, bounds))
