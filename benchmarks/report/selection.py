"""Model selection over hyper-parameter draws, on the validation split only.

For each (experiment, profile, method) the draw (``hparam_index``) with the best mean
validation accuracy over its finished seeds is kept (``summary.json``'s ``val_accuracy``:
the validation split is drawn from the training distribution). Test splits, and above all
the deceiving and external ones, never take part. Ties go to the lower draw index (draw 0
is the method's defaults).
"""

from __future__ import annotations

import pandas as pd

KEYS = ["experiment", "profile", "method"]


def draw_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (experiment, profile, method, draw): seeds finished / failed, the mean
    validation accuracy over finished seeds, the hyper-parameters and whether it is selected."""
    runs = frame.drop_duplicates("path")
    rows = []
    for key, block in runs.groupby([*KEYS, "hparam_index"], sort=True):
        ok = block[block["status"] == "ok"]
        val = ok["val_accuracy"].dropna()
        rows.append({
            **dict(zip([*KEYS, "hparam_index"], key, strict=True)),
            "hparams": block["hparams"].iloc[0],
            "seeds_ok": int(len(ok)),
            "seeds_failed": int(len(block) - len(ok)),
            "val_accuracy": float(val.mean()) if len(val) else float("nan"),
        })
    table = pd.DataFrame(rows, columns=[*KEYS, "hparam_index", "hparams", "seeds_ok", "seeds_failed", "val_accuracy"])
    table["selected"] = False
    for _, block in table.groupby(KEYS, sort=True):
        candidates = block[block["val_accuracy"].notna()]
        if candidates.empty:
            continue
        best = candidates.sort_values(["val_accuracy", "hparam_index"], ascending=[False, True], kind="stable")
        table.loc[best.index[0], "selected"] = True
    return table.reset_index(drop=True)


def select(frame: pd.DataFrame, draws: pd.DataFrame | None = None) -> pd.DataFrame:
    """The rows of ``frame`` (the tidy table) that belong to the selected draw of their method."""
    draws = draw_table(frame) if draws is None else draws
    chosen = draws.loc[draws["selected"], [*KEYS, "hparam_index"]]
    return frame.merge(chosen, on=[*KEYS, "hparam_index"], how="inner").reset_index(drop=True)


def selection_note(draws: pd.DataFrame) -> str:
    """The sentence every table caption carries."""
    several = draws.groupby(KEYS)["hparam_index"].nunique()
    n_swept = int((several > 1).sum())
    if n_swept == 0:
        return ("Model selection: one hyper-parameter draw per method (its defaults), so none was needed; "
                "no test split was used to choose anything.")
    most = int(several.max())
    return (f"Model selection: for each method, the hyper-parameter draw (of up to {most}) with the best mean "
            "validation accuracy over seeds (validation split of the training distribution; deceiving, "
            "external and all other test splits are never used for selection).")
