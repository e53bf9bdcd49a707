"""Figures (PNG, seaborn / matplotlib on the Agg backend), rendered to bytes.

Every figure is drawn from the analysis alone (no random jitter, no kernel bandwidth picked
at random) under fixed rc parameters, and saved without metadata that changes between
runs (no date, no software version), so the same records give the same bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from benchmarks.evaluation import catalogue  # noqa: E402
from benchmarks.report.analysis import Analysis  # noqa: E402
from benchmarks.report.estimates import LEVEL  # noqa: E402
from benchmarks.report.explanation_estimates import EXPLAINER_ORDER  # noqa: E402
from benchmarks.report.palette import method_colors, series_colors  # noqa: E402
from benchmarks.stats import t_interval  # noqa: E402

DPI = 120
RC = {
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "path.simplify": True,
    "svg.hashsalt": "isnet-benchmarks",
}



@dataclass(frozen=True)
class Figure:
    """A rendered figure and what the README says about it."""

    path: str
    caption: str
    png: bytes


@contextmanager
def style() -> Iterator[None]:
    """The report's fixed plotting style."""
    with plt.rc_context(RC), sns.axes_style("whitegrid"), sns.plotting_context("paper", rc=RC):
        yield


def render(fig: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def trained_size(frame: pd.DataFrame, key: tuple[str, str]) -> str:
    """The image size the runs of ``key`` trained at, from their records (e.g. ``28 px``)."""
    sizes = sorted({int(v) for v in frame[(frame["experiment"] == key[0]) & (frame["profile"] == key[1])]
                    ["image_size"].dropna()})
    return "–".join(str(v) for v in sizes) + " px" if sizes else "size not recorded"


# ---------------------------------------------------------------------------- split bars
def split_bars(analysis: Analysis, key: tuple[str, str], metric: str = catalogue.PRIMARY, draw: bool = True
               ) -> bytes | None:
    """Bars of a catalogue metric per method, one panel per test split (stacked, so that the
    figure stays narrow enough to be shown at full size), bootstrap intervals as error bars."""
    entry = catalogue.metric(metric)
    scale = 100.0 if entry.percent else 1.0
    m = analysis.metrics
    block = m[(m["experiment"] == key[0]) & (m["profile"] == key[1]) & (m["metric"] == metric)]
    if block.empty:
        return None
    if not draw:
        return b""
    splits = [s for s in analysis.roles[key].order if s in set(block["split"])]
    methods = sorted(block["method"].unique())
    palette = method_colors(analysis.selected["method"])
    with style():
        fig, axes = plt.subplots(len(splits), 1, figsize=(max(4.5, 1.2 + 0.42 * len(methods)), 1.0 + 1.6 * len(splits)),
                                 sharex=True, squeeze=False, layout="constrained")
        for ax, split in zip(axes[:, 0], splits, strict=True):
            sb = block[block["split"] == split].set_index("method")
            shown = [mt for mt in methods if mt in sb.index]
            xs = [methods.index(mt) for mt in shown]
            ys = scale * sb.loc[shown, "mean"].to_numpy(np.float64)
            lo = np.nan_to_num(ys - scale * sb.loc[shown, "boot_low"].to_numpy(np.float64))
            hi = np.nan_to_num(scale * sb.loc[shown, "boot_high"].to_numpy(np.float64) - ys)
            ax.bar(xs, ys, width=0.75, color=[palette[mt] for mt in shown], edgecolor="none")
            ax.errorbar(xs, ys, yerr=[np.maximum(lo, 0), np.maximum(hi, 0)], fmt="none", ecolor="black",
                        elinewidth=0.8, capsize=2)
            ax.set_ylim(0, 1.05 * scale)
            ax.set_ylabel(f"{split}\n(%)" if entry.percent else split)
            ax.grid(axis="x", visible=False)
        axes[-1][0].set_xticks(range(len(methods)), methods, rotation=40, ha="right")
        fig.suptitle(f"{key[0]} ({key[1]}, {trained_size(analysis.selected, key)}): {entry.phrase} per test split",
                     fontsize=RC["axes.titlesize"])
        return render(fig)


# ------------------------------------------------------------------------- bias strength
def bias_strength(selected: pd.DataFrame, roles: dict, draw: bool = True) -> bytes | None:
    """Accuracy against the recorded bias strength, one panel per test split, one line per
    method (points at the strengths of the experiments that record one); None when fewer
    than two strengths are recorded."""
    rows = selected[(selected["status"] == "ok") & selected["split"].notna() & selected["bias_strength"].notna()]
    if rows["bias_strength"].nunique() < 2:
        return None
    if not draw:
        return b""
    agg = []
    for (method, _exp, _profile, split, strength), block in rows.groupby(
            ["method", "experiment", "profile", "split", "bias_strength"], sort=True):
        t = t_interval(block["accuracy"].to_numpy(np.float64), LEVEL)
        agg.append({"method": method, "split": split, "strength": strength, "mean": 100 * t.estimate,
                    "half": 100 * (t.high - t.low) / 2 if math.isfinite(t.high) else 0.0})
    data = pd.DataFrame(agg)
    order: list[str] = []
    for key in sorted(roles):
        order += [s for s in roles[key].order if s not in order and s in set(data["split"])]
    methods = sorted(data["method"].unique())
    palette = method_colors(selected["method"])
    with style():
        fig, axes = plt.subplots(1, len(order), figsize=(3.2 * len(order) + 1.5, 3.0), sharey=True, squeeze=False,
                                 layout="constrained")
        for ax, split in zip(axes[0], order, strict=True):
            for method in methods:
                d = data[(data["split"] == split) & (data["method"] == method)].sort_values("strength", kind="stable")
                if d.empty:
                    continue
                ax.errorbar(d["strength"], d["mean"], yerr=d["half"], color=palette[method], marker="o", ms=3,
                            capsize=2, label=method, linewidth=1)
            ax.set_title(split)
            ax.set_xlabel("bias strength")
        axes[0][0].set_ylabel("accuracy (%)")
        trained = sorted({trained_size(selected, key) for key in roles})
        fig.suptitle(f"Accuracy against bias strength (trained at {', '.join(trained)})", fontsize=9)
        axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, title="method")
        return render(fig)


