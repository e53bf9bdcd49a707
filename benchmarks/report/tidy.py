"""Run records -> one tidy pandas table (a row per run and test split)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmarks.store import CorruptRecordError, RunRecord, iter_records

COLUMNS = ["experiment", "method", "seed", "profile", "hparam_index", "status", "split", "accuracy", "n", "val_accuracy",
           "train_seconds", "inference_seconds", "path"]


def load_records(root: Path) -> tuple[list[RunRecord], list[str]]:
    """Verified records under ``root`` and the problems found (damaged records are never
    mixed into a table: they are reported and left for ``run`` to redo)."""
    records, problems = [], []
    for item in iter_records(root):
        if isinstance(item, CorruptRecordError):
            problems.append(str(item))
        else:
            records.append(item)
    return records, problems


def tidy(records: list[RunRecord]) -> pd.DataFrame:
    """One row per (run, test split) with its accuracy and costs; failed runs keep one
    row with ``split`` empty so that they are counted, not silently dropped."""
    rows = []
    for rec in records:
        base = {
            "experiment": rec.config["experiment"],
            "method": rec.config["method"],
            "seed": rec.config["seed"],
            "profile": rec.config["profile"],
            "hparam_index": rec.config.get("hparam_index", 0),
            "status": rec.status,
            "val_accuracy": rec.summary.get("val_accuracy"),
            "train_seconds": rec.summary.get("train_seconds"),
            "path": str(rec.path),
        }
        splits = rec.summary.get("splits", {})
        if rec.status != "ok" or not splits:
            rows.append({**base, "split": None, "reason": rec.summary.get("reason")})
            continue
        for split, metrics in splits.items():
            rows.append({**base, "split": split, "accuracy": metrics["accuracy"], "n": metrics["n"],
                         "inference_seconds": metrics.get("inference_seconds")})
    return pd.DataFrame(rows)
