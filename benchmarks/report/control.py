"""No-shortcut controls beside their experiments: the same patients and splits with every
hospital in one style, so what a method loses there is the cost of its training, not the
shortcut's pull."""

from __future__ import annotations

from benchmarks.evaluation.catalogue import PRIMARY
from benchmarks.report.analysis import Analysis
from benchmarks.report.table import Cell, Table, interval_cell, slug, t_text

SUFFIX = "_control"


def control_pairs(analysis: Analysis) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """``(control, experiment)`` keys of every control whose experiment is also in the records
    (a control named ``<experiment>_control``, tagged as a control in its records)."""
    keys = set(analysis.roles)
    return [(k, (k[0][: -len(SUFFIX)], k[1])) for k in sorted(keys)
            if analysis.roles[k].control and k[0].endswith(SUFFIX) and (k[0][: -len(SUFFIX)], k[1]) in keys]


def control_table(analysis: Analysis, control: tuple[str, str], main: tuple[str, str], note: str) -> Table | None:
    """Accuracy of every method run on both, per split: with the shortcut and without it."""
    m = analysis.metrics
    block = m[(m["profile"] == main[1]) & (m["metric"] == PRIMARY) & m["experiment"].isin([main[0], control[0]])]
    methods = sorted(set(block[block["experiment"] == main[0]]["method"])
                     & set(block[block["experiment"] == control[0]]["method"]))
    if not methods:
        return None
    splits = [s for s in analysis.roles[main].order if s in set(block["split"])]
    indexed = block.set_index(["experiment", "method", "split"])
    rows = []
    for method in methods:
        cells = [Cell.code(method)]
        for split in splits:
            for experiment in (main[0], control[0]):
                if (experiment, method, split) not in indexed.index:
                    cells.append(Cell.text("—"))
                    continue
                r = indexed.loc[(experiment, method, split)]
                cells.append(interval_cell(r["mean"], r["t_half"], r["boot_low"], r["boot_high"], scale=100,
                                           digits=1))
        rows.append(cells)
    header = ["method", *(f"{split}: {which}" for split in splits for which in ("with shortcut", "control"))]
    caption = (
        f"Accuracy (%) with the hospital shortcut (`{main[0]}`) and without it (`{control[0]}`: the same patients, "
        f"class shares and splits, every hospital in one style), {main[1]} profile. A method that is as accurate on "
        "the control as the standard classifier learns the disease under its own loss; what it loses on the control "
        "is the cost of that loss, not the shortcut. Cell: mean over seeds "
        f"±{t_text()} [bootstrap interval over test images]. " + note
    )
    data = block[block["method"].isin(methods)].reset_index(drop=True)
    return Table(slug("control", *main), f"No-shortcut control, {main[0]} ({main[1]})", caption, header, rows,
                 data, "l" + "r" * (2 * len(splits)))

