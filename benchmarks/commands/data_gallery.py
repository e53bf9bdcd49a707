"""Sample galleries of an experiment's splits: images with mask outlines and marker boxes.

``python -m benchmarks.commands.data_gallery [EXPERIMENT ...] [--profile cpu] [--out reports/figures]``
writes ``dataset_samples_<experiment>.png`` per experiment (all registered ones by default).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.api import DataBundle, ExperimentSpec
from benchmarks.registry import discover_experiments


def _pick(labels: np.ndarray, count: int) -> list[int]:
    """Up to ``count`` indices cycling through the classes in order (first images of each)."""
    by_class = {c: list(np.flatnonzero(labels == c)) for c in np.unique(labels)}
    out: list[int] = []
    while len(out) < count and any(by_class.values()):
        for c in sorted(by_class):
            if by_class[c] and len(out) < count:
                out.append(int(by_class[c].pop(0)))
    return out


def render_gallery(
    bundle: DataBundle,
    path: Path,
    per_split: int | None = None,
    title: str | None = None,
    splits: Sequence[str] | None = None,
) -> Path:
    """Draw ``per_split`` samples of the training split and of every test split.

    Each image shows its mask outline (cyan) and the bounding box of each burned-in marker
    (red, when the split records them), titled with the class and the marker's class (bias
    splits) or the group name (e.g. the hospital).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    per_split = per_split or min(10, max(8, bundle.num_classes))
    rows = [("train", bundle.train)] + list(bundle.tests.items())
    if splits is not None:
        rows = [(n, s) for n, s in rows if n in splits]
    fig, axes = plt.subplots(len(rows), per_split, figsize=(1.55 * per_split, 1.8 * len(rows) + 0.5), squeeze=False)
    for r, (name, split) in enumerate(rows):
        labels = split.labels.numpy()
        picks = _pick(labels, per_split)
        boxes = getattr(split, "marker_boxes", None)
        for c in range(per_split):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(picks):
                ax.axis("off")
                continue
            i = picks[c]
            image = split.images[i].float().numpy()
            if not split.images.dtype.is_floating_point:
                image = image / 255.0
            shown = image[0] if image.shape[0] == 1 else np.transpose(image[:3], (1, 2, 0))
            ax.imshow(shown, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            if split.masks is not None and split.masks[i].any():
                ax.contour(split.masks[i, 0].numpy(), levels=[0.5], colors="cyan", linewidths=0.6)
            if boxes is not None:
                b = boxes[i].numpy().reshape(-1, 4)
                for y, x, h, w in b:
                    if y >= 0:
                        ax.add_patch(Rectangle((x - 0.5, y - 0.5), w, h, fill=False, edgecolor="red", linewidth=0.7))
            marker_class = getattr(split, "marker_class", None)
            if marker_class is not None and bool((marker_class >= 0).any()):
                k = int(marker_class[i])
                second = "no marker" if k < 0 else f"marker of {bundle.class_names[k]}"
            elif split.group_names:
                second = split.group_names[int(split.groups[i])]
            else:
                second = f"group {int(split.groups[i])}"
            ax.set_title(f"{bundle.class_names[labels[i]]}\n{second}", fontsize=6)
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.suptitle(title or "", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def gallery_for(spec: ExperimentSpec, scale: str, cache_dir: Path, out_dir: Path, per_split: int | None = None) -> Path:
    """Build ``spec``'s data at ``scale`` and write ``<out_dir>/dataset_samples_<name>.png``."""
    profile = spec.profile(scale)
    bundle = spec.build(profile, 0, Path(cache_dir))
    return render_gallery(bundle, Path(out_dir) / f"dataset_samples_{spec.name}.png", per_split,
                          gallery_title(spec.name, scale, profile.image_size, bundle.notes))


def gallery_title(name: str, scale: str, trained_size: int, notes: dict) -> str:
    """The figure title: the profile and the image size its runs train at (``trained_size``)."""
    extra = f" | lungs: {notes['lung_source']}" if "lung_source" in notes else ""
    return f"{name} ({scale} profile, trained at {trained_size} px){extra}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.commands.data_gallery", description=__doc__)
    parser.add_argument("experiments", nargs="*", help="experiment names (default: all)")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--cache-dir", default="datasets/cache")
    parser.add_argument("--out", default="reports/figures")
    parser.add_argument("--per-split", type=int, default=None, help="images per split (default: 8-10)")
    args = parser.parse_args(argv)
    specs = discover_experiments()
    names = args.experiments or sorted(specs)
    for name in names:
        if name not in specs:
            parser.error(f"unknown experiment {name!r}; known: {', '.join(sorted(specs))}")
        try:
            print(gallery_for(specs[name], args.profile, Path(args.cache_dir), Path(args.out), args.per_split))
        except FileNotFoundError as err:  # e.g. real collections the user has not pointed to
            print(f"skipped {name}: {err}")


if __name__ == "__main__":
    main()
