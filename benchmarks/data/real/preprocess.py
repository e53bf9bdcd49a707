"""Records to tensors: every image (and its lung mask) read, resized to the profile size and
stacked, through the preprocessing cache, with the measures that say whether each mask looks
like a lung mask (:mod:`.mask_check`)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from benchmarks.data.cache import cached, fingerprint
from benchmarks.data.real.images import BadImageError, read_image, ref_fingerprint, resize_image
from benchmarks.data.real.mask_check import MEASURES, MEASURES_VERSION, measure_mask
from benchmarks.data.real.masks import combine_masks, read_mask_file, resize_mask
from benchmarks.data.real.records import Record

ON_BAD = ("error", "skip")
STATUS_CODES = {"ok": 0, "bad_image": 1, "bad_mask": 2}
_NO_MEASURES = np.full(len(MEASURES), np.nan, dtype=np.float32)

Loaded = tuple[np.ndarray | None, np.ndarray | None, np.ndarray, str]


def _load_one(rec: Record, size: int, on_bad: str) -> Loaded:
    """(image, mask, mask measures, status) with status ``ok``, ``bad_image`` or ``bad_mask``."""
    try:
        img = read_image(rec.image)
    except BadImageError:
        if on_bad == "skip":
            return None, None, _NO_MEASURES, "bad_image"
        raise
    mask, measures, status = None, _NO_MEASURES, "ok"
    if rec.mask is not None:
        try:
            arrays = [read_mask_file(ref) for ref in rec.mask]
            full = combine_masks(arrays, rec.mask, img.shape)
            measures = measure_mask(arrays, full)
            mask = resize_mask(full, size)
        except BadImageError:
            if on_bad != "skip":
                raise
            status = "bad_mask"
    return resize_image(img, size), mask, measures, status


def build_tensors(
    records: Sequence[Record],
    size: int,
    cache_dir: Path | str | None,
    recipe: str,
    *,
    on_bad: str = "error",
    workers: int | None = None,
) -> tuple[dict[str, Tensor], str]:
    """Read, resize and stack ``records`` through the preprocessing cache.

    Returns ``(tensors, key)``: ``images`` uint8 ``[N, 1, S, S]``, ``masks`` uint8
    ``[N, 1, S, S]`` (0/1; zeros where a record has no mask), ``has_mask`` bool ``[N]``,
    ``status`` int8 ``[N]`` (0 ok, 1 unreadable image skipped, 2 bad mask dropped) and
    ``mask_stats`` float32 ``[N, 4]`` (the :data:`~.mask_check.MEASURES` of each mask at its
    own size; NaN without one), all in record order. ``on_bad="error"`` (default) raises on
    the first unreadable image or empty / unreadable mask, naming the file; ``"skip"`` drops
    such an image (status 1) or keeps the image without its mask (status 2). The key is a
    SHA-256 of the recipe, the parameters and every source file's (path, size, mtime);
    ``cache_dir=None`` builds without storing.
    """
    if on_bad not in ON_BAD:
        raise ValueError(f"on_bad must be one of {ON_BAD}, got {on_bad!r}")
    description = {
        "size": int(size),
        "on_bad": on_bad,
        "mask_measures": MEASURES_VERSION,
        "records": [
            [ref_fingerprint(r.image), [ref_fingerprint(m) for m in r.mask] if r.mask else None, r.label, r.source]
            for r in records
        ],
    }

    def build() -> dict[str, Tensor]:
        n = len(records)
        out = {
            "images": torch.zeros(n, 1, size, size, dtype=torch.uint8),
            "masks": torch.zeros(n, 1, size, size, dtype=torch.uint8),
            "has_mask": torch.zeros(n, dtype=torch.bool),
            "status": torch.zeros(n, dtype=torch.int8),
            "mask_stats": torch.full((n, len(MEASURES)), float("nan")),
        }
        load = lambda r: _load_one(r, size, on_bad)  # noqa: E731
        nworkers = workers if workers is not None else min(8, os.cpu_count() or 1)
        if nworkers > 1 and n >= 64:
            with ThreadPoolExecutor(nworkers) as pool:
                _fill(pool.map(load, records), out)
        else:
            _fill(map(load, records), out)
        return out

    if cache_dir is None:
        return build(), fingerprint({"recipe": recipe, **description})
    return cached(Path(cache_dir), recipe, description, build)


def _fill(results: Iterable[Loaded], out: dict[str, Tensor]) -> None:
    for i, (img, mask, measures, status) in enumerate(results):
        out["status"][i] = STATUS_CODES[status]
        out["mask_stats"][i] = torch.from_numpy(measures)
        if img is not None:
            out["images"][i, 0] = torch.from_numpy(np.array(img, dtype=np.uint8))
        if mask is not None:
            out["masks"][i, 0] = torch.from_numpy(mask.astype(np.uint8))
            out["has_mask"][i] = True
