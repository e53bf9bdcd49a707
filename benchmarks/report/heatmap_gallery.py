"""The heatmap gallery of a test split: its first images (columns named by their true class)
and, per method, its own heatmap of the true class with the class it predicted.

A method whose own explainer failed, or whose heatmap of an image is zero everywhere, shows
"no heatmap" instead of a blank tile, and a heatmap whose values span less than 5 % of its
largest magnitude is shown grey and marked "uniform map" (a solid tile says nothing about where
the method looks, and would hide the note); a colour bar gives the scale (each heatmap divided
by its largest magnitude).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize

from benchmarks.report.figures import render, style, trained_size
from benchmarks.report.tidy import OLDER_RECORD, Collection

HEATMAP_CMAP = "RdBu_r"
RIGHT, WRONG = "#1a7f37", "#c62828"
#: a heatmap whose values span less than this share of its largest magnitude is marked "uniform"
#: (e.g. an attention map of an untrained network: a solid tile that says nothing about where it looks)
UNIFORM = 0.05


@dataclass(frozen=True)
class Row:
    """One method's row: its heatmaps ``[n, H, W]`` and predicted classes ``[n]`` (``None``
    with ``missing`` saying why when its own explainer gave none)."""

    method: str
    seed: int | None
    heatmaps: np.ndarray | None
    predicted: np.ndarray | None
    missing: str = ""


@dataclass(frozen=True)
class GalleryData:
    images: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    rows: tuple[Row, ...]
    same_images: bool

    @property
    def seed_text(self) -> str:
        seeds = {r.seed for r in self.rows if r.seed is not None}
        if len(seeds) == 1:
            return f"seed {seeds.pop()} of every method"
        return "seeds " + ", ".join(f"{r.method}: {r.seed}" for r in self.rows if r.seed is not None)


def class_names(record_explanations: dict, path: Path) -> tuple[str, ...]:
    """The class names a run's ``explanations.json`` records."""
    if "class_names" not in record_explanations:
        raise ValueError(f"{path}/explanations.json lacks class_names: {OLDER_RECORD}")
    return tuple(record_explanations["class_names"])


def gallery_data(collection: Collection, selected: pd.DataFrame, key: tuple[str, str], split: str,
                 errors: pd.DataFrame) -> GalleryData | None:
    """Per method: the gallery of ``split`` from one seed (the lowest seed every method with a
    gallery has, else each method's lowest); ``errors``: the explainer failures of the analysis."""
    runs = selected[(selected["experiment"] == key[0]) & (selected["profile"] == key[1])
                    & (selected["status"] == "ok")].drop_duplicates("path")
    available: dict[str, dict[int, str]] = {}
    for method, seed, path in zip(runs["method"], runs["seed"], runs["path"], strict=True):
        if f"{split}/gallery/heatmaps" in collection.arrays(path, "explanations.npz"):
            available.setdefault(method, {})[int(seed)] = path
    if not available:
        return None
    common = set.intersection(*(set(v) for v in available.values()))
    rows, first = [], None
    for method in sorted(set(runs["method"])):
        if method not in available:
            rows.append(Row(method, None, None, None, _why_missing(errors, key, method)))
            continue
        seed = min(common) if common else min(available[method])
        path = available[method][seed]
        arrays = collection.arrays(path, "explanations.npz")
        gallery = {k.split("/")[-1]: arrays[k] for k in arrays if k.startswith(f"{split}/gallery/")}
        labels = np.asarray(gallery["labels"])
        pred = collection.arrays(path, f"predictions/{split}.npz")
        if not np.array_equal(pred["labels"][: len(labels)], labels):
            raise ValueError(f"{path}: the gallery of {split} is not the split's first images")
        predicted = np.argmax(pred["logits"][: len(labels)], 1)
        rows.append(Row(method, seed, np.asarray(gallery["heatmaps"], dtype=np.float32), predicted))
        if first is None:
            record = collection.record(path)
            first = (gallery, class_names(record.explanations, record.path))
    gallery, names = first
    same = all(r.heatmaps is None or np.array_equal(
        collection.arrays(available[r.method][r.seed], "explanations.npz")[f"{split}/gallery/images"],
        gallery["images"]) for r in rows)
    return GalleryData(np.asarray(gallery["images"], dtype=np.float32), np.asarray(gallery["masks"]),
                       np.asarray(gallery["labels"]), names, tuple(rows), same)


def _why_missing(errors: pd.DataFrame, key: tuple[str, str], method: str) -> str:
    if errors.empty:
        return "no heatmap"
    own = errors[(errors["experiment"] == key[0]) & (errors["profile"] == key[1]) & (errors["method"] == method)
                 & (errors["explainer"] == "own")]
    return "no heatmap" + (f" ({own.iloc[0]['error'].split(':')[0]})" if len(own) else "")


