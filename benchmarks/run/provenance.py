"""Provenance of a run: code version, package versions, machine and device, and one entry
per start or resume of the run (``starts``), so that a record trained in several sittings
says what each sitting ran on."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from benchmarks.resources import cpu_model
from benchmarks.run import kernels

PACKAGES = ("torch", "torchvision", "timm", "captum", "numpy", "scikit-learn", "pandas", "isnet-benchmarks")


COMMIT_ENV = "ISNET_BENCHMARKS_GIT_COMMIT"


def git_commit(start: Path | None = None) -> str | None:
    """The commit of the checkout holding this code (``-dirty`` when modified); for code
    shipped without its ``.git`` (a copy on a cluster node), ``$ISNET_BENCHMARKS_GIT_COMMIT``."""
    if os.environ.get(COMMIT_ENV):
        return os.environ[COMMIT_ENV]
    where = start or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def device_name(device: torch.device) -> str:
    """The device by model: the GPU's name, or ``cpu (<processor model>)``."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({cpu_model()})"


def start_entry(device: torch.device, resumed_from_epoch: int) -> dict[str, Any]:
    """What one start (``resumed_from_epoch`` 0) or resume of a run ran on: the torch thread
    count, the device and, on the CPU, the kernels' instruction set change a run's numbers, so
    every sitting records them (:func:`benchmarks.run.kernels.describe`)."""
    entry = {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "threads": torch.get_num_threads(),
        "device": device_name(device),
        "host": platform.node(),
        "torch": torch.__version__,
        "resumed_from_epoch": int(resumed_from_epoch),
    }
    if device.type == "cpu":
        entry["kernels"] = kernels.describe()
    return entry


def collect(device: torch.device, data_checksum: str) -> dict[str, Any]:
    """Everything needed to tell later where a result came from."""
    return {
        "git_commit": git_commit(),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "device": device_description(device),
        "data_checksum": data_checksum,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
