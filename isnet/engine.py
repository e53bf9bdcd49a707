"""The LRP engine: one forward pass that keeps activations, then relevance through the plan.

Relevance for K explanations of a batch travels together as ``[K, B, ...]`` tensors, so K
heatmaps cost one batched backward sweep instead of K. All operations are ordinary torch
ops: run under grad mode, the heatmaps are differentiable with respect to every weight.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from .graph import Plan, build_plan
from .steps import RuleConfig

RULES = ("epsilon", "zplus", "gradient")
CHUNK_BYTES = 24 * 2**20  # below glibc's largest dynamic mmap threshold (32 MiB)
INPUT_RULES = ("zb", "epsilon", "zplus", "gradient")


class LRPEngine:
    """Differentiable LRP for one model (traced once; parameters are shared, never copied)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.plan: Plan = build_plan(model)

    def forward(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Logits and the activations the plan reads (same values as ``model(x)``)."""
        logits, values = self.plan.gm(x)
        return logits, dict(zip(self.plan.act_names, values, strict=True))

    def node_for(self, module_name: str) -> str:
        """The graph node holding the output of module ``module_name`` (for deep supervision)."""
        hits = [n for n, p in self.plan.paths.items() if p == module_name or p.startswith(module_name + ".")]
        outs = {s.out for s in self.plan.steps}
        hits = [n for n in hits if n in outs]
        if not hits:
            raise KeyError(f"no node with relevance inside module '{module_name}'")
        return hits[-1]

    def relevance(
        self,
        acts: dict[str, Tensor],
        grad_out: Tensor,
        rule: str = "epsilon",
        input_rule: str | None = "zb",
        epsilon: float = 0.01,
        bounds: tuple[float | Tensor, float | Tensor] = (0.0, 1.0),
        keep: Iterable[str] = (),
        chunk: int | str = "auto",
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Propagate relevance ``R = logits * grad_out`` (``grad_out``: ``[K, B, C]``, e.g. a one-hot
        per map) to the input; returns ``[K, B, *x.shape[1:]]`` and the relevance at the
        graph nodes named in ``keep``. The K maps are propagated together, in chunks of
        ``chunk`` maps (``"auto"``: see :meth:`chunk_size`).
        """
        if rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
        input_rule = rule if input_rule is None else input_rule
        if input_rule not in INPUT_RULES:
            raise ValueError(f"input_rule must be one of {INPUT_RULES} or None, got {input_rule!r}")
        if not epsilon > 0:
            raise ValueError(f"epsilon must be > 0 (use a tiny value such as 1e-12 for LRP-0), got {epsilon}")
        x = acts[self.plan.input_name]
        cfg = RuleConfig(rule=rule, epsilon=float(epsilon), input_rule=input_rule)
        if input_rule == "zb":
            cfg.low, cfg.high = (torch.as_tensor(b, dtype=x.dtype, device=x.device) for b in bounds)
            check_bounds(x, cfg.low, cfg.high)
        keep = set(keep)
        size = self.chunk_size(acts, grad_out.shape[0]) if chunk == "auto" else max(1, int(chunk))
        if size >= grad_out.shape[0]:
            return self._sweep(acts, grad_out, cfg, keep)
        parts = [self._sweep(acts, g, cfg, keep) for g in grad_out.split(size)]
        kept = {n: torch.cat([p[1][n] for p in parts]) for n in parts[0][1]}
        return torch.cat([p[0] for p in parts]), kept

    @staticmethod
    def chunk_size(acts: dict[str, Tensor], k: int) -> int:
        """Maps per sweep on the CPU: the largest per-map activation times the chunk stays under
        ``CHUNK_BYTES``, so transient tensors are recycled by the heap instead of being mapped
        (and page-faulted) afresh by the C allocator at every step; all maps at once elsewhere."""
        first = next(iter(acts.values()))
        if first.device.type != "cpu":
            return k
        largest = max(t.numel() * t.element_size() for t in acts.values() if isinstance(t, Tensor))
        return max(1, min(k, CHUNK_BYTES // max(largest, 1)))

    def _sweep(self, acts: dict[str, Tensor], grad_out: Tensor, cfg: RuleConfig,
               keep: set[str]) -> tuple[Tensor, dict[str, Tensor]]:
        """One reverse sweep over the plan for the maps in ``grad_out``."""
        x = acts[self.plan.input_name]
        kept: dict[str, Tensor] = {}
        plan = self.plan
        rel: dict[str, Tensor] = {plan.output_name: grad_out}
        for step in reversed(plan.steps):
            g = rel.pop(step.out, None)
            if g is None:
                continue
            is_relevance = step.out in plan.input_like
            if step.out in keep:
                kept[step.out] = g if is_relevance else g * acts[plan.value_of.get(step.out, step.out)]
            is_relevance = is_relevance or step.returns_relevance(cfg)
            for name, r in zip(step.ins, step.propagate(g, acts, cfg), strict=True):
                if r is None:
                    continue
                if name in plan.input_like and not is_relevance:
                    r = r * acts[name]
                rel[name] = rel[name] + r if name in rel else r
        R_x = rel.get(plan.input_name)
        if R_x is None:
            R_x = x.new_zeros((grad_out.shape[0], *x.shape))
        return R_x, kept


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


# --------------------------------------------------------------------------- engine cache
_CACHE: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, LRPEngine]] = weakref.WeakKeyDictionary()


def engine_for(model: nn.Module) -> LRPEngine:
    """A cached engine for ``model``; re-traced if its submodules were replaced or their
    train/eval mode changed (tracing freezes Python-level uses of ``self.training``)."""
    key = tuple((id(m), m.training) for m in model.modules())
    hit = _CACHE.get(model)
    if hit is not None and hit[0] == key:
        return hit[1]
    engine = LRPEngine(model)
    _CACHE[model] = (key, engine)
    return engine


def _targets(target: int | Tensor | str, logits: Tensor) -> Tensor:
    """``[K, B]`` class indices for ``target``."""
    b, c = logits.shape
    if isinstance(target, str):
        if target != "all":
            raise ValueError(f"target must be an int, a tensor of class indices or 'all', got {target!r}")
        return torch.arange(c, device=logits.device).view(c, 1).expand(c, b)
    t = torch.as_tensor(target, device=logits.device).long()
    if t.ndim == 0:
        t = t.expand(b)
    if t.shape != (b,):
        raise ValueError(f"target must be a scalar or have shape [B]={b}, got {tuple(t.shape)}")
    if bool(((t < 0) | (t >= c)).any()):
        raise ValueError(f"target class indices must lie in [0, {c}), got {t.tolist()}")
    return t.view(1, b)


def explain(
    model: nn.Module,
    x: Tensor,
    target: int | Tensor | str,
    rule: str = "epsilon",
    input_rule: str | None = "zb",
    epsilon: float = 0.01,
    bounds: tuple[float | Tensor, float | Tensor] = (0.0, 1.0),
    create_graph: bool = False,
) -> Tensor:
    """LRP heatmaps of ``model`` for input ``x`` (``[B, C, H, W]``).

    rule: ``"epsilon"`` (LRP-epsilon everywhere), ``"zplus"`` (LRP-z+ on Conv/Linear/BN),
    or ``"selective"`` (LRP-epsilon started from the class-selective softmax output rule).
    input_rule: ``"zb"`` (box rule with ``bounds``), ``"epsilon"``, ``"zplus"`` or ``None``
    (same as the layers). target: an int, a ``[B]`` tensor of class indices, or ``"all"``.
    Returns relevance of ``x``'s shape, or ``[B, K, C, H, W]`` for ``"all"``. With
    ``create_graph=True`` the heatmap is differentiable with respect to the weights.
    Relevance starts at the explained (pre-softmax) logit: ``R = y * one_hot``.

    In train mode BatchNorm uses batch statistics (detached in the LRP path) and updates its
    running statistics, and Dropout is random, as in any train-mode forward; a warning says so.
    """
    from .rules import onehot_output, selective_output

    if callable(getattr(model, "export", None)):
        model = model.export()  # an ISNet or a benchmark method: explain its plain classifier
    if model.training and any(isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.Dropout)) for m in model.modules()):
        warnings.warn("isnet.explain: the model is in training mode, so BatchNorm uses (detached) batch "
                      "statistics and updates its running statistics, and Dropout is active; call "
                      "model.eval() for test-time heatmaps", stacklevel=2)
    layer_rule = "epsilon" if rule == "selective" else rule
    engine = engine_for(model)
    with torch.set_grad_enabled(create_graph):
        logits, acts = engine.forward(x)
        if logits.ndim != 2:
            raise ValueError(f"explain expects logits of shape [B, K], got {tuple(logits.shape)}")
        idx = _targets(target, logits)
        if rule == "selective":
            grad_out = torch.cat([selective_output(logits, t) for t in idx])
        else:
            grad_out = onehot_output(logits, idx)
        R, _ = engine.relevance(acts, grad_out, layer_rule, input_rule, epsilon, bounds)
    if not create_graph:
        R = R.detach()
    bad = int((~torch.isfinite(R)).sum())
    if bad:
        warnings.warn(f"isnet.explain: {bad} non-finite relevance values (check epsilon > 0 and the input)",
                      stacklevel=2)
    return R.transpose(0, 1) if isinstance(target, str) else R[0]
