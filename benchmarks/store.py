"""The run store: one folder per (experiment, method, seed, config hash).

Layout of a run folder::

    config.json        what was run (experiment, method, seed, profile, hyper-parameters)
    provenance.json    git commit, package versions, device, data checksum, start time
    metrics.jsonl      one line per finished epoch
    checkpoint.pt      last finished epoch (model, optimiser, RNG state) for resuming
    best.pt            weights of the validation-selected epoch so far (removed with
                       checkpoint.pt when the run is done)
    predictions/<split>.npz   labels, logits, groups, index of every test image
    explanations.json  explanation metrics per split and explainer
    explanations.npz   per-image explanation scores and a small heatmap gallery
    summary.json       test metrics per split, timings
    done               written last: status and SHA-256 of every record file

Every file is written atomically (temporary file, then rename), and ``done`` lists the
digest of each record file, so a half-written or damaged record is detected, reported and
re-run instead of being mixed into a table.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DONE = "done"
RECORD_FILES = (
    "config.json",
    "provenance.json",
    "metrics.jsonl",
    "summary.json",
    "explanations.json",
    "explanations.npz",
)


def config_hash(config: Mapping[str, Any]) -> str:
    """Short stable digest of a run configuration."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:10]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n").encode())


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class CorruptRecordError(RuntimeError):
    """A run folder whose ``done`` marker does not match its files."""


@dataclass(frozen=True)
class RunRecord:
    """A finished run read back from disk."""

    path: Path
    status: str
    config: dict[str, Any]
    provenance: dict[str, Any]
    summary: dict[str, Any]
    explanations: dict[str, Any]
    epochs: list[dict[str, Any]]

    def predictions(self, split: str) -> dict[str, np.ndarray]:
        return self.arrays(f"predictions/{split}.npz")

    def arrays(self, name: str) -> dict[str, np.ndarray]:
        file = self.path / name
        if not file.exists():
            return {}
        with np.load(file) as data:
            return {key: data[key] for key in data.files}


class RunDir:
    """Reads and writes one run's folder."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    # -- state
    @property
    def done_path(self) -> Path:
        return self.path / DONE

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def best_path(self) -> Path:
        return self.path / "best.pt"

    def is_done(self) -> bool:
        """True for a complete, verified record (a damaged one raises CorruptRecordError)."""
        if not self.done_path.exists():
            return False
        self.verify()
        return True

    def verify(self) -> dict[str, Any]:
        try:
            marker = json.loads(self.done_path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise CorruptRecordError(f"{self.path}: unreadable done marker ({err})") from err
        for name, digest in marker.get("files", {}).items():
            file = self.path / name
            if not file.exists():
                raise CorruptRecordError(f"{self.path}: {name} is missing")
            if _sha256(file) != digest:
                raise CorruptRecordError(f"{self.path}: {name} does not match its digest in 'done'")
        return marker

    def reset(self) -> None:
        """Remove a damaged record entirely so the run starts afresh."""
        shutil.rmtree(self.path, ignore_errors=True)

    # -- writing
    def write_json(self, name: str, obj: Any) -> None:
        atomic_write_json(self.path / name, obj)

    def write_epochs(self, epochs: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(e, sort_keys=True, default=_jsonable) + "\n" for e in epochs)
        atomic_write_bytes(self.path / "metrics.jsonl", text.encode())

    def write_arrays(self, name: str, arrays: Mapping[str, np.ndarray]) -> None:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        atomic_write_bytes(self.path / name, buffer.getvalue())

    def write_predictions(self, split: str, arrays: Mapping[str, np.ndarray]) -> None:
        self.write_arrays(f"predictions/{split}.npz", arrays)

    def write_checkpoint(self, state: dict[str, Any]) -> None:
        import torch

        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(self.checkpoint_path, buffer.getvalue())

    def write_best(self, state: dict[str, Any]) -> None:
        """The selected epoch's ``{"epoch": int, "model": state_dict}`` (tensors only)."""
        import torch

        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(self.best_path, buffer.getvalue())

    def read_best(self) -> dict[str, Any] | None:
        import torch

        if not self.best_path.exists():
            return None
        return torch.load(self.best_path, map_location="cpu", weights_only=True)

    def read_checkpoint(self) -> dict[str, Any] | None:
        import torch

        if not self.checkpoint_path.exists():
            return None
        try:
            return torch.load(self.checkpoint_path, map_location="cpu", weights_only=False)
        except Exception:  # noqa: BLE001 - a damaged checkpoint means starting over
            self.checkpoint_path.unlink(missing_ok=True)
            return None

    def mark_done(self, status: str, reason: str | None = None, keep_checkpoint: bool = False) -> None:
        """Write the ``done`` marker last, with digests of every record file."""
        files = [name for name in RECORD_FILES if (self.path / name).exists()]
        files += sorted(str(p.relative_to(self.path)) for p in (self.path / "predictions").glob("*.npz"))
        marker = {"status": status, "reason": reason, "files": {name: _sha256(self.path / name) for name in files}}
        if not keep_checkpoint:
            self.checkpoint_path.unlink(missing_ok=True)
            self.best_path.unlink(missing_ok=True)
        atomic_write_json(self.done_path, marker)

    # -- reading
    def read(self) -> RunRecord:
        marker = self.verify()

        def load(name: str) -> dict[str, Any]:
            file = self.path / name
            return json.loads(file.read_text()) if file.exists() else {}

        metrics = self.path / "metrics.jsonl"
        epochs = [json.loads(line) for line in metrics.read_text().splitlines() if line] if metrics.exists() else []
        return RunRecord(
            path=self.path,
            status=marker["status"],
            config=load("config.json"),
            provenance=load("provenance.json"),
            summary=load("summary.json"),
            explanations=load("explanations.json"),
            epochs=epochs,
        )


def run_path(root: Path, experiment: str, method: str, seed: int, config: Mapping[str, Any]) -> Path:
    """Where the run of this configuration lives under ``root``."""
    return Path(root) / "runs" / experiment / method / f"seed{seed}-{config_hash(config)}"


def iter_records(root: Path) -> Iterator[RunRecord | CorruptRecordError]:
    """Every finished run under ``root``; damaged ones are yielded as errors to report."""
    for marker in sorted(Path(root).glob("runs/*/*/*/" + DONE)):
        try:
            yield RunDir(marker.parent).read()
        except CorruptRecordError as err:
            yield err
