"""Whether the training schedules converged, read from the records: each run's validation loss
and accuracy per epoch (``metrics.jsonl``) and the epoch its selection rule kept
(``summary.json``'s ``selection``).

The rule is the harness's early-stopping rule, :mod:`benchmarks.run.convergence` (:data:`RULE`): a
run is *still improving* when the best validation loss of its last quarter beats the best
before it by more than a margin; a method *converged* on an experiment when none of its seeds
is still improving. A run with no selectable epoch with a finite loss before its last quarter
(a one-epoch schedule, say) cannot be judged.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmarks.report.tidy import OLDER_RECORD, Collection
from benchmarks.run.convergence import RULE, judge, last_quarter

__all__ = ["RULE", "curves", "judge", "last_quarter", "not_converged", "runs_table", "verdict"]

CONVERGED, NOT_CONVERGED, UNDETERMINED = "converged", "not converged", "cannot be judged"
CURVE_COLUMNS = ["experiment", "profile", "method", "seed", "epoch", "val_loss", "val_accuracy", "selectable"]


def _selection(record_summary: dict, path: Path) -> dict:
    if "selection" not in record_summary:
        raise ValueError(f"{path}/summary.json lacks selection: {OLDER_RECORD}")
    return record_summary["selection"]


def _ok_runs(selected: pd.DataFrame) -> pd.DataFrame:
    runs = selected[selected["status"] == "ok"].drop_duplicates("path")
    return runs.sort_values(["experiment", "profile", "method", "seed"], kind="stable")


def curves(collection: Collection, selected: pd.DataFrame) -> pd.DataFrame:
    """Validation loss and accuracy per epoch of every selected, finished run."""
    rows = []
    for exp, profile, method, seed, path in zip(*(_ok_runs(selected)[c] for c in
                                                  ("experiment", "profile", "method", "seed", "path")), strict=True):
        for e in collection.record(path).epochs:
            rows.append({"experiment": exp, "profile": profile, "method": method, "seed": int(seed),
                         "epoch": int(e["epoch"]), "val_loss": float(e["val_loss"]),
                         "val_accuracy": float(e["val_accuracy"]), "selectable": bool(e.get("selectable", True))})
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def runs_table(collection: Collection, selected: pd.DataFrame) -> pd.DataFrame:
    """One row per selected, finished run: its schedule, the epoch the selection rule kept
    (and whether it fell back to the last one) and :func:`judge`."""
    rows = []
    for exp, profile, method, seed, path in zip(*(_ok_runs(selected)[c] for c in
                                                  ("experiment", "profile", "method", "seed", "path")), strict=True):
        record = collection.record(path)
        selection = _selection(record.summary, record.path)
        rows.append({"experiment": exp, "profile": profile, "method": method, "seed": int(seed),
                     "epochs": len(record.epochs), "last_quarter": last_quarter(len(record.epochs)),
                     "selected_epoch": selection["selected_epoch"], "fallback": selection.get("fallback", ""),
                     **judge(record.epochs)})
    return pd.DataFrame(rows, columns=["experiment", "profile", "method", "seed", "epochs", "last_quarter",
                                       "selected_epoch", "fallback", "best_before", "best_last_quarter", "change",
                                       "still_improving"])


def verdict(still_improving: pd.Series) -> str:
    """A method's verdict on an experiment from its seeds' :func:`judge` results."""
    values = list(still_improving)
    if any(v is True for v in values):
        return NOT_CONVERGED
    return UNDETERMINED if any(v is None for v in values) or not values else CONVERGED


def not_converged(runs: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(experiment, profile, method) of every method that did not converge."""
    if runs.empty:
        return []
    grouped = runs.groupby(["experiment", "profile", "method"], sort=True)["still_improving"]
    return [key for key, values in grouped if verdict(values) == NOT_CONVERGED]
