"""Does a trained model read the background? A counterfactual probe on the validation split.

``python -m benchmarks.probe EXPERIMENT [--methods NAME ...] [--seeds 0] [--profile cpu]
[--out DIR]`` trains each run as ``run`` does (the same configuration, hence, on the CPU, the
same weights as the reference run's record of that seed), keeps its validation-selected
weights and scores the in-distribution validation split twice: intact, and *background only*
(every foreground pixel replaced by the mean of the image's foreground, so the class signal is
gone and whatever the background says is left). A model that ignores the background falls to
the majority-class share on background-only images; one that reads a shortcut there keeps part
of its accuracy. Beside it, the share of the absolute LRP relevance (of the true class) that the
model's heatmaps put on the background, the quantity ISNet's loss drives down: a network trained
against its heatmaps can keep reading the background through paths that the explainer does not
credit to background pixels, which only a change of the input reveals.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

import isnet
from benchmarks.api import ExperimentSpec, MethodSpec
from benchmarks.batching import iterate_batches
from benchmarks.evaluation.explanation import background_relevance_share
from benchmarks.executors.unit import CPU_THREADS
from benchmarks.store import RunDir
from benchmarks.training import RunTask, build_method, profile_settings, train_run


def background_only(images: Tensor, masks: Tensor) -> Tensor:
    """``images`` with each image's foreground (``masks`` = 1) set to that foreground's mean."""
    area = masks.sum((2, 3), keepdim=True).clamp(min=1)
    fill = (images * masks).sum((2, 3), keepdim=True) / area
    return images * (1 - masks) + fill * masks


def probe_accuracy(model: nn.Module, split: Dataset, batch_size: int = 256) -> dict[str, float]:
    """Accuracy of ``model`` (images in, logits out, eval mode) on ``split`` intact and on its
    background-only images, the split's majority-class share (chance), and the mean share of the
    absolute LRP relevance of the true class on the background (NaN where the LRP engine cannot
    explain the model)."""
    model.eval()
    hits = {"intact": 0, "background_only": 0}
    labels, shares = [], []
    for batch in iterate_batches(split, batch_size, shuffle_seed=None):
        if batch.masks is None:
            raise ValueError("the background probe needs foreground masks")
        with torch.no_grad():
            hits["intact"] += int((model(batch.images).argmax(1) == batch.labels).sum())
            hits["background_only"] += int((model(background_only(batch.images, batch.masks)).argmax(1)
                                            == batch.labels).sum())
        shares.append(_lrp_background_share(model, batch.images, batch.labels, batch.masks))
        labels.append(batch.labels)
    y = torch.cat(labels).numpy()
    return {**{k: v / len(y) for k, v in hits.items()}, "chance": float(np.bincount(y).max() / len(y)),
            "lrp_background_share": float(np.nanmean(np.concatenate(shares)))}


def _lrp_background_share(model: nn.Module, images: Tensor, labels: Tensor, masks: Tensor) -> np.ndarray:
    try:
        heat = isnet.explain(model, images, labels).detach()
    except (NotImplementedError, TypeError, ValueError):
        return np.full(len(labels), np.nan)
    return background_relevance_share(heat.numpy(), masks.numpy())


def probe_run(experiment: ExperimentSpec, spec: MethodSpec, seed: int, profile: str, out: Path,
              cache_dir: Path) -> dict[str, float]:
    """Train (or reuse) the run of ``spec`` on ``experiment`` with its default hyper-parameters,
    keeping its selected weights under ``out``, and probe them on the validation split."""
    settings = experiment.profile(profile)
    task = RunTask(experiment.name, spec.name, seed, profile, dict(spec.defaults), 0, Path(out), Path(cache_dir),
                   experiment_profile=profile_settings(settings))
    run = RunDir(task.folder)
    if not (run.is_done() and run.best_path.exists()):
        if run.path.exists():
            run.set_aside()
        if train_run(task, experiment, spec, show_progress=False, keep_weights=True) != "ok":
            raise RuntimeError(f"{task.label} diverged; nothing to probe")
    bundle = experiment.build(settings, seed, Path(cache_dir))
    method = build_method(spec, bundle, profile, settings.backbone, dict(spec.defaults))
    method.load_state_dict(run.read_best()["model"])
    selected = run.read().summary["selection"]["selected_epoch"]
    return {"selected_epoch": selected, **probe_accuracy(method.export(), bundle.val, settings.batch_size)}


def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks.registry import discover_experiments, discover_methods

    parser = argparse.ArgumentParser(prog="python -m benchmarks.probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment")
    parser.add_argument("--methods", nargs="+", default=["standard", "isnet"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("output/probe"), help="where the probed runs are kept")
    parser.add_argument("--cache-dir", type=Path, default=Path("datasets/cache"))
    args = parser.parse_args(argv)
    torch.set_num_threads(CPU_THREADS)  # the harness's CPU rule: the same weights as the grid's runs
    experiment = discover_experiments()[args.experiment]
    methods = discover_methods()
    print("| method | seed | selected epoch | validation accuracy | background only | chance "
          "| LRP relevance on the background |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in args.methods:
        for seed in args.seeds:
            r = probe_run(experiment, methods[name], seed, args.profile, args.out, args.cache_dir)
            print(f"| `{name}` | {seed} | {r['selected_epoch']} | {r['intact']:.3f} | {r['background_only']:.3f} "
                  f"| {r['chance']:.3f} | {r['lrp_background_share']:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
