"""Speed and memory of the isnet engine, measured side by side in one run (a benchmark, not a test).

    python perf/isnet_speed.py [--output FILE] [--reps N] [--threads T] [--quick]
    python perf/isnet_speed.py --device cuda [--compile] [--output FILE] [--json FILE]

Prints, for batch 32 at 64x64 px on the CPU (at 224x224 px on CUDA):

1. heatmap time (``isnet.explain``, LRP-epsilon with z^B input layer, one target per image)
   over a plain input-gradient pass (forward + backward to the input) on torchvision ResNet18
   and VGG11 (CUDA: ResNet50 and DenseNet121), and over zennit 0.5 with the same rule mapping
   on the same input;
2. training-step time (forward, loss, backward, SGD step) of each ISNet variant over a plain
   cross-entropy step of the same backbone and batch, for K = 2, 3 and 10 classes, on the
   cpu-profile ``SmallCNN`` (six 3x3 conv-BN-ReLU layers, 3 input channels) and on
   torchvision's ResNet18 (CUDA: DenseNet121 and ResNet50); and where each step's time goes:
   operator time (torch.profiler; on CUDA the GPU time of each operator's kernels) in
   convolution kernels and in every other operator, in units of the plain step;
3. inference time of ``ISNet.export()`` over the backbone;
4. peak memory of one training step per variant: on the CPU the Linux peak resident set
   (``VmHWM``) of a fresh process during one step minus its resident set just before the step;
   on CUDA ``torch.cuda.max_memory_allocated`` (reset between candidates), for every K;
5. (CUDA, ``--quick`` or ``--only precision``) bf16 autocast against float32 on the same batch:
   step times and the relative error of the loss, the heatmap loss and the gradients, next to
   float32's own error against float64;
6. (``--compile``) ``torch.compile`` of the ISNet module against eager: times and errors.

Every ratio compares the fastest of interleaved repetitions (each candidate and its baseline
alternate; load from the rest of a shared machine only adds time): ``--reps`` for the training
steps and the operator-time breakdown, two more for the heatmaps, at least 41 for inference.
On CUDA every call is timed with CUDA events after synchronisation. ``--output`` saves the
tables as Markdown. The committed CPU table, ``reports/performance/isnet_speed.md``, comes from
the pytest-benchmark benchmarks of the same cases (``tests/perf/test_speed_ratios.py``, rendered
by ``perf/render_speed.py``); this script measures what they do not: CUDA, where a step's time
goes, peak memory, bf16 and ``torch.compile``.
``--quick``: the same code paths at tiny sizes (batch 4, 32 px, K = 2, one backbone); parts
that need CUDA are skipped with a message.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # the profiler's own start / stop log lines, not ours

import torch  # noqa: E402
from torch import nn  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import isnet  # noqa: E402
from benchmarks.run.allocator import keep_freed_buffers  # noqa: E402
from perf.isnet_breakdown import breakdown_row, operator_split  # noqa: E402
from perf.isnet_cases import BACKBONES, Scale, heatmap_candidates, make_step  # noqa: E402
from perf.isnet_numerics import compile_row, precision_row  # noqa: E402
from perf.isnet_speed_report import markdown  # noqa: E402
from perf.timing import cuda_peak_bytes, fastest_times, is_out_of_memory, release_memory  # noqa: E402

SECTIONS = ("heatmap", "train", "breakdown", "export", "memory", "precision", "compile")
#: device type -> (batch, image side, heatmap models, training backbones)
DEFAULTS = {"cpu": (32, 64, ("resnet18", "vgg11"), ("small", "resnet18")),
            "cuda": (32, 224, ("resnet50", "densenet121"), ("densenet121", "resnet50"))}
QUICK = (4, 32, ("resnet18",), ("small",))


def heatmap_rows(reps: int, names: tuple[str, ...], scale: Scale) -> list[dict]:
    rows = []
    for name in names:
        fns, missing = heatmap_candidates(name, scale)
        t, failed = fastest_times(fns, reps, scale.device)
        if "ours" not in t or "gradient" not in t:
            raise RuntimeError(f"heatmap {name}: {failed}")
        rows.append({"model": name, **{f"{k}_s": v for k, v in t.items()}, "zennit_missing": missing,
                     "ours/gradient": t["ours"] / t["gradient"],
                     "ours/zennit": t["ours"] / t["zennit"] if "zennit" in t else float("nan")})
        print(f"heatmap {name}: " + ", ".join(f"{k} {v:.3f}s" for k, v in t.items())
              + f" | ours/gradient {rows[-1]['ours/gradient']:.2f} ours/zennit {rows[-1]['ours/zennit']:.2f}",
              flush=True)
        release_memory(scale.device)
    return rows


def training_rows(reps: int, ks: tuple[int, ...], backbone: str, variants: tuple[str, ...], scale: Scale) -> list[dict]:
    rows = []
    for k in ks:
        fns = {"plain": make_step(None, k, backbone, scale).run}
        for v in variants:
            fns[v] = make_step(v, k, backbone, scale).run
        t, failed = fastest_times(fns, reps, scale.device)
        del fns
        release_memory(scale.device)
        if "plain" not in t:
            raise RuntimeError(f"train {backbone} K={k}: the plain step failed: {failed['plain']}")
        row = {"backbone": backbone, "K": k, "plain_s": t["plain"],
               **{v: t[v] / t["plain"] if v in t else float("nan") for v in variants}}
        rows.append(row)
        print(f"train {backbone} K={k}: plain {t['plain']:.3f}s | "
              + ", ".join(f"{v} {row[v]:.2f}" for v in variants) + "".join(f" | {v}: {m}" for v, m in failed.items()),
              flush=True)
    return rows


def breakdown_rows(reps: int, ks: tuple[int, ...], backbone: str, variants: tuple[str, ...],
                   scale: Scale) -> list[dict]:
    """Per candidate: convolution-kernel and other operator time (and on CUDA the launch gap), in
    units of the plain step. A candidate that runs out of memory is left out."""
    rows = []
    for k in ks:
        steps = {}
        for v in ("plain", *variants):
            steps[v] = make_step(None if v == "plain" else v, k, backbone, scale).run
        times, failed = fastest_times(steps, 0, scale.device)  # one warm-up call each: drops what does not fit
        split = operator_split({v: s for v, s in steps.items() if v not in failed}, reps, scale.device)
        del steps
        release_memory(scale.device)
        row = breakdown_row(split, backbone, k)
        rows.append(row)
        print(f"breakdown {backbone} K={k}: plain {row['plain_s']:.3f}s | "
              + ", ".join(f"{v} conv {row[v]['conv']:.2f} other {row[v]['other']:.2f} gap {row[v]['gap']:.2f}"
                          for v in split), flush=True)
    return rows


def export_row(reps: int, backbone_name: str, scale: Scale) -> dict:
    step = make_step("selective", 10, backbone_name, scale)
    step.backbone.eval()
    exported = step.model.export()

    def run(m: nn.Module):
        def f() -> object:
            with torch.no_grad():
                return m(step.x)
        return f

    t, _ = fastest_times({"backbone": run(step.backbone), "exported": run(exported)}, max(reps, 41), scale.device)
    print(f"inference: backbone {t['backbone']:.4f}s exported {t['exported']:.4f}s", flush=True)
    return {"backbone_s": t["backbone"], "exported_s": t["exported"], "ratio": t["exported"] / t["backbone"]}


# --------------------------------------------------------------------------- memory
def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def memory_child(variant: str, k: int, threads: int) -> None:
    torch.set_num_threads(threads)
    scale = Scale(torch.device("cpu"), *DEFAULTS["cpu"][:2])
    step = make_step(None if variant == "plain" else variant, k, "small", scale)
    before = _status("VmRSS:")
    step.run()
    print(json.dumps({"peak_bytes": _status("VmHWM:") - before}))


def memory_rows(ks: tuple[int, ...], threads: int) -> list[dict]:
    import subprocess

    rows = []
    for k in ks:
        row: dict = {"K": k}
        for v in ("plain", *isnet.VARIANTS):
            out = subprocess.run([sys.executable, __file__, "--memory-child", v, str(k), "--threads", str(threads)],
                                 capture_output=True, text=True, check=True)
            row[v] = json.loads(out.stdout.strip().splitlines()[-1])["peak_bytes"] / 2**20
        rows.append(row)
        print(f"memory K={k}: " + ", ".join(f"{v} {row[v]:.0f} MiB" for v in ("plain", *isnet.VARIANTS)), flush=True)
    return rows


def cuda_memory_rows(ks: tuple[int, ...], backbones: tuple[str, ...], variants: tuple[str, ...],
                     scale: Scale) -> list[dict]:
    """Per backbone and K: ``(peak, before)`` bytes of one step per candidate, None when it does
    not fit (a warm-up step first, so that optimiser state and workspaces exist)."""
    rows = []
    for backbone in backbones:
        for k in ks:
            row: dict = {"backbone": backbone, "K": k}
            for v in ("plain", *variants):
                try:
                    step = make_step(None if v == "plain" else v, k, backbone, scale)
                    step.run()
                    row[v] = cuda_peak_bytes(step.run, scale.device)
                except Exception as err:
                    if not is_out_of_memory(err):
                        raise
                    row[v] = (None, None)
                step = None
                release_memory(scale.device)
            rows.append(row)
            print(f"cuda memory {backbone} K={k}: " + ", ".join(
                f"{v} {'OOM' if row[v][0] is None else f'{row[v][0] / 2**30:.2f} GiB'}" for v in ("plain", *variants)),
                flush=True)
    return rows


# --------------------------------------------------------------------------- main
def raise_recompile_limit(limit: int) -> None:
    """Let dynamo keep up to ``limit`` versions of a function: the relevance sweep calls each step
    type's ``propagate`` with tensors of changing rank, and past the default limit (8) dynamo
    silently runs the rest eagerly."""
    import torch._dynamo

    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"  # renamed in torch 2.6
    setattr(config, name, max(getattr(config, name), limit))


def _sections(text: str) -> set[str]:
    chosen = set(text.split(","))
    if not chosen <= set(SECTIONS):
        raise argparse.ArgumentTypeError(f"unknown sections {sorted(chosen - set(SECTIONS))}; choose from {SECTIONS}")
    return chosen


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, help="write the Markdown here")
    parser.add_argument("--json", type=Path, help="also write every measured row as JSON here")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 by default: steadier ratios on a shared 2-core machine)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes: batch 4, 32 px, heatmaps on ResNet18, training steps on SmallCNN, K = 2, "
                             "no CPU memory measurement")
    parser.add_argument("--only", type=_sections, help=f"run these sections only (comma-separated, from {SECTIONS})")
    parser.add_argument("--compile", action="store_true", help="add the torch.compile section")
    parser.add_argument("--compile-backend", default="inductor", help="torch.compile backend (default inductor)")
    parser.add_argument("--ks", default="2,3,10", help="class counts for the training steps")
    parser.add_argument("--precision-ks", help="class counts of the bf16 / compile comparisons (default: 3 if "
                                               "among --ks, else the first)")
    parser.add_argument("--variants", default=",".join(isnet.VARIANTS), help="ISNet variants to measure")
    parser.add_argument("--backbones", help=f"training-step backbones, from {sorted(BACKBONES)} (the breakdown and "
                                            "the export use the first; default: per device)")
    parser.add_argument("--heat-models", help="torchvision models for the heatmap section (default: per device)")
    parser.add_argument("--batch", type=int, help="batch size (default 32; --quick 4)")
    parser.add_argument("--size", type=int, help="image side in px (default 64 on the CPU, 224 on CUDA; --quick 32)")
    parser.add_argument("--memory-child", nargs=2, metavar=("VARIANT", "K"), help=argparse.SUPPRESS)
    return parser


def sections_to_run(args: argparse.Namespace, cuda: bool) -> tuple[set[str], list[str]]:
    """The sections this invocation runs, and a note for each one left out for want of CUDA."""
    wanted = set(args.only) if args.only else set(SECTIONS) - {"compile"}
    if not args.only and not (cuda or args.quick):
        wanted.discard("precision")  # the CPU report keeps its layout; ask with --only precision
    if args.compile:
        wanted.add("compile")
    skipped = []
    if "memory" in wanted and args.quick and not cuda:
        wanted.discard("memory")
        skipped.append("Peak memory: skipped (peak CUDA memory needs --device cuda; the CPU measurement runs one "
                       "fresh process per cell and is left out of --quick).")
    if args.quick and not cuda:
        skipped.append("CUDA-only parts skipped on the CPU: CUDA-event timing, the CUDA profiler's kernel split "
                       "and its launch gap, peak CUDA memory.")
    return wanted, skipped


def save(results: dict, args: argparse.Namespace, scale: Scale, final: bool) -> None:
    """Write the Markdown (``--output``) and ``--json`` of what is measured so far;
    called after every section, so that a run stopped by a time limit keeps its finished sections."""
    text = markdown(results, args, scale)
    target = args.output
    for path, content in ((target, text), (args.json, json.dumps(results, indent=1, default=str))):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
    if final:
        print()
        print(text)
        for path in (target, args.json):
            if path is not None:
                print(f"wrote {path}")


def run_sections(args: argparse.Namespace, scale: Scale, heat_models: tuple[str, ...],
                 backbones: tuple[str, ...], variants: tuple[str, ...]) -> None:
    cuda = scale.device.type == "cuda"
    ks = (2,) if args.quick else tuple(int(k) for k in args.ks.split(","))
    pks = tuple(int(k) for k in args.precision_ks.split(",")) if args.precision_ks else ((3,) if 3 in ks else ks[:1])
    run, skipped = sections_to_run(args, cuda)
    results: dict = {"heatmap": [], "train": [], "breakdown": [], "memory": [], "precision": [], "compile": [],
                     "export": None, "skipped": skipped}
    for note in skipped:
        print(note, flush=True)
    cands = (None, *variants)
    sections = {
        "heatmap": lambda: heatmap_rows(args.reps + 2, heat_models, scale),
        "train": lambda: [r for b in backbones for r in training_rows(args.reps, ks, b, variants, scale)],
        "breakdown": lambda: breakdown_rows(args.reps, ks, backbones[0], variants, scale),
        "export": lambda: export_row(args.reps, backbones[0], scale),
        "memory": lambda: (cuda_memory_rows(ks, backbones, variants, scale) if cuda
                           else memory_rows((10,), args.threads)),
        "precision": lambda: [_printed(precision_row(v, k, b, scale, args.reps))
                              for b in backbones for k in pks for v in cands],
        "compile": lambda: [_printed(compile_row(v, k, backbones[0], scale, args.reps, args.compile_backend))
                            for k in pks for v in variants],
    }
    if "compile" in run:
        raise_recompile_limit(64)
    for name, measure in sections.items():
        if name in run:
            results[name] = measure()
            save(results, args, scale, final=False)
    save(results, args, scale, final=True)


def _printed(row: dict) -> dict:
    print(f"{row['backbone']} K={row['K']} {row['candidate']}: "
          + ", ".join(f"{k} {v:.3g}" for k, v in row.items() if isinstance(v, float))
          + " | " + ", ".join(f"{k} {v}" for k, v in row.items() if isinstance(v, dict)), flush=True)
    return row


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    args.command = " ".join(["python perf/isnet_speed.py", *(argv if argv is not None else sys.argv[1:])])
    torch.set_num_threads(args.threads)
    keep_freed_buffers()  # the harness's allocator setting, for every candidate and baseline alike
    if args.memory_child:
        memory_child(args.memory_child[0], int(args.memory_child[1]), args.threads)
        return
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible to torch")
    batch, size, heat_models, backbones = QUICK if args.quick else DEFAULTS[device.type]
    scale = Scale(device, args.batch or batch, args.size or size)
    heat_models = tuple(args.heat_models.split(",")) if args.heat_models else heat_models
    backbones = tuple(args.backbones.split(",")) if args.backbones else backbones
    variants = tuple(args.variants.split(","))
    bad = [b for b in backbones if b not in BACKBONES] + [v for v in variants if v not in isnet.VARIANTS]
    if bad:
        raise SystemExit(f"unknown backbones / variants {bad}; backbones: {sorted(BACKBONES)}, "
                         f"variants: {list(isnet.VARIANTS)}")
    run_sections(args, scale, heat_models, backbones, variants)


if __name__ == "__main__":
    main()
