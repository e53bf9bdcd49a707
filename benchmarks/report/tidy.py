"""Run records -> one tidy pandas table (a row per run and test split).

Besides the verified records, :func:`collect` gathers what must be *listed* rather than
tabulated: damaged records (their ``done`` marker does not match their files; never mixed
into a table) and runs that stopped with an unexpected error (``error.json`` and no ``done``
marker). Paths in the table are relative to the records' root, so that the report does not
depend on where the records lie.

Classification metrics (a column per entry of :mod:`benchmarks.evaluation.catalogue`) are
recomputed from the stored predictions by the catalogue, the same numbers the statistics use.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.evaluation import catalogue
from benchmarks.report.splits import FIELDS as SPLIT_FIELDS
from benchmarks.store import DONE, CorruptRecordError, RunDir, RunRecord, is_set_aside

OLDER_RECORD = ("the record was written by an older version of the harness, and the report reads this from the "
                "records only; move the run's folder aside and run `python -m benchmarks run` again with the same "
                "options to redo it")
#: what the report reads from every record's config.json besides the run's identity
REQUIRED_CONFIG = ("role", "experiment_profile", "selection_rule", *SPLIT_FIELDS)


def columns() -> list[str]:
    """The tidy table's columns: a run's identity, one column per catalogue metric, its costs."""
    return [
        "experiment", "profile", "method", "role", "seed", "hparam_index", "hparams", "status", "reason", "split", "n",
        *(m.key for m in catalogue.metrics()), "val_accuracy", "train_seconds", "inference_seconds",
        "inference_ms_per_image", "bias_strength", "image_size", "device", "path",
    ]

#: keys of ``config.json``'s ``experiment_profile.data`` read as the strength of an injected bias
BIAS_STRENGTH_KEYS = ("bias_strength",)


@dataclass(frozen=True)
class Damaged:
    """A record whose ``done`` marker does not match its files (left out of every table)."""

    path: str
    reason: str


@dataclass(frozen=True)
class Errored:
    """A run that stopped with an unexpected error (``error.json``, no ``done`` marker)."""

    path: str
    experiment: str
    method: str
    seed: int | None
    hparam_index: int | None
    reason: str


@dataclass
class Collection:
    """Everything read from one records root."""

    root: Path
    records: list[RunRecord]
    damaged: list[Damaged]
    errored: list[Errored]
    _arrays: dict[tuple[str, str], dict[str, np.ndarray]] = field(default_factory=dict, repr=False)
    _index: dict[str, RunRecord] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index = {self.relative(r): r for r in self.records}

    def relative(self, record: RunRecord) -> str:
        return _relative(record.path, self.root)

    def record(self, path: str) -> RunRecord:
        return self._index[path]

    def arrays(self, path: str, name: str) -> dict[str, np.ndarray]:
        """The arrays of ``name`` (``predictions/<split>.npz``, ``explanations.npz``) of the run
        at relative ``path``, read once."""
        key = (path, name)
        if key not in self._arrays:
            self._arrays[key] = self._index[path].arrays(name)
        return self._arrays[key]


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return Path(path).as_posix()


def _iter_markers(root: Path) -> Iterator[Path]:
    yield from (m for m in sorted(Path(root).glob("runs/*/*/*/" + DONE)) if not is_set_aside(m.parent))


def collect(root: Path) -> Collection:
    """Read every run folder under ``root/runs``: verified records, damaged ones, errored ones."""
    root = Path(root)
    records: list[RunRecord] = []
    damaged: list[Damaged] = []
    for marker in _iter_markers(root):
        folder = marker.parent
        try:
            records.append(RunDir(folder).read())
        except CorruptRecordError as err:
            reason = str(err)
            prefix = f"{folder}: "
            reason = reason[len(prefix):] if reason.startswith(prefix) else reason
            damaged.append(Damaged(_relative(folder, root), reason))
    errored = []
    for error_file in sorted(root.glob("runs/*/*/*/error.json")):
        folder = error_file.parent
        if (folder / DONE).exists() or is_set_aside(folder):
            continue
        errored.append(_errored(folder, root))
    return Collection(root, records, damaged, errored)


def _errored(folder: Path, root: Path) -> Errored:
    try:
        error = json.loads((folder / "error.json").read_text()).get("error", "unknown error")
    except (OSError, json.JSONDecodeError) as err:
        error = f"unreadable error.json ({type(err).__name__})"
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        config = {}
    seed_text = folder.name.split("-")[0].removeprefix("seed")
    seed = config.get("seed", int(seed_text) if seed_text.isdigit() else None)
    return Errored(
        path=_relative(folder, root),
        experiment=config.get("experiment", folder.parent.parent.name),
        method=config.get("method", folder.parent.name),
        seed=seed,
        hparam_index=config.get("hparam_index"),
        reason=str(error).strip().splitlines()[0] if str(error).strip() else "unknown error",
    )


def load_records(root: Path) -> tuple[list[RunRecord], list[str]]:
    """Verified records under ``root`` and the problems found (damaged records are never
    mixed into a table: they are reported and left for ``run`` to redo)."""
    found = collect(root)
    return found.records, [f"{d.path}: {d.reason}" for d in found.damaged]


def bias_strength(config: dict[str, Any]) -> float:
    """The bias strength recorded in a run's experiment profile, NaN when none is."""
    data = (config.get("experiment_profile") or {}).get("data") or {}
    for key in BIAS_STRENGTH_KEYS:
        value = data.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return math.nan


