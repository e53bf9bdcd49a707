"""Shared code of the real chest X-ray loaders.

Every adapter turns a collection, in its own on-disk layout, into a list of :class:`Record`
(image path, class name, lung-mask path(s) or ``None``, source id, patient id when known).
This module reads those records into tensors: image reading (PIL, or pydicom for DICOM),
resizing to the profile size, mask binarisation, patient-level splitting, near-duplicate
detection between collections, and tensor building through the preprocessing cache.

Image and mask references are file paths, or ``"<archive>.zip::<member>"`` for a file inside
a zip archive (the V7 lung masks ship zipped in the torchxrayvision wheel).
"""

from __future__ import annotations

import io
import os
import random
import warnings
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from benchmarks.data.cache import cached, file_fingerprint, fingerprint

DATA_ENV = "ISNET_BENCHMARKS_DATA"
ZIP_SEP = "::"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".gif")
ON_BAD = ("error", "skip")


# --------------------------------------------------------------------------- errors
class LayoutError(FileNotFoundError):
    """A collection's root (or a file its layout requires) is missing; the message prints the
    expected layout."""


class BadImageError(ValueError):
    """An image or mask file that cannot be read; the message names the file."""


class EmptyMaskError(BadImageError):
    """A lung mask without any foreground pixel; the message names the file."""


class UnknownClassError(ValueError):
    """A class name that the loader or experiment does not know."""


# --------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Record:
    """One image of a collection.

    ``label`` is a canonical class name (``normal``, ``pneumonia``, ``covid19``,
    ``tuberculosis``, ``sick``); ``mask`` holds one or more mask files whose foregrounds are
    OR-ed (Montgomery stores the left and right lungs apart), or ``None``; ``patient`` is
    the patient id when the collection has one (else each image is its own patient);
    ``split`` is the collection's official split (``train`` / ``val`` / ``test``) if any.
    """

    image: str
    label: str
    mask: tuple[str, ...] | None
    source: str
    patient: str | None = None
    split: str | None = None

    @property
    def stem(self) -> str:
        """The image's file name without its extension (the name predicted masks take)."""
        name = self.image.split(ZIP_SEP)[-1]
        return PurePosixPath(name.replace("\\", "/")).stem

    @property
    def group_key(self) -> tuple[str, str]:
        """What must never be split apart: the patient, or the image when no id is known."""
        return (self.source, self.patient if self.patient is not None else "img:" + self.image)

    def with_mask(self, mask: Sequence[str] | None) -> Record:
        return Record(
            self.image, self.label, None if mask is None else tuple(mask), self.source, self.patient, self.split
        )


def require_dir(path: Path | str | None, collection: str, layout: str) -> Path:
    """Return ``path`` if it is a folder, else raise :class:`LayoutError` printing ``layout``."""
    if path is None or not Path(path).is_dir():
        where = "no path given" if path is None else f"{str(path)!r} is not a folder"
        raise LayoutError(f"{collection}: {where}. Expected layout:\n{layout.rstrip()}")
    return Path(path)


def require_file(path: Path, collection: str, layout: str) -> Path:
    if not path.is_file():
        raise LayoutError(f"{collection}: {str(path)!r} is missing. Expected layout:\n{layout.rstrip()}")
    return path


def list_images(folder: Path, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> list[Path]:
    """Image files directly inside ``folder`` (sorted; hidden files skipped)."""
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith(".")
    )


# --------------------------------------------------------------------------- reading
def _read_bytes(ref: str) -> bytes:
    if ZIP_SEP in ref:
        archive, member = ref.split(ZIP_SEP, 1)
        with zipfile.ZipFile(archive) as zf:
            return zf.read(member)
    return Path(ref).read_bytes()


