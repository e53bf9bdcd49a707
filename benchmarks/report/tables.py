"""Tables of classification results per experiment: the analysis ->
:class:`~benchmarks.report.table.Table` objects (a table per catalogue metric, paired comparisons,
bias gaps). The explanation tables are in :mod:`~benchmarks.report.explanation_tables`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmarks.evaluation import catalogue
from benchmarks.report.analysis import Analysis
from benchmarks.report.chance import did_not_learn
from benchmarks.report.comparisons import ESTIMATOR
from benchmarks.report.estimates import interval_text
from benchmarks.report.splits import SplitRoles
from benchmarks.report.table import (
    Cell,
    Table,
    cut_text,
    finite,
    interval_cell,
    is_cut,
    latex_escape,
    num,
    pvalue,
    signed,
    slug,
    t_text,
)


def _scale(metric: catalogue.Metric) -> tuple[float, int, str]:
    return (100.0, 1, " (%)") if metric.percent else (1.0, 3, "")


def method_cell(analysis: Analysis, key: tuple[str, str], method: str) -> Cell:
    """The method's name, marked when it did not learn the experiment (:data:`LEARNING_RULE`)."""
    if did_not_learn(analysis, key, method):
        return Cell(f"`{method}` (did not learn)", r"\texttt{" + latex_escape(method) + "} (did not learn)")
    return Cell.code(method)


# ------------------------------------------------------------------------ metric tables
def metric_table(analysis: Analysis, key: tuple[str, str], metric: catalogue.Metric, note: str) -> Table:
    roles: SplitRoles = analysis.roles[key]
    m = analysis.metrics
    block = m[(m["experiment"] == key[0]) & (m["profile"] == key[1]) & (m["metric"] == metric.key)]
    splits = [s for s in roles.order if s in set(block["split"])]
    scale, digits, unit = _scale(metric)
    means = {s: block[block["split"] == s]["mean"] for s in splits}
    best = {s: v.max() if metric.higher_is_better else v.min() for s, v in means.items()}
    rows = []
    independent = cut = False
    bounds = (0.0, 1.0) if metric.percent else None  # a percentage is a share
    for method in sorted(block["method"].unique()):
        mb = block[block["method"] == method]
        first = mb.iloc[0]
        cells = [method_cell(analysis, key, method), Cell.text(int(first["hparam_index"])),
                 Cell.text(int(mb["seeds"].max()))]
        for split in splits:
            r = mb[mb["split"] == split]
            if r.empty:
                cells.append(Cell.text("—"))
                continue
            r = r.iloc[0]
            dagger = not bool(r["images_shared_by_seeds"])
            independent |= dagger
            is_best = finite(r["mean"]) and np.isclose(r["mean"], best[split], rtol=0, atol=1e-12)
            cells.append(interval_cell(r["mean"], r["t_half"], r["boot_low"], r["boot_high"], scale=scale,
                                       digits=digits, bold=bool(is_best) and block["method"].nunique() > 1,
                                       dagger=dagger, bounds=bounds))
            cut |= bounds is not None and is_cut(r["mean"], r["t_half"], bounds, scale=scale, digits=digits)
        rows.append(cells)
    sharing = ("the same image resample is applied to every seed, as all seeds tested the same images"
               if not independent else
               "the same image resample is applied to every seed where they tested the same images; † marks "
               "splits whose test images depend on the seed, where each seed's test set is resampled independently")
    caption = (
        f"{metric.name}{unit} of each method on every test split of `{key[0]}` ({key[1]} profile), "
        f"in the experiment's split order. Cell: mean over seeds ±{t_text()} [{interval_text()} of the seed-mean "
        f"{metric.phrase}, seeded per split; {sharing}]. Best mean per split in bold. "
        + (cut_text("[0, 100] %") + " " if cut else "") + "Draw: the selected hyper-parameter draw. "
        + ("'(did not learn)': at chance on the in-distribution split, left out of the claims. "
           if any(did_not_learn(analysis, key, m) for m in block["method"].unique()) else "") + note
    )
    data = block.drop(columns=["metric"]).reset_index(drop=True)
    return Table(slug(metric.key, *key), f"{metric.name}, {key[0]} ({key[1]})", caption,
                 ["method", "draw", "seeds", *splits], rows, data, "lrr" + "r" * len(splits))