# -------------------------------------------------------------------- relevance boxplots
def relevance_distribution(analysis: Analysis, key: tuple[str, str], draw: bool = True) -> bytes | None:
    rel = analysis.relevance
    block = rel[(rel["experiment"] == key[0]) & (rel["profile"] == key[1])].dropna(subset=["background_share"])
    if block.empty:
        return None
    if not draw:
        return b""
    explainers = [e for e in EXPLAINER_ORDER if e in set(block["explainer"])]
    explainers += sorted(set(block["explainer"]) - set(explainers))
    splits = [s for s in analysis.roles[key].order if s in set(block["split"])]
    methods = sorted(block["method"].unique())
    palette = method_colors(analysis.selected["method"])
    with style():
        fig, axes = plt.subplots(len(explainers), 1, figsize=(max(4.5, 1.0 + 0.5 * len(methods) * len(splits)),
                                                               2.4 * len(explainers)), sharex=True, squeeze=False,
                                 layout="constrained")
        for ax, explainer in zip(axes[:, 0], explainers, strict=True):
            d = block[block["explainer"] == explainer]
            sns.boxplot(data=d, x="split", y="background_share", hue="method", order=splits, hue_order=methods,
                        palette=palette, ax=ax, fliersize=1.5, linewidth=0.7)
            ax.set_ylabel(f"{explainer}\nbackground share")
            ax.set_ylim(-0.02, 1.02)
            ax.set_xlabel("")
            legend = ax.get_legend()
            if legend is not None:
                legend.remove()
        handles, labels = axes[0][0].get_legend_handles_labels()
        axes[0][0].legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                          title="method")
        fig.suptitle(f"{key[0]} ({key[1]}, {trained_size(analysis.selected, key)}): share of positive relevance on "
                     "the background, per image", fontsize=9)
        return render(fig)


# -------------------------------------------------------------------------------- timing
def time_arms(values: np.ndarray, half: np.ndarray) -> list[np.ndarray]:
    """Error-bar arms of times ``values ± half``: a time is positive, so the lower arm stops at 0."""
    return [np.minimum(half, values), half]


def timing(analysis: Analysis, draw: bool = True) -> bytes | None:
    t = analysis.timing
    if t.empty:
        return None
    if not draw:
        return b""
    sizes = {key: trained_size(analysis.selected, key) for key in zip(t["experiment"], t["profile"], strict=True)}
    t = t.assign(setting=[f"{e} ({p}, {sizes[(e, p)]})" for e, p in zip(t["experiment"], t["profile"], strict=True)])
    settings = sorted(t["setting"].unique())
    methods = sorted(t["method"].unique())
    palette = series_colors(settings)
    width = 0.8 / len(settings)
    with style():
        fig, axes = plt.subplots(1, 2, figsize=(max(6.0, 1.0 + 0.6 * len(methods) * 2), 3.0), squeeze=False,
                                 layout="constrained")
        for ax, (col, half, label) in zip(axes[0], [("train_seconds", "train_t_half", "training time (s / run)"),
                                                    ("inference_ms_per_image", "inference_t_half",
                                                     "inference (ms / image)")], strict=True):
            for i, setting in enumerate(settings):
                d = t[t["setting"] == setting].set_index("method")
                xs = [methods.index(m) - 0.4 + width * (i + 0.5) for m in d.index]
                err = np.nan_to_num(d[half].to_numpy(np.float64))
                values = d[col].to_numpy(np.float64)
                ax.bar(xs, values, width=width * 0.95, color=palette[setting], label=setting)
                ax.errorbar(xs, values, yerr=time_arms(values, err), fmt="none", ecolor="black", elinewidth=0.8,
                            capsize=2)
            ax.set_xticks(range(len(methods)), methods, rotation=45, ha="right")
            ax.grid(axis="x", visible=False)
            ax.set_ylabel(label)
        axes[0][1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, title="experiment")
        fig.suptitle("Training and inference time per method (mean over seeds, t-interval, cut at zero)", fontsize=9)
        return render(fig)