def _is_dicom(ref: str, data: bytes) -> bool:
    return ref.lower().endswith((".dcm", ".dicom")) or data[128:132] == b"DICM"


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Min-max scale any numeric image to uint8 (a constant image maps to zeros)."""
    arr = arr.astype(np.float64)
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return np.zeros(arr.shape, np.uint8)
    return np.round((arr - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _read_dicom(ref: str, data: bytes) -> np.ndarray:
    try:
        import pydicom
        from pydicom.pixels import apply_modality_lut, apply_voi_lut
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(f"{ref}: reading DICOM needs pydicom (pip install pydicom)") from err
    ds = pydicom.dcmread(io.BytesIO(data))
    arr = ds.pixel_array
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):  # colour DICOM: keep luminance
        arr = arr[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    elif arr.ndim != 2:
        raise BadImageError(f"{ref}: DICOM pixel data of shape {arr.shape} is not a single 2-D image")
    arr = apply_modality_lut(arr, ds)
    if "WindowCenter" in ds or "VOILUTSequence" in ds:
        arr = apply_voi_lut(arr, ds)
    out = _to_uint8(np.asarray(arr))
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        out = 255 - out  # MONOCHROME1: low values are white; show bones bright like MONOCHROME2
    return out


def _pil_to_gray(img: Image.Image) -> np.ndarray:
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return _to_uint8(np.asarray(img))
    if img.mode != "L":
        img = img.convert("L")
    return np.asarray(img, dtype=np.uint8)


def read_image(ref: str | Path) -> np.ndarray:
    """Read a grey-scale image as ``uint8 [H, W]``.

    8-bit images are kept as they are; 16-bit and float images are min-max scaled; colour
    images are converted to luminance; DICOM (``.dcm`` or the ``DICM`` magic) goes through
    pydicom with the modality and VOI LUTs, and ``MONOCHROME1`` images are inverted.
    Any failure raises :class:`BadImageError` naming the file.
    """
    ref = str(ref)
    try:
        data = _read_bytes(ref)
    except (OSError, KeyError, zipfile.BadZipFile) as err:
        raise BadImageError(f"{ref}: cannot read file ({err})") from err
    try:
        if _is_dicom(ref, data):
            return _read_dicom(ref, data)
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            arr = _pil_to_gray(img)
    except (BadImageError, ImportError):
        raise
    except Exception as err:  # noqa: BLE001 - PIL / pydicom raise many types for bad files
        raise BadImageError(f"{ref}: cannot decode image ({type(err).__name__}: {err})") from err
    if arr.ndim != 2 or min(arr.shape) < 2:
        raise BadImageError(f"{ref}: not a 2-D image (shape {arr.shape})")
    return arr


def binarise(arr: np.ndarray) -> np.ndarray:
    """Foreground of a mask image: ``> 0`` for 0/1 masks, else above half the 8-bit (or
    16-bit) range, so that the V7 masks' 127-valued annotations are not taken for lung."""
    arr = np.asarray(arr)
    if arr.dtype == bool:
        return arr
    top = float(arr.max()) if arr.size else 0.0
    if top <= 1:
        return arr > 0
    return arr > (127 if top <= 255 else 32767)


