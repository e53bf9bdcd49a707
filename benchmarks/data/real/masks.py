"""Reading lung masks: one or more files per image, binarised and OR-ed into one boolean
mask at the image's size (Montgomery stores the left and right lungs apart; the V7 masks
mark other annotations with the value 127)."""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence

import numpy as np
from PIL import Image

from benchmarks.data.real.images import BadImageError, read_bytes

_KEPT_MODES = ("1", "L", "I", "I;16", "I;16B", "I;16L", "F")


class EmptyMaskError(BadImageError):
    """A lung mask without any foreground pixel; the message names the file."""


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


def read_mask_file(ref: str) -> np.ndarray:
    """The pixel values of one mask file as stored (grey-scale; palette and colour images
    converted to 8-bit grey); :class:`BadImageError` naming the file if it cannot be read."""
    try:
        with Image.open(io.BytesIO(read_bytes(ref))) as img:
            img.load()
            if img.mode not in _KEPT_MODES:
                img = img.convert("L")
            arr = np.asarray(img)
    except Exception as err:  # noqa: BLE001
        raise BadImageError(f"{ref}: cannot read mask ({type(err).__name__}: {err})") from err
    return arr.max(axis=-1) if arr.ndim == 3 else arr


def combine_masks(
    arrays: Sequence[np.ndarray], refs: Sequence[str], image_shape: tuple[int, int] | None = None
) -> np.ndarray:
    """Binarise the mask files' ``arrays`` (read from ``refs``) and OR them into one
    ``bool [H, W]`` mask, resizing one of another size than ``image_shape`` with a warning;
    :class:`EmptyMaskError` naming the files when no pixel is foreground."""
    out: np.ndarray | None = None
    for ref, arr in zip(refs, arrays, strict=True):
        fg = binarise(arr)
        if image_shape is not None and fg.shape != tuple(image_shape):
            warnings.warn(
                f"{ref}: mask size {fg.shape[1]}x{fg.shape[0]} differs from the image's "
                f"{image_shape[1]}x{image_shape[0]}; resized and binarised",
                stacklevel=3,
            )
            fg = _resize_bool(fg, tuple(image_shape))
        out = fg if out is None else (out | fg)
    if out is None:
        raise ValueError("read_mask needs at least one file")
    if not out.any():
        raise EmptyMaskError(f"{', '.join(map(str, refs))}: lung mask is empty (no foreground pixel)")
    return out


def read_mask(refs: Sequence[str], image_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read one or more mask files, binarise them and OR them into one ``bool [H, W]`` mask.

    A mask whose size differs from ``image_shape`` is resized to it (bilinear, then
    thresholded at 0.5) with a warning. A mask without foreground raises
    :class:`EmptyMaskError`; an unreadable one :class:`BadImageError`; both name the file.
    """
    refs = [str(ref) for ref in refs]
    return combine_masks([read_mask_file(ref) for ref in refs], refs, image_shape)


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """``bool [H, W]`` to ``bool [size, size]`` (bilinear, thresholded at 0.5)."""
    if mask.shape == (size, size):
        return mask
    return _resize_bool(mask, (size, size))