def _split_metrics(record: RunRecord, collection: Collection, path: str, split: str) -> dict[str, float]:
    pred = collection.arrays(path, f"predictions/{split}.npz")
    if not pred or "logits" not in pred:
        return {}
    scores = catalogue.Scores(pred["labels"], pred["logits"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {m.key: float(m.compute(scores)[0]) for m in catalogue.metrics()}


def tidy(collection: Collection | list[RunRecord]) -> pd.DataFrame:
    """One row per (run, test split) with its metrics and costs; failed runs keep one row
    with ``split`` empty so that they are counted, not silently dropped. Sorted by
    experiment, profile, method, draw, seed and split name."""
    if not isinstance(collection, Collection):
        collection = Collection(Path("."), list(collection), [], [])
    rows = []
    for rec in collection.records:
        path = collection.relative(rec)
        config = rec.config
        _require(config, collection.root / path)
        base = {
            "experiment": config.get("experiment"),
            "profile": config.get("profile"),
            "method": config.get("method"),
            "role": config["role"],
            "seed": config.get("seed"),
            "hparam_index": config.get("hparam_index", 0),
            "hparams": json.dumps(config.get("hparams", {}), sort_keys=True),
            "status": rec.status,
            "reason": None,
            "val_accuracy": _float(rec.summary.get("val_accuracy")),
            "train_seconds": _float(rec.summary.get("train_seconds")),
            "bias_strength": bias_strength(config),
            "image_size": config["experiment_profile"]["image_size"],
            "device": rec.provenance.get("device"),
            "path": path,
        }
        splits = rec.summary.get("splits", {})
        if rec.status != "ok" or not splits:
            reason = rec.summary.get("reason") or _marker_reason(rec) or "no test split recorded"
            rows.append({**base, "reason": reason, "split": None})
            continue
        for split in sorted(splits):
            info = splits[split]
            n = info.get("n")
            seconds = _float(info.get("inference_seconds"))
            metrics = _split_metrics(rec, collection, path, split)
            if not metrics:
                metrics = {"accuracy": _float(info.get("accuracy"))}
            rows.append({
                **base,
                "split": split,
                "n": n,
                **metrics,
                "inference_seconds": seconds,
                "inference_ms_per_image": 1000 * seconds / n if n else math.nan,
            })
    frame = pd.DataFrame(rows, columns=columns())
    if frame.empty:
        return frame
    frame = frame.sort_values(
        ["experiment", "profile", "method", "hparam_index", "seed", "split"], na_position="first", kind="stable"
    )
    return frame.reset_index(drop=True)


def _require(config: dict[str, Any], path: Path) -> None:
    missing = [k for k in REQUIRED_CONFIG if k not in config]
    if missing:
        raise ValueError(f"{path}/config.json lacks {', '.join(missing)}: {OLDER_RECORD}")


def _marker_reason(rec: RunRecord) -> str | None:
    try:
        return json.loads((rec.path / DONE).read_text()).get("reason")
    except (OSError, json.JSONDecodeError):
        return None


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
