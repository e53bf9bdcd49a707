"""Cost of the benchmark models relative to the standard classifier.

For each method and scale: trainable parameters (all networks trained) and test-time
parameters (the exported module: segment-then-classify counts its U-Net and its
classifier), the median time of one training step (forward, loss, backward, gradient
clipping when declared, optimiser step) and of one test-time forward pass of the exported
module, each as a ratio to the standard classifier at the same scale. Medians of N timed
repetitions after one untimed warm-up.

Scales (grey images, 3 classes, masks present, labels cycling through the classes):

* cpu: the cpu profile's chest X-ray setting, ``small_cnn`` backbone, 64 px, batch 32;
* paper: DenseNet121 / ViT-B/16 / the paper-scale U-Nets at 224 px, batch 2 (on the CPU
  unless ``--device cuda``).

Usage::

    python perf/baselines_cost.py                 # print the tables (< 10 min on 2 cores)
    python perf/baselines_cost.py --write         # also write reports/performance/baselines_cost.md
    python perf/baselines_cost.py --scales cpu --methods standard 'gain' --reps 5
    python perf/baselines_cost.py --methods '*'   # every discovered method (ISNet variants too)
    python perf/baselines_cost.py --scales paper --device cuda --batch 16 --write --append

Methods are found through the harness's registry (entry points), as ``python -m benchmarks list``
finds them.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.api import Batch, MethodSpec, ModelContext  # noqa: E402
from benchmarks.architectures import build_backbone  # noqa: E402
from benchmarks.registry import UnknownNameError, discover_methods, select  # noqa: E402
from benchmarks.resources import cpu_model  # noqa: E402

BENCHMARK_MODELS = (
    "standard",
    "vit",
    "multitask_unet",
    "ag_sononet",
    "segment_then_classify",
    "gain",
    "ham",
    "rrr",
)
SCALES = {
    # scale: (backbone, image size, batch size, default repetitions)
    "cpu": ("small_cnn", 64, 32, 5),
    "paper": ("densenet121", 224, 2, 3),
}
CLASS_NAMES = ("normal", "pneumonia", "covid19")
TAGS = frozenset({"has_normal_class", "has_masks", "cxr"})
OUT = ROOT / "reports" / "performance" / "baselines_cost.md"


def standard_first(names: list[str]) -> list[str]:
    """``names`` with the reference, ``standard``, first (added when missing)."""
    return ["standard", *(n for n in names if n != "standard")]


def fake_batch(size: int, batch: int, device: torch.device) -> Batch:
    g = torch.Generator().manual_seed(0)
    images = torch.rand(batch, 1, size, size, generator=g)
    labels = torch.arange(batch) % len(CLASS_NAMES)
    masks = torch.zeros(batch, 1, size, size)
    q = size // 4
    masks[..., q : size - q, q // 2 : size - q // 2] = 1.0
    return Batch(images, labels, masks, torch.zeros(batch, dtype=torch.long)).to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], None], reps: int, device: torch.device) -> float:
    fn()  # warm-up (allocations, kernel selection), untimed
    _sync(device)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@dataclass
class Row:
    method: str
    params_train: int
    params_test: int
    step_s: float
    infer_s: float
    note: str = ""


def measure(spec: MethodSpec, scale: str, device: torch.device, reps: int, batch_size: int) -> Row:
    backbone, size, _, _ = SCALES[scale]
    ctx = ModelContext(
        num_classes=len(CLASS_NAMES),
        in_channels=1,
        image_size=size,
        scale=scale,
        backbone=backbone,
        build_backbone=lambda k: build_backbone(backbone, k, 1),
        class_names=CLASS_NAMES,
    )
    torch.manual_seed(0)
    method = spec.cls(ctx).to(device)
    optimizer = method.configure_optimizer()
    grad_clip = method.hparams.get("grad_clip")
    batch = fake_batch(size, batch_size, device)

    def step() -> None:
        out = method.training_step(batch)
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(method.parameters(), float(grad_clip))
        optimizer.step()

    method.train()
    step_s = median_seconds(step, reps, device)
    method.eval()
    exported = method.export()

    def infer() -> None:
        with torch.no_grad():
            exported(batch.images)

    infer_s = median_seconds(infer, reps, device)
    params_train = sum(p.numel() for p in method.parameters() if p.requires_grad)
    params_test = sum(p.numel() for p in exported.parameters())
    return Row(spec.name, params_train, params_test, step_s, infer_s)


def _millions(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 10_000 else f"{n / 1e3:.1f} k"


def _time(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def table(rows: list[Row], scale: str, reps: int, batch_size: int, device: str) -> str:
    backbone, size, _, _ = SCALES[scale]
    ref = next(r for r in rows if r.method == "standard")
    lines = [
        f"### {scale} scale on {device}: {backbone} reference, {size} px, batch {batch_size}, median of {reps}",
        "",
        "| method | params (trained) | params (test time) | train step | x standard | inference | x standard |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.method} | {_millions(r.params_train)} | {_millions(r.params_test)} | {_time(r.step_s)} | "
            f"{r.step_s / ref.step_s:.2f} | {_time(r.infer_s)} | {r.infer_s / ref.infer_s:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", nargs="+", default=list(SCALES), choices=list(SCALES))
    parser.add_argument("--methods", nargs="+", default=list(BENCHMARK_MODELS), help="names or glob patterns")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions (default: cpu 5, paper 3)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: cpu 32, paper 2)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--write", action="store_true", help=f"also write {OUT.relative_to(ROOT)}")
    parser.add_argument("--append", action="store_true", help="with --write: append to the file, do not replace it")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    specs = discover_methods()
    try:
        names = standard_first(select(specs, args.methods, "method"))
    except UnknownNameError as err:
        raise SystemExit(str(err)) from err
    started = time.perf_counter()
    load_before = os.getloadavg()
    sections = []
    skipped = []
    for scale in args.scales:
        reps = args.reps or SCALES[scale][3]
        batch_size = args.batch or SCALES[scale][2]
        rows = []
        for name in names:
            reason = specs[name].reason_not_applicable(TAGS)
            if reason:
                skipped.append(f"{name}: {reason}")
                continue
            t0 = time.perf_counter()
            row = measure(specs[name], scale, device, reps, batch_size)
            rows.append(row)
            gc.collect()  # free the method before the next one is built
            if device.type == "cuda":
                torch.cuda.empty_cache()
            print(f"  [{scale}] {name}: step {_time(row.step_s)}, inference {_time(row.infer_s)} "
                  f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
        sections.append(table(rows, scale, reps, batch_size, args.device))
    elapsed = time.perf_counter() - started
    load_after = os.getloadavg()
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    command = " ".join(["python perf/baselines_cost.py", *(argv if argv is not None else sys.argv[1:])])
    header = [
        "## Cost of the benchmark models (relative to the standard classifier)",
        "",
        f"Generated by `{command}`. "
        "Train step: forward, loss, backward, clipping, optimiser step on one batch; inference: one "
        "no-grad forward pass of the exported test-time module (segment-then-classify runs its U-Net "
        "and its classifier). Medians after one untimed warm-up. Parameters: trained = every network "
        "the method trains; test time = the exported module.",
        "",
        f"- device: {args.device} ({device_name}); torch {torch.__version__}, "
        f"{torch.get_num_threads()} intra-op threads, {os.cpu_count()} logical CPUs",
        f"- load average (1 min) before / after: {load_before[0]:.1f} / {load_after[0]:.1f}; "
        f"wall time {elapsed:.0f} s",
        "",
        "",
    ]
    text = "\n".join(header) + "\n\n".join(sections) + "\n"
    if skipped:
        text += "\nNot measured: " + "; ".join(skipped) + "\n"
    print(text)
    if args.write:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        if args.append and OUT.exists():
            text = OUT.read_text() + "\n" + text
        OUT.write_text(text)
        print(f"wrote {OUT.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
