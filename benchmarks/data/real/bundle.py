"""Assemble a :class:`~benchmarks.api.DataBundle` from real collections: training sources
(split into train / val / in-distribution test, patient-level) and external sources (the
external test, from hospitals never seen in training).

Steps, for one (profile, seed):

1. every source folder present under the data root is loaded by its adapter; predicted
   masks (``<data root>/predicted-masks/<source>/<stem>_mask.png``, written by
   ``python -m benchmarks masks predict``) fill in for images without a mask;
2. records of classes the experiment does not use are left out (counted); ``max_per_class``
   (profile data) caps each (source, class, official split) cell, drawn with a fixed seed
   so that all run seeds share one cache entry per source;
3. images and masks are read, resized and cached per source (:func:`common.build_tensors`);
4. a source's images that duplicate those of sources named in its ``dedup_against``
   (TBX11K vs Montgomery / Shenzhen) are removed;
5. training-source records are split by patient (official splits kept where the collection
   has them); training and validation images without a lung mask are dropped (counted), as
   the mask-guided methods need a mask for every training image;
6. near-duplicates of training images are removed from validation, in-distribution test and
   external test (collections such as COVID-QU-Ex re-distribute other collections' images).

Profile ``data`` keys: ``max_per_class`` (int or ``None``), ``fractions`` (train / val /
in_distribution shares), ``dedup_threshold`` (thumbnail correlation, ``None`` to skip
content de-duplication), ``on_bad`` (``"error"`` or ``"skip"`` for unreadable images and
empty masks), ``unmasked_train`` (``"drop"`` or ``"error"``).
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from benchmarks.api import DataBundle, ExperimentProfile, TensorSplit
from benchmarks.data.cache import fingerprint
from benchmarks.data.real.common import (
    DATA_ENV,
    LayoutError,
    Record,
    build_tensors,
    check_patient_disjoint,
    mask_lookup,
    near_duplicates,
    patient_split,
    subsample,
    thumbnails,
)

PREDICTED_MASKS = "predicted-masks"
DEFAULT_FRACTIONS = {"train": 0.7, "val": 0.1, "in_distribution": 0.2}
OFFICIAL = {"train": "train", "val": "val", "test": "in_distribution"}


@dataclass(frozen=True)
class Source:
    """One collection's role in an experiment.

    ``load(path, data_root, active, stats)`` returns its records (``active``: the source
    names present in this build); ``role`` is ``"train"`` or ``"external"``; a missing
    ``required`` source is an error, a missing optional one is skipped (and noted).
    """

    name: str
    folder: str
    role: str
    required: bool
    load: Callable[[Path, Path, frozenset[str], dict], list[Record]]
    layout: str
    dedup_against: tuple[str, ...] = ()


def data_root_layout(sources: Sequence[Source]) -> str:
    lines = [f"${DATA_ENV}/"]
    for s in sources:
        tag = "required" if s.required else "optional"
        lines.append(f"  {s.folder + '/':<28} {s.role} source, {tag}")
    lines.append(
        f"  {PREDICTED_MASKS + '/<source>/':<28} optional predicted lung masks (python -m benchmarks masks predict)"
    )
    text = "\n".join(lines)
    for s in sources:
        text += f"\n\n{s.folder}/ ({s.name}):\n" + "\n".join("  " + line for line in s.layout.splitlines())
    return text


def resolve_data_root(sources: Sequence[Source], data_root: Path | str | None = None) -> Path:
    """``data_root`` or ``$ISNET_BENCHMARKS_DATA``; :class:`LayoutError` (a
    ``FileNotFoundError``) printing the expected layout when unset or missing."""
    value = data_root if data_root is not None else os.environ.get(DATA_ENV)
    if not value:
        raise LayoutError(
            f"{DATA_ENV} is not set: point it at a folder holding the real collections. Expected layout:\n"
            + data_root_layout(sources)
        )
    root = Path(value).expanduser()
    if not root.is_dir():
        raise LayoutError(
            f"data root {str(root)!r} ({DATA_ENV}) is not a folder. Expected layout:\n" + data_root_layout(sources)
        )
    return root


def _split_tensor(
    images: Tensor, masks: Tensor | None, labels: Tensor, groups: Tensor, idx: Tensor, names: tuple[str, ...]
) -> TensorSplit:
    # advanced indexing copies, so the splits never share storage with each other
    return TensorSplit(images[idx], labels[idx], None if masks is None else masks[idx], groups[idx], names)


def build_real_bundle(
    experiment: str,
    sources: Sequence[Source],
    classes: Sequence[str],
    profile: ExperimentProfile,
    seed: int,
    cache_dir: Path | str,
    *,
    data_root: Path | str | None = None,
) -> DataBundle:
    """Build the bundle of a real-data experiment (see the module docstring)."""
    params: dict[str, Any] = dict(profile.data)
    size = int(profile.image_size)
    fractions = dict(params.get("fractions", DEFAULT_FRACTIONS))
    if set(fractions) != set(DEFAULT_FRACTIONS):
        raise ValueError(f"{experiment}: fractions must name {sorted(DEFAULT_FRACTIONS)}, got {sorted(fractions)}")
    threshold = params.get("dedup_threshold", 0.99)
    on_bad = params.get("on_bad", "error")
    unmasked_train = params.get("unmasked_train", "drop")
    if unmasked_train not in ("drop", "error"):
        raise ValueError(f"{experiment}: unmasked_train must be 'drop' or 'error', got {unmasked_train!r}")
    classes = tuple(classes)
    class_index = {c: i for i, c in enumerate(classes)}

    root = resolve_data_root(sources, data_root)
    present = [s for s in sources if (root / s.folder).is_dir()]
    absent = [s for s in sources if s not in present]
    missing = [s.folder for s in absent if s.required]
    if missing:
        raise LayoutError(
            f"{experiment}: {missing} missing under data root {str(root)!r}. Expected layout:\n"
            + data_root_layout(sources)
        )
    for role in ("train", "external"):
        if not any(s.role == role for s in present):
            raise LayoutError(
                f"{experiment}: no {role} source under {str(root)!r}. Expected layout:\n" + data_root_layout(sources)
            )
    active = frozenset(s.name for s in present)
    group_names = tuple(s.name for s in present)

    # 1-3: records and cached tensors per source
    all_records: list[Record] = []
    parts: list[dict[str, Tensor]] = []
    src_index: list[int] = []
    notes_sources: dict[str, Any] = {}
    keys: list[str] = []
    for gi, src in enumerate(present):
        stats: dict[str, int] = {}
        records = src.load(root / src.folder, root, active, stats)
        records = mask_lookup(records, root / PREDICTED_MASKS / src.name)
        left_out = Counter(r.label for r in records if r.label not in class_index)
        for label, n in left_out.items():
            stats[f"class_left_out:{label}"] = n
        records = subsample([r for r in records if r.label in class_index], params.get("max_per_class"))
        if not records:
            raise LayoutError(
                f"{experiment}: {src.name} has no image of classes {list(classes)} under {str(root / src.folder)!r}"
            )
        tensors, key = build_tensors(records, size, cache_dir, f"real-{src.name}", on_bad=on_bad)
        ok = tensors["status"] != 1
        stats["bad_image_skipped"] = int((~ok).sum())
        stats["bad_mask_dropped"] = int((tensors["status"] == 2).sum())
        keep = torch.nonzero(ok).flatten()
        all_records += [records[i] for i in keep.tolist()]
        parts.append({k: v[keep] for k, v in tensors.items()})
        src_index += [gi] * len(keep)
        keys.append(key)
        notes_sources[src.name] = {
            "role": src.role,
            "images": len(keep),
            "cache_key": key,
            "stats": dict(sorted(stats.items())),
        }
    images = torch.cat([p["images"] for p in parts])
    masks = torch.cat([p["masks"] for p in parts])
    has_mask = torch.cat([p["has_mask"] for p in parts])
    del parts  # the per-source tensors are copied into the concatenation above
    labels = torch.tensor([class_index[r.label] for r in all_records], dtype=torch.long)
    groups = torch.tensor(src_index, dtype=torch.long)
    n = len(all_records)
    alive = torch.ones(n, dtype=torch.bool)
    thumbs = thumbnails(images) if threshold is not None else torch.empty(0)
    removed: dict[str, int] = {}

    def dedup(cand: Tensor, ref: Tensor, what: str) -> None:
        if threshold is None or len(cand) == 0 or len(ref) == 0:
            return
        dup = near_duplicates(thumbs[ref], thumbs[cand], float(threshold))
        alive[cand[dup]] = False
        if int(dup.sum()):
            removed[what] = removed.get(what, 0) + int(dup.sum())

    # 4: cross-collection overlap (TBX11K vs Montgomery / Shenzhen)
    for gi, src in enumerate(present):
        others = [group_names.index(o) for o in src.dedup_against if o in group_names]
        if others:
            cand = torch.nonzero(groups == gi).flatten()
            ref = torch.nonzero(torch.isin(groups, torch.tensor(others))).flatten()
            dedup(cand, ref, f"{src.name}_duplicates_of_{'+'.join(group_names[o] for o in others)}")

    # 5: patient-level split of the training sources
    train_groups = [gi for gi, s in enumerate(present) if s.role == "train"]
    train_pool = [i for i in range(n) if int(groups[i]) in train_groups and bool(alive[i])]
    pool_records = [all_records[i] for i in train_pool]
    assignment = patient_split(pool_records, fractions, seed, official=OFFICIAL)
    check_patient_disjoint(pool_records, assignment)
    split_of = dict(zip(train_pool, assignment, strict=True))
    split_idx = {s: [i for i in train_pool if split_of[i] == s] for s in DEFAULT_FRACTIONS}
    external = [i for i in range(n) if int(groups[i]) not in train_groups and bool(alive[i])]
    for s in ("train", "val"):
        unmasked = [i for i in split_idx[s] if not bool(has_mask[i])]
        if unmasked and unmasked_train == "error":
            raise ValueError(
                f"{experiment}: {len(unmasked)} {s} images have no lung mask "
                f"(first: {all_records[unmasked[0]].image}); "
                f"predict masks with `python -m benchmarks masks predict` into {root / PREDICTED_MASKS}/<source>/"
            )
        if unmasked:
            removed[f"{s}_without_mask"] = len(unmasked)
            drop = set(unmasked)
            split_idx[s] = [i for i in split_idx[s] if i not in drop]
    if removed.get("train_without_mask"):
        warnings.warn(
            f"{experiment}: dropped {removed['train_without_mask']} training images without a lung mask; "
            f"run `python -m benchmarks masks predict` to keep them",
            stacklevel=2,
        )

    # 6: no near-duplicate of a training image in validation or test
    train_t = torch.tensor(split_idx["train"], dtype=torch.long)
    for s in ("val", "in_distribution"):
        cand = torch.tensor(split_idx[s], dtype=torch.long)
        dedup(cand, train_t, f"{s}_duplicates_of_train")
        split_idx[s] = [i for i in split_idx[s] if bool(alive[i])]
    ref_all = torch.tensor(split_idx["train"] + split_idx["val"] + split_idx["in_distribution"], dtype=torch.long)
    ext_t = torch.tensor(external, dtype=torch.long)
    dedup(ext_t, ref_all, "external_duplicates_of_training_sources")
    split_idx["external"] = [i for i in external if bool(alive[i])]

    splits: dict[str, TensorSplit] = {}
    mask_notes: dict[str, bool] = {}
    for s, idx_list in split_idx.items():
        if not idx_list:
            raise ValueError(
                f"{experiment}: split {s!r} is empty (sources {list(group_names)}, profile size {size}); "
                "the collections are too small or masks are missing"
            )
        idx = torch.tensor(idx_list, dtype=torch.long)
        with_masks = bool(has_mask[idx].all())
        mask_notes[s] = with_masks
        splits[s] = _split_tensor(images, masks if with_masks else None, labels, groups, idx, group_names)
    counts = {
        s: dict(sorted(Counter(f"{group_names[int(groups[i])]}/{classes[int(labels[i])]}" for i in idx).items()))
        for s, idx in split_idx.items()
    }
    checksum = fingerprint(
        {
            "experiment": experiment,
            "source_keys": keys,
            "seed": seed,
            "fractions": fractions,
            "dedup_threshold": threshold,
            "unmasked_train": unmasked_train,
            "classes": classes,
        }
    )
    notes = {
        "data_root": str(root),
        "protocol": {
            "train": [s.name for s in present if s.role == "train"],
            "external": [s.name for s in present if s.role == "external"],
            "absent_optional": [s.name for s in absent],
        },
        "sources": notes_sources,
        "removed": removed,
        "counts": counts,
        "split_has_masks": mask_notes,
        "patient_level_split": True,
    }
    return DataBundle(
        train=splits["train"],
        val=splits["val"],
        tests={"in_distribution": splits["in_distribution"], "external": splits["external"]},
        class_names=classes,
        in_channels=1,
        image_size=size,
        checksum=checksum,
        notes=notes,
    )
