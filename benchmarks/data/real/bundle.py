"""Assemble a :class:`~benchmarks.api.DataBundle` from real collections: training sources
(split into train / val / in-distribution test, patient-level) and external sources (the
external test, from hospitals never seen in training).

:func:`build_real_bundle` runs these steps, one function each, for one (profile, seed):

1. :func:`~.sources.locate_sources`: the data root and the collections present in it;
2. :func:`load_source`, per present source: its adapter's records; predicted masks
   (``<data root>/predicted-masks/<source>/<stem>_mask.png``, written by
   ``python -m benchmarks masks predict``) fill in for images without a mask; records of
   classes the experiment does not use are left out (counted); ``max_per_class`` caps each
   (source, class, official split) cell, drawn with a fixed seed so that all run seeds
   share one cache entry per source; images and masks are read, resized, measured and
   cached (:func:`~.preprocess.build_tensors`);
3. :func:`~.mask_check.refuse_odd_masks`: masks that do not look like lung masks are
   refused, every offending file of every source named in one message, unless
   ``$ISNET_BENCHMARKS_ACCEPT_ODD_MASKS=1`` (the accepted files are listed in the notes);
4. :func:`remove_cross_collection_copies`: a source's images that duplicate those of the
   sources named in its ``dedup_against`` (TBX11K vs Montgomery / Shenzhen) are removed;
5. :func:`split_training_sources`: training-source records are split by patient (official
   splits kept where the collection has them); :func:`drop_unmasked` drops training and
   validation images without a lung mask (counted), as the mask-guided methods need a mask
   for every training image;
6. :func:`remove_copies_of_training_images`: near-duplicates of training images are removed
   from validation, in-distribution test and external test (collections such as
   COVID-QU-Ex re-distribute other collections' images);
7. :func:`assemble`: the splits as tensors, with counts, checksum and notes.

Profile ``data`` keys: ``max_per_class`` (int or ``None``), ``fractions`` (train / val /
in_distribution shares), ``dedup_threshold`` (thumbnail correlation, ``None`` to skip
content de-duplication), ``on_bad`` (``"error"`` or ``"skip"`` for unreadable images and
empty masks), ``unmasked_train`` (``"drop"`` or ``"error"``).
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from benchmarks.api import DataBundle, ExperimentProfile, TensorSplit
from benchmarks.data.cache import fingerprint
from benchmarks.data.real.duplicates import near_duplicates, thumbnails
from benchmarks.data.real.mask_check import OddMask, odd_masks, refuse_odd_masks
from benchmarks.data.real.preprocess import build_tensors
from benchmarks.data.real.records import LayoutError, Record, mask_lookup
from benchmarks.data.real.sources import PREDICTED_MASKS, Source, locate_sources
from benchmarks.data.real.splitting import check_patient_disjoint, patient_split, subsample

DEFAULT_FRACTIONS = {"train": 0.7, "val": 0.1, "in_distribution": 0.2}
OFFICIAL = {"train": "train", "val": "val", "test": "in_distribution"}
UNMASKED_TRAIN = ("drop", "error")

Splits = dict[str, list[int]]  # split name -> indices into the pool


@dataclass(frozen=True)
class BuildOptions:
    """The profile's image size and ``data`` keys, checked."""

    size: int
    fractions: dict[str, float]
    dedup_threshold: float | None
    on_bad: str
    unmasked_train: str
    max_per_class: int | None

    @classmethod
    def from_profile(cls, experiment: str, profile: ExperimentProfile) -> BuildOptions:
        params: dict[str, Any] = dict(profile.data)
        fractions = dict(params.get("fractions", DEFAULT_FRACTIONS))
        if set(fractions) != set(DEFAULT_FRACTIONS):
            raise ValueError(f"{experiment}: fractions must name {sorted(DEFAULT_FRACTIONS)}, got {sorted(fractions)}")
        unmasked_train = params.get("unmasked_train", "drop")
        if unmasked_train not in UNMASKED_TRAIN:
            raise ValueError(f"{experiment}: unmasked_train must be 'drop' or 'error', got {unmasked_train!r}")
        return cls(
            size=int(profile.image_size),
            fractions=fractions,
            dedup_threshold=params.get("dedup_threshold", 0.99),
            on_bad=params.get("on_bad", "error"),
            unmasked_train=unmasked_train,
            max_per_class=params.get("max_per_class"),
        )


@dataclass(frozen=True)
class LoadedSource:
    """One source's readable records and their tensors (rows in record order), its cache
    key, its odd masks and its notes."""

    records: list[Record]
    tensors: dict[str, Tensor]
    key: str
    odd: list[OddMask]
    notes: dict[str, Any]