# ------------------------------------------------------------------- paired comparisons
def comparison_rows(p: pd.DataFrame, analysis: Analysis, key: tuple[str, str]) -> pd.DataFrame | None:
    """The rows of one (experiment, profile) of a comparison frame, in split order then by the
    other method; ``None`` when there are none."""
    if p.empty:
        return None
    block = p[(p["experiment"] == key[0]) & (p["profile"] == key[1])]
    if block.empty:
        return None
    order = {s: i for i, s in enumerate(analysis.roles[key].order)}
    return block.assign(_o=block["split"].map(order)).sort_values(["_o", "other"], kind="stable").drop(columns="_o")


def _difference_cells(r: pd.Series, metric: catalogue.Metric) -> list[Cell]:
    scale, digits, _ = _scale(metric)
    k = metric.key
    return [Cell.text(f"{signed(r[f'{k}_diff'], scale, digits)} [{signed(r[f'{k}_low'], scale, digits)}, "
                      f"{signed(r[f'{k}_high'], scale, digits)}]"), Cell.text(pvalue(r[f"{k}_p_holm"]))]


def paired_table(analysis: Analysis, key: tuple[str, str], note: str) -> Table | None:
    block = comparison_rows(analysis.paired, analysis, key)
    if block is None:
        return None
    metrics = catalogue.resampled()
    primary = catalogue.metric(catalogue.PRIMARY)
    scale, digits, unit = _scale(primary)
    rows = []
    for _, r in block.iterrows():
        means = [num(r[f"{primary.key}_{side}"], scale, digits) for side in ("ref", "other")]
        cells = [Cell.text(r["split"]), Cell.code(r["other"]), Cell.text(f"{r['seeds_ref']} / {r['seeds_other']}"),
                 Cell.text(r["pairing"]), Cell.text(" vs ".join(means))]
        for metric in metrics:
            cells += _difference_cells(r, metric)
        rows.append(cells)
    caption = (
        f"The reference method `{block['reference'].iloc[0]}` (ISNet) against each other method on `{key[0]}` "
        f"({key[1]} profile), for every metric of the tables above; Δ is ISNet minus the other method: {ESTIMATOR}. "
        "Pairing: 'paired' where both methods were scored on the same resamples of the same images, 'independent "
        "resamples' where their test images or seeds differ. Differences in percentage points (pp) for the "
        "percentages. The CSV also holds the raw p-values. " + note
    )
    header = ["split", "other method", "seeds (ISNet / other)", "pairing",
              f"{primary.phrase} ISNet vs other{unit}"]
    for metric in metrics:
        header += [f"Δ {metric.phrase}{' (pp)' if metric.percent else ''} [CI]", "p (Holm)"]
    return Table(slug("paired", *key), f"Comparisons with ISNet, {key[0]} ({key[1]})", caption, header, rows,
                 block.reset_index(drop=True), "lllll" + "rr" * len(metrics))


# ---------------------------------------------------------------------- bias gap tables
def gap_table(analysis: Analysis, key: tuple[str, str], note: str) -> Table | None:
    g = analysis.gaps
    if g.empty:
        return None
    block = g[(g["experiment"] == key[0]) & (g["profile"] == key[1])]
    if block.empty:
        return None
    pairs = list(dict.fromkeys(zip(block["minuend"], block["subtrahend"], strict=True)))
    rows = []
    for method in sorted(block["method"].unique()):
        mb = block[block["method"] == method]
        cells = [Cell.code(method)]
        for a, b in pairs:
            r = mb[(mb["minuend"] == a) & (mb["subtrahend"] == b)]
            if r.empty:
                cells.append(Cell.text("—"))
                continue
            r = r.iloc[0]
            cells.append(interval_cell(r["gap"], r["t_half"], r["boot_low"], r["boot_high"], scale=100, digits=1))
        rows.append(cells)
    caption = (
        f"Bias gaps of `{key[0]}` ({key[1]} profile): accuracy (percentage points) on the in-distribution test "
        "split minus a shifted one (biased − deceiving / unbiased for a synthetic bias, in-distribution − "
        "external for real data); near 0 means the shortcut does not carry the accuracy. Cell: mean over seeds of "
        f"the per-seed gap ±{t_text()} [{interval_text()} of the difference of the seed means, the two splits "
        "resampled independently]. " + note
    )
    return Table(slug("bias_gaps", *key), f"Bias gaps, {key[0]} ({key[1]})", caption,
                 ["method", *[f"{a} − {b}" for a, b in pairs]], rows, block.reset_index(drop=True),
                 "l" + "r" * len(pairs))
