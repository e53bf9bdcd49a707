"""Confidence intervals: stratified bootstrap over test samples, Student-t over seeds.

Every function returns an :class:`Interval` whose ``method`` string says exactly which interval
it is (resampling scheme, number of resamples, seed, level), so a table can print it verbatim.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from benchmarks.evaluation.classification import to_numpy

__all__ = [
    "DEFAULT_RESAMPLES",
    "Interval",
    "bootstrap_ci",
    "bootstrap_distribution",
    "stratified_bootstrap_indices",
    "t_interval",
]

DEFAULT_RESAMPLES = 2000
_CHUNK_ELEMENTS = 1 << 22  # cap on resamples x samples (x extra dims) evaluated at once


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval.

    ``low`` / ``high`` are NaN where the interval is undefined (a single seed).
    ``std_error`` is the standard error the interval used (t-interval) or the bootstrap
    standard deviation (bootstrap). ``n`` is the number of samples (bootstrap) or seeds (t).
    """

    estimate: float
    low: float
    high: float
    level: float
    method: str
    n: int
    std_error: float = float("nan")

    @property
    def half_width(self) -> float:
        """Half the interval's width (exact for the symmetric t-interval; for a percentile
        bootstrap interval, which need not be symmetric, the mean of both arms)."""
        return (self.high - self.low) / 2

    def __str__(self) -> str:
        return f"{self.estimate:.4g} [{self.low:.4g}, {self.high:.4g}]"