def load_source(
    experiment: str,
    src: Source,
    root: Path,
    active: frozenset[str],
    classes: tuple[str, ...],
    options: BuildOptions,
    cache_dir: Path | str,
) -> LoadedSource:
    """Step 2: a source's records (predicted masks filled in, other classes left out,
    capped) read into cached tensors; unreadable images skipped under ``on_bad="skip"``."""
    stats: dict[str, int] = {}
    records = src.load(root / src.folder, root, active, stats)
    records = mask_lookup(records, root / PREDICTED_MASKS / src.name)
    for label, n in Counter(r.label for r in records if r.label not in classes).items():
        stats[f"class_left_out:{label}"] = n
    records = subsample([r for r in records if r.label in classes], options.max_per_class)
    if not records:
        raise LayoutError(
            f"{experiment}: {src.name} has no image of classes {list(classes)} under {str(root / src.folder)!r}"
        )
    tensors, key = build_tensors(records, options.size, cache_dir, f"real-{src.name}", on_bad=options.on_bad)
    ok = tensors["status"] != 1
    stats["bad_image_skipped"] = int((~ok).sum())
    stats["bad_mask_dropped"] = int((tensors["status"] == 2).sum())
    keep = torch.nonzero(ok).flatten()
    kept = {k: v[keep] for k, v in tensors.items()}
    records = [records[i] for i in keep.tolist()]
    stats["masks_checked"] = int(kept["has_mask"].sum())
    notes = {"role": src.role, "images": len(keep), "cache_key": key, "stats": dict(sorted(stats.items()))}
    return LoadedSource(records, kept, key, odd_masks(records, kept["mask_stats"]), notes)


@dataclass
class Pool:
    """Every loaded image of the experiment, sources concatenated (``groups``: the source
    index), with which images are still in (``alive``) and what was removed, and why."""

    records: list[Record]
    images: Tensor
    masks: Tensor
    has_mask: Tensor
    labels: Tensor
    groups: Tensor
    group_names: tuple[str, ...]
    dedup_threshold: float | None
    alive: Tensor = field(init=False)
    thumbs: Tensor = field(init=False)
    removed: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.alive = torch.ones(len(self.records), dtype=torch.bool)
        self.thumbs = thumbnails(self.images) if self.dedup_threshold is not None else torch.empty(0)

    @classmethod
    def concatenate(
        cls, loaded: Sequence[LoadedSource], names: Sequence[str], classes: Sequence[str], threshold: float | None
    ) -> Pool:
        class_index = {c: i for i, c in enumerate(classes)}
        records = [r for part in loaded for r in part.records]
        return cls(
            records=records,
            images=torch.cat([p.tensors["images"] for p in loaded]),
            masks=torch.cat([p.tensors["masks"] for p in loaded]),
            has_mask=torch.cat([p.tensors["has_mask"] for p in loaded]),
            labels=torch.tensor([class_index[r.label] for r in records], dtype=torch.long),
            groups=torch.tensor([gi for gi, p in enumerate(loaded) for _ in p.records], dtype=torch.long),
            group_names=tuple(names),
            dedup_threshold=threshold,
        )

    def dedup(self, cand: Tensor, ref: Tensor, what: str) -> None:
        """Mark the images of ``cand`` that duplicate one of ``ref`` as removed, counted as ``what``."""
        if self.dedup_threshold is None or len(cand) == 0 or len(ref) == 0:
            return
        dup = near_duplicates(self.thumbs[ref], self.thumbs[cand], float(self.dedup_threshold))
        self.alive[cand[dup]] = False
        if int(dup.sum()):
            self.removed[what] = self.removed.get(what, 0) + int(dup.sum())

    def live(self, indices: Sequence[int]) -> list[int]:
        return [i for i in indices if bool(self.alive[i])]


def remove_cross_collection_copies(pool: Pool, present: Sequence[Source]) -> None:
    """Step 4: remove a source's images that duplicate those of its ``dedup_against``."""
    for gi, src in enumerate(present):
        others = [pool.group_names.index(o) for o in src.dedup_against if o in pool.group_names]
        if others:
            cand = torch.nonzero(pool.groups == gi).flatten()
            ref = torch.nonzero(torch.isin(pool.groups, torch.tensor(others))).flatten()
            pool.dedup(cand, ref, f"{src.name}_duplicates_of_{'+'.join(pool.group_names[o] for o in others)}")


def split_training_sources(pool: Pool, present: Sequence[Source], fractions: dict[str, float], seed: int) -> Splits:
    """Step 5: the live training-source images split by patient into train / val /
    in_distribution (official splits kept), and the live external images."""
    train_groups = [gi for gi, s in enumerate(present) if s.role == "train"]
    everything = range(len(pool.records))
    train_pool = pool.live([i for i in everything if int(pool.groups[i]) in train_groups])
    pool_records = [pool.records[i] for i in train_pool]
    assignment = patient_split(pool_records, fractions, seed, official=OFFICIAL)
    check_patient_disjoint(pool_records, assignment)
    split_of = dict(zip(train_pool, assignment, strict=True))
    splits = {s: [i for i in train_pool if split_of[i] == s] for s in DEFAULT_FRACTIONS}
    splits["external"] = pool.live([i for i in everything if int(pool.groups[i]) not in train_groups])
    return splits


