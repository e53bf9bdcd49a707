"""A validation sweep of every baseline's free constants at cpu scale.

``python -m benchmarks.studies.sweep run [--out results/studies/sweep]`` trains each baseline
with each of its :data:`CANDIDATES` on ``synthetic_covid`` and ``synthetic_tb`` (cpu profile,
seeds 0 and 1). Candidate 0 is the method's constants before the sweep (:data:`BEFORE`); the
others change one constant at a time, one value below and one above: the method's own loss weight
or warm-up (or, for the methods trained by cross-entropy alone, the learning rate), and also HAM's
margin and ViT's weight decay. Constants are not crossed (a one-at-a-time sweep, sized for 2 cores);
ViT's patch size and warm-up are fixed by its cpu architecture and not swept.

The rule that picks, written before the runs (DomainBed's training-domain validation): per
method, the candidate with the highest selected in-distribution validation accuracy, averaged
over both experiments (equal weight) and both seeds, replaces the constants before the sweep only
when it beats them by more than :data:`MARGIN`; no shifted or test split is read. ISNet and its
variants keep the authors' constants and are not swept. The chosen values are the defaults of
the default grid, each cited in its plugin's docstring.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.run.task import RunTask, profile_settings

EXPERIMENTS = ("synthetic_covid", "synthetic_tb")
SEEDS = (0, 1)
#: the smallest gain in mean validation accuracy for which a candidate replaces the constants before the sweep
MARGIN = 0.01
COMMAND = "python -m benchmarks.studies.sweep run --out results/studies/sweep"
TITLE = "Validation sweep of the baselines"

#: each baseline's hyper-parameters before the sweep (frozen here, so the study's runs keep their identity)
BEFORE: dict[str, dict[str, Any]] = {
    "ag_sononet": {"lr": 1e-3, "weight_decay": 1e-5},
    "gain": {"lr": 1e-3, "weight_decay": 0.0, "alpha": 1.0, "omega": 10.0, "sigma": 0.5, "w_e": 10.0,
             "grad_clip": 1.0},
    "ham": {"lr": 1e-3, "weight_decay": 0.0, "lambda_att": 1.0, "margin": 0.5, "levels": 3, "normal_class": None},
    "multitask_unet": {"lr": 1e-3, "weight_decay": 0.0, "w_seg": 1.0, "dropout": 0.5},
    "rrr": {"lr": 1e-3, "weight_decay": 0.0, "lambda_rrr": 0.5},
    "segment_then_classify": {"lr": 1e-3, "weight_decay": 0.0, "w_seg": 1.0, "warmup_epochs": 1,
                              "mask_mode": "hard"},
    "vit": {"lr": 5e-4, "weight_decay": 0.05, "drop_path": 0.0, "grad_clip": 1.0},
}
#: per method, the changes of each candidate after candidate 0 (the constants before the sweep)
CHANGES: dict[str, tuple[dict[str, Any], ...]] = {
    "ag_sononet": ({"lr": 3e-4}, {"lr": 3e-3}),
    "gain": ({"alpha": 0.3}, {"w_e": 1.0}),
    "ham": ({"lambda_att": 0.3}, {"lambda_att": 3.0}, {"margin": 0.25}, {"margin": 0.75}),
    "multitask_unet": ({"w_seg": 0.3}, {"w_seg": 3.0}),
    "rrr": ({"lambda_rrr": 0.05}, {"lambda_rrr": 5.0}),
    "segment_then_classify": ({"warmup_epochs": 0}, {"warmup_epochs": 3}),
    "vit": ({"lr": 2.5e-4}, {"lr": 1e-3}, {"weight_decay": 0.0}, {"weight_decay": 0.2}),
}
CANDIDATES: dict[str, tuple[dict[str, Any], ...]] = {
    m: (dict(base), *({**base, **change} for change in CHANGES[m])) for m, base in BEFORE.items()
}

#: how many runs the whole sweep trains
RUNS = sum(len(c) for c in CANDIDATES.values()) * len(EXPERIMENTS) * len(SEEDS)


def tasks(out: Path, cache_dir: Path) -> list[RunTask]:
    """Every run of the sweep (method x candidate x experiment x seed); a candidate is the draw index."""
    from benchmarks.registry import discover_experiments

    experiments = discover_experiments()
    made = []
    for method, candidates in CANDIDATES.items():
        for index, hparams in enumerate(candidates):
            for name in EXPERIMENTS:
                settings = profile_settings(experiments[name].profile("cpu"))
                for seed in SEEDS:
                    made.append(RunTask(name, method, seed, "cpu", dict(hparams), index, out, cache_dir,
                                        experiment_profile=settings, arm=f"candidate {index}"))
    return made


def choose(val_accuracy: Mapping[tuple[str, int, str], float]) -> dict[str, dict[str, Any]]:
    """The rule: ``val_accuracy[(method, candidate, experiment)]`` (each the mean over all of
    :data:`SEEDS`) -> per method the chosen candidate, its mean over experiments and candidate 0's.
    A method is judged only when every one of its candidates is measured on every experiment: a
    sweep in progress chooses nothing."""
    chosen = {}
    for method, candidates in CANDIDATES.items():
        means = {}
        for index in range(len(candidates)):
            values = [val_accuracy.get((method, index, e)) for e in EXPERIMENTS]
            if all(v is not None for v in values):
                means[index] = sum(values) / len(values)
        if len(means) < len(candidates):
            continue
        best = max(means, key=lambda i: (means[i], -i))
        pick = best if means[best] > means[0] + MARGIN else 0
        chosen[method] = {"candidate": pick, "hparams": candidates[pick], "mean": means[pick], "before": means[0],
                          "means": means}
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks.studies.running import study_main

    return study_main("sweep", __doc__, tasks, argv)


if __name__ == "__main__":
    raise SystemExit(main())
