"""Tables of the counterfactual background tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmarks.report import behaviour_estimates as bh
from benchmarks.report.analysis import Analysis
from benchmarks.report.comparisons import ESTIMATOR
from benchmarks.report.estimates import interval_text
from benchmarks.report.table import Cell, Table, interval_cell, num, pvalue, signed, slug, t_text

TEST_ORDER = (bh.OTHER_TRAINING, bh.UNSEEN, "deceiving", "unbiased", "only_foreground", "mixed_same", "mixed_random",
              bh.GAP)
TEST_TEXT = {
    bh.OTHER_TRAINING: "the same patients re-rendered in the style of each training hospital other than their own "
                       "(lungs, lesions and masks identical)",
    bh.UNSEEN: "the same patients re-rendered in the style of each hospital training never saw",
    "deceiving": "the same digits with the marker of another class (the deceiving split), against the biased "
                 "rendering",
    "unbiased": "the same digits with no marker (the unbiased split), against the biased rendering",
    "only_foreground": "the background set to one constant (the split's mean background)",
    "mixed_same": "the background of another image whose background points to the image's own class",
    "mixed_random": "the background of an image whose background points to another class",
    bh.GAP: "accuracy on mixed-same minus accuracy on mixed-random composites (the Backgrounds Challenge gap)",
}


def _ordered_tests(tests: set[str]) -> list[str]:
    return [t for t in TEST_ORDER if t in tests] + sorted(tests - set(TEST_ORDER))


def _block(analysis: Analysis, key: tuple[str, str]) -> pd.DataFrame:
    b = analysis.behaviour
    return b[(b["experiment"] == key[0]) & (b["profile"] == key[1])] if not b.empty else b


#: the (test, measure) pairs the per-experiment table shows, where recorded (the CSV holds every one)
SHOWN = ((bh.OTHER_TRAINING, "follows_background"), (bh.OTHER_TRAINING, "flip_rate"), (bh.UNSEEN, "flip_rate"),
         ("deceiving", "flip_rate"), ("deceiving", "follows_background"), ("mixed_random", "follows_background"),
         (bh.GAP, "accuracy"), ("only_foreground", "accuracy"))
SHORT = {bh.OTHER_TRAINING: "other training hospital", bh.UNSEEN: "unseen hospital", bh.GAP: "mixed gap"}


def behaviour_table(analysis: Analysis, key: tuple[str, str], note: str) -> Table | None:
    """Per method, for each test split, the recorded measures of :data:`SHOWN`."""
    block = _block(analysis, key)
    if block.empty:
        return None
    splits = [s for s in analysis.roles[key].order if s in set(block["split"])]
    present = set(zip(block["split"], block["test"], block["measure"], strict=True))
    columns = [(split, test, measure) for split in splits for test, measure in SHOWN
               if (split, test, measure) in present]
    rows = []
    indexed = block.set_index(["method", "split", "test", "measure"]).sort_index()
    for method in sorted(block["method"].unique()):
        cells = [Cell.code(method), Cell.text(int(block[block["method"] == method]["seeds"].max()))]
        for column in columns:
            r = indexed.loc[(method, *column)] if (method, *column) in indexed.index else None
            cells.append(Cell.text("—") if r is None or not np.isfinite(r["mean"]) else
                         interval_cell(r["mean"], r["t_half"], r["boot_low"], r["boot_high"], scale=100, digits=1))
        rows.append(cells)
    tests = _ordered_tests({t for _, t, _ in columns})
    described = "; ".join(f"*{SHORT.get(t, t)}*: {TEST_TEXT.get(t, t)}" for t in tests)
    header = ["method", "seeds", *(f"{split}: {SHORT.get(test, test)}, {bh.measure_name(measure)}"
                                   for split, test, measure in columns)]
    caption = (
        f"What each model does when the background of `{key[0]}`'s test images changes ({key[1]} profile), from "
        f"each run's counterfactual copies of its test splits (no explainer involved). Tests: {described}. "
        "Flip rate: share of images whose predicted class changes; follows background: among images whose new "
        "background points to another class than their own (a class marker, or the hospital's majority class in "
        "training), the share assigned that class; mixed gap: accuracy on mixed-same minus mixed-random composites. "
        "Lower flip and follow rates and a smaller gap mean less reading of the background. Cell (%): mean over "
        f"seeds ±{t_text()} [{interval_text()} of the seed mean, the same resamples for every method]. The CSV holds "
        "every test and measure (accuracy, flip rate, follows background) of every split. " + note
    )
    return Table(slug("behaviour", *key), f"Behaviour under changed backgrounds, {key[0]} ({key[1]})", caption,
                 header, rows, block.reset_index(drop=True), "lr" + "r" * len(columns))


def behaviour_paired_table(analysis: Analysis, key: tuple[str, str], note: str) -> Table | None:
    p = analysis.behaviour_paired
    block = p[(p["experiment"] == key[0]) & (p["profile"] == key[1])] if not p.empty else p
    if block.empty:
        return None
    test, measure = block["test"].iloc[0], block["measure"].iloc[0]
    rows = [[Cell.text(r.split), Cell.code(r.other), Cell.text(f"{r.seeds_ref} / {r.seeds_other}"),
             Cell.text(f"{num(r.ref)} vs {num(r.value_other)}"), Cell.text(f"{signed(r.diff)} [{signed(r.low)}, "
                                                                            f"{signed(r.high)}]"),
             Cell.text(pvalue(r.p_holm))] for r in block.itertuples(index=False)]
    caption = (
        f"ISNet against each other method on `{key[0]}`'s headline behaviour measure ({key[1]} profile): "
        f"{bh.measure_name(measure)} under *{test}* ({TEST_TEXT.get(test, test)}). The headline is chosen by one "
        f"rule: {bh.HEADLINE_RULE}. Δ is ISNet minus the other method (negative: ISNet follows the background less): "
        f"{ESTIMATOR}. " + note
    )
    return Table(slug("behaviour_paired", *key), f"Behaviour, ISNet against each method, {key[0]} ({key[1]})",
                 caption, ["split", "other method", "seeds (ISNet / other)", f"{bh.measure_name(measure)} ISNet vs "
                           "other (%)", "Δ (pp) [CI]", "p (Holm)"], rows, block.reset_index(drop=True), "lllrrr")
