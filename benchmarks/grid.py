"""The run grid: experiments x methods x seeds x hyper-parameter draws, under one profile.

The default grid leaves out the methods and experiments registered with ``extended="why"``;
:func:`choose` takes them in when they are named, or when the extended set is asked for.

Hyper-parameter draw 0 is the method's defaults; draws 1..n-1 are sampled from its search
space by a generator seeded with the draw index and the method name, so a sweep is the
same on every machine. Values set on the command line (``run --hparams``,
:mod:`benchmarks.commands.hparams`) override every draw; a draw they make identical to an earlier one
of the same method is left out.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.api import ExperimentSpec, MethodSpec
from benchmarks.registry import select
from benchmarks.run.task import RunTask, profile_settings


@dataclass(frozen=True)
class Skipped:
    """A grid cell left out, with the reason (shown by ``run`` and ``list``)."""

    experiment: str
    method: str
    reason: str


def choose(available: Mapping[str, MethodSpec | ExperimentSpec], patterns: Sequence[str], kind: str,
           extended: bool = False) -> list[str]:
    """The names that ``patterns`` (names or glob patterns) select, every one of them extended
    or not; without patterns, the default grid's names, and with ``extended`` the others too."""
    if patterns:
        return select(dict(available), patterns, kind)
    return [name for name, spec in available.items() if extended or not spec.extended]


def sample_hparams(spec: MethodSpec, index: int) -> dict[str, Any]:
    """Draw ``index`` of the method's search space (draw 0 = defaults)."""
    params = dict(spec.defaults)
    if index == 0:
        return params
    seed = int.from_bytes(hashlib.sha256(f"{spec.name}:{index}".encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    for name, space in sorted(spec.search_space.items()):
        if isinstance(space, tuple) and space and space[0] in ("loguniform", "uniform"):
            kind, low, high = space
            if kind == "loguniform":
                value = math.exp(rng.uniform(math.log(low), math.log(high)))
            else:
                value = rng.uniform(low, high)
            params[name] = float(f"{value:.4g}")
        elif isinstance(space, (list, tuple)) and space:
            choice = space[int(rng.integers(len(space)))]
            params[name] = choice.item() if isinstance(choice, np.generic) else choice
        else:
            raise ValueError(
                f"{spec.name}: search space of {name!r} must be a list or ('loguniform'|'uniform', lo, hi)"
            )
    return params


def expand(
    experiments: Mapping[str, ExperimentSpec],
    methods: Mapping[str, MethodSpec],
    seeds: Sequence[int],
    profile: str,
    n_hparams: int,
    out: Path,
    cache_dir: Path,
    device: str,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[list[RunTask], list[Skipped]]:
    """All runs of the grid (each once), and the (experiment, method) pairs that do not apply.
    ``overrides``: ``{method: {key: value}}`` set on the command line, checked
    (:func:`benchmarks.commands.hparams.check`); they replace those keys in every draw."""
    tasks: list[RunTask] = []
    skipped: list[Skipped] = []
    seeds = list(dict.fromkeys(seeds))  # a seed given twice is one run, not two writers of one folder
    for exp in experiments.values():
        settings = profile_settings(exp.profile(profile))
        for method in methods.values():
            reason = method.reason_not_applicable(exp.tags)
            if reason:
                skipped.append(Skipped(exp.name, method.name, reason))
                continue
            fixed = dict((overrides or {}).get(method.name, {}))
            drawn: set[str] = set()
            for index in range(n_hparams):
                hparams = {**sample_hparams(method, index), **fixed}
                identity = json.dumps(hparams, sort_keys=True, default=str)
                if fixed and identity in drawn:  # the overrides made this draw an earlier one
                    continue
                drawn.add(identity)
                for seed in seeds:
                    tasks.append(RunTask(exp.name, method.name, seed, profile, hparams, index, out, cache_dir, device,
                                         experiment_profile=settings, hparams_from_cli=fixed))
    return tasks, skipped
