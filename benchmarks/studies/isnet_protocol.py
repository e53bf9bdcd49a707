"""ISNet's chest X-ray protocol at cpu scale against the authors': one factor at a time.

``python -m benchmarks.studies.isnet_protocol run [--out results/studies/isnet_protocol]``
trains ``isnet`` on ``synthetic_covid`` and ``synthetic_tb`` (cpu profile, seeds 0 and 1) in
each arm of :data:`ARMS`; ``python -m benchmarks report --runs results`` then tabulates the
arms (:mod:`benchmarks.report.study_tables`): in-distribution and external accuracy, how often the predictions follow
a re-rendered training hospital's background, and whether the LRP heatmaps account for the
logits they explain.

The arms start from the suite's cpu default and change one thing each towards what the
authors did (``docs/isnet.md``; their Nature-era code, their newer code, their chest X-ray
models), then all of them at once. The arms that decide the default also run on biased MNIST,
which the default affects too.

The rule that sets the default, written before the runs: ISNet's cpu default becomes the
authors' protocol as it runs without optional data (the arm ``authors' protocol``: C1 / C2
calibrated on 5 plain epochs, then a restart from random weights, SGD), unless on some
experiment that arm does not learn, i.e. its mean selected in-distribution validation accuracy is
within 5 percentage points of the validation split's majority-class share; then the current
default stays. The pretrained start is not a default candidate (it needs Fashion-MNIST, which is
optional). No test split enters the rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from benchmarks.run.task import RunTask, profile_settings

EXPERIMENTS = ("synthetic_covid", "synthetic_tb")
SEEDS = (0, 1)
METHOD = "isnet"


@dataclass(frozen=True)
class Arm:
    """One protocol: hyper-parameters over the method's defaults, profile settings over the
    experiment's cpu profile, and where the classifier's first weights come from."""

    name: str
    what: str
    hparams: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    init: str | None = None
    experiments: tuple[str, ...] = EXPERIMENTS


AUTHORS = {"tune_epochs": 5, "tune_restart": True, "optimizer": "sgd"}
CPU = {"tune_epochs": 1, "tune_restart": False, "optimizer": "adam"}
DECIDING = (*EXPERIMENTS, "biased_mnist")
ARMS: tuple[Arm, ...] = (
    Arm("cpu default", "the suite's cpu setting until now: C1 / C2 calibrated on 1 plain epoch, training continues "
        "from that classifier, Adam (lr 1e-3), 40 px, random initial weights", {"tune_epochs": 1,
                                                                                "tune_restart": False,
                                                                                "optimizer": "adam"},
        experiments=DECIDING),
    Arm("authors' protocol", "the authors' choices that run without optional data: 5 calibration epochs, restart, "
        "SGD (lr 1e-3, momentum 0.99)", AUTHORS, experiments=DECIDING),
    Arm("restart", "as the authors: after calibration the classifier restarts from random weights",
        {"tune_epochs": 1, "tune_restart": True, "optimizer": "adam"}),
    Arm("Nature constants", "the Nature-era code: C1 = 1, C2 = 25, no calibration, the heatmap loss from the first "
        "step", {"C1": 1.0, "C2": 25.0, "optimizer": "adam"}),
    Arm("calibrate on 5 epochs", "C1 / C2 from the 5th plain epoch (the authors' newer scripts), then continue",
        {"tune_epochs": 5, "tune_restart": False, "optimizer": "adam"}),
    Arm("SGD", "the authors' optimiser for their chest X-ray models: SGD, lr 1e-3, momentum 0.99",
        {"tune_epochs": 1, "tune_restart": False, "optimizer": "sgd"}),
    Arm("pretrained", "the classifier starts from weights learnt on Fashion-MNIST (benchmarks.run.pretraining), "
        "standing in for the authors' ImageNet start", CPU, init="fashion_mnist"),
    Arm("64 px", "images of 64 px instead of 40", CPU, {"image_size": 64}),
    Arm("long schedule", "twice the epochs (60), so that the schedule converges by the report's rule", CPU,
        {"epochs": 60}),
    Arm("authors' protocol, pretrained", "all of the authors' choices at once: the arm above from the pretrained "
        "start", AUTHORS, init="fashion_mnist"),
)


def tasks(out: Path, cache_dir: Path) -> list[RunTask]:
    """Every run of the study (arm x experiment x seed)."""
    from benchmarks.registry import discover_experiments, discover_methods

    experiments, spec = discover_experiments(), discover_methods()[METHOD]
    made = []
    for arm in ARMS:
        for name in arm.experiments:
            settings = profile_settings(replace(experiments[name].profile("cpu"), **arm.profile))
            for seed in SEEDS:
                made.append(RunTask(name, METHOD, seed, "cpu", {**spec.defaults, **arm.hparams}, 0, out, cache_dir,
                                    experiment_profile=settings, init=arm.init, arm=arm.name))
    return made


COMMAND = "python -m benchmarks.studies.isnet_protocol run --out results/studies/isnet_protocol"
TITLE = "ISNet's X-ray protocol against the authors'"


def _listing(made: list[RunTask]) -> None:
    for arm in ARMS:
        print(f"{arm.name}: {arm.what}")
    print(f"{len(made)} runs")


def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks.studies.running import study_main

    return study_main("isnet_protocol", __doc__, tasks, argv, listing=_listing)


if __name__ == "__main__":
    raise SystemExit(main())
