"""Graph tracing: turn a classifier into a forward pass that keeps its activations and a plan of steps.

``torch.fx`` traces the model as it comes (torchvision ResNet / VGG / DenseNet, ``nn.Sequential``
stacks, ...), so residual sums and concatenations are handled generically. Every node on the
path from the input to the logits must map to a step of :mod:`isnet.steps`; anything else
raises :class:`UnsupportedOperationError` naming the operation and its module path.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from .canonizers import AffineChain, BatchNorm
from .steps import AffineStep, CatStep, MaxPoolStep, PassStep, PoolStep, Step, SumStep


class UnsupportedOperationError(TypeError):
    """The model contains an operation that has no LRP rule here."""


SUPPORTED = ("Conv2d, Linear, BatchNorm1d/2d, ReLU, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, mean, "
             "Flatten/view/reshape, Dropout, Identity, residual sums (+, -), scaling by a constant, torch.cat")

_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d)
_PASS_MODULES = (nn.ReLU, nn.Identity, nn.Flatten, *_DROPOUT)
_PASS_FUNCTIONS = {F.relu, torch.relu, torch.relu_, F.dropout, F.dropout2d, torch.flatten, torch.reshape,
                   torch.squeeze, torch.unsqueeze}
_PASS_METHODS = {"relu", "relu_", "view", "reshape", "flatten", "squeeze", "unsqueeze", "contiguous"}
_META_METHODS = {"size", "dim"}
_ADD = {operator.add, operator.iadd, torch.add}
_SUB = {operator.sub, operator.isub, torch.sub}
_SCALE = {operator.mul, operator.imul, torch.mul, operator.truediv, operator.itruediv, torch.div}
_CAT = {torch.cat, torch.concat}
_RELUS = (F.relu, torch.relu, torch.relu_, "relu", "relu_")


@dataclass
class Plan:
    """The traced forward (returns ``(logits, activations)``) and the steps, in forward order."""

    gm: fx.GraphModule
    steps: list[Step]
    input_name: str
    output_name: str
    act_names: tuple[str, ...]
    paths: dict[str, str]  # node name -> module path (for LDS layer lookup and messages)
    input_like: frozenset[str]  # the input and its reshapes: they hold relevance, not g
    value_of: dict[str, str]  # node -> the ReLU folded after it (whose value carries its relevance)


def module_path(node: fx.Node) -> str:
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack") or {}
    return list(stack)[-1] if stack else "<top level>"


def _unsupported(node: fx.Node, what: str) -> UnsupportedOperationError:
    return UnsupportedOperationError(
        f"isnet LRP: no rule for {what} at module path '{module_path(node)}' (graph node '{node.name}'). "
        f"Supported: {SUPPORTED}.")


def _describe(node: fx.Node, gm: fx.GraphModule) -> str:
    if node.op == "call_module":
        return f"module {type(gm.get_submodule(node.target)).__name__}"
    if node.op == "call_method":
        return f"method Tensor.{node.target}"
    return f"function {getattr(node.target, '__module__', '')}.{getattr(node.target, '__name__', node.target)}"


class _Tracer(fx.Tracer):
    """Keeps every BatchNorm subclass (e.g. timm's BatchNormAct2d) a leaf module."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, BatchNorm) or super().is_leaf_module(m, qualname)


def _check_norm_act(node: fx.Node, mod: nn.Module) -> None:
    """A BatchNorm subclass with a built-in activation is supported when that activation is a ReLU."""
    act = getattr(mod, "act", None)
    drop = getattr(mod, "drop", None)
    if act is not None and not isinstance(act, (nn.Identity, nn.ReLU)):
        raise _unsupported(node, f"{type(mod).__name__} with activation {type(act).__name__}")
    if drop is not None and not isinstance(drop, nn.Identity):
        raise _unsupported(node, f"{type(mod).__name__} with {type(drop).__name__}")


def trace(model: nn.Module) -> fx.GraphModule:
    """Symbolically trace ``model`` (parameters and submodules are shared, not copied).

    A bare ``torch.nn`` layer (e.g. one ``nn.Conv2d``) is traced as a one-layer stack.
    """
    if _Tracer().is_leaf_module(model, "") and not isinstance(model, nn.Sequential):
        model = nn.Sequential(model)
    try:
        tracer = _Tracer()
        graph = tracer.trace(model)
        return fx.GraphModule(tracer.root, graph, type(model).__name__)
    except Exception as exc:  # noqa: BLE001 - re-raised with context
        raise UnsupportedOperationError(
            f"isnet LRP: torch.fx could not trace {type(model).__name__} ({type(exc).__name__}: {exc}); "
            "data-dependent control flow in forward() is not supported") from exc


def _arg(node: fx.Node, i: int, name: str, default=None):
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(name, default)


def build_plan(model: nn.Module) -> Plan:
    """Trace ``model`` and derive its propagation plan."""
    gm = trace(model)
    graph = gm.graph
    nodes = list(graph.nodes)
    placeholders = [n for n in nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise UnsupportedOperationError(f"isnet LRP: the model must take one input tensor, got {len(placeholders)}")
    x = placeholders[0]
    out_node = next(n for n in nodes if n.op == "output")
    if not isinstance(out_node.args[0], fx.Node):
        raise UnsupportedOperationError("isnet LRP: the model must return one logits tensor, not a tuple/dict")

    dep = {x}  # nodes carrying tensors that depend on the input
    meta: set[fx.Node] = set()  # input-dependent nodes that are not tensors (shapes)
    steps: list[tuple[int, Step]] = []
    chains: dict[fx.Node, AffineChain] = {}  # op node -> its (fused) chain
    chain_in: dict[fx.Node, fx.Node] = {}  # op node -> chain input node
    chain_out: dict[fx.Node, fx.Node] = {}  # op node -> chain output node
    pre_bn: dict[fx.Node, fx.Node] = {}  # BN node -> the op node it feeds (BN -> op fusion)
    inputs_like = {x}  # the input, possibly reshaped: the z^B layer reads it
    order = {n: i for i, n in enumerate(nodes)}

    for node in nodes:
        if node.op in ("placeholder", "output", "get_attr"):
            continue
        ins = [a for a in node.all_input_nodes if a in dep]
        if not ins:
            if any(a in meta for a in node.all_input_nodes):
                meta.add(node)
            continue
        if (node.op == "call_method" and node.target in _META_METHODS) or (
                node.op == "call_function" and node.target is getattr):
            meta.add(node)
            continue
        dep.add(node)
        if node.op != "call_module":
            step = _function_step(node, ins, gm)
            steps.append((order[node], step))
            if isinstance(step, PassStep) and ins[0] in inputs_like and node.target not in _RELUS:
                inputs_like.add(node)
            continue
        mod = gm.get_submodule(node.target)
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            if isinstance(mod, nn.Conv2d) and mod.padding_mode != "zeros":
                raise _unsupported(node, f"Conv2d with padding_mode='{mod.padding_mode}'")
            chains[node], chain_in[node], chain_out[node] = AffineChain(mod), ins[0], node
            src = node.args[0]
            if src in pre_bn:
                chains[node].pre, chains[node].pre_input = gm.get_submodule(src.target), src.args[0].name
                chain_in[node] = src.args[0]
        elif isinstance(mod, BatchNorm):
            _check_norm_act(node, mod)  # a fused ReLU keeps every rule exact: R = relu(z) * g
            src = node.args[0]
            users = list(node.users)
            if src in chains and chains[src].post is None and chain_out[src] is src and len(src.users) == 1:
                chains[src].post, chains[src].post_input = mod, src.name  # op -> BN
                chain_out[src] = node
            elif (len(users) == 1 and users[0].op == "call_module" and users[0].args[0] is node
                  and isinstance(getattr(mod, "act", None), (type(None), nn.Identity))
                  and isinstance(gm.get_submodule(users[0].target), (nn.Conv2d, nn.Linear))):
                pre_bn[node] = users[0]  # BN -> op, completed when the op is reached
            else:
                chain = AffineChain(None, post=mod, post_input=src.name)
                steps.append((order[node], AffineStep(node.name, (src.name,), module_path(node), chain=chain,
                                                      first=src in inputs_like)))
        elif isinstance(mod, _PASS_MODULES):
            kind = "relu" if isinstance(mod, nn.ReLU) else "dropout" if isinstance(mod, _DROPOUT) else "pass"
            steps.append((order[node], PassStep(node.name, (ins[0].name,), module_path(node), kind=kind,
                                                module=mod)))
            if ins[0] in inputs_like and not isinstance(mod, nn.ReLU):
                inputs_like.add(node)
        elif isinstance(mod, nn.MaxPool2d):
            kw = dict(kernel_size=mod.kernel_size, stride=mod.stride, padding=mod.padding,
                      dilation=mod.dilation, ceil_mode=mod.ceil_mode)
            steps.append((order[node], MaxPoolStep(node.name, (ins[0].name,), module_path(node), kwargs=kw)))
        elif isinstance(mod, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            steps.append((order[node], PoolStep(node.name, (ins[0].name,), module_path(node), fn=mod,
                                                tiles=_tiling(mod))))
        else:
            raise _unsupported(node, _describe(node, gm))

    for op_node, chain in chains.items():
        src = chain_in[op_node]
        step = AffineStep(chain_out[op_node].name, (src.name,), module_path(op_node), chain=chain,
                          first=src in inputs_like)
        steps.append((order[op_node], step))
    steps.sort(key=lambda t: t[0])
    ordered = [s for _, s in steps]
    value_of = _fold_relus(ordered, {n.name: len(n.users) for n in nodes})

    logits = out_node.args[0]
    if logits not in dep:
        raise UnsupportedOperationError("isnet LRP: the model output does not depend on its input")
    _make_inplace_safe(gm)
    _save_maxpool_indices(gm, ordered)
    act_names = _needed(ordered, x.name, logits.name)
    by_name = {n.name: n for n in gm.graph.nodes}
    out_node.args = ((logits, tuple(by_name[n] for n in act_names)),)
    gm.recompile()
    paths = {n.name: module_path(n) for n in nodes}
    return Plan(gm, ordered, x.name, logits.name, act_names, paths,
                frozenset(n.name for n in inputs_like), value_of)


def _tiling(mod: nn.Module) -> bool:
    """Whether a pooling's adjoint is a plain up-sampling (kernel == stride, no padding)."""
    if isinstance(mod, nn.AdaptiveAvgPool2d):
        return True
    k = mod.kernel_size if isinstance(mod.kernel_size, tuple) else (mod.kernel_size,) * 2
    s = mod.stride if isinstance(mod.stride, tuple) else (mod.stride,) * 2
    p = mod.padding if isinstance(mod.padding, tuple) else (mod.padding,) * 2
    ok = k == s and p == (0, 0) and not mod.ceil_mode and mod.divisor_override is None
    return ok


def _function_step(node: fx.Node, ins: list[fx.Node], gm: fx.GraphModule) -> Step:
    path = module_path(node)
    names = tuple(dict.fromkeys(a.name for a in ins))
    t = node.target
    if node.op == "call_method":
        if t in _PASS_METHODS:
            return PassStep(node.name, (node.args[0].name,), path, kind="relu" if t in _RELUS else "pass")
        if t in ("add", "add_", "sub", "sub_"):
            w = 1.0 if t.startswith("add") else -1.0
            alpha = node.kwargs.get("alpha", 1)
            return SumStep(node.name, names, path, operands=_ops(node.args[:2]), weights=(1.0, w * alpha))
        if t == "mean":
            dims, keep = _arg(node, 1, "dim"), _arg(node, 2, "keepdim", False)
            return PoolStep(node.name, names, path, fn=lambda v, d=dims, k=keep: v.mean(d, keepdim=k))
        raise _unsupported(node, _describe(node, gm))
    if t in _PASS_FUNCTIONS:
        kind = "relu" if t in _RELUS else "pass"
        if t in (F.dropout, F.dropout2d) and _arg(node, 2, "training", True):
            kind = "dropout"
        return PassStep(node.name, (node.args[0].name,), path, kind=kind)
    if t in _ADD or t in _SUB:
        w = -1.0 if t in _SUB else 1.0
        alpha = node.kwargs.get("alpha", 1)
        return SumStep(node.name, names, path, operands=_ops(node.args[:2]), weights=(1.0, w * alpha))
    if t in _SCALE:
        a, b = node.args[:2]
        if isinstance(a, fx.Node) and isinstance(b, fx.Node):
            raise _unsupported(node, "a product of two tensors")
        tensor, const = (a, b) if isinstance(a, fx.Node) else (b, a)
        factor = 1.0 / const if t in (operator.truediv, operator.itruediv, torch.div) else const
        return SumStep(node.name, names, path, operands=(tensor.name,), weights=(float(factor),))
    if t in _CAT:
        tensors = _arg(node, 0, "tensors")
        dim = _arg(node, 1, "dim", 0)
        if not all(isinstance(v, fx.Node) for v in tensors):
            raise _unsupported(node, "torch.cat of non-tensor operands")
        return CatStep(node.name, names, path, operands=tuple(v.name for v in tensors), dim=dim)
    if t is F.max_pool2d:
        kw = dict(kernel_size=_arg(node, 1, "kernel_size"), stride=_arg(node, 2, "stride"),
                  padding=_arg(node, 3, "padding", 0), dilation=_arg(node, 4, "dilation", 1),
                  ceil_mode=_arg(node, 5, "ceil_mode", False))
        if _arg(node, 6, "return_indices", False):
            raise _unsupported(node, "max_pool2d(return_indices=True)")
        return MaxPoolStep(node.name, names, path, kwargs=kw)
    if t is F.adaptive_avg_pool2d:
        size = _arg(node, 1, "output_size")
        return PoolStep(node.name, names, path, fn=lambda v, s=size: F.adaptive_avg_pool2d(v, s), tiles=True)
    if t is F.avg_pool2d:
        args = [_arg(node, i, k, d) for i, (k, d) in enumerate(
            [("input", None), ("kernel_size", None), ("stride", None), ("padding", 0), ("ceil_mode", False),
             ("count_include_pad", True), ("divisor_override", None)])][1:]
        return PoolStep(node.name, names, path, fn=lambda v, a=tuple(args): F.avg_pool2d(v, *a))
    if t is torch.mean:
        dims, keep = _arg(node, 1, "dim"), _arg(node, 2, "keepdim", False)
        return PoolStep(node.name, names, path, fn=lambda v, d=dims, k=keep: v.mean(d, keepdim=k))
    raise _unsupported(node, _describe(node, gm))


def _fold_relus(steps: list[Step], n_users: dict[str, int]) -> dict[str, str]:
    """Fold each ReLU into the epsilon step producing its input when it is that node's only user."""
    by_out = {s.out: s for s in steps}
    value_of: dict[str, str] = {}
    for s in steps:
        if isinstance(s, PassStep) and s.kind == "relu":
            prod = by_out.get(s.ins[0])
            if isinstance(prod, (AffineStep, SumStep, PoolStep)) and n_users[s.ins[0]] == 1 and not prod.after_relu:
                prod.value, s.kind = s.out, "fused"
                value_of[prod.out] = s.out
    return value_of


def _ops(args) -> tuple:
    return tuple(a.name if isinstance(a, fx.Node) else a for a in args)


def _make_inplace_safe(gm: fx.GraphModule) -> None:
    """Rewrite in-place ReLUs as out-of-place ones in the traced copy (the model is untouched)."""
    for node in gm.graph.nodes:
        if node.op == "call_module" and isinstance(gm.get_submodule(node.target), nn.ReLU):
            node.op, node.target, node.args, node.kwargs = "call_function", torch.relu, (node.args[0],), {}
        elif node.op == "call_function" and node.target in (F.relu, torch.relu_):
            node.target, node.args, node.kwargs = torch.relu, (node.args[0],), {}
        elif node.op == "call_method" and node.target in ("relu_", "add_", "sub_"):
            node.target = node.target[:-1]
        elif node.op == "call_function" and node.target in (operator.iadd, operator.isub, operator.imul,
                                                           operator.itruediv):
            node.target = {operator.iadd: operator.add, operator.isub: operator.sub,
                           operator.imul: operator.mul, operator.itruediv: operator.truediv}[node.target]
        elif node.op == "call_function" and node.target in (F.dropout, F.dropout2d) and node.kwargs.get("inplace"):
            node.kwargs = {**node.kwargs, "inplace": False}


def _max_pool_with_indices(x, kernel_size, stride, padding, dilation, ceil_mode):
    return F.max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices=True)


def _save_maxpool_indices(gm: fx.GraphModule, steps: list[Step]) -> None:
    """Let the forward pass return max-pooling arg-max indices instead of recomputing them."""
    nodes = {n.name: n for n in gm.graph.nodes}
    for step in steps:
        if isinstance(step, MaxPoolStep):
            node = nodes[step.out]
            kw = step.kwargs
            args = (node.args[0], kw["kernel_size"], kw["stride"], kw["padding"], kw["dilation"], kw["ceil_mode"])
            with gm.graph.inserting_before(node):
                both = gm.graph.call_function(_max_pool_with_indices, args)
                idx = gm.graph.call_function(operator.getitem, (both, 1))
            node.op, node.target, node.args, node.kwargs = "call_function", operator.getitem, (both, 0), {}
            step.indices = idx.name


def _needed(steps: list[Step], x: str, logits: str) -> tuple[str, ...]:
    names = dict.fromkeys([x, logits])
    for s in steps:
        names.update(dict.fromkeys(s.reads()))
    return tuple(names)
