"""The figure of the counterfactual background tests: each experiment's headline behaviour
measure (:data:`benchmarks.report.behaviour_estimates.HEADLINE_RULE`) per method and test split."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from benchmarks.report import behaviour_estimates as bh
from benchmarks.report.analysis import Analysis
from benchmarks.report.estimates import experiment_keys
from benchmarks.report.figures import render, style
from benchmarks.report.palette import method_colors


def headline_figure(analysis: Analysis, draw: bool = True) -> bytes | None:
    """One panel per experiment: bars of the headline measure (%) per split and method, with the
    bootstrap intervals of the seed means as error bars."""
    panels = []
    for key in experiment_keys(analysis.selected):
        chosen = bh.headline(analysis.behaviour, key)
        if chosen is not None:
            b = analysis.behaviour
            panels.append((key, chosen, b[(b["experiment"] == key[0]) & (b["profile"] == key[1])
                                          & (b["test"] == chosen[0]) & (b["measure"] == chosen[1])]))
    if not panels:
        return None
    if not draw:
        return b""
    methods = sorted({m for _, _, block in panels for m in block["method"]})
    palette = method_colors(analysis.selected["method"])
    with style():
        fig, axes = plt.subplots(1, len(panels), figsize=(max(5.0, 4.2 * len(panels)), 3.6), layout="constrained",
                                 squeeze=False)
        for ax, (key, (test, measure), block) in zip(axes[0], panels, strict=True):
            splits = [s for s in analysis.roles[key].order if s in set(block["split"])]
            present = sorted(block["method"].unique())
            width = 0.8 / len(present)
            for i, method in enumerate(present):
                mb = block[block["method"] == method].set_index("split")
                xs = [j - 0.4 + width * (i + 0.5) for j, s in enumerate(splits) if s in mb.index]
                rows = [mb.loc[s] for s in splits if s in mb.index]
                ys = [100 * r["mean"] for r in rows]
                low = [100 * max(r["mean"] - r["boot_low"], 0) if np.isfinite(r["boot_low"]) else 0 for r in rows]
                high = [100 * max(r["boot_high"] - r["mean"], 0) if np.isfinite(r["boot_high"]) else 0 for r in rows]
                ax.bar(xs, ys, width=width * 0.95, color=palette[method], label=method, edgecolor="none")
                ax.errorbar(xs, ys, yerr=[low, high], fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
            ax.set_xticks(range(len(splits)), splits)
            ax.axhline(0, color="black", linewidth=0.6)
            ax.set_title(f"{key[0]} ({key[1]})")
            ax.set_ylabel(f"{bh.measure_name(measure)} (%)\n{test}")
        handles = [plt.Rectangle((0, 0), 1, 1, color=palette[m]) for m in methods]
        fig.legend(handles, methods, loc="outside lower center", ncol=min(len(methods), 7), frameon=False)
        return render(fig)