def _resize_bool(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    img = Image.fromarray(mask.astype(np.float32), mode="F")
    return np.asarray(img.resize((shape[1], shape[0]), Image.Resampling.BILINEAR)) >= 0.5


def read_mask(refs: Sequence[str], image_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read one or more mask files, binarise them and OR them into one ``bool [H, W]`` mask.

    A mask whose size differs from ``image_shape`` is resized to it (bilinear, then
    thresholded at 0.5) with a warning. A mask without foreground raises
    :class:`EmptyMaskError`; an unreadable one :class:`BadImageError`; both name the file.
    """
    out: np.ndarray | None = None
    for ref in refs:
        ref = str(ref)
        try:
            with Image.open(io.BytesIO(_read_bytes(ref))) as img:
                img.load()
                if img.mode not in ("1", "L", "I", "I;16", "I;16B", "I;16L", "F", "P"):
                    img = img.convert("L")
                elif img.mode == "P":
                    img = img.convert("L")
                arr = np.asarray(img)
        except Exception as err:  # noqa: BLE001
            raise BadImageError(f"{ref}: cannot read mask ({type(err).__name__}: {err})") from err
        if arr.ndim == 3:
            arr = arr.max(axis=-1)
        fg = binarise(arr)
        if image_shape is not None and fg.shape != tuple(image_shape):
            warnings.warn(
                f"{ref}: mask size {fg.shape[1]}x{fg.shape[0]} differs from the image's "
                f"{image_shape[1]}x{image_shape[0]}; resized and binarised",
                stacklevel=2,
            )
            fg = _resize_bool(fg, tuple(image_shape))
        out = fg if out is None else (out | fg)
    if out is None:
        raise ValueError("read_mask needs at least one file")
    if not out.any():
        raise EmptyMaskError(f"{', '.join(map(str, refs))}: lung mask is empty (no foreground pixel)")
    return out


def resize_image(arr: np.ndarray, size: int) -> np.ndarray:
    """``uint8 [H, W]`` to ``uint8 [size, size]`` (bilinear with antialiasing; the aspect
    ratio is not kept, as in the ISNet paper's preprocessing)."""
    if arr.shape == (size, size):
        return arr
    return np.asarray(Image.fromarray(arr).resize((size, size), Image.Resampling.BILINEAR))


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    if mask.shape == (size, size):
        return mask
    return _resize_bool(mask, (size, size))


# --------------------------------------------------------------------------- tensors + cache
def ref_fingerprint(ref: str) -> dict[str, Any]:
    if ZIP_SEP in ref:
        archive, member = ref.split(ZIP_SEP, 1)
        return {**file_fingerprint(Path(archive)), "member": member}
    return file_fingerprint(Path(ref))


def _load_one(rec: Record, size: int, on_bad: str) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """(image, mask, status) with status ``ok``, ``bad_image`` or ``bad_mask``."""
    try:
        img = read_image(rec.image)
    except BadImageError:
        if on_bad == "skip":
            return None, None, "bad_image"
        raise
    mask = None
    status = "ok"
    if rec.mask is not None:
        try:
            mask = resize_mask(read_mask(rec.mask, img.shape), size)
        except BadImageError:
            if on_bad != "skip":
                raise
            status = "bad_mask"
    return resize_image(img, size), mask, status


STATUS_CODES = {"ok": 0, "bad_image": 1, "bad_mask": 2}


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
    ``[N, 1, S, S]`` (0/1; zeros where a record has no mask), ``has_mask`` bool ``[N]`` and
    ``status`` int8 ``[N]`` (0 ok, 1 unreadable image skipped, 2 bad mask dropped), all in
    record order. ``on_bad="error"`` (default) raises on the first unreadable image or
    empty / unreadable mask, naming the file; ``"skip"`` drops such an image (status 1)
    or keeps the image without its mask (status 2). The key is a SHA-256 of the recipe,
    the parameters and every source file's (path, size, mtime); ``cache_dir=None`` builds
    without storing.
    """
    if on_bad not in ON_BAD:
        raise ValueError(f"on_bad must be one of {ON_BAD}, got {on_bad!r}")
    description = {
        "size": int(size),
        "on_bad": on_bad,
        "records": [
            [ref_fingerprint(r.image), [ref_fingerprint(m) for m in r.mask] if r.mask else None, r.label, r.source]
            for r in records
        ],
    }

    def build() -> dict[str, Tensor]:
        n = len(records)
        images = torch.zeros(n, 1, size, size, dtype=torch.uint8)
        masks = torch.zeros(n, 1, size, size, dtype=torch.uint8)
        has_mask = torch.zeros(n, dtype=torch.bool)
        status = torch.zeros(n, dtype=torch.int8)
        load = lambda r: _load_one(r, size, on_bad)  # noqa: E731
        nworkers = workers if workers is not None else min(8, os.cpu_count() or 1)
        if nworkers > 1 and n >= 64:
            with ThreadPoolExecutor(nworkers) as pool:
                results: Iterable = pool.map(load, records)
                _fill(results, images, masks, has_mask, status)
        else:
            _fill(map(load, records), images, masks, has_mask, status)
        return {"images": images, "masks": masks, "has_mask": has_mask, "status": status}

    if cache_dir is None:
        return build(), fingerprint({"recipe": recipe, **description})
    return cached(Path(cache_dir), recipe, description, build)


def _fill(results: Iterable, images: Tensor, masks: Tensor, has_mask: Tensor, status: Tensor) -> None:
    for i, (img, mask, st) in enumerate(results):
        status[i] = STATUS_CODES[st]
        if img is not None:
            images[i, 0] = torch.from_numpy(np.array(img, dtype=np.uint8))
        if mask is not None:
            masks[i, 0] = torch.from_numpy(mask.astype(np.uint8))
            has_mask[i] = True


# --------------------------------------------------------------------------- splitting
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


# --------------------------------------------------------------------------- duplicates
def thumbnails(images: Tensor, side: int = 32, chunk: int = 1024) -> Tensor:
    """Zero-mean, unit-norm ``side x side`` thumbnails ``[N, side*side]`` of uint8 or float
    images ``[N, 1, H, W]``, for near-duplicate search (computed ``chunk`` images at a time,
    so that large uint8 collections are never converted to float whole)."""
    out = torch.empty(len(images), side * side)
    for start in range(0, len(images), chunk):
        x = images[start : start + chunk].float()
        if x.shape[-1] != side or x.shape[-2] != side:
            x = torch.nn.functional.interpolate(x, size=(side, side), mode="area")
        x = x.flatten(1)
        x = x - x.mean(dim=1, keepdim=True)
        out[start : start + chunk] = x / x.norm(dim=1, keepdim=True).clamp_min(1e-6)
    return out


def near_duplicates(reference: Tensor, candidates: Tensor, threshold: float = 0.99, chunk: int = 2048) -> Tensor:
    """``bool [len(candidates)]``: which candidate images correlate with some reference image
    at ``threshold`` or above, on 32x32 thumbnails (the same radiograph re-encoded or resized
    by another collection scores about 1, different patients well below). Images are
    ``[N, 1, H, W]``; 2-D inputs are taken as :func:`thumbnails` already computed."""
    if len(reference) == 0 or len(candidates) == 0:
        return torch.zeros(len(candidates), dtype=torch.bool)
    ref = reference if reference.ndim == 2 else thumbnails(reference)
    cands = candidates if candidates.ndim == 2 else thumbnails(candidates)
    out = torch.zeros(len(cands), dtype=torch.bool)
    for start in range(0, len(cands), chunk):
        cand = cands[start : start + chunk]
        best = torch.full((len(cand),), -1.0)
        for rs in range(0, len(ref), chunk):
            best = torch.maximum(best, (cand @ ref[rs : rs + chunk].T).max(dim=1).values)
        out[start : start + chunk] = best >= threshold
    return out


# --------------------------------------------------------------------------- class names
CLASS_ALIASES: dict[str, str] = {
    "normal": "normal",
    "healthy": "normal",
    "health": "normal",
    "no finding": "normal",
    "no_finding": "normal",
    "pneumonia": "pneumonia",
    "non-covid": "pneumonia",
    "non_covid": "pneumonia",
    "noncovid": "pneumonia",
    "covid19": "covid19",
    "covid-19": "covid19",
    "covid_19": "covid19",
    "covid": "covid19",
    "tuberculosis": "tuberculosis",
    "tb": "tuberculosis",
    "sick": "sick",
}


def canonical_class(name: str, allowed: Sequence[str] | None = None, where: str = "") -> str:
    """Map a folder / column class name to its canonical name; :class:`UnknownClassError` if
    unknown or not in ``allowed``."""
    key = name.strip().lower()
    canon = CLASS_ALIASES.get(key, key)
    if canon not in (allowed if allowed is not None else CLASS_ALIASES.values()):
        known = sorted(allowed) if allowed is not None else sorted(set(CLASS_ALIASES.values()))
        raise UnknownClassError(f"{where + ': ' if where else ''}unknown class {name!r}; expected one of {known}")
    return canon


def mask_lookup(
    records: Sequence[Record], folder: Path | None, fn: Callable[[Record], Path] | None = None
) -> list[Record]:
    """Give records without a mask the predicted mask ``<folder>/<stem>_mask.png`` when
    that file exists (the ``masks predict`` command writes them)."""
    if folder is None or not Path(folder).is_dir():
        return list(records)
    out = []
    for rec in records:
        if rec.mask is None:
            cand = fn(rec) if fn is not None else Path(folder) / f"{rec.stem}_mask.png"
            if cand.is_file():
                rec = rec.with_mask((str(cand),))
        out.append(rec)
    return out
