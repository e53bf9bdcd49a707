"""Patient-level splitting: no patient's images in two splits, every class in every split,
official splits kept where a collection has them; and the per-cell cap drawn by patient."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence

from benchmarks.data.real.records import Record


def patient_split(
    records: Sequence[Record],
    fractions: Mapping[str, float],
    seed: int,
    *,
    official: Mapping[str, str] | None = None,
) -> list[str]:
    """Assign every record to a split so that no patient is in two splits.

    Records whose collection has an official split keep it (mapped through ``official``,
    e.g. ``{"train": "train", "val": "val", "test": "test"}``); the others are grouped by
    patient (an image without patient id is its own group) and groups are dealt, class by
    class (a group's class is its most common label), to the split that lags its target
    share most, in a seed-determined order. With at least as many groups per class as
    splits, every split gets each class. Returns one split name per record.
    """
    names = list(fractions)
    total = sum(fractions.values())
    if total <= 0 or any(v < 0 for v in fractions.values()):
        raise ValueError(f"split fractions must be non-negative and not all zero: {dict(fractions)}")
    out: list[str | None] = [None] * len(records)
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, rec in enumerate(records):
        if official is not None and rec.split is not None:
            if rec.split not in official:
                raise ValueError(f"{rec.image}: official split {rec.split!r} not in {sorted(official)}")
            out[i] = official[rec.split]
        else:
            groups[rec.group_key].append(i)
    by_label: dict[str, list[tuple[tuple[str, str], list[int]]]] = defaultdict(list)
    for key in sorted(groups):
        idx = groups[key]
        label = Counter(records[i].label for i in idx).most_common(1)[0][0]
        by_label[label].append((key, idx))
    rng = random.Random(seed)
    for label in sorted(by_label):
        items = by_label[label]
        rng.shuffle(items)
        n_label = sum(len(idx) for _, idx in items)
        target = {s: fractions[s] / total * n_label for s in names}
        count = dict.fromkeys(names, 0)
        for _, idx in items:
            best = max(
                (s for s in names if target[s] > 0), key=lambda s: ((target[s] - count[s]) / target[s], -names.index(s))
            )
            count[best] += len(idx)
            for i in idx:
                out[i] = best
    return [s for s in out]  # type: ignore[misc]


def check_patient_disjoint(records: Sequence[Record], splits: Sequence[str]) -> None:
    """Raise ``ValueError`` if one patient (source, patient id) appears in two splits."""
    seen: dict[tuple[str, str], str] = {}
    for rec, split in zip(records, splits, strict=True):
        if rec.patient is None:
            continue
        key = (rec.source, rec.patient)
        if seen.setdefault(key, split) != split:
            raise ValueError(f"patient {rec.patient!r} of {rec.source} is in splits {seen[key]!r} and {split!r}")


def subsample(records: Sequence[Record], max_per_class: int | None, seed: int = 0) -> list[Record]:
    """At most ``max_per_class`` records per (source, class, official split), drawn by patient
    groups in a fixed order (seed 0 by default, so that every run seed shares one cache entry)."""
    if not max_per_class:
        return list(records)
    cells: dict[tuple[str, str, str | None], dict[tuple[str, str], list[Record]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for rec in records:
        cells[(rec.source, rec.label, rec.split)][rec.group_key].append(rec)
    rng = random.Random(seed)
    keep: set[int] = set()
    for cell in sorted(cells, key=str):
        keys = sorted(cells[cell])
        rng.shuffle(keys)
        n = 0
        for key in keys:
            if n >= max_per_class:
                break
            for rec in cells[cell][key]:
                keep.add(id(rec))
            n += len(cells[cell][key])
    return [r for r in records if id(r) in keep]
