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

from .config import DEFAULT_LRP
from .graph import Plan, build_plan
from .outputs import onehot_output, selective_output
from .rules import Composite, composite
from .steps import Memo

CHUNK_BYTES = 24 * 2**20  # below glibc's largest dynamic mmap threshold (32 MiB)


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
        rule: str = DEFAULT_LRP.rule,
        input_rule: str | None = DEFAULT_LRP.input_rule,
        epsilon: float = DEFAULT_LRP.epsilon,
        bounds: tuple[float | Tensor, float | Tensor] = DEFAULT_LRP.bounds,
        keep: Iterable[str] = (),
        chunk: int | str = "auto",
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Propagate relevance ``R = logits * grad_out`` (``grad_out``: ``[K, B, C]``, e.g. a one-hot
        per map) to the input; returns ``[K, B, *x.shape[1:]]`` and the relevance at the
        graph nodes named in ``keep``. The K maps are propagated together, in chunks of
        ``chunk`` maps (``"auto"``: see :meth:`chunk_size`). ``rule`` / ``input_rule``: names in
        :data:`isnet.rules.RULES` (``input_rule=None``: the same as ``rule``).
        """
        rules = composite(rule, input_rule, epsilon, acts[self.plan.input_name], bounds)
        memo = Memo()
        keep = set(keep)
        size = self.chunk_size(acts, grad_out.shape[0]) if chunk == "auto" else max(1, int(chunk))
        if size >= grad_out.shape[0]:
            return self._sweep(acts, grad_out, rules, memo, keep)
        parts = [self._sweep(acts, g, rules, memo, keep) for g in grad_out.split(size)]
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

    def _sweep(self, acts: dict[str, Tensor], grad_out: Tensor, rules: Composite, memo: Memo,
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
            is_relevance = is_relevance or step.returns_relevance(rules)
            for name, r in zip(step.ins, step.propagate(g, acts, rules, memo), strict=True):
                if r is None:
                    continue
                if name in plan.input_like and not is_relevance:
                    r = r * acts[name]
                rel[name] = rel[name] + r if name in rel else r
        R_x = rel.get(plan.input_name)
        if R_x is None:
            R_x = x.new_zeros((grad_out.shape[0], *x.shape))
        return R_x, kept


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
    rule: str = DEFAULT_LRP.rule,
    input_rule: str | None = DEFAULT_LRP.input_rule,
    epsilon: float = DEFAULT_LRP.epsilon,
    bounds: tuple[float | Tensor, float | Tensor] = DEFAULT_LRP.bounds,
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
