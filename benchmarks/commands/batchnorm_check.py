"""Does a trained model lose accuracy to its batch-normalisation running statistics?

``python -m benchmarks.commands.batchnorm_check --experiment decoy_mnist --method gain --seed 0``
trains one run of the grid's configuration (cpu profile, the method's defaults) into ``--out``,
keeping its validation-selected weights, then scores the validation and test splits twice with
those weights: with the running statistics training left, and after every BatchNorm layer's
statistics are re-estimated on the clean training images (no weight changes). A large gain says
that something the method feeds through the network in training mode (GAIN's attention-mining
pass on erased images, for one) moved the statistics away from real images. Test splits are only
reported, never used to choose anything.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from benchmarks.api import Batch, Dataset
from benchmarks.architectures import batchnorm_momentum


def reestimate_batchnorm(model: nn.Module, batches: Iterable[Tensor]) -> int:
    """Reset every BatchNorm layer of ``model`` and re-estimate its running mean and variance as
    the cumulative average over ``batches`` (training-mode forward passes, no gradients, weights
    untouched); returns the number of layers re-estimated. ``model`` is left in eval mode."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in layers:
        m.reset_running_stats()
    model.train()
    with torch.no_grad(), batchnorm_momentum(model, None):  # cumulative average: every batch counts equally
        for images in batches:
            model(images)
    model.eval()
    return len(layers)


def _batches(split: Dataset, size: int = 256) -> Iterator[Batch]:
    for start in range(0, len(split), size):
        yield split.batch(torch.arange(start, min(start + size, len(split))))


def accuracy(model: nn.Module, split: Dataset) -> float:
    """Eval-mode accuracy of ``model`` on ``split``."""
    model.eval()
    with torch.no_grad():
        right = sum(int((model(b.images).argmax(1) == b.labels).sum()) for b in _batches(split))
    return right / len(split)


def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks.registry import discover_experiments, discover_methods
    from benchmarks.run.task import RunTask, profile_settings
    from benchmarks.run.training import build_method, train_run

    parser = argparse.ArgumentParser(prog="python -m benchmarks.commands.batchnorm_check",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--method", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("output/batchnorm_check"))
    parser.add_argument("--cache-dir", type=Path, default=Path("datasets/cache"))
    args = parser.parse_args(argv)
    experiment = discover_experiments()[args.experiment]
    spec = discover_methods()[args.method]
    profile = experiment.profile(args.profile)
    task = RunTask(args.experiment, args.method, args.seed, args.profile, dict(spec.defaults), 0,
                   args.out.resolve(), args.cache_dir.resolve(), experiment_profile=profile_settings(profile))
    best = next(args.out.resolve().rglob("best.pt"), None)
    if best is None:
        train_run(task, experiment, spec, show_progress=False, keep_weights=True)
        best = next(args.out.resolve().rglob("best.pt"))
    state = torch.load(best, map_location="cpu", weights_only=False)
    bundle = experiment.build(profile, args.seed, task.cache_dir)
    method = build_method(spec, bundle, args.profile, profile.backbone, dict(spec.defaults))
    method.load_state_dict(state["model"])
    model = method.export()
    splits = {"val": bundle.val, **bundle.tests}
    before = {name: accuracy(model, split) for name, split in splits.items()}
    layers = reestimate_batchnorm(model, (b.images for b in _batches(bundle.train)))
    after = {name: accuracy(model, split) for name, split in splits.items()}
    print(f"{args.experiment}/{args.method}/seed{args.seed}: selected epoch {state['epoch']}, "
          f"{layers} BatchNorm layers re-estimated on {len(bundle.train)} clean training images")
    print("split | accuracy, training's running statistics | accuracy, re-estimated")
    for name in splits:
        print(f"{name} | {100 * before[name]:.1f} % | {100 * after[name]:.1f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
