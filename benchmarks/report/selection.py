"""Model selection over hyper-parameter draws, on the validation split only.

For each (experiment, profile, method) the draw with the best mean validation accuracy over
its finished seeds is kept (``summary.json``'s ``val_accuracy``: the validation split is drawn
from the training distribution). Test splits, and above all the deceiving and external ones,
never take part. A draw is its index (``hparam_index``; 0 is the method's defaults), its
hyper-parameters and the values of them set on the command line (``run --hparams``, recorded
in ``config.json``'s ``hparams_from_cli``), so that runs of one index with other values are
never pooled as seeds of one draw. Ties go to the lower draw index, then to the draw without
values from the command line.
"""

from __future__ import annotations

import json

import pandas as pd

from benchmarks.report.tidy import Collection

KEYS = ["experiment", "profile", "method"]
#: the column (JSON text) of the hyper-parameters each run's command line set; NO_CLI when none
CLI_COLUMN = "hparams_from_cli"
NO_CLI = "{}"
DRAW = ["hparam_index", "hparams", CLI_COLUMN]


def with_cli_hparams(frame: pd.DataFrame, collection: Collection) -> pd.DataFrame:
    """``frame`` (the tidy table) with :data:`CLI_COLUMN`: what each run's ``config.json`` says
    was set on the command line, as sorted JSON text."""
    values = {p: json.dumps(collection.record(p).config.get(CLI_COLUMN) or {}, sort_keys=True)
              for p in frame["path"].unique()}
    return frame.assign(**{CLI_COLUMN: frame["path"].map(values)})


def _with_cli_column(frame: pd.DataFrame) -> pd.DataFrame:
    return frame if CLI_COLUMN in frame else frame.assign(**{CLI_COLUMN: NO_CLI})


def draw_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (experiment, profile, method, draw): seeds finished / failed, the mean
    validation accuracy over finished seeds, the hyper-parameters and whether it is selected."""
    runs = _with_cli_column(frame.drop_duplicates("path"))
    rows = []
    for key, block in runs.groupby([*KEYS, *DRAW], sort=True):
        ok = block[block["status"] == "ok"]
        val = ok["val_accuracy"].dropna()
        rows.append({
            **dict(zip([*KEYS, *DRAW], key, strict=True)),
            "seeds_ok": int(len(ok)),
            "seeds_failed": int(len(block) - len(ok)),
            "val_accuracy": float(val.mean()) if len(val) else float("nan"),
        })
    table = pd.DataFrame(rows, columns=[*KEYS, *DRAW, "seeds_ok", "seeds_failed", "val_accuracy"])
    table["selected"] = False
    for _, block in table.groupby(KEYS, sort=True):
        candidates = block[block["val_accuracy"].notna()].assign(_cli=lambda b: b[CLI_COLUMN] != NO_CLI)
        if candidates.empty:
            continue
        best = candidates.sort_values(["val_accuracy", "hparam_index", "_cli"], ascending=[False, True, True],
                                      kind="stable")
        table.loc[best.index[0], "selected"] = True
    return table.reset_index(drop=True)


def select(frame: pd.DataFrame, draws: pd.DataFrame | None = None) -> pd.DataFrame:
    """The rows of ``frame`` (the tidy table) that belong to the selected draw of their method."""
    draws = draw_table(frame) if draws is None else _with_cli_column(draws)
    chosen = draws.loc[draws["selected"], [*KEYS, *DRAW]]
    merged = _with_cli_column(frame).merge(chosen, on=[*KEYS, *DRAW], how="inner")
    return (merged if CLI_COLUMN in frame else merged.drop(columns=CLI_COLUMN)).reset_index(drop=True)


def selection_note(draws: pd.DataFrame) -> str:
    """The sentence every table caption carries."""
    several = draws.groupby(KEYS).size()
    n_swept = int((several > 1).sum())
    if n_swept == 0:
        if (_with_cli_column(draws)[CLI_COLUMN] != NO_CLI).any():
            return ("Model selection: one hyper-parameter draw per method (its defaults, with the values set on the "
                    "command line where the model-selection table says so), so none was needed; no test split was "
                    "used to choose anything.")
        return ("Model selection: one hyper-parameter draw per method (its defaults), so none was needed; "
                "no test split was used to choose anything.")
    most = int(several.max())
    return (f"Model selection: for each method, the hyper-parameter draw (of up to {most}) with the best mean "
            "validation accuracy over seeds (validation split of the training distribution; deceiving, "
            "external and all other test splits are never used for selection).")
