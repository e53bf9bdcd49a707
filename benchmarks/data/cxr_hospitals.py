"""Synthetic chest X-rays with real lung shapes and a hospital shortcut outside the lungs.

No real radiograph can be downloaded here, so this generator reproduces the mechanism the
ISNet paper fights: training data pooled from several hospitals, each with its own look
outside the lungs (background, tissue, detector response, frame, burned-in markers), and
class shares that differ by hospital, so that "which hospital" predicts "which disease".
The class signal lies inside the lungs only, and the lungs themselves (size, position,
intensity, blur, grain) are drawn per image from one distribution shared by every
hospital, so they carry no hospital information (:mod:`benchmarks.data.cxr_render`). The
external test set comes from hospitals never seen in training (balanced classes, unseen
styles and markers), so a classifier that learned the hospital drops there.

Lungs: :mod:`benchmarks.data.lung_templates` (real V7 masks from the ``torchxrayvision``
wheel, else parametric ones; ``DataBundle.notes["lung_source"]`` says which). Every
parameter is documented in ``datasets/synthetic_cxr.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from benchmarks.api import Counterfactual, DataBundle
from benchmarks.data.bias import MarkedSplit, single_thread
from benchmarks.data.cache import cached
from benchmarks.data.cxr_render import ACQUISITION, Hospital, render
from benchmarks.data.lung_templates import lung_templates, template_geometry

GENERATOR_VERSION = 2
COVID_CLASSES = ("normal", "pneumonia", "covid")
TB_CLASSES = ("normal", "tb")


# --------------------------------------------------------------------------- hospitals
#: the style library; experiments pick hospitals by name and give them class shares
STYLES: dict[str, Hospital] = {
    h.name: h
    for h in (
        Hospital("A", background=0.04, tissue=0.58, gamma=1.00, contrast=1.00, offset=0.00,
                 gradient=(0.00, 0.0), noise=0.015, blur=0.0, frame=(0, 0.0),
                 markers=(("text", "L", "tl", 9),)),
        Hospital("B", background=0.22, tissue=0.55, gamma=0.80, contrast=0.90, offset=0.05,
                 gradient=(0.15, 0.0), noise=0.035, blur=0.0, frame=(0, 0.0),
                 markers=(("text", "R", "tr", 9), ("band", "bottom-dashed", "", 2))),
        Hospital("C", background=0.10, tissue=0.62, gamma=1.25, contrast=1.05, offset=0.00,
                 gradient=(0.10, 90.0), noise=0.025, blur=0.7, frame=(3, 0.9),
                 markers=(("shape", "square", "bl", 7),)),
        Hospital("D", background=0.14, tissue=0.57, gamma=1.10, contrast=0.95, offset=0.02,
                 gradient=(0.12, 45.0), noise=0.028, blur=0.4, frame=(0, 0.0),
                 markers=(("text", "A", "br", 9),)),
        Hospital("E", background=0.02, tissue=0.60, gamma=0.90, contrast=1.00, offset=0.03,
                 gradient=(0.10, 270.0), noise=0.020, blur=0.0, frame=(2, 0.0),
                 markers=(("shape", "triangle", "tr", 7), ("text", "P", "bl", 7))),
        Hospital("F", background=0.18, tissue=0.52, gamma=1.05, contrast=1.05, offset=0.00,
                 gradient=(0.08, 180.0), noise=0.040, blur=0.5, frame=(0, 0.0),
                 markers=(("band", "left-double", "", 2), ("text", "S", "tr", 8))),
    )
}


def hospitals_from(spec: Mapping[str, Sequence[float]]) -> list[Hospital]:
    """``{style name: class shares}`` -> hospitals (in the given order)."""
    out = []
    for name, shares in spec.items():
        if name not in STYLES:
            raise ValueError(f"unknown hospital style {name!r}; known: {sorted(STYLES)}")
        out.append(STYLES[name].with_shares(shares))
    return out


# --------------------------------------------------------------------------- datasets
CXR_DEFAULTS: dict = {
    "n_train": 2000,
    "n_val": 400,
    "n_in_distribution": 900,
    "n_external": 900,
    "lungs": "v7",
    "max_templates": None,
    "template_test_share": 0.3,
    "lesion_contrast": 1.0,
    "train_hospitals": {},
    "external_hospitals": {},
    "data_seed": 0,
    "shared_style": None,
}


def _labels_for(hospital: Hospital, count: int, rng: np.random.Generator) -> np.ndarray:
    """Exactly ``round(share * count)`` images per class (rest to the largest share), shuffled."""
    shares = np.asarray(hospital.shares)
    counts = np.floor(shares * count + 1e-9).astype(int)
    counts[np.argmax(shares)] += count - counts.sum()
    return rng.permutation(np.repeat(np.arange(len(shares)), counts))


def _split_counts(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (i < extra) for i in range(parts)]


#: test splits that are also re-rendered in every hospital's style (the exact counterfactuals)
RERENDERED_SPLITS = ("in_distribution", "external")


def build_cxr_tensors(
    task: str,
    classes: Sequence[str],
    p: Mapping,
    image_size: int,
    templates: Tensor,
) -> dict[str, Tensor]:
    """All four splits of one synthetic CXR task as flat ``"<split>/<field>"`` tensors, and
    each test split re-rendered in the style of every hospital, training and external
    (``"<split>/rerendered/<hospital>"``: the same patients, lungs and masks; see
    :func:`_render_split`). With ``p["shared_style"]`` (a style name) every hospital looks alike
    (that style), keeping its own class shares and patients: the no-shortcut control, which has
    nothing to re-render."""
    if p["shared_style"] is not None and p["shared_style"] not in STYLES:
        raise ValueError(f"unknown shared style {p['shared_style']!r}; known: {sorted(STYLES)}")
    train_h = hospitals_from(p["train_hospitals"])
    ext_h = hospitals_from(p["external_hospitals"])
    if {h.name for h in train_h} & {h.name for h in ext_h}:
        raise ValueError("external hospitals must differ from the training hospitals")
    for h in train_h + ext_h:
        if len(h.shares) != len(classes):
            raise ValueError(f"hospital {h.name}: {len(h.shares)} shares for {len(classes)} classes")
    all_h = train_h + ext_h
    seed = int(p["data_seed"])
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    order = rng.permutation(templates.shape[0])
    n_test_t = max(1, int(round(p["template_test_share"] * len(order))))
    pools = {"fit": order[n_test_t:] if len(order) > n_test_t else order, "test": order[:n_test_t]}
    plan = [("train", train_h, "fit", p["n_train"]), ("val", train_h, "fit", p["n_val"]),
            ("in_distribution", train_h, "test", p["n_in_distribution"]),
            ("external", ext_h, "test", p["n_external"])]
    geometry = template_geometry(templates)
    out: dict[str, Tensor] = {}
    shared = STYLES[p["shared_style"]] if p["shared_style"] else None
    for s_idx, (split, hospitals, pool, total) in enumerate(plan):
        where = (task, p, image_size, templates, geometry, seed, s_idx, hospitals, all_h, pools[pool], int(total))
        for key, value in _render_split(*where, style=shared).items():
            out[f"{split}/{key}"] = value
        if split in RERENDERED_SPLITS and shared is None:
            for style in all_h:
                out[f"{split}/rerendered/{style.name}"] = _render_split(*where, style=style)["images"]
    return out


def _render_split(task: str, p: Mapping, image_size: int, templates: Tensor, geometry: Tensor, seed: int,
                  s_idx: int, hospitals: Sequence[Hospital], all_h: Sequence[Hospital], pool: np.ndarray,
                  total: int, style: Hospital | None) -> dict[str, Tensor]:
    """One split: each hospital's share of the images (labels, lung templates and every
    patient draw from streams seeded by the split and the hospital's place in it), shuffled.
    With ``style`` every image is rendered with that hospital's look instead of its own: the
    patient stream is the same, so lungs, lesions and masks are identical to the original's,
    and only what lies outside the lungs changes."""
    parts: dict[str, list] = {k: [] for k in ("images", "masks", "labels", "groups", "boxes")}
    counts = _split_counts(total, len(hospitals))
    for h_idx, (hospital, count) in enumerate(zip(hospitals, counts, strict=True)):
        if count == 0:
            continue
        r = np.random.default_rng(np.random.SeedSequence([seed, 1, s_idx, h_idx]))
        labels = _labels_for(hospital, count, r)
        tidx = r.choice(pool, size=count, replace=True)
        for start in range(0, count, 256):  # bounded memory at 224 px
            sl = slice(start, start + 256)
            rendered = render(templates, geometry, tidx[sl], labels[sl], style or hospital, task, image_size,
                              float(p["lesion_contrast"]), seed=(seed, 2, s_idx, h_idx, start))
            parts["images"].append(rendered.images)
            parts["masks"].append(rendered.masks)
            parts["boxes"].append(rendered.boxes)
        parts["labels"].append(labels)
        parts["groups"].append(np.full(count, list(all_h).index(hospital), dtype=np.int64))
    perm = np.random.default_rng(np.random.SeedSequence([seed, 3, s_idx])).permutation(total)
    return {key: torch.from_numpy(np.ascontiguousarray(np.concatenate(chunks)[perm])) for key, chunks in parts.items()}


def build_cxr_bundle(
    *,
    recipe: str,
    task: str,
    classes: Sequence[str],
    data: Mapping,
    image_size: int,
    cache_dir: Path,
) -> DataBundle:
    """Build (or load from the cache) a synthetic CXR task as a DataBundle with test splits
    ``in_distribution`` (training hospitals) and ``external`` (unseen hospitals)."""
    unknown = set(data) - set(CXR_DEFAULTS)
    if unknown:
        raise ValueError(f"{recipe}: unknown data parameters {sorted(unknown)}; known: {sorted(CXR_DEFAULTS)}")
    p = {**CXR_DEFAULTS, **dict(data)}
    templates, lung_source, template_key = lung_templates(p["lungs"], Path(cache_dir), p["max_templates"])
    hospitals = hospitals_from(p["train_hospitals"]) + hospitals_from(p["external_hospitals"])
    description = {"generator_version": GENERATOR_VERSION, "task": task, "classes": list(classes), "data": p,
                   "rerendered_splits": list(RERENDERED_SPLITS),
                   "image_size": image_size, "templates": template_key,
                   "styles": [asdict(h) for h in hospitals], "acquisition": asdict(ACQUISITION)}

    def build() -> dict[str, Tensor]:
        with single_thread():
            return build_cxr_tensors(task, classes, p, image_size, templates)

    tensors, key = cached(Path(cache_dir), recipe, description, build)
    names = tuple(f"hospital_{h.name}" for h in hospitals)
    splits = {
        name: MarkedSplit(tensors[f"{name}/images"], tensors[f"{name}/labels"], tensors[f"{name}/masks"],
                          tensors[f"{name}/groups"], names, marker_boxes=tensors[f"{name}/boxes"])
        for name in ("train", "val", "in_distribution", "external")
    }
    n_train_h = len(p["train_hospitals"])
    majority = [int(np.argmax(h.shares)) if i < n_train_h else -1 for i, h in enumerate(hospitals)]
    for split in splits.values():  # a hospital's background points to its majority class in training
        split.background_class = torch.tensor(majority, dtype=torch.long)[split.groups]
    counterfactuals = {
        name: [Counterfactual("rerendered", f"rerendered:{names[i]}", tensors[f"{name}/rerendered/{h.name}"],
                              torch.full((len(splits[name]),), majority[i], dtype=torch.long),
                              torch.full((len(splits[name]),), -1, dtype=torch.long), source=i)
               for i, h in enumerate(hospitals)]
        for name in RERENDERED_SPLITS if f"{name}/rerendered/{hospitals[0].name}" in tensors
    }
    notes = {
        "recipe": recipe,
        "lung_source": lung_source,
        "lung_templates": int(templates.shape[0]),
        "train_hospitals": list(names[:n_train_h]),
        "external_hospitals": list(names[n_train_h:]),
        "class_shares": {f"hospital_{h.name}": list(h.shares) for h in hospitals},
        "acquisition": asdict(ACQUISITION),
        "data": {k: v for k, v in p.items() if k not in ("train_hospitals", "external_hospitals")},
        "split_sizes": {k: len(v) for k, v in splits.items()},
    }
    return DataBundle(
        train=splits["train"], val=splits["val"],
        tests={"in_distribution": splits["in_distribution"], "external": splits["external"]},
        class_names=tuple(classes), in_channels=1, image_size=int(image_size), checksum=key, notes=notes,
        counterfactuals=counterfactuals,
    )
