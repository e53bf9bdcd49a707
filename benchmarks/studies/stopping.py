"""How far float noise moves a run's end: candidate stopping rules on perturbed replicas.

``python -m benchmarks.studies.stopping run [--out results/studies/stopping]`` trains each configuration of
:data:`CONFIGURATIONS` (cpu profile, default hyper-parameters) for its profile's full schedule
(no early stopping) four times: once as is and three times with every initial weight
multiplied by ``1 + 1e-6 N(0, 1)`` (about the difference two CPUs' kernels make in one
step). ``python -m benchmarks report --runs results`` then applies each candidate rule of
:data:`RULES` to the recorded validation curves, as the harness would have applied it during
training, and tabulates per configuration and rule the epoch at which each replica stops, the
epoch the selection rule then keeps and that model's validation accuracy
(:mod:`benchmarks.report.study_tables`).

The decision rule was written before the runs: the rule whose stopping epoch spreads least
over the replicas (worst configuration), then whose selected validation accuracy spreads
least, then which trains fewest epochs; the fixed schedule is the reference point. Only the
validation split is read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks.run.convergence import still_improving
from benchmarks.run.task import RunTask, profile_settings
from benchmarks.run.training import best_epoch

#: (experiment, method, seed): the issue's example (ISNet on biased MNIST), ISNet and a Faster
#: variant on the X-rays, a U-Net baseline, an input-gradient baseline and the plain classifier
CONFIGURATIONS: tuple[tuple[str, str, int], ...] = (
    ("biased_mnist", "isnet", 0),
    ("synthetic_covid", "isnet", 0),
    ("synthetic_tb", "isnet_stochastic", 0),
    ("biased_mnist", "multitask_unet", 0),
    ("synthetic_tb", "rrr", 0),
    ("synthetic_covid", "standard", 0),
)
COMMAND = "python -m benchmarks.studies.stopping run --out results/studies/stopping"
RELATIVE = 1e-6
DRAWS = (0, 1, 2, 3)  # 0: unperturbed
MIN_EPOCHS = 8

Curve = Sequence[dict[str, Any]]


def _losses(curve: Curve) -> list[float]:
    return [float(e["val_loss"]) if e.get("selectable", True) and math.isfinite(e["val_loss"]) else math.inf
            for e in curve]


def _trailing_mean(values: list[float], window: int) -> list[float]:
    out = []
    for i in range(len(values)):
        part = [v for v in values[max(0, i - window + 1): i + 1] if math.isfinite(v)]
        out.append(sum(part) / len(part) if part else math.inf)
    return out


def _stale_for(values: list[float], patience: int) -> bool:
    """Whether the best value (an improvement needs more than 1 % and 0.001) is at least
    ``patience`` epochs old."""
    best, best_at = math.inf, -1
    for i, v in enumerate(values):
        if v < best - max(0.01 * abs(best), 0.001) if math.isfinite(best) else math.isfinite(v):
            best, best_at = v, i
    return best_at >= 0 and len(values) - 1 - best_at >= patience


def last_quarter(curve: Curve) -> bool:
    return not still_improving(curve)


def patience(n: int, window: int = 1) -> Callable[[Curve], bool]:
    def rule(curve: Curve) -> bool:
        return _stale_for(_trailing_mean(_losses(curve), window), n)

    return rule


def fixed(curve: Curve) -> bool:
    return False


RULES: dict[str, Callable[[Curve], bool]] = {
    "last quarter (until now)": last_quarter,
    "patience 6": patience(6),
    "patience 4, 3-epoch mean": patience(4, 3),
    "patience 6, 3-epoch mean": patience(6, 3),
    "fixed schedule": fixed,
}


def stop_epochs(curve: Curve, rule: Callable[[Curve], bool], min_epochs: int = MIN_EPOCHS) -> int:
    """How many epochs a run with this full ``curve`` trains when ``rule`` decides after each."""
    for n in range(min_epochs, len(curve) + 1):
        if rule(curve[:n]):
            return n
    return len(curve)


@dataclass(frozen=True)
class Outcome:
    epochs: int
    selected: int
    val_accuracy: float


def apply(curve: Curve, rule: Callable[[Curve], bool]) -> Outcome:
    n = stop_epochs(curve, rule)
    chosen = best_epoch(list(curve[:n])) or curve[n - 1]
    return Outcome(n, int(chosen["epoch"]), float(chosen["val_accuracy"]))


def tasks(out: Path, cache_dir: Path) -> list[RunTask]:
    from benchmarks.registry import discover_experiments, discover_methods

    experiments, methods = discover_experiments(), discover_methods()
    made = []
    for experiment, method, seed in CONFIGURATIONS:
        settings = profile_settings(replace(experiments[experiment].profile("cpu"), min_epochs=None))
        for draw in DRAWS:
            made.append(RunTask(experiment, method, seed, "cpu", dict(methods[method].defaults), 0, out,
                                cache_dir, experiment_profile=settings,
                                perturbation=(RELATIVE, draw) if draw else None))
    return made


def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks.studies.running import study_main

    return study_main("stopping", __doc__, tasks, argv)


if __name__ == "__main__":
    raise SystemExit(main())
