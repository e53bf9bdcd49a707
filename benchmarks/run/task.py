"""What one run is: the grid cell an executor ships (:class:`RunTask`), its identity (hashed
into its record folder's name) and the profile settings it trains with. Plain data, no torch,
so that the grid, the runner and the executors can hold runs without importing training."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.api import ExperimentProfile, ExperimentSpec
from benchmarks.store import run_path


@dataclass(frozen=True)
class RunTask:
    """One cell of the grid; picklable so that any executor can ship it."""

    experiment: str
    method: str
    seed: int
    profile: str
    hparams: dict[str, Any]
    hparam_index: int
    out: Path
    cache_dir: Path
    device: str = "cpu"
    extra: dict[str, Any] = field(default_factory=dict)
    experiment_profile: dict[str, Any] = field(default_factory=dict)
    #: ``(relative size, draw)``: multiply every initial weight by ``1 + size * N(0, 1)`` noise
    #: (draw ``draw``), to measure how far float noise moves a run (``None``: no perturbation)
    perturbation: tuple[float, int] | None = None
    #: where the exported classifier's initial weights come from (:data:`benchmarks.run.pretraining.SOURCES`;
    #: ``None``: the method's own random initialisation)
    init: str | None = None
    #: the arm of a study this run belongs to (empty for the grid's runs)
    arm: str = ""
    #: hyper-parameters set on the command line (``run --hparams``; :mod:`benchmarks.commands.hparams`)
    hparams_from_cli: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> dict[str, Any]:
        """The identity of the run (hashed into its folder name): changing a profile's
        settings (epochs, sizes, backbone) makes new runs instead of reusing old records."""
        return {
            "experiment": self.experiment,
            "method": self.method,
            "seed": self.seed,
            "profile": self.profile,
            "hparams": self.hparams,
            "hparam_index": self.hparam_index,
            "experiment_profile": self.experiment_profile,
            **({"init_perturbation": {"relative": self.perturbation[0], "draw": self.perturbation[1]}}
               if self.perturbation else {}),
            **({"init": self.init} if self.init else {}),
            **({"arm": self.arm} if self.arm else {}),
            **({"hparams_from_cli": dict(self.hparams_from_cli)} if self.hparams_from_cli else {}),
        }

    @property
    def folder(self) -> Path:
        """The run's record folder under ``out``."""
        return run_path(self.out, self.experiment, self.method, self.seed, self.config)

    @property
    def label(self) -> str:
        draw = f"/h{self.hparam_index}" if self.hparam_index else ""
        set_here = ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(self.hparams_from_cli.items()))
        return f"{self.experiment}/{self.method}/seed{self.seed}{draw}" + (f"[{set_here}]" if set_here else "")


def task_profile(task: RunTask, experiment: ExperimentSpec) -> ExperimentProfile:
    """The settings a run trains with: those its task carries (part of its identity, so a study
    may change the epochs or the image size of a profile), else its experiment's profile."""
    if task.experiment_profile:
        return ExperimentProfile(**task.experiment_profile)
    return experiment.profile(task.profile)


def profile_settings(profile: ExperimentProfile) -> dict[str, Any]:
    """A profile's settings as plain data (part of a run's identity and of config.json)."""
    return {
        "backbone": profile.backbone,
        "image_size": profile.image_size,
        "epochs": profile.epochs,
        "min_epochs": profile.min_epochs,
        "batch_size": profile.batch_size,
        "lr": profile.lr,
        "data": dict(profile.data),
    }
