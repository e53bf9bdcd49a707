"""Where an ISNet training step's time goes: convolution kernels against every other operator,
from ``torch.profiler``, and the step's exact floor.

On the CPU the split is operator self time (``self_cpu_time_total``). On CUDA it is the GPU
time of the kernels each operator launched itself (``self_device_time_total``), and the
step's wall time (CUDA events, unprofiled) minus all kernel time is its ``gap``: time the GPU
waits for the host (kernel launches, Python dispatch, synchronisations).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from perf.timing import time_call

CPU_CONV_OPS = {"aten::mkldnn_convolution", "aten::convolution_backward", "aten::_slow_conv2d_forward",
                "aten::_slow_conv2d_backward", "aten::slow_conv_transpose2d", "aten::thnn_conv2d"}
CUDA_CONV_OPS = {"aten::cudnn_convolution", "aten::cudnn_convolution_transpose", "aten::convolution_backward",
                 "aten::miopen_convolution", "aten::miopen_convolution_transpose"}
CONV_OPS = CPU_CONV_OPS | CUDA_CONV_OPS


def conv_units(variant: str, k: int) -> int:
    """Convolution work of an exact training step in units of the plain step's (forward + backward
    = 1): each map adds the adjoint and its two backward kernels (1 unit); dual's z+ map also a
    forward convolution with W+ and its backward (1 more); grad_input maps are K gradients."""
    return {"selective": 2, "stochastic": 2, "dual": 4, "original": 1 + k, "grad_input": 1 + k}[variant]


def target(variant: str, k: int) -> float | None:
    """The training-step target for ``variant`` (None: no target, the grad_input ablation)."""
    return {"selective": 2.0, "stochastic": 2.0, "dual": 3.0, "original": 1.0 + k}.get(variant)


def floor(variant: str, k: int, plain_conv: float) -> float:
    """The step's cost, in units of the plain step, if the relevance pass added convolution work
    only: the plain step (1) plus ``conv_units - 1`` more times the plain step's convolutions."""
    return 1.0 + (conv_units(variant, k) - 1) * plain_conv


def _self_time(event: Any, cuda: bool) -> float:
    if not cuda:
        return float(event.self_cpu_time_total)
    for name in ("self_device_time_total", "self_cuda_time_total"):  # renamed in torch 2.4
        if hasattr(event, name):
            return float(getattr(event, name))
    raise AttributeError("profiler events carry no device time")


def split_events(events: Iterable[Any], cuda: bool) -> tuple[float, float]:
    """Seconds in convolution operators and in all other operators, from ``key_averages()``
    entries. On CUDA only operator entries count (their self device time is the GPU time of the
    kernels they launched); the kernels' own entries would count the same time twice."""
    conv = other = 0.0
    for e in events:
        if cuda and str(getattr(e, "device_type", "")).split(".")[-1] != "CPU":
            continue
        seconds = _self_time(e, cuda) / 1e6
        if e.key in CONV_OPS:
            conv += seconds
        else:
            other += seconds
    return conv, other


def operator_split(steps: dict[str, Callable[[], object]], reps: int,
                   device: torch.device) -> dict[str, tuple[float, float, float]]:
    """Per candidate ``(conv, other, wall)`` seconds of one step. Each candidate is profiled one
    step at a time, ``reps`` times, interleaved (A B C, C B A, ...); the profiled step with the
    least operator time is kept (interference from the rest of a machine only adds time). On
    CUDA each profiled step is followed by an unprofiled one timed with CUDA events (``wall``,
    the fastest kept); on the CPU ``wall`` is the operator total (Python time between operators
    is not counted)."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU, ProfilerActivity.CUDA] if cuda else [ProfilerActivity.CPU]
    for step in steps.values():
        step()
    best: dict[str, tuple[float, float]] = {}
    walls: dict[str, float] = {}
    keys = list(steps)
    for r in range(reps):
        for key in keys if r % 2 == 0 else keys[::-1]:
            with profile(activities=activities) as prof:
                steps[key]()
                if cuda:
                    torch.cuda.synchronize(device)
            conv, other = split_events(prof.key_averages(), cuda)
            if key not in best or conv + other < sum(best[key]):
                best[key] = (conv, other)
            if cuda:
                walls[key] = min(walls.get(key, float("inf")), time_call(steps[key], device))
    if cuda and "plain" in best and sum(best["plain"]) == 0:
        raise RuntimeError("the CUDA profiler recorded no kernel time (is CUPTI available to torch.profiler?)")
    return {k: (c, o, walls.get(k, c + o)) for k, (c, o) in best.items()}


def breakdown_row(split: dict[str, tuple[float, float, float]], backbone: str, k: int) -> dict:
    """Conv, other and gap of every candidate in units of the plain step's wall time."""
    unit = split["plain"][2]
    row: dict = {"backbone": backbone, "K": k, "plain_s": unit}
    for cand, (c, o, wall) in split.items():
        row[cand] = {"conv": c / unit, "other": o / unit, "gap": max(wall - (c + o), 0.0) / unit, "total": wall / unit}
    return row
