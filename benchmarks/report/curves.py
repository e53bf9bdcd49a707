"""Learning curves of one experiment: per method (a panel each, since each method's validation
loss is its own training objective), the validation loss and accuracy per epoch, mean over
seeds with the range of the seeds as a band, each seed's selected epoch marked, and the last
quarter of the schedule (where the convergence rule looks) shaded."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from benchmarks.report.convergence_diagnostic import last_quarter
from benchmarks.report.figures import render, style, trained_size
from benchmarks.report.palette import method_colors

COLUMNS = 4
#: at most this many epoch ticks on an axis
MAX_TICKS = 6


def epoch_ticks(epochs: int) -> list[int]:
    """Whole epochs to label on an axis of ``epochs`` epochs (0 .. epochs - 1), at most
    :data:`MAX_TICKS` of them, evenly stepped from 0."""
    step = max(1, math.ceil(epochs / MAX_TICKS))
    return list(range(0, epochs, step))


def learning_curves(curves: pd.DataFrame, runs: pd.DataFrame, selected: pd.DataFrame, key: tuple[str, str],
                    draw: bool = True) -> bytes | None:
    """The figure of ``key`` from the convergence analysis (``curves``: a row per run and
    epoch; ``runs``: a row per run with its selected epoch); ``None`` without curves."""
    block = curves[(curves["experiment"] == key[0]) & (curves["profile"] == key[1])]
    if block.empty:
        return None
    if not draw:
        return b""
    methods = sorted(block["method"].unique())
    palette = method_colors(selected["method"])
    ncols = min(COLUMNS, len(methods))
    nblocks = math.ceil(len(methods) / ncols)
    with style():
        fig, axes = plt.subplots(2 * nblocks, ncols, figsize=(2.7 * ncols + 0.4, 3.3 * nblocks + 0.6), squeeze=False,
                                 layout="constrained")
        for i, method in enumerate(methods):
            loss_ax, acc_ax = axes[2 * (i // ncols), i % ncols], axes[2 * (i // ncols) + 1, i % ncols]
            chosen = runs[(runs["experiment"] == key[0]) & (runs["profile"] == key[1]) & (runs["method"] == method)]
            _panel(loss_ax, acc_ax, block[block["method"] == method], chosen, palette[method])
            loss_ax.set_title(method, fontsize=8)
        for j in range(len(methods), nblocks * ncols):
            axes[2 * (j // ncols), j % ncols].set_visible(False)
            axes[2 * (j // ncols) + 1, j % ncols].set_visible(False)
        fig.suptitle(f"{key[0]} ({key[1]}, {trained_size(selected, key)}): validation loss (the method's own "
                     "objective) and accuracy per epoch; line: mean over seeds, band: their range; ▼: each seed's "
                     "selected epoch; shaded: the last quarter", fontsize=8)
        return render(fig)


def _panel(loss_ax: plt.Axes, acc_ax: plt.Axes, block: pd.DataFrame, chosen: pd.DataFrame, color: tuple) -> None:
    epochs = int(block["epoch"].max()) + 1
    quarter = last_quarter(epochs)
    for ax, column, scale, label in ((loss_ax, "val_loss", 1.0, "val. loss"),
                                     (acc_ax, "val_accuracy", 100.0, "val. accuracy (%)")):
        wide = block.pivot(index="epoch", columns="seed", values=column).sort_index() * scale
        x = wide.index.to_numpy()
        ax.axvspan(epochs - quarter - 0.5, epochs - 0.5, color="#000000", alpha=0.06, linewidth=0)
        ax.fill_between(x, wide.min(axis=1), wide.max(axis=1), color=color, alpha=0.25, linewidth=0)
        ax.plot(x, wide.mean(axis=1), color=color, linewidth=1.2, marker="o" if len(x) == 1 else None, markersize=3)
        for seed, epoch in zip(chosen["seed"], chosen["selected_epoch"], strict=True):
            if seed in wide.columns and epoch in wide.index:
                ax.plot([epoch], [wide.loc[epoch, seed]], marker="v", color="black", markersize=4, linestyle="none")
        ax.set_ylabel(label, fontsize=7)
        ax.set_xlim(-0.5, epochs - 0.5)
        ax.set_xticks(epoch_ticks(epochs))
    acc_ax.set_ylim(0, 100)
    acc_ax.set_xlabel("epoch", fontsize=7)
    if np.isfinite(block["val_loss"]).any() and (block["val_loss"] > 0).all() and \
            block["val_loss"].max() > 20 * block["val_loss"].min():
        loss_ax.set_yscale("log")
