"""Which CPU kernels a run computes with, pinned to one instruction set so that CPUs agree.

PyTorch picks its CPU kernels by the instruction set of the machine it runs on: ATen's
vectorised kernels, oneDNN's JIT convolutions and MKL's BLAS each have AVX2 and AVX-512
code paths, and the two sum in different orders. A run of the reference configuration on an
AVX2-only CPU and one on an AVX-512 CPU therefore differ from the first step (the training
cross-entropy of epoch 0 of ``isnet`` on ``biased_mnist``, seed 0: 1.650901851870797 on an
AVX2 machine, 1.650931103663011 on an AVX-512 one), and the difference grows with training.

Every x86-64 CPU with AVX2 can run the AVX2 paths, so the harness caps all three libraries
at AVX2 (:data:`PINNED`) before torch is imported: on an AVX-512 machine, ``isnet`` then
reproduces the AVX2 machine's epoch-0 value to the last digit (``perf/kernel_pinning.py``
measures this and what the cap costs). The cap is a default: a variable already set in the
environment is left alone, and ``ISNET_BENCHMARKS_KERNELS=native`` turns it off. CPUs without
AVX2 (and non-x86 machines) run their native kernels; :func:`describe` records what a run
used in its ``provenance.json``.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

#: the environment that caps ATen, oneDNN and MKL at their AVX2 code paths
PINNED = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}
#: set to ``native`` to let every library use the machine's widest instruction set
OPT_OUT = "ISNET_BENCHMARKS_KERNELS"
#: CPU flags that decide which kernel paths exist on a machine
KERNEL_FLAGS = ("sse4_2", "avx", "fma", "avx2", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
                "amx_tile")
CPUINFO = Path("/proc/cpuinfo")


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (from ``/proc/cpuinfo``; empty where there is none)."""
    try:
        for line in CPUINFO.read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def pin_cpu_kernels(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Cap the CPU kernels at AVX2 in ``environ`` (default: this process's environment), unless
    the user opted out, the machine lacks AVX2, or torch is already imported (its choice is
    made); returns the variables this call set. Call it before ``import torch``.

    Worker processes inherit the environment, so they compute as their parent does: where the
    cap cannot apply because torch came first, this records the opt-out instead, and a worker
    that imports the harness before torch does not pin on its own."""
    env = os.environ if environ is None else environ
    if env.get(OPT_OUT, "").lower() == "native" or "avx2" not in cpu_flags():
        return {}
    if environ is None and "torch" in sys.modules and not all(env.get(k) == v for k, v in PINNED.items()):
        env[OPT_OUT] = "native"
        return {}
    added = {k: v for k, v in PINNED.items() if k not in env}
    env.update(added)
    return added


def describe() -> dict[str, Any]:
    """What decides a CPU run's numerics: the processor (model, family, the kernel-relevant
    flags), the instruction set ATen dispatched to, the caps in force, and the versions of
    torch and of the libraries it computes with (oneDNN, MKL)."""
    import torch

    info = _cpuinfo()
    flags = cpu_flags()
    return {
        "cpu": info.get("model name", platform.processor() or platform.machine()),
        "cpu_id": {k: info[k] for k in ("vendor_id", "cpu family", "model", "stepping") if k in info},
        "machine": platform.machine(),
        "kernel_flags": [f for f in KERNEL_FLAGS if f in flags],
        "aten_capability": torch.backends.cpu.get_cpu_capability(),
        "caps": {k: os.environ[k] for k in PINNED if k in os.environ},
        "opt_out": os.environ.get(OPT_OUT, ""),
        "torch": torch.__version__,
        "onednn": _config_version(torch, r"(?:MKL-DNN|oneDNN) v([\w.]+)"),
        "mkl": _config_version(torch, r"Math Kernel Library Version ([\w.-]+)"),
        "threads": torch.get_num_threads(),
    }


def _cpuinfo() -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        for line in CPUINFO.read_text().splitlines():
            if not line.strip():
                break  # the first processor describes them all
            key, _, value = line.partition(":")
            out.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return out


def _config_version(torch: Any, pattern: str) -> str | None:
    match = re.search(pattern, torch.__config__.show())
    return match.group(1) if match else None
