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
from benchmarks.report.explanations import EXPLAINER_ORDER  # noqa: E402
from benchmarks.report.tidy import Collection  # noqa: E402
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
PALETTE = "colorblind"


@dataclass(frozen=True)
class Figure:
    """A rendered figure and what the README says about it."""

    path: str
    caption: str
    png: bytes


@contextmanager
def _style() -> Iterator[None]:
    with plt.rc_context(RC), sns.axes_style("whitegrid"), sns.plotting_context("paper", rc=RC):
        yield


def render(fig: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def _colors(methods: list[str]) -> dict[str, tuple]:
    """One distinct colour per method: the colour-blind palette while it has enough (10),
    tab20 beyond that."""
    palette = sns.color_palette(PALETTE if len(methods) <= 10 else "tab20", max(len(methods), 1))
    return {m: palette[i % len(palette)] for i, m in enumerate(methods)}


# ---------------------------------------------------------------------------- split bars
def split_bars(analysis: Analysis, key: tuple[str, str], metric: str = catalogue.PRIMARY, draw: bool = True
               ) -> bytes | None:
    """Bars of a catalogue metric per test split and method, bootstrap intervals as error bars."""
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
    colors = _colors(methods)
    width = 0.8 / len(methods)
    with _style():
        fig, ax = plt.subplots(figsize=(max(4.0, 1.2 + 0.45 * len(methods) * len(splits)), 3.2), layout="constrained")
        for i, method in enumerate(methods):
            mb = block[block["method"] == method].set_index("split")
            xs, ys, lo, hi = [], [], [], []
            for j, split in enumerate(splits):
                if split not in mb.index:
                    continue
                r = mb.loc[split]
                xs.append(j - 0.4 + width * (i + 0.5))
                ys.append(scale * r["mean"])
                lo.append(scale * (r["mean"] - r["boot_low"]) if np.isfinite(r["boot_low"]) else 0.0)
                hi.append(scale * (r["boot_high"] - r["mean"]) if np.isfinite(r["boot_high"]) else 0.0)
            ax.bar(xs, ys, width=width * 0.95, color=colors[method], label=method, edgecolor="none")
            ax.errorbar(xs, ys, yerr=[np.maximum(lo, 0), np.maximum(hi, 0)], fmt="none", ecolor="black",
                        elinewidth=0.8, capsize=2)
        ax.set_xticks(range(len(splits)), splits)
        ax.grid(axis="x", visible=False)
        ax.set_ylabel(f"{entry.phrase} (%)" if entry.percent else entry.phrase)
        ax.set_ylim(0, 1.05 * scale)
        ax.set_title(f"{key[0]} ({key[1]}): {entry.phrase} per test split")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, title="method")
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
    colors = _colors(methods)
    with _style():
        fig, axes = plt.subplots(1, len(order), figsize=(3.2 * len(order) + 1.5, 3.0), sharey=True, squeeze=False,
                                 layout="constrained")
        for ax, split in zip(axes[0], order, strict=True):
            for method in methods:
                d = data[(data["split"] == split) & (data["method"] == method)].sort_values("strength", kind="stable")
                if d.empty:
                    continue
                ax.errorbar(d["strength"], d["mean"], yerr=d["half"], color=colors[method], marker="o", ms=3,
                            capsize=2, label=method, linewidth=1)
            ax.set_title(split)
            ax.set_xlabel("bias strength")
        axes[0][0].set_ylabel("accuracy (%)")
        axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, title="method")
        return render(fig)


# ------------------------------------------------------------------------------- gallery
def gallery_data(collection: Collection, selected: pd.DataFrame, key: tuple[str, str], split: str
                 ) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, int], bool]:
    """Per method: the gallery arrays of ``split`` from one seed (the lowest seed every method
    has, else each method's lowest), the seed used, and whether all showed the same images."""
    runs = selected[(selected["experiment"] == key[0]) & (selected["profile"] == key[1])
                    & (selected["status"] == "ok")].drop_duplicates("path")
    available: dict[str, dict[int, str]] = {}
    for method, seed, path in zip(runs["method"], runs["seed"], runs["path"], strict=True):
        arrays = collection.arrays(path, "explanations.npz")
        if f"{split}/gallery/heatmaps" in arrays:
            available.setdefault(method, {})[int(seed)] = path
    if not available:
        return {}, {}, True
    common = set.intersection(*(set(v) for v in available.values()))
    out, seeds = {}, {}
    for method in sorted(available):
        seed = min(common) if common else min(available[method])
        arrays = collection.arrays(available[method][seed], "explanations.npz")
        out[method] = {k.split("/")[-1]: arrays[k] for k in arrays if k.startswith(f"{split}/gallery/")}
        seeds[method] = seed
    first = next(iter(out.values()))["images"]
    same = all(v["images"].shape == first.shape and np.array_equal(v["images"], first) for v in out.values())
    return out, seeds, same


def _strip(tiles: np.ndarray, fill: float) -> np.ndarray:
    """``[n, C, H, W]`` tiles side by side, ``[C, H, n * (W + 1) - 1]``, separated by ``fill``."""
    n, c, h, w = tiles.shape
    out = np.full((c, h, n * (w + 1) - 1), fill, dtype=np.float32)
    for j in range(n):
        out[:, :, j * (w + 1) : j * (w + 1) + w] = tiles[j]
    return out