def normalised(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps ``[n, H, W]`` divided by their largest magnitude, and which are empty (no finite
    non-zero value: shown as "no heatmap", NaN in the result)."""
    heat = np.where(np.isfinite(heatmaps), heatmaps, 0.0)
    scale = np.max(np.abs(heat), axis=(1, 2), keepdims=True)
    empty = scale[:, 0, 0] == 0
    return np.where(empty[:, None, None], np.nan, heat / np.where(scale > 0, scale, 1.0)), empty


def uniform(heat: np.ndarray) -> np.ndarray:
    """Which normalised heatmaps ``[n, H, W]`` span less than :data:`UNIFORM` (empty ones: no)."""
    finite = np.isfinite(heat)
    high = np.where(finite, heat, -np.inf).max(axis=(1, 2))
    low = np.where(finite, heat, np.inf).min(axis=(1, 2))
    return finite.any(axis=(1, 2)) & (high - low < UNIFORM)


def _strip(tiles: np.ndarray, fill: float) -> np.ndarray:
    """``[n, C, H, W]`` tiles side by side, ``[C, H, n * (W + 1) - 1]``, separated by ``fill``."""
    n, c, h, w = tiles.shape
    out = np.full((c, h, n * (w + 1) - 1), fill, dtype=np.float32)
    for j in range(n):
        out[:, :, j * (w + 1) : j * (w + 1) + w] = tiles[j]
    return out


def _tick_positions(n: int, width: int) -> list[float]:
    return [(width + 1) * j + (width - 1) / 2 for j in range(n)]


def gallery(collection: Collection, selected: pd.DataFrame, key: tuple[str, str], split: str,
            errors: pd.DataFrame, draw: bool = True) -> tuple[bytes, str] | None:
    """The gallery figure of ``split`` and the sentence its caption ends with."""
    data = gallery_data(collection, selected, key, split, errors)
    if data is None:
        return None
    n = len(data.labels)
    note = (f"the same {n} images for every method" if data.same_images
            else "the methods' test images differ (seed-dependent split): the top row shows those of "
                 f"`{next(r.method for r in data.rows if r.heatmaps is not None)}`")
    text = f"{data.seed_text}; {note}"
    if not draw:
        return b"", text
    with style():
        fig, axes = plt.subplots(len(data.rows) + 1, 1, figsize=(1.1 * n + 2.2, 1.3 * (len(data.rows) + 1)),
                                 squeeze=False, layout="constrained")
        _image_row(axes[0][0], data)
        for ax, row in zip(axes[1:, 0], data.rows, strict=True):
            _heatmap_row(ax, row, data)
        for ax in axes[:, 0]:
            ax.set_yticks([])
            ax.grid(False)
            for spine in ax.spines.values():
                spine.set_visible(False)
        bar = fig.colorbar(ScalarMappable(Normalize(-1, 1), HEATMAP_CMAP), ax=list(axes[1:, 0]), shrink=0.6,
                           aspect=30, pad=0.01)
        bar.set_label("relevance / largest |relevance|\n(red: for the true class)", fontsize=7)
        bar.ax.tick_params(labelsize=7)
        fig.suptitle(f"{key[0]} ({key[1]}, {trained_size(selected, key)}), {split}: each method's own heatmap "
                     "of the true class; below each, the class it predicted (green: right, red: wrong)", fontsize=9)
        png = render(fig)
    return png, text


def _image_row(ax: plt.Axes, data: GalleryData) -> None:
    image = _strip(data.images, fill=1.0)
    if image.shape[0] == 1:
        ax.imshow(image[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(np.clip(np.transpose(image[:3], (1, 2, 0)), 0, 1), interpolation="nearest")
    ax.contour(_strip(data.masks[:, None].astype(np.float32), 0.0)[0], levels=[0.5], colors=["#ffcc00"],
               linewidths=0.6)
    ax.set_xticks(_tick_positions(len(data.labels), data.images.shape[-1]),
                  [f"true: {data.class_names[int(c)]}" for c in data.labels], fontsize=7)
    ax.xaxis.tick_top()
    ax.set_ylabel("image", rotation=0, ha="right", va="center", fontsize=7)


def _heatmap_row(ax: plt.Axes, row: Row, data: GalleryData) -> None:
    n, width = len(data.labels), data.images.shape[-1]
    ax.set_ylabel(row.method, rotation=0, ha="right", va="center", fontsize=7)
    blank = np.full((1, data.images.shape[-2], n * (width + 1) - 1), np.nan, dtype=np.float32)
    if row.heatmaps is None:
        ax.imshow(blank[0], cmap=HEATMAP_CMAP, vmin=-1, vmax=1, interpolation="nearest")
        ax.set_facecolor("#e0e0e0")
        ax.text(blank.shape[-1] / 2, data.images.shape[-2] / 2, row.missing, ha="center", va="center", fontsize=7)
        ax.set_xticks([])
        return
    heat, empty = normalised(row.heatmaps)
    flat = uniform(heat)
    ax.set_facecolor("#e0e0e0")
    shown = np.where(flat[:, None, None], np.nan, heat)  # a solid tile would hide its note: grey, like an empty one
    ax.imshow(_strip(shown[:, None], np.nan)[0], cmap=HEATMAP_CMAP, vmin=-1, vmax=1, interpolation="nearest")
    ax.contour(_strip(data.masks[:, None].astype(np.float32), 0.0)[0], levels=[0.5], colors=["black"],
               linewidths=0.4)
    for j in np.flatnonzero(empty | flat):
        ax.text((width + 1) * j + (width - 1) / 2, data.images.shape[-2] / 2,
                "no\nheatmap" if empty[j] else "uniform\nmap", ha="center", va="center", fontsize=6)
    positions = _tick_positions(n, width)
    ax.set_xticks(positions, [data.class_names[int(c)] for c in row.predicted], fontsize=6)
    for label, predicted, true in zip(ax.get_xticklabels(), row.predicted, data.labels, strict=True):
        label.set_color(RIGHT if predicted == true else WRONG)
    ax.tick_params(axis="x", length=0, pad=1)
