"""Whether the runs behind one table were trained under the same numerics.

A run's thread count, device and, on the CPU, the instruction set its kernels used change the
last bits of its numbers (and its timings). Each record's ``provenance.json`` lists every start
and resume of the run (``starts``: ``threads``, ``device``, ``kernels``, ...); a record without
that list counts as one start on its recorded ``device``.
The report warns where one table mixes settings.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd

from benchmarks.report.tidy import Collection


def settings(provenance: dict) -> set[str]:
    """The numerics settings a run was trained under, one per distinct (threads, device, CPU
    kernels' instruction set where recorded)."""
    starts = provenance.get("starts")
    if not starts:
        return {str(provenance.get("device"))}
    return {f"{s.get('device')}, {s.get('threads')} thread{'' if s.get('threads') == 1 else 's'}"
            + (f", {s['kernels'].get('aten_capability')} kernels" if isinstance(s.get("kernels"), dict) else "")
            for s in starts}


def mixed(collection: Collection, selected: pd.DataFrame, key: tuple[str, str] | None = None) -> str:
    """A warning when the selected runs (of ``key``, or all) were trained under more than one
    setting; empty when they all share one."""
    runs = selected[selected["status"] == "ok"] if key is None else selected[
        (selected["experiment"] == key[0]) & (selected["profile"] == key[1]) & (selected["status"] == "ok")]
    per_run = [settings(collection.record(path).provenance) for path in runs["path"].unique()]
    found = sorted(set().union(*per_run)) if per_run else []
    if len(found) < 2:
        return ""
    counts = Counter(" + ".join(sorted(s)) + (" (resumed under another setting)" if len(s) > 1 else "")
                     for s in per_run)
    listing = "; ".join(f"{name}: {n} run{'s' * (n != 1)}" for name, n in sorted(counts.items()))
    return (f"**Mixed numerics.** The runs {'of these tables' if key else 'of this report'} were trained under "
            f"{len(found)} settings of threads, device and kernels ({listing}). A run's numbers depend in their last "
            "bits on its thread count, device and kernels, and timings are comparable only within one setting.")
