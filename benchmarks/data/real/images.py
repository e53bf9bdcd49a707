"""Reading chest X-ray images as 8-bit grey-scale arrays: PNG / JPEG / TIFF through PIL,
DICOM through pydicom, files inside zip archives; resizing to the profile size; the cheap
file identity the preprocessing cache keys on."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmarks.data.cache import file_fingerprint
from benchmarks.data.real.records import ZIP_SEP


class BadImageError(ValueError):
    """An image or mask file that cannot be read; the message names the file."""


def read_bytes(ref: str) -> bytes:
    """The bytes of a file path or of a ``<archive>.zip::<member>`` reference."""
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
        data = read_bytes(ref)
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


def resize_image(arr: np.ndarray, size: int) -> np.ndarray:
    """``uint8 [H, W]`` to ``uint8 [size, size]`` (bilinear with antialiasing; the aspect
    ratio is not kept, as in the ISNet paper's preprocessing)."""
    if arr.shape == (size, size):
        return arr
    return np.asarray(Image.fromarray(arr).resize((size, size), Image.Resampling.BILINEAR))


def ref_fingerprint(ref: str) -> dict[str, Any]:
    """The cache identity (path, size, mtime; plus the member) of a file or zip reference."""
    if ZIP_SEP in ref:
        archive, member = ref.split(ZIP_SEP, 1)
        return {**file_fingerprint(Path(archive)), "member": member}
    return file_fingerprint(Path(ref))
