"""Tables of explanation scores per experiment: a table per measure of the explanation catalogue
shown in ``explanations`` (method x explainer x split), the faithfulness table with a column per
measure shown in ``faithfulness`` beside each method's verdict, and ISNet's relevance inside the
mask against every other method's (:mod:`benchmarks.evaluation.explanation`)."""

from __future__ import annotations

import numpy as np

from benchmarks.evaluation import explanation
from benchmarks.evaluation.explanation import FAITHFULNESS_RULE
from benchmarks.report.analysis import Analysis
from benchmarks.report.estimates import LEVEL, N_RESAMPLES
from benchmarks.report.explanation_estimates import CLAIM_EXPLAINER, faithful
from benchmarks.report.table import Cell, Table, cut_text, is_cut, num, pvalue, signed, slug, t_cell, t_text
from benchmarks.report.tables import comparison_rows


def _scale(measure: explanation.Measure) -> tuple[float, int, str]:
    """How a measure's values are shown: a percentage with one decimal, or as is with two."""
    return (100.0, 1, " (%)") if measure.percent else (1.0, 2, "")


def explanation_table(analysis: Analysis, key: tuple[str, str], measure: explanation.Measure,
                      note: str) -> Table | None:
    """One measure's seed means per method, explainer and split of one experiment."""
    e = analysis.explanations
    if e.empty:
        return None
    block = e[(e["experiment"] == key[0]) & (e["profile"] == key[1]) & (e["metric"] == measure.key)]
    if block.empty:
        return None
    splits = [s for s in analysis.roles[key].order if s in set(block["split"])]
    scale, digits, unit = _scale(measure)
    bounds = (0.0, 1.0) if measure.percent else None  # a percentage is a share
    rows = []
    for (method, explainer), mb in block.groupby(["method", "explainer"], sort=False):
        cells = [Cell.code(method), Cell.text(explainer), Cell.text(int(mb["seeds"].max()))]
        for split in splits:
            r = mb[mb["split"] == split]
            cells.append(t_cell(r.iloc[0]["mean"], r.iloc[0]["t_half"], scale=scale, digits=digits, bounds=bounds)
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
    cut = (cut_text("[0, 100] %") + " " if bounds is not None and any(
        is_cut(m, h, bounds, scale=scale, digits=digits) for m, h in zip(block["mean"], block["t_half"], strict=True))
        else "")
    caption = (
        f"{measure.name}{unit}, `{key[0]}` ({key[1]} profile), per method and explainer ('own' is the "
        "method's own heatmap; LRP-epsilon, Grad-CAM and input × gradient are applied to every method so that no "
        f"method is judged only by the explainer it was trained with). Cell: mean over seeds ±{t_text()}."
        f"{n_images} " + cut + note
    )
    return Table(slug("explanations", measure.key, *key), f"{measure.name}, {key[0]} ({key[1]})", caption,
                 ["method", "explainer", "seeds", *splits], rows, block.reset_index(drop=True),
                 "llr" + "r" * len(splits), notes)


def relevance_paired_table(analysis: Analysis, key: tuple[str, str], note: str) -> Table | None:
    """ISNet's share of relevance inside the mask against every other method's, with paired tests."""
    block = comparison_rows(analysis.relevance_paired, analysis, key)
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


def faithfulness_table(analysis: Analysis, key: tuple[str, str], note: str,
                       explainer: str = CLAIM_EXPLAINER) -> Table | None:
    """Beside each method's LRP background share: does its heatmap account for the logit it explains."""
    e = analysis.explanations
    if e.empty:
        return None
    block = e[(e["experiment"] == key[0]) & (e["profile"] == key[1]) & (e["explainer"] == explainer)]
    columns = explanation.shown_in("faithfulness")
    block = block[block["metric"].isin([m.key for m in columns])]
    if block.empty:
        return None
    rows = []
    splits = [s for s in analysis.roles[key].order if s in set(block["split"])]
    for split in splits:
        for method in sorted(block["method"].unique()):
            mb = block[(block["split"] == split) & (block["method"] == method)].set_index("metric")
            if mb.empty:
                continue
            cells = [Cell.text(split), Cell.code(method), Cell.text(int(mb["seeds"].max()))]
            for measure in columns:
                mean, half = (mb.loc[measure.key, "mean"], mb.loc[measure.key, "t_half"]) if measure.key in mb.index \
                    else (np.nan, np.nan)
                scale, digits, _ = _scale(measure)
                cells.append(Cell.text(f"{num(mean, scale, digits)} ±{num(half, scale, digits)}"))
            verdict = faithful(e, key, method, split, explainer)
            rows.append([*cells, Cell.text("n/a" if verdict is None else ("yes" if verdict else "no"))])
    described = "; ".join(f"{m.short}: {m.description}" for m in columns)
    caption = (
        f"Does each method's {explainer.upper()} heatmap account for the output it explains? `{key[0]}` ({key[1]} "
        f"profile), the true class's logit of each explained image. {described[:1].upper()}{described[1:]}. "
        f"Faithful: {FAITHFULNESS_RULE}, read on the seed means; a "
        "background share is evidence about what a model reads only where its heatmap is faithful. Cell: mean over "
        f"seeds ±{t_text()}. " + note
    )
    return Table(slug("faithfulness", *key), f"Faithfulness of the {explainer.upper()} heatmaps, {key[0]} "
                 f"({key[1]})", caption, ["split", "method", "seeds", *(m.short + _scale(m)[2] for m in columns),
                                          "faithful"], rows, block.reset_index(drop=True),
                 "llr" + "r" * len(columns) + "l")
