r"""Render ``reports/performance/isnet_speed.md`` from the pytest-benchmark JSON of the speed benchmarks.

The benchmarks are ``tests/perf/test_speed_ratios.py``::

    python -m pytest tests/perf/test_speed_ratios.py --benchmark-only \
        --benchmark-json=reports/performance/isnet_speed.json
    python perf/render_speed.py reports/performance/isnet_speed.json [--output FILE] [--check]

Every ratio is the fastest round of a candidate over the fastest of the runs of its baseline
made just before each of those rounds (``extra_info["baseline_seconds"]``): load from the rest
of a shared machine only adds time, and both saw the same. ``--check`` compares the file with
what it would write and exits 1 when they differ.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "reports" / "performance" / "isnet_speed.md"
MEASURE = ("python -m pytest tests/perf/test_speed_ratios.py --benchmark-only "
           "--benchmark-json=reports/performance/isnet_speed.json")
RENDER = "python perf/render_speed.py reports/performance/isnet_speed.json"
NAMES = {"small": "SmallCNN", "resnet18": "ResNet18", "vgg11": "VGG11"}
VARIANTS = ("original", "dual", "selective", "stochastic", "grad_input")
#: the speed targets of the papers' claims, shown beside the ratios (docs/performance.md)
HEATMAP_TARGETS = {"ours": 1.2, "zennit": 0.7}
STEP_TARGETS = "Targets: selective and stochastic <= 2.0, dual <= 3.0, original <= 1 + K."


@dataclass(frozen=True)
class Measured:
    """One benchmark: its fastest round, and (for a candidate) that over the fastest run of its
    baseline beside it."""

    seconds: float
    ratio: float | None


def measured(data: dict[str, Any]) -> dict[tuple[str, str], Measured]:
    """``{(group, candidate): Measured}`` of a pytest-benchmark JSON."""
    out = {}
    for bench in data["benchmarks"]:
        info, fastest_round = bench["extra_info"], bench["stats"]["min"]
        beside = info.get("baseline_seconds")
        out[(bench["group"], info["candidate"])] = Measured(fastest_round, fastest_round / min(beside) if beside
                                                            else None)
    return out


def groups(data: dict[str, Any], section: str) -> list[tuple[str, dict[str, Any]]]:
    """The groups of ``section`` in the order they were measured, each with its first benchmark's ``extra_info``."""
    seen: dict[str, dict[str, Any]] = {}
    for bench in data["benchmarks"]:
        if bench["extra_info"]["section"] == section:
            seen.setdefault(bench["group"], bench["extra_info"])
    return list(seen.items())


def heatmap_table(data: dict[str, Any], m: dict[tuple[str, str], Measured]) -> list[str]:
    lines = ["## Heatmap (LRP-epsilon, z^B input layer, one target class per image)", "",
             "| model | plain input-gradient pass (s) | ours (s) | zennit (s) | "
             f"ours / gradient (target <= {HEATMAP_TARGETS['ours']}) | "
             f"ours / zennit (target <= {HEATMAP_TARGETS['zennit']}) |",
             "|---|---|---|---|---|---|"]
    for group, info in groups(data, "heatmap"):
        gradient, ours, zennit = (m.get((group, c)) for c in ("gradient", "ours", "zennit"))
        cells = [f"{gradient.seconds:.3f}", f"{ours.seconds:.3f}", "-" if zennit is None else f"{zennit.seconds:.3f}",
                 f"{ours.ratio:.2f}", "-" if zennit is None else f"{ours.ratio / zennit.ratio:.2f}"]
        lines.append(f"| {NAMES.get(info['model'], info['model'])} | " + " | ".join(cells) + " |")
    return lines + ["", "zennit has no canonizer for SmallCNN, so it is compared on the torchvision models only; "
                        "`ours / zennit` divides their ratios to the input-gradient pass run beside each."]


