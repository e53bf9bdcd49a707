"""Speed and memory of the isnet engine, measured side by side in one run (a benchmark, not a test).

    python perf/isnet_speed.py [--write] [--reps N] [--threads T] [--quick]

Prints, for batch 32 at 64x64 px on the CPU:

1. heatmap time (``isnet.explain``, LRP-epsilon with z^B input layer, one target per image)
   over a plain input-gradient pass (forward + backward to the input) on torchvision ResNet18
   and VGG11, and over zennit 0.5 with the same rule mapping on the same input;
2. training-step time (forward, loss, backward, SGD step) of each ISNet variant over a plain
   cross-entropy step of the same backbone and batch, for K = 2, 3 and 10 classes, on the
   cpu-profile ``SmallCNN`` (six 3x3 conv-BN-ReLU layers, 3 input channels) and on
   torchvision's ResNet18; and where each step's time goes: operator time (torch.profiler)
   in convolution kernels and in every other operator, in units of the plain step;
3. inference time of ``ISNet.export()`` over the backbone;
4. peak memory of one training step per variant: the Linux peak resident set (``VmHWM``)
   of a fresh process during one step minus its resident set just before the step.

Every ratio compares the fastest of interleaved repetitions (each candidate and its baseline
alternate; load from the rest of a shared machine only adds time): ``--reps`` for the training
steps and the operator-time breakdown, two more for the heatmaps, at least 41 for inference.
``--write`` saves the tables as Markdown to ``reports/performance/isnet_speed.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import isnet  # noqa: E402
from benchmarks.allocator import keep_freed_buffers  # noqa: E402
from benchmarks.architectures import SmallCNN  # noqa: E402

BATCH, SIZE = 32, 64
REPORT = ROOT / "reports" / "performance" / "isnet_speed.md"


def fastest_times(fns: dict[str, Callable[[], object]], reps: int) -> dict[str, float]:
    """Fastest wall time of each function over ``reps`` interleaved rounds after one warm-up; the
    order alternates between rounds (A B C, C B A, ...). The minimum, not the median: load from
    the rest of a shared machine only ever adds time, and it comes and goes within seconds."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    keys = list(fns)
    for r in range(reps):
        for k in keys if r % 2 == 0 else keys[::-1]:
            t = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - t)
    return {k: min(v) for k, v in times.items()}


