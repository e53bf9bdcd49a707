"""The run store: one folder per (experiment, method, seed, config hash).

Layout of a run folder::

    config.json        what was run (experiment, method, seed, profile, hyper-parameters)
    provenance.json    git commit, package versions, device, data checksum, start time, and
                       ``starts``: one entry per start or resume (time, threads, device, host)
    metrics.jsonl      one line per finished epoch
    checkpoint.pt      last finished epoch (model, optimiser, RNG state) for resuming
    best.pt            weights of the validation-selected epoch so far (removed with
                       checkpoint.pt when the run is done)
    predictions/<split>.npz   labels, logits, groups, index of every test image
    explanations.json  explanation metrics per split and explainer
    explanations.npz   per-image explanation scores and a small heatmap gallery
    summary.json       test metrics per split, timings
    done               written last: status and SHA-256 of every record file

Every file is written atomically (temporary file, then rename) with the permissions the
umask gives, and ``done`` lists the digest of every record file, so a half-written or
damaged record is detected, reported and re-run instead of being mixed into a table. A
damaged folder is never deleted: it is moved aside to ``<run folder>.damaged-<time>``.

Checkpoints hold only tensors, numbers, strings, lists and dicts, and are read with
``torch.load(weights_only=True)``: a checkpoint that needs more (a pickled object planted
in a shared folder) is refused as damaged, never executed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
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
    "counterfactuals.json",
    "counterfactuals.npz",
)
STATUSES = ("ok", "failed")
#: the suffix of a damaged run folder moved aside (followed by the UTC time it was moved)
SET_ASIDE = ".damaged-"


def config_hash(config: Mapping[str, Any]) -> str:
    """Short stable digest of a run configuration."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:10]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    The file is created with mode 0666 less the umask, as ``open()`` would create it, so that
    the collaborators the umask admits can read records on a shared folder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
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
    """A run folder whose files cannot be trusted: a ``done`` marker that does not cover or
    match its files, a file that does not parse, a checkpoint that is not plain data. The
    message starts with the run folder and names the file."""


_SCALARS = (str, int, float, bool, type(None))


