"""The batches of a split, in one order for everyone who needs it.

Training, validation and prediction iterate batches with :func:`iterate_batches`; a
data-parallel rank (:mod:`benchmarks.run.distributed`) takes its shard of each index batch of
:func:`batch_indices`. Both go through the same index order, so a run's data order is one rule,
written once: the determinism of resumed and data-parallel runs depends on it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, default_collate

from benchmarks.api import Batch, TensorSplit


class _Indices(Dataset):
    """``0 .. n-1``: a dataset of positions, batched by the very ``DataLoader`` a split would use."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


def batch_indices(split: Dataset, batch_size: int, shuffle_seed: int | None) -> Iterator[Tensor]:
    """The positions of each batch of ``split``, shuffled by a generator of its own when a seed
    is given (in split order otherwise).

    A :class:`TensorSplit` is cut from ``randperm`` of that generator; any other dataset gets
    the order of ``DataLoader(split, shuffle=True, generator=...)`` (its sampler and its use
    of the generator, run over positions instead of images).
    """
    generator = None if shuffle_seed is None else torch.Generator().manual_seed(shuffle_seed)
    n = len(split)
    if isinstance(split, TensorSplit):
        order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
        for start in range(0, n, batch_size):
            yield order[start : start + batch_size]
        return
    yield from DataLoader(_Indices(n), batch_size=batch_size, shuffle=generator is not None, generator=generator)


def load_batch(split: Dataset, indices: Tensor) -> Batch:
    """The items of ``split`` at ``indices`` as one :class:`Batch`."""
    if isinstance(split, TensorSplit):
        return split.batch(indices)
    sample = default_collate([split[int(i)] for i in indices])
    return Batch(sample["image"], sample["label"], sample.get("mask"), sample["group"])


def iterate_batches(split: Dataset, batch_size: int, shuffle_seed: int | None) -> Iterator[Batch]:
    """Batches of ``split`` in the order of :func:`batch_indices`."""
    for indices in batch_indices(split, batch_size, shuffle_seed):
        yield load_batch(split, indices)


def count_batches(split: Dataset, batch_size: int) -> int:
    return math.ceil(len(split) / batch_size)