def drop_unmasked(experiment: str, pool: Pool, splits: Splits, unmasked_train: str, root: Path) -> Splits:
    """Step 5: train and val without the images that have no lung mask (counted, with a
    warning), or ``ValueError`` when ``unmasked_train == "error"``."""
    out = dict(splits)
    for s in ("train", "val"):
        unmasked = [i for i in out[s] if not bool(pool.has_mask[i])]
        if unmasked and unmasked_train == "error":
            raise ValueError(
                f"{experiment}: {len(unmasked)} {s} images have no lung mask "
                f"(first: {pool.records[unmasked[0]].image}); "
                f"predict masks with `python -m benchmarks masks predict` into {root / PREDICTED_MASKS}/<source>/"
            )
        if unmasked:
            pool.removed[f"{s}_without_mask"] = len(unmasked)
            drop = set(unmasked)
            out[s] = [i for i in out[s] if i not in drop]
    if pool.removed.get("train_without_mask"):
        warnings.warn(
            f"{experiment}: dropped {pool.removed['train_without_mask']} training images without a lung mask; "
            f"run `python -m benchmarks masks predict` to keep them",
            stacklevel=3,
        )
    return out


def remove_copies_of_training_images(pool: Pool, splits: Splits) -> Splits:
    """Step 6: no near-duplicate of a training image in val or in_distribution, and none of
    a training-source image in the external test."""
    out = dict(splits)
    train = torch.tensor(out["train"], dtype=torch.long)
    for s in ("val", "in_distribution"):
        pool.dedup(torch.tensor(out[s], dtype=torch.long), train, f"{s}_duplicates_of_train")
        out[s] = pool.live(out[s])
    training = torch.tensor(out["train"] + out["val"] + out["in_distribution"], dtype=torch.long)
    pool.dedup(torch.tensor(out["external"], dtype=torch.long), training, "external_duplicates_of_training_sources")
    out["external"] = pool.live(out["external"])
    return out


def assemble(
    experiment: str, pool: Pool, splits: Splits, classes: tuple[str, ...], size: int, checksum: str, notes: dict
) -> DataBundle:
    """Step 7: the bundle. A test split carries masks only when every image of it has one;
    an empty split is an error. ``notes`` gain the per-split counts and mask flags."""
    tensors: dict[str, TensorSplit] = {}
    with_masks: dict[str, bool] = {}
    for s, indices in splits.items():
        if not indices:
            raise ValueError(
                f"{experiment}: split {s!r} is empty (sources {list(pool.group_names)}, profile size {size}); "
                "the collections are too small or masks are missing"
            )
        idx = torch.tensor(indices, dtype=torch.long)
        with_masks[s] = bool(pool.has_mask[idx].all())
        # advanced indexing copies, so the splits never share storage with each other
        masks = pool.masks[idx] if with_masks[s] else None
        tensors[s] = TensorSplit(pool.images[idx], pool.labels[idx], masks, pool.groups[idx], pool.group_names)
    cell = lambda i: f"{pool.group_names[int(pool.groups[i])]}/{classes[int(pool.labels[i])]}"  # noqa: E731
    counts = {s: dict(sorted(Counter(cell(i) for i in idx).items())) for s, idx in splits.items()}
    return DataBundle(
        train=tensors["train"],
        val=tensors["val"],
        tests={"in_distribution": tensors["in_distribution"], "external": tensors["external"]},
        class_names=classes,
        in_channels=1,
        image_size=size,
        checksum=checksum,
        notes={**notes, "counts": counts, "split_has_masks": with_masks, "patient_level_split": True},
    )


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
    """Build the bundle of a real-data experiment (the steps of the module docstring)."""
    options = BuildOptions.from_profile(experiment, profile)
    classes = tuple(classes)
    root, present, absent = locate_sources(experiment, sources, data_root)
    active = frozenset(s.name for s in present)
    loaded = [load_source(experiment, s, root, active, classes, options, cache_dir) for s in present]
    accepted = refuse_odd_masks(experiment, [o for part in loaded for o in part.odd])
    pool = Pool.concatenate(loaded, [s.name for s in present], classes, options.dedup_threshold)
    keys = [part.key for part in loaded]
    source_notes = {s.name: part.notes for s, part in zip(present, loaded, strict=True)}
    del loaded  # the per-source tensors are copied into the pool
    remove_cross_collection_copies(pool, present)
    splits = split_training_sources(pool, present, options.fractions, seed)
    splits = drop_unmasked(experiment, pool, splits, options.unmasked_train, root)
    splits = remove_copies_of_training_images(pool, splits)
    checksum = fingerprint(
        {
            "experiment": experiment,
            "source_keys": keys,
            "seed": seed,
            "fractions": options.fractions,
            "dedup_threshold": options.dedup_threshold,
            "unmasked_train": options.unmasked_train,
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
        "sources": source_notes,
        "removed": pool.removed,
        "odd_masks_accepted": accepted,
    }
    return assemble(experiment, pool, splits, classes, options.size, checksum, notes)
