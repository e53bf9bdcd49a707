"""Timing, memory and machine description shared by the perf scripts, on the CPU and on CUDA.

On the CPU a call is timed with ``time.perf_counter``; on CUDA with a pair of CUDA events
recorded around it after ``torch.cuda.synchronize`` (the GPU's own clock, kernels queued
before the call excluded). Candidates are compared by the fastest of interleaved
repetitions: load from the rest of a machine only ever adds time.
"""

from __future__ import annotations

import gc
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable

import torch

from benchmarks.resources import cpu_model


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds one call of ``fn`` takes on ``device`` (CUDA: between two events, after a sync)."""
    if device.type != "cuda":
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    torch.cuda.synchronize(device)
    start_event, end_event = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start_event.record()
    fn()
    end_event.record()
    end_event.synchronize()
    return start_event.elapsed_time(end_event) / 1e3


def is_out_of_memory(err: BaseException) -> bool:
    """A CUDA (or CPU allocator) out-of-memory error, as opposed to a bug."""
    return isinstance(err, torch.cuda.OutOfMemoryError) or (
        isinstance(err, RuntimeError) and "out of memory" in str(err).lower())


def release_memory(device: torch.device) -> None:
    """Free what Python and the CUDA caching allocator hold (between candidates)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def fastest_times(fns: dict[str, Callable[[], object]], reps: int,
                  device: torch.device | None = None) -> tuple[dict[str, float], dict[str, str]]:
    """Fastest time of each function over ``reps`` interleaved rounds after one warm-up; the
    order alternates between rounds (A B C, C B A, ...). The minimum, not the median: load from
    the rest of a shared machine only ever adds time, and it comes and goes within seconds.

    Returns the times and, apart, the candidates that ran out of memory (name -> message); they
    are dropped from the remaining rounds instead of failing the whole comparison.
    """
    device = device or torch.device("cpu")
    failed: dict[str, str] = {}

    def attempt(key: str) -> float | None:
        try:
            return time_call(fns[key], device)
        except Exception as err:
            if not is_out_of_memory(err):
                raise
            failed[key] = f"out of memory: {str(err).splitlines()[0][:120]}"
            release_memory(device)
            return None

    for key in list(fns):
        attempt(key)
    times: dict[str, list[float]] = {k: [] for k in fns}
    keys = list(fns)
    for r in range(reps):
        for key in keys if r % 2 == 0 else keys[::-1]:
            if key in failed:
                continue
            t = attempt(key)
            if t is not None:
                times[key].append(t)
    return {k: min(v) for k, v in times.items() if v and k not in failed}, failed


def cuda_peak_bytes(fn: Callable[[], object], device: torch.device) -> tuple[int, int]:
    """``(peak, before)``: ``torch.cuda.max_memory_allocated`` during one call of ``fn`` (the
    peak statistics reset just before it) and the memory allocated when it started."""
    release_memory(device)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device), before


# --------------------------------------------------------------------------- machine
def nvidia_smi() -> str | None:
    """``nvidia-smi``'s GPU inventory (name, driver, memory, power limit, clocks), or None."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    query = "name,driver_version,memory.total,power.limit,clocks.max.sm,clocks.max.memory,pci.bus_id"
    try:
        out = subprocess.run([exe, f"--query-gpu={query}", "--format=csv"], capture_output=True, text=True,
                             timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def describe(device: torch.device) -> list[str]:
    """Markdown bullet lines naming the machine a measurement ran on."""
    lines = [f"- torch {torch.__version__}, Python {platform.python_version()}, {os.cpu_count()} logical CPUs "
             f"({cpu_model()}), {torch.get_num_threads()} torch threads"]
    if device.type != "cuda":
        return [f"- device: CPU ({cpu_model()})", *lines]
    props = torch.cuda.get_device_properties(device)
    lines = [
        f"- device: {props.name}, {props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs, "
        f"compute capability {props.major}.{props.minor}",
        *lines,
        f"- CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}; TF32 for convolutions "
        f"{'on' if torch.backends.cudnn.allow_tf32 else 'off'}, for matmuls "
        f"{'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'} (torch's defaults, as the harness runs); "
        f"cudnn.benchmark {'on' if torch.backends.cudnn.benchmark else 'off'}",
    ]
    smi = nvidia_smi()
    if smi:
        lines += ["", "```", smi, "```"]
    return lines
