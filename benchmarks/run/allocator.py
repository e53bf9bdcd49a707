"""Keep large freed tensor buffers in the process heap (glibc only).

glibc serves every allocation above its mmap threshold (128 KiB, raised on the fly to at most
32 MiB) with a fresh ``mmap`` and returns it to the kernel on free, so each new activation
buffer of a CPU training step is page-faulted and zeroed again. On the 2-core machines this
suite targets, that made identical convolutions take 10 ms or 30 ms depending on the
allocator's history. Fixing the threshold at its 32 MiB ceiling and never trimming the heap
below 1 GiB lets freed buffers be reused; values are unchanged, only the time per step and
its noise drop (see ``perf/isnet_speed.py``).

The harness calls :func:`keep_freed_buffers` once per training process; the ``isnet``
library never changes process-wide settings on its own.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 2**20  # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit
TRIM_THRESHOLD_BYTES = 2**30


def keep_freed_buffers() -> bool:
    """Apply the settings above; ``False`` (and nothing changed) off glibc."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    mapped = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)) and mapped