def check_plain(obj: Any, where: str = "checkpoint") -> None:
    """Raise ``TypeError`` naming the first value of ``obj`` that ``torch.load(weights_only=True)``
    would refuse (anything but tensors, numbers, strings, lists, tuples and dicts)."""
    import torch

    if isinstance(obj, torch.Tensor) or type(obj) in _SCALARS:
        return
    if type(obj) in (dict, OrderedDict):
        for key, value in obj.items():
            if type(key) not in (str, int):
                raise TypeError(f"{where} has a key of type {type(key).__name__}; keys must be strings or integers")
            check_plain(value, f"{where}[{key!r}]")
        return
    if type(obj) in (list, tuple, torch.Size):
        for i, value in enumerate(obj):
            check_plain(value, f"{where}[{i}]")
        return
    raise TypeError(f"{where} is a {type(obj).__name__}: a checkpoint holds only tensors, numbers, strings, lists "
                    "and dicts (it is read with torch.load(weights_only=True))")


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

    def record_files(self) -> list[str]:
        """The record files present in the folder (what a ``done`` marker must cover)."""
        files = [name for name in RECORD_FILES if (self.path / name).exists()]
        return files + sorted(str(p.relative_to(self.path)) for p in (self.path / "predictions").glob("*.npz"))

    def verify(self) -> dict[str, Any]:
        """The ``done`` marker, once every record file is listed in it and matches its digest."""
        try:
            marker = json.loads(self.done_path.read_text())
        except (OSError, ValueError) as err:
            raise CorruptRecordError(f"{self.path}: {DONE} is unreadable ({err})") from err
        files = marker.get("files") if isinstance(marker, dict) else None
        if not isinstance(files, dict) or not files:
            raise CorruptRecordError(f"{self.path}: {DONE} lists no record files, so nothing in the folder is verified")
        if marker.get("status") not in STATUSES:
            raise CorruptRecordError(f"{self.path}: {DONE} has no valid status ({marker.get('status')!r})")
        for name, digest in files.items():
            file = self.path / name
            if not file.is_file():
                raise CorruptRecordError(f"{self.path}: {name} is missing")
            if _sha256(file) != digest:
                raise CorruptRecordError(f"{self.path}: {name} does not match its digest in '{DONE}'")
        unlisted = [name for name in self.record_files() if name not in files]
        if unlisted:
            raise CorruptRecordError(f"{self.path}: {unlisted[0]} is not covered by the digests in '{DONE}'")
        return marker

    def set_aside(self) -> Path | None:
        """Move a damaged folder to ``<name>.damaged-<UTC time>`` beside it, so that the run can
        start afresh while nothing that was there is lost. Returns where it went."""
        if not self.path.exists():
            return None
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        target = self.path.with_name(f"{self.path.name}{SET_ASIDE}{stamp}")
        suffix = 1
        while target.exists():
            suffix += 1
            target = self.path.with_name(f"{self.path.name}{SET_ASIDE}{stamp}-{suffix}")
        os.rename(self.path, target)
        return target

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
        """The last finished epoch's training state (plain data: see :func:`check_plain`)."""
        self._save_tensors(self.checkpoint_path, state)

    def write_best(self, state: dict[str, Any]) -> None:
        """The selected epoch's ``{"epoch": int, "model": state_dict}``."""
        self._save_tensors(self.best_path, state)

    def _save_tensors(self, path: Path, state: dict[str, Any]) -> None:
        import torch

        check_plain(state, path.name)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(path, buffer.getvalue())

    def read_best(self) -> dict[str, Any] | None:
        return self._load_tensors(self.best_path)

    def read_checkpoint(self) -> dict[str, Any] | None:
        return self._load_tensors(self.checkpoint_path)

    def _load_tensors(self, path: Path) -> dict[str, Any] | None:
        """``None`` when there is no such file; CorruptRecordError when it is not plain data."""
        import torch

        if not path.exists():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - whatever failed, the file cannot be used
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise CorruptRecordError(f"{self.path}: {path.name} is not a checkpoint of plain tensors and "
                                     f"numbers, refused ({first})") from err
        if not isinstance(state, dict):
            raise CorruptRecordError(f"{self.path}: {path.name} holds a {type(state).__name__}, not a checkpoint")
        return state

    def mark_done(self, status: str, reason: str | None = None, keep_checkpoint: bool = False) -> None:
        """Write the ``done`` marker last, with digests of every record file."""
        files = self.record_files()
        marker = {"status": status, "reason": reason, "files": {name: _sha256(self.path / name) for name in files}}
        if not keep_checkpoint:
            self.checkpoint_path.unlink(missing_ok=True)
            self.best_path.unlink(missing_ok=True)
        atomic_write_json(self.done_path, marker)

    # -- reading
    def read_json(self, name: str, default: Any = None) -> Any:
        """A JSON file of the folder (``default`` when absent); a parse error names the file."""
        file = self.path / name
        if not file.exists():
            return default
        try:
            return json.loads(file.read_text())
        except (OSError, ValueError) as err:
            raise CorruptRecordError(f"{self.path}: {name} is not valid JSON ({err})") from err

    def read_epochs(self) -> list[dict[str, Any]]:
        """The lines of ``metrics.jsonl`` (none when absent); a bad line is named."""
        file = self.path / "metrics.jsonl"
        if not file.exists():
            return []
        epochs = []
        for number, line in enumerate(file.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                epochs.append(json.loads(line))
            except ValueError as err:
                raise CorruptRecordError(f"{self.path}: metrics.jsonl line {number} is not valid JSON ({err})") from err
        return epochs

    def read(self) -> RunRecord:
        marker = self.verify()
        return RunRecord(
            path=self.path,
            status=marker["status"],
            config=self.read_json("config.json", {}),
            provenance=self.read_json("provenance.json", {}),
            summary=self.read_json("summary.json", {}),
            explanations=self.read_json("explanations.json", {}),
            epochs=self.read_epochs(),
        )


def run_path(root: Path, experiment: str, method: str, seed: int, config: Mapping[str, Any]) -> Path:
    """Where the run of this configuration lives under ``root``."""
    return Path(root) / "runs" / experiment / method / f"seed{seed}-{config_hash(config)}"


def is_set_aside(folder: Path) -> bool:
    """Whether ``folder`` is a damaged run folder moved aside (not a run of the grid)."""
    return SET_ASIDE in Path(folder).name


def iter_records(root: Path) -> Iterator[RunRecord | CorruptRecordError]:
    """Every finished run under ``root``; damaged ones are yielded as errors to report."""
    for marker in sorted(Path(root).glob("runs/*/*/*/" + DONE)):
        if is_set_aside(marker.parent):
            continue
        try:
            yield RunDir(marker.parent).read()
        except CorruptRecordError as err:
            yield err
