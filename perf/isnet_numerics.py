"""Two ways of computing one training step, compared on the same weights and batch: bf16 autocast
against float32 (``precision``), and ``torch.compile`` against eager (``compile``).

Each comparison reports the time of both (fastest of interleaved repetitions) and the relative
error of the loss, the heatmap loss and the gradient of every backbone parameter, next to the
error float32 itself makes against a float64 run of the same step (the rounding floor: an
error of that size is float32 rounding, not a fault of the candidate).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from perf.isnet_cases import Scale, Step, make_step
from perf.timing import fastest_times, is_out_of_memory, release_memory, time_call

VALUES = ("loss", "heatmap_loss")


def loss_and_gradients(step: Step) -> tuple[dict[str, float], Tensor]:
    """The step's loss terms and its backbone gradient (float64, flattened), without updating the
    weights. The stochastic variant's class draw is seeded, so every run draws alike."""
    step.backbone.zero_grad(set_to_none=True)
    torch.manual_seed(1)
    out = step.loss()
    out["loss"].backward()
    grads = [p.grad.detach().double().flatten() for p in step.backbone.parameters() if p.grad is not None]
    values = {k: float(out[k].detach().double()) for k in VALUES if k in out}
    step.backbone.zero_grad(set_to_none=True)
    return values, torch.cat(grads)


def relative_errors(reference: tuple[dict[str, float], Tensor], other: tuple[dict[str, float], Tensor]) -> dict:
    """``|a - b| / |a|`` of each loss term, ``||g_a - g_b|| / ||g_a||`` and the cosine of the
    gradients (``reference`` is a)."""
    (va, ga), (vb, gb) = reference, other
    out = {f"{k}_rel": abs(vb[k] - va[k]) / max(abs(va[k]), 1e-30) for k in va if k in vb}
    norm = float(ga.norm())
    out["grad_rel"] = float((gb - ga).norm()) / max(norm, 1e-30)
    out["grad_cos"] = float(torch.dot(ga, gb)) / max(norm * float(gb.norm()), 1e-30)
    return out


def _measure(make, device: torch.device, tolerate: bool = False) -> tuple[dict[str, float], Tensor] | str:
    """``loss_and_gradients`` of a freshly built step; ``"OOM"`` when it does not fit and, with
    ``tolerate``, ``"fails: <error>"`` when it raises (a measured result, e.g. an op without a
    bf16 path), instead of raising."""
    try:
        return loss_and_gradients(make())
    except Exception as err:
        if is_out_of_memory(err):
            release_memory(device)
            return "OOM"
        if not tolerate:
            raise
        return f"fails: {type(err).__name__}: {str(err).splitlines()[0][:160]}"


def _errors(reference, other) -> dict | None:
    return None if isinstance(reference, str) or isinstance(other, str) else relative_errors(reference, other)


def _failure(*results) -> str:
    return next((r for r in results if isinstance(r, str)), "")


def precision_row(variant: str | None, k: int, backbone: str, scale: Scale, reps: int) -> dict:
    """bf16 autocast against float32 for one candidate (``None``: the plain step). A bf16 step that
    fails is recorded with its error, not raised."""
    ref = _measure(lambda: make_step(variant, k, backbone, scale, "float64"), scale.device)
    f32 = _measure(lambda: make_step(variant, k, backbone, scale, "float32"), scale.device)
    b16 = _measure(lambda: make_step(variant, k, backbone, scale, "bf16"), scale.device, tolerate=True)
    release_memory(scale.device)
    precisions = ("float32",) if isinstance(b16, str) else ("float32", "bf16")
    steps = {p: make_step(variant, k, backbone, scale, p).run for p in precisions}
    times, failed = fastest_times(steps, reps, scale.device)
    del steps
    release_memory(scale.device)
    return {"backbone": backbone, "K": k, "candidate": variant or "plain",
            "float32_s": times.get("float32", math.nan), "bf16_s": times.get("bf16", math.nan),
            "bf16_failure": _failure(b16) or ("OOM" if "bf16" in failed else ""),
            "float64_failure": _failure(ref),
            "bf16_vs_float32": _errors(f32, b16), "float32_vs_float64": _errors(ref, f32)}


def compile_row(variant: str | None, k: int, backbone: str, scale: Scale, reps: int, backend: str) -> dict:
    """``torch.compile(backend=backend)`` against eager for one candidate: the first compiled
    call's time (tracing and code generation included), the steady step times, and the errors."""
    ref = _measure(lambda: make_step(variant, k, backbone, scale, "float64"), scale.device)
    row = _compiled_against_eager(variant, k, backbone, scale, reps, backend)
    release_memory(scale.device)
    eager = row.pop("eager_result")
    return {"backbone": backbone, "K": k, "candidate": variant or "plain", "backend": backend, **row,
            "float64_failure": _failure(ref), "float32_vs_float64": _errors(ref, eager)}


def _compiled_against_eager(variant: str | None, k: int, backbone: str, scale: Scale, reps: int,
                            backend: str) -> dict:
    eager_step = make_step(variant, k, backbone, scale)
    compiled_step = make_step(variant, k, backbone, scale, compile_backend=backend)
    eager = loss_and_gradients(eager_step)
    compiled: list = []
    first_s = time_call(lambda: compiled.append(loss_and_gradients(compiled_step)), scale.device)
    times, failed = fastest_times({"eager": eager_step.run, "compiled": compiled_step.run}, reps, scale.device)
    return {"first_call_s": first_s, "eager_s": times.get("eager", math.nan),
            "compiled_s": times.get("compiled", math.nan), "failed": sorted(failed), "eager_result": eager,
            "compiled_vs_eager": relative_errors(eager, compiled[0])}
