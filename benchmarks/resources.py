"""What a grid invocation cost: wall time, peak memory of its process tree, and the machine.

``run`` wraps the grid in :class:`ResourceMonitor` and appends one JSON line per invocation
to ``<out>/invocations.jsonl``; the report turns those lines into its "Cost of the runs"
table, so the wall time and memory of the reference run are recorded beside its results.

Memory is read from Linux's ``/proc`` for this process and all its descendants (pool
workers, the fork server):

* ``peak_pss_bytes``: the largest sum of proportional set sizes seen by a sampler thread
  (every ``interval`` seconds). PSS charges each shared page (the torch libraries every
  worker maps) once in total, so the sum is the tree's real footprint; a spike shorter than
  the interval can be missed. Reading PSS walks every mapping of a process (tens of
  milliseconds for a torch process), so the interval is 2 s: at 0.5 s the sampler used about
  12 % of one core during a 2-core grid.
* ``peak_rss_sum_bytes``: the sum over processes of each one's own high-water mark
  (``VmHWM``). An upper bound: it counts shared pages once per process and adds peaks that
  need not coincide.

Elsewhere (macOS, Windows) there is no ``/proc`` and the memory fields are ``None``.
"""

from __future__ import annotations

import json
import os
import platform
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

PROC = Path("/proc")


def _read_kib(path: Path, key: str) -> int | None:
    """The ``key:`` line of a /proc status-like file, in bytes (``None`` if unreadable)."""
    try:
        for line in path.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def available_memory_bytes() -> int | None:
    """Memory the kernel says can be given to new work without swapping (``None`` off Linux)."""
    return _read_kib(PROC / "meminfo", "MemAvailable")


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    task_dir = PROC / str(pid) / "task"
    try:
        threads = list(task_dir.iterdir())
    except OSError:
        return kids
    for thread in threads:
        try:
            kids += [int(c) for c in (thread / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return kids


def process_tree(root: int) -> list[int]:
    """``root`` and all its live descendants."""
    seen, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.append(pid)
        todo += _children(pid)
    return seen


class ResourceMonitor:
    """Sample the memory of this process tree in a background thread while the grid runs."""

    def __init__(self, interval: float = 2.0) -> None:
        self.interval = interval
        self.available = (PROC / "self" / "smaps_rollup").exists()
        self.peak_pss = 0
        self.peak_processes = 0
        self.hwm: dict[int, int] = {}
        self.started = 0.0
        self.wall = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        """One reading of every process in the tree."""
        pss_sum, count = 0, 0
        for pid in process_tree(os.getpid()):
            pss = _read_kib(PROC / str(pid) / "smaps_rollup", "Pss")
            hwm = _read_kib(PROC / str(pid) / "status", "VmHWM")
            if pss is None:
                continue
            pss_sum += pss
            count += 1
            if hwm is not None:
                self.hwm[pid] = max(self.hwm.get(pid, 0), hwm)
        if pss_sum > self.peak_pss:
            self.peak_pss, self.peak_processes = pss_sum, count

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> ResourceMonitor:
        self.started = time.perf_counter()
        if self.available:
            self.sample()
            self._thread = threading.Thread(target=self._loop, name="resource-monitor", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.sample()
        self.wall = time.perf_counter() - self.started

    def summary(self) -> dict[str, Any]:
        """Wall time and memory peaks (bytes; ``None`` where /proc is not available)."""
        return {
            "wall_seconds": round(self.wall, 1),
            "peak_pss_bytes": self.peak_pss if self.available else None,
            "peak_rss_sum_bytes": sum(self.hwm.values()) if self.available else None,
            "processes_at_peak": self.peak_processes if self.available else None,
            "sampling_interval_s": self.interval,
        }


def cpu_model() -> str:
    """The processor's model name (from ``/proc/cpuinfo`` where there is one)."""
    try:
        for line in (PROC / "cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """The machine in words: CPU model, usable cores, memory, OS."""
    return {
        "cpu": cpu_model(),
        "usable_cores": usable_cores(),
        "logical_cpus": os.cpu_count(),
        "memory_bytes": _read_kib(PROC / "meminfo", "MemTotal"),
        "system": f"{platform.system()} {platform.release()}",
    }


INVOCATIONS = "invocations.jsonl"


def append_invocation(out: Path, record: dict[str, Any]) -> Path:
    """Append ``record`` as one JSON line to ``<out>/invocations.jsonl`` (atomically rewritten)."""
    from benchmarks.store import atomic_write_bytes

    path = Path(out) / INVOCATIONS
    old = path.read_bytes() if path.exists() else b""
    if old and not old.endswith(b"\n"):
        old += b"\n"
    atomic_write_bytes(path, old + (json.dumps(record, sort_keys=True) + "\n").encode())
    return path


def read_invocations(out: Path) -> list[dict[str, Any]]:
    """The invocation lines under ``out`` (unreadable lines are skipped)."""
    path = Path(out) / INVOCATIONS
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records