def gallery(collection: Collection, selected: pd.DataFrame, key: tuple[str, str], split: str, draw: bool = True
            ) -> tuple[bytes, str] | None:
    data, seeds, same = gallery_data(collection, selected, key, split)
    if not data:
        return None
    methods = list(data)
    reference = data[methods[0]]
    n = reference["images"].shape[0]
    seed_text = (f"seed {next(iter(seeds.values()))} of every method" if len(set(seeds.values())) == 1
                 else "seeds " + ", ".join(f"{m}: {s}" for m, s in seeds.items()))
    note = (f"the same {n} images for every method" if same
            else "the methods' test images differ (seed-dependent split): the top row shows those of "
                 f"`{methods[0]}`")
    if not draw:
        return b"", f"{seed_text}; {note}"
    with _style():
        fig, axes = plt.subplots(len(methods) + 1, 1, figsize=(1.1 * n + 1.2, 1.15 * (len(methods) + 1)),
                                 squeeze=False, layout="constrained")
        image = _strip(np.asarray(reference["images"], dtype=np.float32), fill=1.0)
        width = reference["images"].shape[-1]
        ax = axes[0][0]
        if image.shape[0] == 1:
            ax.imshow(image[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        else:
            ax.imshow(np.clip(np.transpose(image[:3], (1, 2, 0)), 0, 1), interpolation="nearest")
        ax.contour(_strip(reference["masks"][:, None].astype(np.float32), 0.0)[0], levels=[0.5], colors=["#ffcc00"],
                   linewidths=0.6)
        labels = reference.get("labels")
        ax.set_xticks([(width + 1) * j + (width - 1) / 2 for j in range(n)],
                      [f"label {int(v)}" for v in labels] if labels is not None else [""] * n, fontsize=7)
        ax.xaxis.tick_top()
        ax.set_ylabel("image", rotation=0, ha="right", va="center", fontsize=7)
        for i, method in enumerate(methods, start=1):
            heat = np.asarray(data[method]["heatmaps"], dtype=np.float32)
            scale = np.max(np.abs(heat), axis=(1, 2), keepdims=True)
            heat = heat / np.where(scale > 0, scale, 1.0)
            ax = axes[i][0]
            ax.imshow(_strip(heat[:, None], np.nan)[0], cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
            ax.contour(_strip(data[method]["masks"][:, None].astype(np.float32), 0.0)[0], levels=[0.5],
                       colors=["black"], linewidths=0.4)
            ax.set_xticks([])
            ax.set_ylabel(method, rotation=0, ha="right", va="center", fontsize=7)
        for ax in axes[:, 0]:
            ax.set_yticks([])
            ax.grid(False)
            for spine in ax.spines.values():
                spine.set_visible(False)
        fig.suptitle(f"{key[0]} ({key[1]}), {split}: each method's own heatmap", fontsize=9)
        png = render(fig)
    return png, f"{seed_text}; {note}"


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
    colors = _colors(methods)
    with _style():
        fig, axes = plt.subplots(len(explainers), 1, figsize=(max(4.5, 1.0 + 0.5 * len(methods) * len(splits)),
                                                               2.4 * len(explainers)), sharex=True, squeeze=False,
                                 layout="constrained")
        for ax, explainer in zip(axes[:, 0], explainers, strict=True):
            d = block[block["explainer"] == explainer]
            sns.boxplot(data=d, x="split", y="background_share", hue="method", order=splits, hue_order=methods,
                        palette=colors, ax=ax, fliersize=1.5, linewidth=0.7)
            ax.set_ylabel(f"{explainer}\nbackground share")
            ax.set_ylim(-0.02, 1.02)
            ax.set_xlabel("")
            legend = ax.get_legend()
            if legend is not None:
                legend.remove()
        handles, labels = axes[0][0].get_legend_handles_labels()
        axes[0][0].legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                          title="method")
        fig.suptitle(f"{key[0]} ({key[1]}): share of positive relevance on the background, per image", fontsize=9)
        return render(fig)


# -------------------------------------------------------------------------------- timing
def timing(analysis: Analysis, draw: bool = True) -> bytes | None:
    t = analysis.timing
    if t.empty:
        return None
    if not draw:
        return b""
    t = t.assign(setting=t["experiment"] + " (" + t["profile"] + ")")
    settings = sorted(t["setting"].unique())
    methods = sorted(t["method"].unique())
    colors = _colors(settings)
    width = 0.8 / len(settings)
    with _style():
        fig, axes = plt.subplots(1, 2, figsize=(max(6.0, 1.0 + 0.6 * len(methods) * 2), 3.0), squeeze=False,
                                 layout="constrained")
        for ax, (col, half, label) in zip(axes[0], [("train_seconds", "train_t_half", "training time (s / run)"),
                                                    ("inference_ms_per_image", "inference_t_half",
                                                     "inference (ms / image)")], strict=True):
            for i, setting in enumerate(settings):
                d = t[t["setting"] == setting].set_index("method")
                xs = [methods.index(m) - 0.4 + width * (i + 0.5) for m in d.index]
                err = np.nan_to_num(d[half].to_numpy(np.float64))
                ax.bar(xs, d[col], width=width * 0.95, color=colors[setting], label=setting)
                ax.errorbar(xs, d[col], yerr=err, fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
            ax.set_xticks(range(len(methods)), methods, rotation=45, ha="right")
            ax.grid(axis="x", visible=False)
            ax.set_ylabel(label)
        axes[0][1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, title="experiment")
        fig.suptitle("Training and inference time per method (mean over seeds, t-interval)", fontsize=9)
        return render(fig)
