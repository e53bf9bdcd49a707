"""Preprocessing cache: tensors built once per (sources, parameters), reused by later runs.

An entry is keyed by a SHA-256 of a JSON description of what produced it (recipe name,
parameters, source-file fingerprints). The key doubles as the data checksum that runs
record in their provenance. Entries are written atomically (temporary file + rename), so
an interrupted build never leaves a half-written entry behind.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from benchmarks.store import atomic_write_bytes

CACHE_VERSION = 1


def fingerprint(description: Mapping[str, Any]) -> str:
    """SHA-256 hex digest of a JSON-serialisable description (keys sorted)."""
    payload = json.dumps({"cache_version": CACHE_VERSION, **description}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def file_fingerprint(path: Path) -> dict[str, Any]:
    """A cheap identity of a source file (name, size, modification time)."""
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def tensor_checksum(tensors: Mapping[str, Tensor]) -> str:
    """SHA-256 of tensors' bytes, for provenance of data built in memory."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def cached(
    cache_dir: Path,
    recipe: str,
    description: Mapping[str, Any],
    build: Callable[[], dict[str, Tensor]],
) -> tuple[dict[str, Tensor], str]:
    """Return ``(tensors, key)``, loading ``<cache_dir>/<recipe>-<key[:16]>.pt`` or building
    and storing it. ``description`` must capture everything ``build`` depends on."""
    key = fingerprint({"recipe": recipe, **description})
    path = Path(cache_dir) / f"{recipe}-{key[:16]}.pt"
    if path.exists():
        try:
            return torch.load(path, weights_only=True), key
        except Exception:  # noqa: BLE001 - a damaged entry is rebuilt, never trusted
            path.unlink(missing_ok=True)
    tensors = build()
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return tensors, key
