"""Tables of results per experiment: the analysis -> :class:`~benchmarks.report.table.Table`
objects (a table per catalogue metric, paired comparisons, bias gaps, explanation scores)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmarks.evaluation import catalogue
from benchmarks.report.analysis import Analysis
from benchmarks.report.chance import did_not_learn
from benchmarks.report.comparisons import ESTIMATOR
from benchmarks.report.estimates import LEVEL, N_RESAMPLES, interval_text
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
    t_cell,
    t_text,
)

EXPLANATION_NAMES = {
    "relevance_inside_mask": "Share of positive relevance inside the foreground mask",
    "pointing_game": "Pointing game (relevance peak on the foreground)",
}


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
def _comparisons(p: pd.DataFrame, analysis: Analysis, key: tuple[str, str]) -> pd.DataFrame | None:
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
    block = _comparisons(analysis.paired, analysis, key)
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


# ------------------------------------------------------------------- explanation tables
def explanation_table(analysis: Analysis, key: tuple[str, str], metric: str, note: str) -> Table | None:
    e = analysis.explanations
    if e.empty:
        return None
    block = e[(e["experiment"] == key[0]) & (e["profile"] == key[1]) & (e["metric"] == metric)]
    if block.empty:
        return None
    splits = [s for s in analysis.roles[key].order if s in set(block["split"])]
    rows = []
    for (method, explainer), mb in block.groupby(["method", "explainer"], sort=False):
        cells = [Cell.code(method), Cell.text(explainer), Cell.text(int(mb["seeds"].max()))]
        for split in splits:
            r = mb[mb["split"] == split]
            cells.append(t_cell(r.iloc[0]["mean"], r.iloc[0]["t_half"], scale=100, digits=1, bounds=(0.0, 1.0))
                         if len(r) else Cell.text("—"))
        rows.append(cells)
    errors = analysis.explanation_errors
    errors = errors[(errors["experiment"] == key[0]) & (errors["profile"] == key[1])]
    notes = ["", "Explainer failures (no score; not in the table):", ""] + [
        f"- `{r.method}` / {r.explainer}: {r.error}" for r in errors.itertuples(index=False)] if len(errors) else []
    n_images = ""
    rel = analysis.relevance
    rb = rel[(rel["experiment"] == key[0]) & (rel["profile"] == key[1])]
    if len(rb):
        per = rb.groupby(["method", "seed", "split", "explainer"])["image"].count()
        count = f"{int(per.min())}" if per.min() == per.max() else f"{int(per.min())}–{int(per.max())}"
        n_images = f" Each run explains the first {count} images of each split for their true class."
    cut = (cut_text("[0, 100] %") + " " if any(is_cut(m, h, (0.0, 1.0), scale=100, digits=1) for m, h in zip(
        block["mean"], block["t_half"], strict=True)) else "")
    caption = (
        f"{EXPLANATION_NAMES[metric]} (%), `{key[0]}` ({key[1]} profile), per method and explainer ('own' is the "
        "method's own heatmap; LRP-epsilon, Grad-CAM and input × gradient are applied to every method so that no "
        f"method is judged only by the explainer it was trained with). Cell: mean over seeds ±{t_text()}."
        f"{n_images} " + cut + note
    )
    return Table(slug("explanations", metric, *key), f"{EXPLANATION_NAMES[metric]}, {key[0]} ({key[1]})", caption,
                 ["method", "explainer", "seeds", *splits], rows, block.reset_index(drop=True),
                 "llr" + "r" * len(splits), notes)


def relevance_paired_table(analysis: Analysis, key: tuple[str, str], note: str) -> Table | None:
    block = _comparisons(analysis.relevance_paired, analysis, key)
    if block is None:
        return None
    rows = [[Cell.text(r.split), Cell.code(r.other), Cell.text(f"{r.seeds_ref} / {r.seeds_other}"),
             Cell.text(r.pairing), Cell.text(int(r.images)), Cell.text(f"{num(r.inside_ref)} vs {num(r.inside_other)}"),
             Cell.text(f"{signed(r.diff)} [{signed(r.low)}, {signed(r.high)}]"), Cell.text(pvalue(r.p_holm))]
            for r in block.itertuples(index=False)]
    caption = (
        f"Share of positive {block['explainer'].iloc[0].upper()} relevance inside the foreground mask (%), ISNet "
        f"against each other method on `{key[0]}` ({key[1]} profile): the numbers of the explanation table above "
        "(mean over seeds of each run's mean over its explained images); higher means less background relevance. "
        f"Δ is ISNet minus the other method, the difference of the seed means; its {LEVEL:.0%} interval and p-value "
        f"come from {N_RESAMPLES} bootstrap resamples of the explained images (the same resample for every method "
        "and seed; 'paired' where the methods explained the same images); p two-sided, by inverting the percentile "
        "interval, Holm-Bonferroni adjusted over this experiment's comparisons. " + note
    )
    return Table(slug("background_relevance_paired", *key),
                 f"Background relevance, ISNet against each method, {key[0]} ({key[1]})", caption,
                 ["split", "other method", "seeds (ISNet / other)", "pairing", "images",
                  "inside mask ISNet vs other (%)", "Δ (pp) [CI]", "p (Holm)"], rows, block.reset_index(drop=True),
                 "llllrrrr")