# ------------------------------------------------------------------------------ bootstrap
def stratified_bootstrap_indices(strata: Any, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Resample indices ``[n_resamples, N]``: within each stratum, draw as many samples as it
    has, with replacement, so every resample keeps the strata sizes (e.g. the class counts).
    Columns are grouped by stratum (sorted stratum values), which metrics of the resampled
    samples do not depend on."""
    s = to_numpy(strata)
    if s.ndim != 1:
        raise ValueError(f"strata must be 1-D, got shape {s.shape}")
    _, inverse = np.unique(s, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    counts = np.bincount(inverse)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    # One draw for all strata: uniform u in [0, 1) scaled to the stratum of each column.
    size = np.repeat(counts, counts)
    offset = np.repeat(starts, counts)
    u = rng.random((n_resamples, len(s)))
    local = np.minimum((u * size).astype(np.int64), size - 1)
    return order[offset + local]


def bootstrap_distribution(
    metric: Callable[..., Any],
    arrays: tuple[np.ndarray, ...],
    indices: np.ndarray,
    *,
    vectorized: bool = False,
) -> np.ndarray:
    """``metric`` evaluated on every resample ``arrays[i][indices[b]]``; returns ``[B]``.

    With ``vectorized=True`` the metric receives arrays with a leading resample axis
    (``[b, N, ...]``) and must return ``[b]``; resamples are fed in chunks to bound memory.
    Otherwise it is called once per resample with ``[N, ...]`` arrays and returns a float.
    """
    b, n = indices.shape
    if not vectorized:
        return np.array([float(metric(*(a[idx] for a in arrays))) for idx in indices])
    per_resample = n * max(1, max(int(np.prod(a.shape[1:])) for a in arrays))
    chunk = max(1, _CHUNK_ELEMENTS // max(1, per_resample))
    parts = []
    for start in range(0, b, chunk):
        idx = indices[start : start + chunk]
        value = np.asarray(metric(*(a[idx] for a in arrays)), dtype=np.float64)
        if value.shape != (len(idx),):
            raise ValueError(f"vectorized metric returned shape {value.shape}, not ({len(idx)},)")
        parts.append(value)
    return np.concatenate(parts)


def _percentile_interval(dist: np.ndarray, level: float) -> tuple[float, float, float, int]:
    ok = ~np.isnan(dist)
    dropped = int((~ok).sum())
    if not ok.any():
        return float("nan"), float("nan"), float("nan"), dropped
    alpha = 1 - level
    low, high = np.quantile(dist[ok], [alpha / 2, 1 - alpha / 2])
    sd = float(np.std(dist[ok], ddof=1)) if ok.sum() > 1 else float("nan")
    return float(low), float(high), sd, dropped


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")


def _as_arrays(labels: Any, others: tuple[Any, ...]) -> tuple[np.ndarray, ...]:
    arrays = (to_numpy(labels), *(to_numpy(o) for o in others))
    n = len(arrays[0])
    for a in arrays:
        if a.ndim == 0 or len(a) != n:
            raise ValueError("all arrays must share their first dimension N")
    return arrays


def bootstrap_ci(
    metric: Callable[..., Any],
    labels: Any,
    *others: Any,
    strata: Any = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
    vectorized: bool = False,
) -> Interval:
    """Stratified bootstrap percentile confidence interval of ``metric(labels, *others)``.

    The test samples are resampled with replacement *within each stratum* (``strata``,
    default: ``labels``, so every resample has the split's class counts and per-class metrics
    stay defined); the interval is the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of
    the metric over ``n_resamples`` resamples (percentile method) drawn from
    ``numpy.random.default_rng(seed)``. The estimate is the metric on the original samples.
    To resample without stratification pass a constant, e.g. ``strata=np.zeros(n)``.
    Resamples on which the metric is NaN are dropped, and ``method`` says how many.

    ``vectorized``: see :func:`bootstrap_distribution` (e.g. with
    :func:`benchmarks.evaluation.batched_confusion_matrix` for accuracy or macro-F1).
    """
    _check_level(level)
    if n_resamples < 1:
        raise ValueError("n_resamples must be >= 1")
    arrays = _as_arrays(labels, others)
    rng = np.random.default_rng(seed)
    strata_arr = arrays[0] if strata is None else to_numpy(strata)
    if len(strata_arr) != len(arrays[0]):
        raise ValueError("strata must have one entry per sample")
    n_strata = len(np.unique(strata_arr))
    idx = stratified_bootstrap_indices(strata_arr, n_resamples, rng)
    if vectorized:
        estimate = float(np.asarray(metric(*(a[None] for a in arrays)), dtype=np.float64)[0])
    else:
        estimate = float(metric(*arrays))
    dist = bootstrap_distribution(metric, arrays, idx, vectorized=vectorized)
    low, high, sd, dropped = _percentile_interval(dist, level)
    what = (
        f"stratified by {'labels' if strata is None else 'strata'} ({n_strata} strata)"
        if n_strata > 1
        else "unstratified"
    )
    method = (
        f"{level:.0%} bootstrap percentile interval, {what}, {n_resamples} resamples of "
        f"{len(arrays[0])} test samples, seed {seed}"
    )
    if dropped:
        method += f"; {dropped} resamples with an undefined metric dropped"
    return Interval(estimate, low, high, level, method, len(arrays[0]), sd)


# --------------------------------------------------------------------------- t over seeds
def t_interval(values: Any, level: float = 0.95) -> Interval:
    """Mean over seeds with a Student-t confidence interval.

    ``mean +- t_{n-1, (1 + level) / 2} * s / sqrt(n)`` with ``s`` the sample standard deviation
    (``ddof=1``). With a single seed the half-width, and so ``low`` / ``high``, are NaN (no
    spread to estimate); with none everything is NaN. NaN values propagate (a failed seed
    must not disappear silently).
    """
    _check_level(level)
    x = np.asarray(to_numpy(values), dtype=np.float64).ravel()
    n = len(x)
    method = f"{level:.0%} Student-t interval of the mean over {n} seed{'s' if n != 1 else ''}"
    if n == 0:
        nan = float("nan")
        return Interval(nan, nan, nan, level, method, 0, nan)
    mean = float(np.mean(x))
    if n == 1:
        nan = float("nan")
        return Interval(mean, nan, nan, level, method + " (undefined for one seed)", 1, nan)
    se = float(np.std(x, ddof=1) / np.sqrt(n))
    half = float(stats.t.ppf((1 + level) / 2, df=n - 1)) * se
    return Interval(mean, mean - half, mean + half, level, method + f" (t, df={n - 1})", n, se)
