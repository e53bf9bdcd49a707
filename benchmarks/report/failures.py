"""Failures explained: every method that learnt an experiment but falls to chance on a shifted
split, beside what was measured about why (how far its predictions follow the background on
the in-distribution images, and, for a method that segments, its Dice on each split)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from benchmarks.evaluation.catalogue import PRIMARY
from benchmarks.report import behaviour_estimates as bh
from benchmarks.report.analysis import Analysis
from benchmarks.report.chance import at_chance, did_not_learn
from benchmarks.report.estimates import rows_of
from benchmarks.report.table import Cell, Table, interval_cell, num, slug


def dice(analysis: Analysis, key: tuple[str, str], method: str, split: str) -> float:
    """Mean over seeds of the method's mean Dice on ``split`` (NaN when it does not segment)."""
    runs = rows_of(analysis.selected, key, method)
    values = []
    for path in runs[runs["status"] == "ok"]["path"].unique():
        value = analysis.collection.record(path).summary.get("splits", {}).get(split, {}).get("dice")
        if value is not None:
            values.append(float(value))
    return float(np.mean(values)) if values else math.nan


def _behaviour(analysis: Analysis, key: tuple[str, str], method: str, split: str) -> str:
    chosen = bh.headline(analysis.behaviour, key)
    if chosen is None:
        return "not measured"
    b = analysis.behaviour
    row = b[(b["experiment"] == key[0]) & (b["profile"] == key[1]) & (b["method"] == method) & (b["split"] == split)
            & (b["test"] == chosen[0]) & (b["measure"] == chosen[1])]
    return "not measured" if row.empty else f"{num(row['mean'].iloc[0])} %"


def failures_table(analysis: Analysis, key: tuple[str, str], note: str) -> Table | None:
    """One row per (method, shifted split) where the method is at chance although it learnt the
    experiment (``None`` when there is no such case)."""
    roles = analysis.roles[key]
    if roles.id_split is None:
        return None
    m = analysis.metrics
    block = m[(m["experiment"] == key[0]) & (m["profile"] == key[1]) & (m["metric"] == PRIMARY)]
    indexed = block.set_index(["method", "split"])
    rows, data = [], []
    chosen = bh.headline(analysis.behaviour, key)
    for method in sorted(block["method"].unique()):
        if did_not_learn(analysis, key, method):
            continue
        for split in roles.shift_splits:
            if (method, split) not in indexed.index or not at_chance(analysis, key, method, split):
                continue
            a, b = indexed.loc[(method, roles.id_split)], indexed.loc[(method, split)]
            d_id, d_shift = dice(analysis, key, method, roles.id_split), dice(analysis, key, method, split)
            rows.append([Cell.code(method), Cell.text(split),
                         interval_cell(a["mean"], a["t_half"], a["boot_low"], a["boot_high"], scale=100, digits=1),
                         interval_cell(b["mean"], b["t_half"], b["boot_low"], b["boot_high"], scale=100, digits=1),
                         Cell.text(_behaviour(analysis, key, method, roles.id_split)),
                         Cell.text(_behaviour(analysis, key, method, split)),
                         Cell.text("—" if math.isnan(d_id) else f"{num(d_id)} / {num(d_shift)}")])
            data.append({"method": method, "split": split, "id_accuracy": a["mean"], "shifted_accuracy": b["mean"],
                         "dice_id": d_id, "dice_shifted": d_shift})
    if not rows:
        return None
    measured = "not measured" if chosen is None else f"{bh.measure_name(chosen[1])} under *{chosen[0]}*"
    caption = (
        f"Methods that learnt `{key[0]}` ({key[1]} profile) but are at chance on a shifted split, and what was "
        f"measured about why: accuracy (%) in distribution and on the shifted split; the headline behaviour measure "
        f"({measured}, %) on each, a high value meaning the predictions follow the background; and, for a method "
        "that segments before it classifies, the Dice of its own foreground prediction against the true masks "
        "(%, in distribution / shifted): a segmenter that fails on the shifted images hands its classifier the "
        "wrong pixels. " + note
    )
    return Table(slug("failures", *key), f"Failures explained, {key[0]} ({key[1]})", caption,
                 ["method", "shifted split", "in-distribution acc.", "shifted acc.", "behaviour (in-distribution)",
                  "behaviour (shifted)", "Dice in-distribution / shifted"], rows, pd.DataFrame(data), "llrrrrr")


def dice_table(analysis: Analysis, key: tuple[str, str], note: str) -> Table | None:
    """The Dice of every method that segments, per test split (``None`` when none does)."""
    splits = list(analysis.roles[key].order)
    methods = sorted(analysis.selected[(analysis.selected["experiment"] == key[0])
                                       & (analysis.selected["profile"] == key[1])]["method"].unique())
    values = {(m, s): dice(analysis, key, m, s) for m in methods for s in splits}
    segmenting = [m for m in methods if any(not math.isnan(values[(m, s)]) for s in splits)]
    if not segmenting:
        return None
    rows = [[Cell.code(m), *(Cell.text(num(values[(m, s)])) for s in splits)] for m in segmenting]
    data = [{"method": m, "split": s, "dice": values[(m, s)]} for m in segmenting for s in splits]
    caption = (f"Dice (%) of the foreground each segmenting method predicts for itself against the true masks, per "
               f"test split of `{key[0]}` ({key[1]} profile), mean over seeds and images. " + note)
    return Table(slug("dice", *key), f"Segmentation quality, {key[0]} ({key[1]})", caption, ["method", *splits], rows,
                 pd.DataFrame(data), "l" + "r" * len(splits))
