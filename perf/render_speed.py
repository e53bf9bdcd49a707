r"""Render ``reports/performance/isnet_speed.md`` from the pytest-benchmark JSON of the speed benchmarks.

The benchmarks are ``tests/perf/test_speed_ratios.py``::

    python -m pytest tests/perf/test_speed_ratios.py --benchmark-only \
        --benchmark-json=reports/performance/isnet_speed.json
    python perf/render_speed.py reports/performance/isnet_speed.json [--output FILE] [--check]

Every ratio is the fastest round of a candidate over the fastest round of its baseline in the
same benchmark group (load from the rest of a shared machine only adds time). ``--check``
compares the file with what it would write and exits 1 when they differ.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
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


def fastest(data: dict[str, Any]) -> dict[tuple, float]:
    """``{(section, group, candidate): fastest round in seconds}`` of a pytest-benchmark JSON."""
    out = {}
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        out[(info["section"], bench["group"], info["candidate"])] = bench["stats"]["min"]
    return out


def _groups(data: dict[str, Any], section: str) -> list[tuple[str, dict[str, Any]]]:
    """The groups of ``section`` in the order they were measured, each with its first benchmark's ``extra_info``."""
    seen: dict[str, dict[str, Any]] = {}
    for bench in data["benchmarks"]:
        if bench["extra_info"]["section"] == section:
            seen.setdefault(bench["group"], bench["extra_info"])
    return list(seen.items())


def _ratio(times: dict[tuple, float], key: tuple, base: tuple) -> str:
    return f"{times[key] / times[base]:.2f}" if key in times else "-"


def heatmap_table(data: dict[str, Any], times: dict[tuple, float]) -> list[str]:
    lines = ["## Heatmap (LRP-epsilon, z^B input layer, one target class per image)", "",
             "| model | plain input-gradient pass (s) | ours (s) | zennit (s) | "
             f"ours / gradient (target <= {HEATMAP_TARGETS['ours']}) | "
             f"ours / zennit (target <= {HEATMAP_TARGETS['zennit']}) |",
             "|---|---|---|---|---|---|"]
    for group, info in _groups(data, "heatmap"):
        t = {c: times.get(("heatmap", group, c)) for c in ("gradient", "ours", "zennit")}
        zennit = "-" if t["zennit"] is None else f"{t['zennit']:.3f}"
        vs_zennit = "-" if t["zennit"] is None else f"{t['ours'] / t['zennit']:.2f}"
        lines.append(f"| {NAMES.get(info['model'], info['model'])} | {t['gradient']:.3f} | {t['ours']:.3f} | {zennit} "
                     f"| {t['ours'] / t['gradient']:.2f} | {vs_zennit} |")
    return lines + ["", "zennit has no canonizer for SmallCNN, so it is compared on the torchvision models only."]


def training_tables(data: dict[str, Any], times: dict[tuple, float]) -> list[str]:
    by_backbone: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for group, info in _groups(data, "train"):
        by_backbone.setdefault(info["backbone"], []).append((group, info))
    lines: list[str] = []
    for backbone, groups in by_backbone.items():
        lines += [f"## Training step / plain cross-entropy step ({NAMES.get(backbone, backbone)}, 3 input channels)",
                  "", STEP_TARGETS, "", "| K | plain step (s) | " + " | ".join(VARIANTS) + " |",
                  "|---|---|" + "---|" * len(VARIANTS)]
        for group, info in groups:
            base = ("train", group, "plain")
            cells = [_ratio(times, ("train", group, v), base) for v in VARIANTS]
            lines.append(f"| {info['K']} | {times[base]:.3f} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines[:-1]


def inference_table(data: dict[str, Any], times: dict[tuple, float]) -> list[str]:
    lines = ["## Inference of the exported classifier", "",
             "| backbone | backbone (s) | `ISNet.export()` (s) | ratio |", "|---|---|---|---|"]
    for group, info in _groups(data, "export"):
        base, exported = times[("export", group, "backbone")], times[("export", group, "exported")]
        lines.append(f"| {NAMES.get(info['backbone'], info['backbone'])} | {base:.4f} | {exported:.4f} | "
                     f"{exported / base:.2f} |")
    return lines + ["", "`export()` returns the backbone object itself (no hooks, same parameters), so the ratio is 1 "
                        "up to noise."]


def rounds(data: dict[str, Any], section: str) -> str:
    counts = sorted({b["stats"]["rounds"] for b in data["benchmarks"] if b["extra_info"]["section"] == section})
    return "/".join(str(c) for c in counts)


def markdown(data: dict[str, Any]) -> str:
    """The page: how it was measured, then one table per section."""
    times = fastest(data)
    info = data["benchmarks"][0]["extra_info"]
    lines = ["# isnet speed", "",
             f"Measured by `{MEASURE}`, rendered by `{RENDER}`. "
             f"CPU: {info['cpu']}, {info['threads']} torch thread(s), torch {info['torch']}. Batch {info['batch']}, "
             f"{info['size']}x{info['size']} px. Each candidate is one pytest-benchmark benchmark of "
             f"{rounds(data, 'train')} (training steps), {rounds(data, 'heatmap')} (heatmaps) and "
             f"{rounds(data, 'export')} (inference) rounds after one warm-up round, all in one process, with the "
             "harness's allocator setting (`benchmarks/allocator.py`). A ratio is the fastest round of the candidate "
             "over the fastest round of its baseline: load from the rest of a shared machine only adds time. On this "
             "small virtual machine repeated runs still differ by up to about 10 % in a ratio. Where a step's time "
             "goes and peak memory: `python perf/isnet_speed.py --only breakdown,memory` (docs/performance.md).",
             "", *heatmap_table(data, times), "", *training_tables(data, times), "", *inference_table(data, times), ""]
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
