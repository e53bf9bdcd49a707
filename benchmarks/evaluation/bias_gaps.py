"""Bias gaps: how much a metric drops from the split that shares the training bias to the split
that breaks it.

* biased - deceiving: the test split with the training bias minus the split where the bias
  points to a wrong class (synthetic bias experiments);
* in-distribution - external: the test split from the training hospitals minus an external
  database never seen in training (real chest X-ray experiments).

A positive gap means the metric is worse where the shortcut does not help; a method that ignores
the background should have a gap near 0. Split names are arguments, so any pair of splits works.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, overload

import numpy as np
import pandas as pd

__all__ = ["biased_deceiving_gap", "in_distribution_external_gap", "split_gap"]


@overload
def split_gap(
    table: pd.DataFrame,
    minuend: str,
    subtrahend: str,
    *,
    metrics: Sequence[str] | None = ...,
    by: Sequence[str] | None = ...,
    split_col: str = ...,
) -> pd.DataFrame: ...
@overload
def split_gap(
    table: Mapping[str, Mapping[str, float]],
    minuend: str,
    subtrahend: str,
    *,
    metrics: Sequence[str] | None = ...,
    by: Sequence[str] | None = ...,
    split_col: str = ...,
) -> dict[str, float]: ...


def split_gap(
    table: Any,
    minuend: str,
    subtrahend: str,
    *,
    metrics: Sequence[str] | None = None,
    by: Sequence[str] | None = None,
    split_col: str = "split",
) -> Any:
    """Metric on split ``minuend`` minus the same metric on split ``subtrahend``.

    ``table`` is either

    * a mapping ``{split: {metric: value}}`` (one run) -> ``{metric: gap}`` over the metrics
      both splits have (or ``metrics``); or
    * a tidy DataFrame with one row per (run, split): a ``split_col`` column, identifier
      columns ``by`` (e.g. experiment, method, seed) and metric columns. Returns one row per
      ``by`` group with the identifier columns and one gap column per metric. ``metrics``
      defaults to the floating-point columns; ``by`` to every other column except
      ``split_col``. A group that lacks either split, or has it twice, is an error (a silent
      mismatch would pair the wrong runs).
    """
    if isinstance(table, Mapping):
        if minuend not in table or subtrahend not in table:
            raise KeyError(f"splits {minuend!r} and {subtrahend!r} needed, got {list(table)}")
        a, b = table[minuend], table[subtrahend]
        names = list(metrics) if metrics is not None else [k for k in a if k in b]
        return {k: float(a[k]) - float(b[k]) for k in names}

    df = pd.DataFrame(table)
    if split_col not in df.columns:
        raise KeyError(f"no {split_col!r} column in {list(df.columns)}")
    if metrics is None:
        metrics = [c for c in df.columns if c != split_col and pd.api.types.is_float_dtype(df[c])]
        if by is not None:
            metrics = [c for c in metrics if c not in by]
    metrics = list(metrics)
    if by is None:
        by = [c for c in df.columns if c != split_col and c not in metrics]
    by = list(by)
    sides = []
    for split in (minuend, subtrahend):
        part = df.loc[df[split_col] == split, by + metrics]
        if part.empty:
            raise ValueError(f"no rows for split {split!r}")
        dup = part.duplicated(subset=by, keep=False) if by else pd.Series(len(part) > 1)
        if dup.any():
            raise ValueError(f"split {split!r} has several rows for one group of {by}")
        sides.append(part)
    if not by:
        return pd.DataFrame({m: [float(sides[0][m].iloc[0]) - float(sides[1][m].iloc[0])] for m in metrics})
    merged = sides[0].merge(sides[1], on=by, how="outer", suffixes=("__a", "__b"), indicator=True)
    unmatched = merged[merged["_merge"] != "both"]
    if len(unmatched):
        raise ValueError(
            f"{len(unmatched)} group(s) of {by} lack split {minuend!r} or {subtrahend!r}, e.g. "
            f"{unmatched[by].iloc[0].to_dict()}"
        )
    out = merged[by].copy()
    for m in metrics:
        out[m] = merged[f"{m}__a"].to_numpy(np.float64) - merged[f"{m}__b"].to_numpy(np.float64)
    return out.reset_index(drop=True)


def biased_deceiving_gap(table: Any, biased: str = "biased", deceiving: str = "deceiving", **kwargs: Any) -> Any:
    """``split_gap(table, biased, deceiving)``: the drop from the biased to the deceiving test."""
    return split_gap(table, biased, deceiving, **kwargs)


def in_distribution_external_gap(
    table: Any, in_distribution: str = "in_distribution", external: str = "external", **kwargs: Any
) -> Any:
    """``split_gap(table, in_distribution, external)``: the drop on the external database."""
    return split_gap(table, in_distribution, external, **kwargs)
