"""Composite counterfactuals by the foreground mask, for any test split with masks.

In the manner of the Backgrounds Challenge (Xiao, Engstrom, Ilyas, Madry, *Noise or Signal:
The Role of Image Backgrounds in Object Recognition*, ICLR 2021), each image keeps its
foreground and gets another background:

* ``only_foreground``: the background is one constant for the whole split (the mean
  background intensity of the split, per channel), so it carries nothing;
* ``mixed_same``: the background of another image whose background points to the
  recipient's own class (its :attr:`~benchmarks.api.TensorSplit.background_class`: a class
  marker, or its hospital's majority class in training); where the split's backgrounds point
  nowhere, of another image of the same class;
* ``mixed_random``: the background of an image whose background points to another class
  (where backgrounds point nowhere, of an image of another class).

A model that ignores the background scores the same on all three; the gap
``mixed_same - mixed_random`` is how much it follows the background. Donors are drawn from
the same split by a generator seeded by the split's name, so every run of every method sees
the same composites.

**How a composite is pasted**: :data:`PASTE_RULE`.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from benchmarks.api import Counterfactual, TensorSplit

KINDS = ("only_foreground", "mixed_same", "mixed_random")
#: how a composite is pasted (quoted by every run's ``counterfactuals.json`` and by the report)
PASTE_RULE = (
    "Pasted by the binary masks (a pixel is foreground when its mask is "
    "above 0.5), with no feathering: a pixel inside the recipient's mask is the recipient's own, "
    "every other pixel comes from the donor's background. The donor's own foreground pixels are "
    "first filled with the value of their nearest donor background pixel (Euclidean distance; "
    "``scipy.ndimage.distance_transform_edt``), so no part of the donor's object, nor its "
    "silhouette, reaches the composite. Object pixels that lie outside the recipient's mask (the "
    "faint edge of a digit below the mask threshold) are replaced like any background pixel; the "
    "suite's masks are dilated around the object (biased MNIST) or are exactly the pixels the "
    "object was rendered into (synthetic X-rays), so little or nothing of the object is lost."
)


def background_classes(split: TensorSplit, train: TensorSplit | None = None) -> np.ndarray:
    """Per image, the class its background points to (-1: none): the split's own
    ``background_class`` where its builder set one; else the majority class in ``train`` of
    the image's group (source), for groups seen in training whose majority is unique."""
    if split.background_class is not None:
        return split.background_class.numpy().astype(np.int64)
    out = np.full(len(split), -1, dtype=np.int64)
    if train is None or not isinstance(train, TensorSplit):
        return out
    groups, labels = train.groups.numpy(), train.labels.numpy()
    for g in np.unique(split.groups.numpy()):
        counts = np.bincount(labels[groups == g], minlength=int(labels.max()) + 1)
        if counts.sum() and (counts == counts.max()).sum() == 1:
            out[split.groups.numpy() == g] = int(counts.argmax())
    return out


def fill_foreground(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """``images`` ``[N, C, H, W]`` with every foreground pixel (``masks`` ``[N, 1, H, W]`` > 0.5)
    set to the value of its nearest background pixel (images without background are left
    as they are)."""
    out = images.copy()
    for i in range(len(images)):
        fg = masks[i, 0] > 0.5
        if not fg.any() or fg.all():
            continue
        _, (iy, ix) = ndimage.distance_transform_edt(fg, return_indices=True)
        out[i] = images[i][:, iy, ix]
    return out


def paste(recipients: np.ndarray, masks: np.ndarray, backgrounds: np.ndarray) -> np.ndarray:
    """Each recipient's foreground (``masks`` > 0.5) over the matching background image."""
    return np.where(masks > 0.5, recipients, backgrounds)


def _donors(labels: np.ndarray, points_to: np.ndarray, same: bool, rng: np.random.Generator) -> np.ndarray:
    """One donor per image: an image whose background points to the recipient's class
    (``same``) or to another class; where backgrounds point nowhere, an image of the same /
    another class. ``-1`` where no candidate exists."""
    informative = points_to >= 0
    donors = np.full(len(labels), -1, dtype=np.int64)
    for i, y in enumerate(labels):
        key = points_to if informative.any() else labels
        hit = (key == y) if same else ((key != y) & (key >= 0) if informative.any() else key != y)
        hit[i] = False
        candidates = np.flatnonzero(hit)
        if candidates.size:
            donors[i] = candidates[rng.integers(candidates.size)]
    return donors


def composites(split_name: str, split: TensorSplit, train: TensorSplit | None = None,
               kinds: Sequence[str] = KINDS) -> list[Counterfactual]:
    """The composite counterfactuals of a split with masks (see the module docstring)."""
    if split.masks is None:
        return []
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown composite kinds {sorted(unknown)}; known: {KINDS}")
    images = split.images.numpy()
    masks = split.masks.numpy()
    labels = split.labels.numpy()
    points_to = background_classes(split, train)
    filled = fill_foreground(images, masks)
    out = []
    for kind in kinds:
        rng = np.random.default_rng(np.random.SeedSequence([zlib.crc32(split_name.encode()), KINDS.index(kind)]))
        if kind == "only_foreground":
            background = _background_constant(images, masks)
            made = paste(images, masks, np.broadcast_to(background, images.shape))
            donors = np.full(len(labels), -1, dtype=np.int64)
            pointed = np.full(len(labels), -1, dtype=np.int64)
        else:
            donors = _donors(labels, points_to, kind == "mixed_same", rng)
            source = np.where(donors >= 0, donors, np.arange(len(labels)))  # no donor: the image itself
            made = paste(images, masks, filled[source])
            pointed = np.where(donors >= 0, points_to[source], -1)
        out.append(Counterfactual(kind, kind, torch.from_numpy(np.ascontiguousarray(made.astype(images.dtype))),
                                  torch.from_numpy(pointed), torch.from_numpy(donors)))
    return out


def _background_constant(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The split's mean background value per channel, ``[1, C, 1, 1]``, in the images' dtype."""
    bg = masks <= 0.5
    channels = [images[:, c : c + 1][bg].astype(np.float64).mean() for c in range(images.shape[1])]
    value = np.asarray(channels).reshape(1, -1, 1, 1)
    return np.round(value).astype(images.dtype) if images.dtype == np.uint8 else value.astype(images.dtype)


def counterfactual_sets(bundle_counterfactuals: dict[str, list[Counterfactual]], split_name: str,
                        split: TensorSplit, train: TensorSplit | None) -> list[Counterfactual]:
    """Every counterfactual of one test split: the data's exact ones, then the composites."""
    return [*bundle_counterfactuals.get(split_name, []), *composites(split_name, split, train)]


def as_split(split: TensorSplit, images: Tensor) -> TensorSplit:
    """``split`` with its images replaced (labels, masks and groups kept), for prediction."""
    return TensorSplit(images, split.labels, split.masks, split.groups, split.group_names)
