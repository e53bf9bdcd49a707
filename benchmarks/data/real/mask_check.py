"""What a lung mask must look like, and the refusal of mask files that do not.

A lung mask is black and white: almost every pixel is near 0 or near the file's maximum;
its foreground covers a plausible share of the image, in one or two large regions (the
lungs), and leaves most of the image border free. A file of random noise, a radiograph
copied into a mask folder, an inverted mask or a blank white image breaks at least one of
these, and would otherwise train a mask-guided method without a word.

The limits were set from the 517 V7 Labs lung masks shipped in torchxrayvision (435 of
them non-empty), measured by :func:`measure_mask`: at most 9.2 % mid-grey pixels (their
127-valued annotations), a foreground of 9.3 % to 61.5 % of the image, at least 85.9 % of
the foreground in the two largest regions, at most 16 % of the border covered. Each limit
leaves a wide margin around those numbers; uniform 8-bit noise is 80 % mid-grey, the test
suite's synthetic radiographs 95 % to 97 %.

Masks that fail are refused with every offending file named in one message, unless
``$ISNET_BENCHMARKS_ACCEPT_ODD_MASKS`` is set to ``1`` (use them deliberately).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from torch import Tensor

from benchmarks.data.real.records import Record

ACCEPT_ENV = "ISNET_BENCHMARKS_ACCEPT_ODD_MASKS"
MEASURES = ("grey", "foreground", "two_largest", "border")
MEASURES_VERSION = "1:" + ",".join(MEASURES)  # in the preprocessing cache key
GREY_MAX = 0.25
FOREGROUND_MIN, FOREGROUND_MAX = 0.02, 0.80
TWO_LARGEST_MIN = 0.70
BORDER_MAX = 0.50
COMPONENT_SIDE = 256  # regions are counted on the mask sub-sampled to at most this side
REQUIREMENT = (
    f"a lung mask is black and white (at most {GREY_MAX:.0%} mid-grey pixels), its foreground covers "
    f"{FOREGROUND_MIN:.0%} to {FOREGROUND_MAX:.0%} of the image with at least {TWO_LARGEST_MIN:.0%} of it "
    f"in one or two regions, and at most {BORDER_MAX:.0%} of the image border"
)


class OddMaskError(ValueError):
    """Mask files that do not look like lung masks; the message names every one of them."""


def grey_fraction(arr: np.ndarray) -> float:
    """Share of the pixels strictly between 10 % and 90 % of the file's maximum value."""
    arr = np.asarray(arr)
    if arr.dtype == bool or arr.size == 0:
        return 0.0
    top = float(arr.max())
    if top <= 0:
        return 0.0
    return float(np.count_nonzero((arr > 0.1 * top) & (arr < 0.9 * top)) / arr.size)


def two_largest_share(mask: np.ndarray) -> float:
    """Share of the foreground in its two largest 4-connected regions, counted on the mask
    sub-sampled (every k-th pixel) to at most :data:`COMPONENT_SIDE` pixels a side."""
    step = max(1, math.ceil(max(mask.shape) / COMPONENT_SIDE))
    labels, n = ndimage.label(mask[::step, ::step])
    if n == 0:
        return 1.0  # a foreground too small to survive sub-sampling: the foreground share tells
    sizes = np.sort(np.bincount(labels.ravel())[1:])[::-1]
    return float(sizes[:2].sum() / sizes.sum())


def measure_mask(arrays: Sequence[np.ndarray], mask: np.ndarray) -> np.ndarray:
    """``float32 [4]``, the :data:`MEASURES` of one image's mask: the largest mid-grey share
    of its files' stored ``arrays``, and the foreground share, two-largest-regions share and
    border share of their binarised union ``mask``."""
    border = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
    return np.array(
        [
            max(grey_fraction(a) for a in arrays),
            float(mask.mean()),
            two_largest_share(mask),
            float(border.mean()),
        ],
        dtype=np.float32,
    )


def mask_problems(measures: Sequence[float]) -> list[str]:
    """Why a mask with these :data:`MEASURES` is not a plausible lung mask (empty if it is)."""
    grey, foreground, two_largest, border = (float(v) for v in measures)
    problems = []
    if grey > GREY_MAX:
        problems.append(f"{grey:.0%} of its pixels are mid-grey")
    if not FOREGROUND_MIN <= foreground <= FOREGROUND_MAX:
        problems.append(f"its foreground covers {foreground:.0%} of the image")
    if two_largest < TWO_LARGEST_MIN:
        problems.append(f"its two largest regions hold {two_largest:.0%} of the foreground")
    if border > BORDER_MAX:
        problems.append(f"its foreground covers {border:.0%} of the image border (inverted?)")
    return problems


@dataclass(frozen=True)
class OddMask:
    """One image's mask files and why they do not look like a lung mask."""

    files: tuple[str, ...]
    problems: tuple[str, ...]

    def line(self) -> str:
        return f"  {' + '.join(self.files)}: {'; '.join(self.problems)}"


def odd_masks(records: Sequence[Record], measures: Tensor) -> list[OddMask]:
    """The records whose mask fails :func:`mask_problems`; ``measures`` is the
    ``mask_stats`` tensor of :func:`~benchmarks.data.real.preprocess.build_tensors` (rows
    of NaN where a record has no usable mask)."""
    out = []
    for rec, row in zip(records, measures.tolist(), strict=True):
        if rec.mask is None or any(math.isnan(v) for v in row):
            continue
        problems = mask_problems(row)
        if problems:
            out.append(OddMask(tuple(rec.mask), tuple(problems)))
    return out


def accepting_odd_masks() -> bool:
    """Whether ``$ISNET_BENCHMARKS_ACCEPT_ODD_MASKS`` asks to use odd masks as they are."""
    return os.environ.get(ACCEPT_ENV, "").strip() not in ("", "0")


def refuse_odd_masks(what: str, odd: Sequence[OddMask], accept: bool | None = None) -> list[str]:
    """Raise :class:`OddMaskError` naming every file of ``odd`` unless ``accept`` (default:
    :func:`accepting_odd_masks`); return the accepted files, sorted."""
    files = sorted(f for o in odd for f in o.files)
    if not odd or (accepting_odd_masks() if accept is None else accept):
        return files
    n = len(files)
    raise OddMaskError(
        f"{what}: these mask files do not look like lung masks ({n} file{'s' if n != 1 else ''}; {REQUIREMENT}):\n"
        + "\n".join(o.line() for o in odd)
        + "\nReplace or remove them (predicted masks: `python -m benchmarks masks predict ... --overwrite`), "
        f"or set {ACCEPT_ENV}=1 to use them as they are."
    )
