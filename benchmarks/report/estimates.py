"""Intervals of the selected runs' metrics over seeds and test images, and the bias gaps.

Conventions (the captions quote them):

* **Seeds**: every number is the mean over the seeds of the selected draw; the t-interval
  is :func:`benchmarks.stats.t_interval` over the per-seed values.
* **Test images**: the bootstrap interval is a stratified (by class) percentile bootstrap of
  that seed mean over test images, :data:`N_RESAMPLES` resamples, seeded per (experiment,
  profile, split) by :func:`boot_seed`. When all seeds tested the same images (identical
  labels), one resample of the images is applied to every seed; otherwise (test sets that
  depend on the seed) each seed's test set is resampled independently and ``shared`` is
  False (tables mark such cells). Every method of a split is scored on the same resamples.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmarks.evaluation import Scores, catalogue, split_gap
from benchmarks.report.tidy import Collection
from benchmarks.stats import DEFAULT_RESAMPLES, stratified_bootstrap_indices, t_interval

N_RESAMPLES = DEFAULT_RESAMPLES
LEVEL = 0.95
ALPHA = 0.05
NAN = math.nan
KEY = ["experiment", "profile"]


def boot_seed(*parts: object) -> int:
    """A stable bootstrap seed for a cell of the report (CRC-32 of its names)."""
    return zlib.crc32("/".join(str(p) for p in parts).encode())


def interval_text() -> str:
    return (f"{LEVEL:.0%} stratified (by class) bootstrap percentile interval over test images, "
            f"{N_RESAMPLES} resamples")


# ------------------------------------------------------------------------- split predictions
@dataclass(frozen=True)
class SplitRuns:
    """One method's selected runs on one test split, by seed (ascending)."""

    seeds: tuple[int, ...]
    labels: tuple[np.ndarray, ...]
    logits: tuple[np.ndarray, ...]

    @property
    def shared(self) -> bool:
        """All seeds tested the same images (identical labels, taken as identical images)."""
        return bool(self.labels) and all(np.array_equal(self.labels[0], y) for y in self.labels[1:])

    def by_seed(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        return {s: (y, z) for s, y, z in zip(self.seeds, self.labels, self.logits, strict=True)}


def split_runs(collection: Collection, rows: pd.DataFrame, split: str) -> SplitRuns:
    """Predictions of the runs in ``rows`` (one method's selected, finished runs) on ``split``."""
    part = rows[(rows["split"] == split) & (rows["status"] == "ok")].sort_values("seed", kind="stable")
    seeds, labels, logits = [], [], []
    for seed, path in zip(part["seed"], part["path"], strict=True):
        pred = collection.arrays(path, f"predictions/{split}.npz")
        if not pred:
            continue
        seeds.append(int(seed))
        labels.append(pred["labels"].astype(np.int64))
        logits.append(pred["logits"].astype(np.float64))
    return SplitRuns(tuple(seeds), tuple(labels), tuple(logits))


def resample_id(runs: SplitRuns, seed: int) -> str:
    """Names the bootstrap resamples :class:`IndexCache` gives ``runs``: two methods with the same
    id were scored on the same resamples of the same images (their comparison is paired)."""
    images = zlib.crc32(b"".join(y.tobytes() for y in runs.labels))
    return f"{seed}-{runs.shared}-{len(runs.labels)}-{images:08x}"


class IndexCache:
    """Bootstrap resamples of one split, drawn once and shared by every method (so that all
    methods are scored on the same resamples, and the indices are not drawn again)."""

    def __init__(self) -> None:
        self._cache: dict[tuple, list[np.ndarray]] = {}

    def get(self, runs: SplitRuns, seed: int) -> list[np.ndarray]:
        """One index matrix for all seeds (shared test images) or one per seed (independent)."""
        key = (seed, runs.shared, tuple(y.tobytes() for y in runs.labels))
        if key not in self._cache:
            rng = np.random.default_rng(seed)
            if runs.shared:
                self._cache[key] = [stratified_bootstrap_indices(runs.labels[0], N_RESAMPLES, rng)] * len(runs.labels)
            else:
                self._cache[key] = [stratified_bootstrap_indices(y, N_RESAMPLES, rng) for y in runs.labels]
        return self._cache[key]


@dataclass(frozen=True)
class Summary:
    """A seed mean with its t-interval over seeds and its bootstrap interval over test images."""

    mean: float
    t_low: float
    t_high: float
    boot_low: float
    boot_high: float
    seeds: int
    shared: bool
    values: tuple[float, ...]
    distribution: np.ndarray

    @property
    def t_half(self) -> float:
        return (self.t_high - self.t_low) / 2


def quantiles(dist: np.ndarray) -> tuple[float, float]:
    ok = dist[~np.isnan(dist)]
    if not ok.size:
        return NAN, NAN
    low, high = np.quantile(ok, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return float(low), float(high)


def summarise(runs: SplitRuns, seed: int, cache: IndexCache | None = None) -> dict[str, Summary]:
    """Per resampled catalogue metric: seed mean, t-interval over seeds, bootstrap interval over
    test images (one resample shared by all seeds when they tested the same images, else
    independent)."""
    indices = (cache or IndexCache()).get(runs, seed)
    tested = [Scores(y, z) for y, z in zip(runs.labels, runs.logits, strict=True)]
    drawn = [Scores(y, z, idx) for y, z, idx in zip(runs.labels, runs.logits, indices, strict=True)]
    out = {}
    for metric in catalogue.resampled():
        values = tuple(float(metric.compute(s)[0]) for s in tested)
        t = t_interval(values, LEVEL)
        dist = np.mean([metric.compute(s) for s in drawn], axis=0) if drawn else np.full(N_RESAMPLES, NAN)
        low, high = quantiles(dist)
        out[metric.key] = Summary(t.estimate, t.low, t.high, low, high, len(values), runs.shared, values, dist)
    return out


def top_class_share(runs: SplitRuns) -> float:
    """The smallest, over seeds, share of the split's images given the seed's most-predicted
    class: 1 when every seed predicts one class for every image (a constant classifier)."""
    shares = [np.bincount(z.argmax(1)).max() / max(len(z), 1) for z in runs.logits]
    return float(min(shares)) if shares else NAN


# ----------------------------------------------------------------------------- selected runs
def experiment_keys(selected: pd.DataFrame) -> list[tuple[str, str]]:
    ok = selected[selected["split"].notna()]
    return sorted({(e, p) for e, p in zip(ok["experiment"], ok["profile"], strict=True)})


def methods_of(selected: pd.DataFrame, key: tuple[str, str]) -> list[str]:
    block = selected[(selected["experiment"] == key[0]) & (selected["profile"] == key[1]) & selected["split"].notna()]
    return sorted(block["method"].unique())


def rows_of(selected: pd.DataFrame, key: tuple[str, str], method: str) -> pd.DataFrame:
    return selected[(selected["experiment"] == key[0]) & (selected["profile"] == key[1])
                    & (selected["method"] == method)]


# ------------------------------------------------------------------------- the metric intervals
def metric_table(collection: Collection, selected: pd.DataFrame, roles: dict) -> tuple[pd.DataFrame, dict]:
    rows, dists = [], {}
    for key in experiment_keys(selected):
        for split in roles[key].order:
            cache = IndexCache()
            for method in methods_of(selected, key):
                block = rows_of(selected, key, method)
                runs = split_runs(collection, block, split)
                if not runs.seeds:
                    continue
                for metric, s in summarise(runs, boot_seed(*key, split), cache).items():
                    dists[(*key, method, split, metric)] = s.distribution
                    rows.append({
                        "experiment": key[0], "profile": key[1], "method": method, "split": split, "metric": metric,
                        "mean": s.mean, "t_low": s.t_low, "t_high": s.t_high, "t_half": s.t_half,
                        "boot_low": s.boot_low, "boot_high": s.boot_high, "seeds": s.seeds,
                        "images_shared_by_seeds": s.shared,
                        "hparam_index": int(block["hparam_index"].iloc[0]),
                        "majority_share": float(np.bincount(runs.labels[0]).max() / max(len(runs.labels[0]), 1)),
                        "top_class_share": top_class_share(runs),
                        "resamples": resample_id(runs, boot_seed(*key, split)),
                    })
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame = frame.sort_values(["experiment", "profile", "method"], kind="stable").reset_index(drop=True)
    return frame, dists


# ---------------------------------------------------------------------------------- bias gaps
def gap_table(selected: pd.DataFrame, roles: dict, dists: dict) -> pd.DataFrame:
    """In-distribution minus shifted accuracy per method: per-seed gaps (t-interval) and the
    bootstrap interval of the difference of seed means (the two splits resampled independently)."""
    rows = []
    ok = selected[(selected["status"] == "ok") & selected["split"].notna()]
    for key in experiment_keys(selected):
        for method in methods_of(selected, key):
            block = rows_of(ok, key, method)
            for id_split, shift in roles[key].gap_pairs():
                pair = block[block["split"].isin([id_split, shift])]
                seeds_both = pair.groupby("seed")["split"].nunique()
                pair = pair[pair["seed"].isin(seeds_both[seeds_both == 2].index)]
                if pair.empty:
                    continue
                gaps = split_gap(pair[["seed", "split", "accuracy"]], id_split, shift, metrics=["accuracy"],
                                 by=["seed"])
                t = t_interval(gaps["accuracy"].to_numpy(np.float64), LEVEL)
                a = dists.get((*key, method, id_split, "accuracy"))
                b = dists.get((*key, method, shift, "accuracy"))
                low, high = quantiles(a - b) if a is not None and b is not None else (NAN, NAN)
                rows.append({"experiment": key[0], "profile": key[1], "method": method, "minuend": id_split,
                             "subtrahend": shift, "gap": t.estimate, "t_low": t.low, "t_high": t.high,
                             "t_half": (t.high - t.low) / 2, "boot_low": low, "boot_high": high,
                             "seeds": t.n})
    return pd.DataFrame(rows)