def training_tables(data: dict[str, Any], m: dict[tuple[str, str], Measured]) -> list[str]:
    by_backbone: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for group, info in groups(data, "train"):
        by_backbone.setdefault(info["backbone"], []).append((group, info))
    lines: list[str] = []
    for backbone, rows in by_backbone.items():
        lines += [f"## Training step / plain cross-entropy step ({NAMES.get(backbone, backbone)}, 3 input channels)",
                  "", STEP_TARGETS, "", "| K | plain step (s) | " + " | ".join(VARIANTS) + " |",
                  "|---|---|" + "---|" * len(VARIANTS)]
        for group, info in rows:
            cells = [f"{m[(group, v)].ratio:.2f}" if (group, v) in m else "-" for v in VARIANTS]
            lines.append(f"| {info['K']} | {m[(group, 'plain')].seconds:.3f} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines[:-1]


def inference_table(data: dict[str, Any], m: dict[tuple[str, str], Measured]) -> list[str]:
    lines = ["## Inference of the exported classifier", "",
             "| backbone | backbone (s) | `ISNet.export()` (s) | ratio |", "|---|---|---|---|"]
    for group, info in groups(data, "export"):
        base, exported = m[(group, "backbone")], m[(group, "exported")]
        lines.append(f"| {NAMES.get(info['backbone'], info['backbone'])} | {base.seconds:.4f} | "
                     f"{exported.seconds:.4f} | {exported.ratio:.2f} |")
    return lines + ["", "`export()` returns the backbone object itself (no hooks, same parameters), so the ratio is 1 "
                        "up to noise."]


def load_range(data: dict[str, Any]) -> str:
    """The lowest and highest load average seen as the benchmarks started."""
    loads = [b["extra_info"]["load"] for b in data["benchmarks"]]
    return f"{min(loads):.1f} to {max(loads):.1f}"


def rounds(data: dict[str, Any], section: str) -> str:
    counts = sorted({b["stats"]["rounds"] for b in data["benchmarks"] if b["extra_info"]["section"] == section})
    return "/".join(str(c) for c in counts)


def markdown(data: dict[str, Any]) -> str:
    """The page: how it was measured, then one table per section."""
    m = measured(data)
    info = data["benchmarks"][0]["extra_info"]
    lines = ["# isnet speed", "",
             f"Measured by `{MEASURE}`, rendered by `{RENDER}`. "
             f"CPU: {info['cpu']}, {info['threads']} torch thread(s), torch {info['torch']}. Batch {info['batch']}, "
             f"{info['size']}x{info['size']} px. Each candidate is one pytest-benchmark benchmark of "
             f"{rounds(data, 'train')} (training steps), {rounds(data, 'heatmap')} (heatmaps) and "
             f"{rounds(data, 'export')} (inference) rounds after one warm-up round, all in one process, with the "
             "harness's allocator setting (`benchmarks/run/allocator.py`); before each round its baseline (the plain "
             "step, the input-gradient pass, the backbone) runs once beside it. A ratio is the fastest round of the "
             "candidate over the fastest of those baseline runs: load from the rest of a shared machine only adds "
             "time, and both saw the same. Load average (1 min) of the machine as the benchmarks started: "
             f"{load_range(data)}; on this small virtual machine, loaded by other work, one ratio can differ by "
             "up to about 25 % from one run to the next, most by under 10 %. Where a step's time goes and peak "
             "memory: `python perf/isnet_speed.py --only breakdown,memory` (docs/performance.md).",
             "", *heatmap_table(data, m), "", *training_tables(data, m), "", *inference_table(data, m), ""]
    return "\n".join(lines)


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path, help="the file --benchmark-json wrote")
    parser.add_argument("--output", type=Path, default=OUT, help=f"default: {OUT.relative_to(ROOT)}")
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on a difference")
    args = parser.parse_args(None if argv is None else list(argv))
    text = markdown(json.loads(args.json.read_text()))
    if args.check:
        same = args.output.exists() and args.output.read_text() == text
        print(f"{args.output}: {'matches' if same else 'differs from'} {args.json}")
        return 0 if same else 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