# --------------------------------------------------------------------------- heatmaps
def zennit_explainer(model: nn.Module, name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    from zennit.attribution import Gradient
    from zennit.composites import SpecialFirstLayerMapComposite
    from zennit.layer import Sum
    from zennit.rules import Epsilon, Pass, ZBox
    from zennit.torchvision import ResNetCanonizer, VGGCanonizer
    from zennit.types import Activation, AvgPool, Convolution, Linear

    canonizer = ResNetCanonizer() if name.startswith("resnet") else VGGCanonizer()
    composite = SpecialFirstLayerMapComposite(
        layer_map=[(Activation, Pass()), (Sum, Epsilon(0.01)), (AvgPool, Epsilon(0.01)),
                   (Convolution, Epsilon(0.01)), (Linear, Epsilon(0.01))],
        first_map=[(Convolution, ZBox(0.0, 1.0, stabilizer=0.01))],
        canonizers=[canonizer],
    )

    def run(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(target, 10).to(x.dtype)
        with Gradient(model, composite) as attributor:
            _, rel = attributor(x, lambda out: out * onehot)
        return rel

    return run


def heatmap_candidates(name: str) -> dict[str, Callable[[], object]]:
    """A plain input-gradient pass, our heatmap and zennit's on one model and batch."""
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None, num_classes=10).eval()
    x = torch.rand(BATCH, 3, SIZE, SIZE)
    target = torch.randint(0, 10, (BATCH,))

    def gradient() -> torch.Tensor:
        xx = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(model(xx).gather(1, target.view(-1, 1)).sum(), xx)
        return g

    fns: dict[str, Callable[[], object]] = {"gradient": gradient, "ours": lambda: isnet.explain(model, x, target)}
    try:
        zennit = zennit_explainer(model, name)
        fns["zennit"] = lambda: zennit(x, target)
    except ImportError:
        pass
    return fns


def heatmap_rows(reps: int, names: tuple[str, ...]) -> list[dict]:
    rows = []
    for name in names:
        t = fastest_times(heatmap_candidates(name), reps)
        rows.append({"model": name, **{f"{k}_s": v for k, v in t.items()},
                     "ours/gradient": t["ours"] / t["gradient"],
                     "ours/zennit": t["ours"] / t["zennit"] if "zennit" in t else float("nan")})
        print(f"heatmap {name}: " + ", ".join(f"{k} {v:.3f}s" for k, v in t.items())
              + f" | ours/gradient {rows[-1]['ours/gradient']:.2f} ours/zennit {rows[-1]['ours/zennit']:.2f}",
              flush=True)
    return rows


# --------------------------------------------------------------------------- training steps
BACKBONES = {"small": "SmallCNN", "resnet18": "ResNet18"}
CONV_KERNELS = {"aten::mkldnn_convolution", "aten::convolution_backward", "aten::_slow_conv2d_forward",
                "aten::_slow_conv2d_backward", "aten::slow_conv_transpose2d", "aten::thnn_conv2d"}


def make_backbone(name: str, k: int) -> nn.Module:
    return SmallCNN(k, in_channels=3) if name == "small" else getattr(torchvision.models, name)(weights=None,
                                                                                                num_classes=k)


def make_step(variant: str | None, k: int, backbone_name: str = "small"):
    """A training-step closure (plain CE when ``variant`` is None), its batch fixed."""
    torch.manual_seed(0)
    backbone = make_backbone(backbone_name, k).train()
    x = torch.rand(BATCH, 3, SIZE, SIZE)
    y = torch.randint(0, k, (BATCH,))
    masks = torch.zeros(BATCH, 1, SIZE, SIZE)
    masks[:, :, 12:52, 12:52] = 1
    opt = torch.optim.SGD(backbone.parameters(), lr=1e-3, momentum=0.99)
    model = None if variant is None else isnet.ISNet(backbone, k, variant)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(backbone(x), y) if model is None else model(x, masks, y)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(backbone.parameters(), 1.0)
        opt.step()

    return step, backbone, model, x


def training_rows(reps: int, ks: tuple[int, ...], backbone: str) -> list[dict]:
    rows = []
    for k in ks:
        fns = {"plain": make_step(None, k, backbone)[0]}
        for v in isnet.VARIANTS:
            fns[v] = make_step(v, k, backbone)[0]
        t = fastest_times(fns, reps)
        row = {"backbone": backbone, "K": k, "plain_s": t["plain"], **{v: t[v] / t["plain"] for v in isnet.VARIANTS}}
        rows.append(row)
        print(f"train {backbone} K={k}: plain {t['plain']:.3f}s | "
              + ", ".join(f"{v} {row[v]:.2f}" for v in isnet.VARIANTS), flush=True)
    return rows


def operator_split(steps: dict[str, Callable[[], object]], reps: int) -> dict[str, tuple[float, float]]:
    """Seconds one step of each candidate spends in convolution kernels and in all other operators
    (self time of each operator under torch.profiler; Python time between operators is not
    counted). Each candidate is profiled one step at a time, ``reps`` times, interleaved like
    :func:`fastest_times`; the step with the least total operator time is kept (interference
    from the rest of a shared machine only adds time)."""
    from torch.profiler import ProfilerActivity, profile

    for step in steps.values():
        step()
    best: dict[str, tuple[float, float]] = {}
    keys = list(steps)
    for r in range(reps):
        for key in keys if r % 2 == 0 else keys[::-1]:
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                steps[key]()
            events = prof.key_averages()
            conv = sum(e.self_cpu_time_total for e in events if e.key in CONV_KERNELS) / 1e6
            other = sum(e.self_cpu_time_total for e in events) / 1e6 - conv
            if key not in best or conv + other < sum(best[key]):
                best[key] = (conv, other)
    return best


def conv_units(variant: str, k: int) -> int:
    """Convolution work of an exact training step in units of the plain step's (forward + backward
    = 1): each map adds the adjoint and its two backward kernels (1 unit); dual's z+ map also a
    forward convolution with W+ and its backward (1 more); grad_input maps are K gradients."""
    return {"selective": 2, "stochastic": 2, "dual": 4, "original": 1 + k, "grad_input": 1 + k}[variant]


def breakdown_rows(reps: int, ks: tuple[int, ...], backbone: str) -> list[dict]:
    """Per variant: convolution-kernel and other operator time, in units of the plain step's total."""
    rows = []
    for k in ks:
        steps = {v: make_step(None if v == "plain" else v, k, backbone)[0] for v in ("plain", *isnet.VARIANTS)}
        split = operator_split(steps, reps)
        unit = sum(split["plain"])
        row = {"backbone": backbone, "K": k, "plain_s": unit,
               **{v: (c / unit, o / unit) for v, (c, o) in split.items()}}
        rows.append(row)
        print(f"breakdown {backbone} K={k}: plain {unit:.3f}s | "
              + ", ".join(f"{v} conv {row[v][0]:.2f} other {row[v][1]:.2f}" for v in split), flush=True)
    return rows


def export_row(reps: int) -> dict:
    _, backbone, model, x = make_step("selective", 10)
    backbone.eval()
    exported = model.export()

    def run(m: nn.Module) -> Callable[[], object]:
        def f() -> object:
            with torch.no_grad():
                return m(x)
        return f

    t = fastest_times({"backbone": run(backbone), "exported": run(exported)}, max(reps, 41))
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
    step, *_ = make_step(None if variant == "plain" else variant, k)
    before = _status("VmRSS:")
    step()
    print(json.dumps({"peak_bytes": _status("VmHWM:") - before}))


def memory_rows(ks: tuple[int, ...], threads: int) -> list[dict]:
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


# --------------------------------------------------------------------------- report
def target(variant: str, k: int) -> float | None:
    """The issue's training-step target for ``variant`` (None: no target, the grad_input ablation)."""
    return {"selective": 2.0, "stochastic": 2.0, "dual": 3.0, "original": 1.0 + k}.get(variant)


def markdown(heat: list[dict], train: list[dict], export: dict, mem: list[dict], split: list[dict], args) -> str:
    v = isnet.VARIANTS
    lines = [
        "# isnet speed and memory",
        "",
        f"Generated by `python perf/isnet_speed.py --write` (reps={args.reps}, heatmap reps={args.reps + 2}, "
        f"threads={args.threads}). "
        f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}. Batch {BATCH}, {SIZE}x{SIZE} px. Ratios compare the fastest of interleaved "
        "repetitions (load from the rest of a shared machine only adds time), with the harness's allocator "
        "setting (freed buffers stay in the C heap, `benchmarks/allocator.py`) for every candidate and "
        "baseline. On this small virtual machine repeated runs of this script still differ by up to about "
        "10 % in a ratio.",
        "",
        "## Heatmap (LRP-epsilon, z^B input layer, one target class per image)",
        "",
        "| model | plain input-gradient pass (s) | ours (s) | zennit (s) | ours / gradient (target <= 1.2) "
        "| ours / zennit (target <= 0.7) |",
        "|---|---|---|---|---|---|",
    ]
    for r in heat:
        zen = r.get("zennit_s", float("nan"))
        lines.append(f"| {r['model']} | {r['gradient_s']:.3f} | {r['ours_s']:.3f} | {zen:.3f} "
                     f"| {r['ours/gradient']:.2f} | {r['ours/zennit']:.2f} |")
    for name in dict.fromkeys(r["backbone"] for r in train):
        lines += [
            "",
            f"## Training step / plain cross-entropy step ({BACKBONES[name]}, 3 input channels)",
            "",
            "Targets: selective and stochastic <= 2.0, dual <= 3.0, original <= 1 + K.",
            "",
            "| K | plain step (s) | " + " | ".join(v) + " |",
            "|---|---|" + "---|" * len(v),
        ]
        for r in (r for r in train if r["backbone"] == name):
            lines.append(f"| {r['K']} | {r['plain_s']:.3f} | " + " | ".join(f"{r[x]:.2f}" for x in v) + " |")
    if split:
        lines += [
            "",
            "## Where a training step's time goes",
            "",
            "Operator self time under `torch.profiler` (the fastest of `--reps` single steps per candidate, "
            "profiled one at a time and interleaved), split into convolution "
            "kernels and all other operators (element-wise rule factors, BatchNorm, pooling, the loss, the "
            "optimiser), in units of the plain step's total operator time; Python time between operators "
            "is not counted. An exact gradient of the heatmap loss runs, for every convolution, its "
            "adjoint (the relevance pass) and that adjoint's two backward kernels on top of the plain "
            "step's forward and backward: about twice the plain step's convolution work for one map, 1 + K "
            "times for K maps, and four times for dual, whose z+ map also needs a forward convolution "
            "with W+ and its backward. The column `conv` shows what that costs here; a target can only "
            "be met if `other` fits in what `conv` leaves of it.",
            "",
            "| backbone | K | candidate | conv | other | total | floor | target |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in split:
            pc, po = r["plain"]
            for cand in ("plain", *v):
                c, o = r[cand]
                t = 1.0 if cand == "plain" else target(cand, r["K"])
                floor = 1.0 if cand == "plain" else conv_units(cand, r["K"]) * pc + po
                lines.append(f"| {BACKBONES[r['backbone']]} | {r['K']} | {cand} | {c:.2f} | {o:.2f} | {c + o:.2f} "
                             f"| {floor:.2f} | {'-' if t is None else f'{t:.1f}'} |")
        lines += ["", "`floor`: the convolution units of an exact step (2 for one map, 1 + K for K maps, 4 for "
                  "dual) times the plain step's `conv`, plus the plain step's `other`: what the step would cost "
                  "if the relevance pass added no element-wise work at all."]
    lines += [
        "",
        "## Inference of the exported classifier",
        "",
        "| backbone (s, fastest of 41) | `ISNet.export()` (s, fastest of 41) | ratio |",
        "|---|---|---|",
        f"| {export['backbone_s']:.4f} | {export['exported_s']:.4f} | {export['ratio']:.2f} |",
        "",
        "`export()` returns the backbone object itself (no hooks, same parameters), so the ratio is 1 up to noise.",
        "",
        "## Peak memory of one training step (MiB above the process before the step)",
        "",
        "Measured as Linux `VmHWM` during one step minus `VmRSS` before it, in a fresh process per cell "
        "(includes one-time allocator and library initialisation, alike for every column).",
        "",
        "| K | plain | " + " | ".join(v) + " |",
        "|---|---|" + "---|" * len(v),
    ]
    for r in mem:
        lines.append(f"| {r['K']} | {r['plain']:.0f} | " + " | ".join(f"{r[x]:.0f}" for x in v) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {REPORT.relative_to(ROOT)}")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 by default: steadier ratios on a shared 2-core machine)")
    parser.add_argument("--quick", action="store_true",
                        help="heatmaps on ResNet18, training steps on SmallCNN, K = 2 only, no memory")
    parser.add_argument("--only", choices=("heatmap", "train", "breakdown", "export", "memory"),
                        help="run one section")
    parser.add_argument("--ks", default="2,3,10", help="class counts for the training steps")
    parser.add_argument("--backbones", default="small,resnet18",
                        help=f"training-step backbones, from {sorted(BACKBONES)} (the breakdown uses the first)")
    parser.add_argument("--memory-child", nargs=2, metavar=("VARIANT", "K"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_buffers()  # the harness's allocator setting, for every candidate and baseline alike
    if args.memory_child:
        memory_child(args.memory_child[0], int(args.memory_child[1]), args.threads)
        return
    ks = (2,) if args.quick else tuple(int(k) for k in args.ks.split(","))
    run = lambda section: args.only in (None, section)  # noqa: E731
    names = ("resnet18",) if args.quick else ("resnet18", "vgg11")
    heat = heatmap_rows(args.reps + 2, names) if run("heatmap") else []
    backbones = ("small",) if args.quick else tuple(args.backbones.split(","))
    unknown = set(backbones) - set(BACKBONES)
    if unknown:
        parser.error(f"unknown backbones {sorted(unknown)}; choose from {sorted(BACKBONES)}")
    train = [row for b in backbones for row in training_rows(args.reps, ks, b)] if run("train") else []
    split = breakdown_rows(args.reps, ks, backbones[0]) if run("breakdown") else []
    export = export_row(args.reps) if run("export") else {"backbone_s": 0, "exported_s": 0, "ratio": float("nan")}
    mem = memory_rows((10,), args.threads) if run("memory") and not args.quick else []
    text = markdown(heat, train, export, mem, split, args)
    print()
    print(text)
    if args.write:
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(text)
        print(f"wrote {REPORT}")


if __name__ == "__main__":
    main()
