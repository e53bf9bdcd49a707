"""Statistics of the selected runs: intervals, paired comparisons, bias gaps, explanation
scores and costs, as tidy DataFrames for the tables, the figures and the claims.

Conventions (the captions quote them):

* **Seeds**: every number is the mean over the seeds of the selected draw; the t-interval
  is :func:`benchmarks.stats.t_interval` over the per-seed values.
* **Test images**: the bootstrap interval is a stratified (by class) percentile bootstrap of
  that seed mean over test images, :data:`N_RESAMPLES` resamples, seeded per (experiment,
  profile, split) by :func:`boot_seed`. When all seeds tested the same images (identical
  labels), one resample of the images is applied to every seed; otherwise (test sets that
  depend on the seed) each seed's test set is resampled independently and ``shared`` is
  False (tables mark such cells).
* **Paired comparisons** of the reference method (ISNet) with each other method use the
  seeds both have. When they all tested the same images, each method's seeds are combined
  into one prediction per image by averaging their softmax probabilities (the seed
  ensemble), and one test is run on the ensembles; otherwise each seed is tested on its own
  and the median p-value over seeds is reported. McNemar (exact) for accuracy, DeLong for
  the macro one-vs-rest AUC, a paired stratified bootstrap for macro-F1; Holm-Bonferroni
  over all comparisons of one experiment and test (every split x every other method).
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmarks.evaluation import Scores, batched_metric, catalogue, split_gap, to_probabilities
from benchmarks.report.splits import SplitRoles
from benchmarks.report.tidy import Collection
from benchmarks.stats import (
    DEFAULT_RESAMPLES,
    delong_test,
    holm_bonferroni,
    mcnemar,
    paired_bootstrap,
    stratified_bootstrap_indices,
    t_interval,
)

N_RESAMPLES = DEFAULT_RESAMPLES
LEVEL = 0.95
ALPHA = 0.05
REFERENCE = "isnet"
EXPLAINER_ORDER = ("own", "lrp", "gradcam", "input_x_gradient")
EXPLANATION_METRICS = ("relevance_inside_mask", "pointing_game")
#: the explainer that decides the background-relevance claim (the one the ISNet paper used)
CLAIM_EXPLAINER = "lrp"
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


def _quantiles(dist: np.ndarray) -> tuple[float, float]:
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
        low, high = _quantiles(dist)
        out[metric.key] = Summary(t.estimate, t.low, t.high, low, high, len(values), runs.shared, values, dist)
    return out


# ------------------------------------------------------------------------------- the tables
@dataclass
class Analysis:
    """Everything the tables, figures and claims read."""

    collection: Collection
    roles: dict[tuple[str, str], SplitRoles]
    metrics: pd.DataFrame
    distributions: dict[tuple[str, str, str, str, str], np.ndarray]
    paired: pd.DataFrame
    gaps: pd.DataFrame
    explanations: pd.DataFrame
    explanation_errors: pd.DataFrame
    relevance: pd.DataFrame
    relevance_paired: pd.DataFrame
    timing: pd.DataFrame


def experiment_keys(selected: pd.DataFrame) -> list[tuple[str, str]]:
    ok = selected[selected["split"].notna()]
    return sorted({(e, p) for e, p in zip(ok["experiment"], ok["profile"], strict=True)})


def methods_of(selected: pd.DataFrame, key: tuple[str, str]) -> list[str]:
    block = selected[(selected["experiment"] == key[0]) & (selected["profile"] == key[1]) & selected["split"].notna()]
    return sorted(block["method"].unique())


def _rows(selected: pd.DataFrame, key: tuple[str, str], method: str) -> pd.DataFrame:
    return selected[(selected["experiment"] == key[0]) & (selected["profile"] == key[1])
                    & (selected["method"] == method)]


def metric_table(collection: Collection, selected: pd.DataFrame, roles: dict) -> tuple[pd.DataFrame, dict]:
    rows, dists = [], {}
    for key in experiment_keys(selected):
        for split in roles[key].order:
            cache = IndexCache()
            for method in methods_of(selected, key):
                block = _rows(selected, key, method)
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
                    })
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame = frame.sort_values(["experiment", "profile", "method"], kind="stable").reset_index(drop=True)
    return frame, dists


# ------------------------------------------------------------------------ paired comparisons
def _ensemble(runs: SplitRuns, seeds: Sequence[int]) -> np.ndarray:
    by_seed = runs.by_seed()
    return np.mean([to_probabilities(by_seed[s][1], "logits") for s in seeds], axis=0)


def _tests(y: np.ndarray, pa: np.ndarray, pb: np.ndarray, seed: int) -> dict[str, float]:
    pred_a, pred_b = np.argmax(pa, 1), np.argmax(pb, 1)
    acc = mcnemar(pred_a == y, pred_b == y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        auc = delong_test(y, pa, pb, level=LEVEL)
        f1 = paired_bootstrap(batched_metric("f1_macro", pa.shape[1]), y, pred_a, pred_b, n_resamples=N_RESAMPLES,
                              level=LEVEL, seed=seed, vectorized=True, name="macro-F1")
    return {
        "acc_ref": acc.estimate_a, "acc_other": acc.estimate_b, "acc_diff": acc.estimate, "mcnemar_p": acc.p_value,
        "auc_ref": auc.estimate_a, "auc_other": auc.estimate_b, "auc_diff": auc.estimate, "delong_p": auc.p_value,
        "f1_ref": f1.estimate_a, "f1_other": f1.estimate_b, "f1_diff": f1.estimate, "f1_low": f1.low,
        "f1_high": f1.high, "bootstrap_p": f1.p_value,
    }


def _combine(per_seed: list[dict[str, float]]) -> dict[str, float]:
    """Per-seed results -> means of the estimates, medians of the p-values."""
    out = {}
    for name in per_seed[0]:
        values = np.array([r[name] for r in per_seed], dtype=np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out[name] = float(np.nanmedian(values) if name.endswith("_p") else np.nanmean(values))
    return out


P_COLUMNS = ("mcnemar_p", "delong_p", "bootstrap_p")


def paired_table(collection: Collection, selected: pd.DataFrame, roles: dict, reference: str = REFERENCE
                 ) -> pd.DataFrame:
    rows = []
    for key in experiment_keys(selected):
        methods = methods_of(selected, key)
        if reference not in methods:
            continue
        ref_rows = _rows(selected, key, reference)
        for split in roles[key].order:
            ref = split_runs(collection, ref_rows, split)
            for other in methods:
                if other == reference:
                    continue
                oth = split_runs(collection, _rows(selected, key, other), split)
                common = sorted(set(ref.seeds) & set(oth.seeds))
                if not common:
                    continue
                ra, rb = ref.by_seed(), oth.by_seed()
                same = all(np.array_equal(ra[common[0]][0], ra[s][0]) and np.array_equal(ra[common[0]][0], rb[s][0])
                           for s in common)
                seed = boot_seed(*key, split, other)
                if same:
                    result = _tests(ra[common[0]][0], _ensemble(ref, common), _ensemble(oth, common), seed)
                    mode = f"seed ensemble ({len(common)} seeds)"
                else:
                    matched = [s for s in common if np.array_equal(ra[s][0], rb[s][0])]
                    if not matched:
                        continue
                    result = _combine([_tests(ra[s][0], to_probabilities(ra[s][1], "logits"),
                                              to_probabilities(rb[s][1], "logits"), seed) for s in matched])
                    mode = f"per seed, median p ({len(matched)} seeds)"
                rows.append({"experiment": key[0], "profile": key[1], "split": split, "reference": reference,
                             "other": other, "pairing": mode, "seeds": len(common),
                             "n": int(len(ra[common[0]][0])), **result})
    frame = pd.DataFrame(rows)
    return _holm(frame, P_COLUMNS)


def _holm(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    if frame.empty:
        return frame
    frame = frame.copy()
    for column in columns:
        frame[f"{column}_holm"] = NAN
        for _, block in frame.groupby(KEY, sort=True):
            frame.loc[block.index, f"{column}_holm"] = holm_bonferroni(block[column].to_numpy(np.float64))
    return frame


# ---------------------------------------------------------------------------------- bias gaps
def gap_table(selected: pd.DataFrame, roles: dict, dists: dict) -> pd.DataFrame:
    """In-distribution minus shifted accuracy per method: per-seed gaps (t-interval) and the
    bootstrap interval of the difference of seed means (the two splits resampled independently)."""
    rows = []
    ok = selected[(selected["status"] == "ok") & selected["split"].notna()]
    for key in experiment_keys(selected):
        for method in methods_of(selected, key):
            block = _rows(ok, key, method)
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
                low, high = _quantiles(a - b) if a is not None and b is not None else (NAN, NAN)
                rows.append({"experiment": key[0], "profile": key[1], "method": method, "minuend": id_split,
                             "subtrahend": shift, "gap": t.estimate, "t_low": t.low, "t_high": t.high,
                             "t_half": (t.high - t.low) / 2, "boot_low": low, "boot_high": high,
                             "seeds": t.n})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ explanations
def _explainer_rank(name: str) -> tuple[int, str]:
    return (EXPLAINER_ORDER.index(name) if name in EXPLAINER_ORDER else len(EXPLAINER_ORDER), name)


def explanation_tables(collection: Collection, selected: pd.DataFrame, roles: dict
                       ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mean over seeds (t-interval) of each explanation metric per method, explainer and split,
    and the explainers that failed (with their reasons)."""
    rows, errors = [], []
    runs = selected[selected["status"] == "ok"].drop_duplicates("path")
    for key in experiment_keys(selected):
        for method in methods_of(selected, key):
            block = _rows(runs, key, method).sort_values("seed", kind="stable")
            values: dict[tuple[str, str, str], list[float]] = {}
            for path in block["path"]:
                record = collection.record(path)
                for split, per in (record.explanations.get("splits") or {}).items():
                    for explainer, scores in per.items():
                        if "error" in scores:
                            errors.append({"experiment": key[0], "profile": key[1], "method": method,
                                           "explainer": explainer, "split": split, "error": scores["error"]})
                            continue
                        for metric in EXPLANATION_METRICS:
                            values.setdefault((split, explainer, metric), []).append(_nan(scores.get(metric)))
            for (split, explainer, metric), vals in values.items():
                t = t_interval(vals, LEVEL)
                rows.append({"experiment": key[0], "profile": key[1], "method": method, "explainer": explainer,
                             "split": split, "metric": metric, "mean": t.estimate, "t_low": t.low,
                             "t_high": t.high, "t_half": (t.high - t.low) / 2, "seeds": t.n})
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["_e"] = frame["explainer"].map(_explainer_rank)
        frame["_s"] = [roles[(e, p)].order.index(s) if s in roles[(e, p)].order else 99
                       for e, p, s in zip(frame["experiment"], frame["profile"], frame["split"], strict=True)]
        frame = frame.sort_values(["experiment", "profile", "method", "_e", "_s", "metric"], kind="stable")
        frame = frame.drop(columns=["_e", "_s"]).reset_index(drop=True)
    err = pd.DataFrame(errors, columns=["experiment", "profile", "method", "explainer", "split", "error"])
    err = err.drop_duplicates(["experiment", "profile", "method", "explainer", "error"])
    return frame, err.reset_index(drop=True)


def _nan(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return NAN


def relevance_per_image(collection: Collection, selected: pd.DataFrame) -> pd.DataFrame:
    """Per-image share of positive relevance inside the mask (and its complement, the
    background share) of every selected run, split and explainer."""
    rows = []
    runs = selected[selected["status"] == "ok"].drop_duplicates("path").sort_values(
        ["experiment", "profile", "method", "seed"], kind="stable")
    for exp, profile, method, seed, path in zip(runs["experiment"], runs["profile"], runs["method"], runs["seed"],
                                                runs["path"], strict=True):
        arrays = collection.arrays(path, "explanations.npz")
        for name in sorted(arrays):
            parts = name.split("/")
            if len(parts) != 3 or parts[2] != "relevance_inside_mask":
                continue
            values = arrays[name].astype(np.float64)
            rows.append(pd.DataFrame({
                "experiment": exp, "profile": profile, "method": method, "seed": int(seed), "split": parts[0],
                "explainer": parts[1], "image": np.arange(len(values)), "relevance_inside_mask": values,
                "background_share": 1.0 - values,
            }))
    if not rows:
        return pd.DataFrame(columns=["experiment", "profile", "method", "seed", "split", "explainer", "image",
                                     "relevance_inside_mask", "background_share"])
    return pd.concat(rows, ignore_index=True)


def _mean_metric(y: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.asarray(v, dtype=np.float64).mean(axis=-1)


def relevance_paired(collection: Collection, selected: pd.DataFrame, roles: dict, per_image: pd.DataFrame,
                     explainer: str = CLAIM_EXPLAINER, reference: str = REFERENCE) -> pd.DataFrame:
    """ISNet against each other method: mean share of positive relevance inside the mask
    (``explainer``) on the same explained images; paired bootstrap of the difference of
    means, combined over seeds like :func:`paired_table`, Holm over the experiment."""
    rows = []
    data = per_image[per_image["explainer"] == explainer]
    for key in experiment_keys(selected):
        block = data[(data["experiment"] == key[0]) & (data["profile"] == key[1])]
        if reference not in set(block["method"]):
            continue
        for split in roles[key].order:
            ref_runs = split_runs(collection, _rows(selected, key, reference), split)
            ref = block[(block["method"] == reference) & (block["split"] == split)]
            for other in sorted(set(block["method"]) - {reference}):
                oth = block[(block["method"] == other) & (block["split"] == split)]
                common = sorted(set(ref["seed"]) & set(oth["seed"]))
                if not common:
                    continue
                oth_runs = split_runs(collection, _rows(selected, key, other), split)
                same = ref_runs.shared and oth_runs.shared and bool(ref_runs.labels) and bool(oth_runs.labels) \
                    and np.array_equal(ref_runs.labels[0], oth_runs.labels[0])
                seed = boot_seed(*key, split, other, explainer)
                va = ref.pivot(index="image", columns="seed", values="relevance_inside_mask")
                vb = oth.pivot(index="image", columns="seed", values="relevance_inside_mask")
                if same and len(va) == len(vb):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)
                        a = np.nanmean(va[common].to_numpy(), axis=1)
                        b = np.nanmean(vb[common].to_numpy(), axis=1)
                    result = _relevance_test(a, b, seed)
                    mode = f"seed ensemble ({len(common)} seeds)"
                else:
                    parts = [_relevance_test(va[s].to_numpy(), vb[s].to_numpy(), seed) for s in common
                             if len(va[s]) == len(vb[s])]
                    if not parts:
                        continue
                    result = _combine(parts)
                    mode = f"per seed, median p ({len(parts)} seeds)"
                rows.append({"experiment": key[0], "profile": key[1], "split": split, "explainer": explainer,
                             "reference": reference, "other": other, "pairing": mode, **result})
    return _holm(pd.DataFrame(rows), ("bootstrap_p",))


def _relevance_test(a: np.ndarray, b: np.ndarray, seed: int) -> dict[str, float]:
    ok = ~np.isnan(a) & ~np.isnan(b)
    if ok.sum() < 2:
        return {"inside_ref": NAN, "inside_other": NAN, "diff": NAN, "low": NAN, "high": NAN, "bootstrap_p": NAN,
                "images": float(ok.sum())}
    zeros = np.zeros(int(ok.sum()), dtype=np.int64)
    test = paired_bootstrap(_mean_metric, zeros, a[ok], b[ok], strata=zeros, n_resamples=N_RESAMPLES, level=LEVEL,
                            seed=seed, vectorized=True, name="mean relevance inside the mask")
    return {"inside_ref": test.estimate_a, "inside_other": test.estimate_b, "diff": test.estimate, "low": test.low,
            "high": test.high, "bootstrap_p": test.p_value, "images": float(ok.sum())}


# ------------------------------------------------------------------------------------- costs
def timing_table(selected: pd.DataFrame) -> pd.DataFrame:
    """Training seconds per run and inference milliseconds per test image (all splits of a
    run pooled), mean over seeds with t-intervals, and the devices they were measured on."""
    rows = []
    ok = selected[(selected["status"] == "ok") & selected["split"].notna()]
    for key in experiment_keys(selected):
        for method in methods_of(selected, key):
            block = _rows(ok, key, method)
            per_run = block.groupby("seed", sort=True).agg(
                train=("train_seconds", "first"), infer=("inference_seconds", "sum"), n=("n", "sum"))
            train = t_interval(per_run["train"].to_numpy(np.float64), LEVEL)
            infer = t_interval((1000 * per_run["infer"] / per_run["n"]).to_numpy(np.float64), LEVEL)
            rows.append({"experiment": key[0], "profile": key[1], "method": method, "seeds": train.n,
                         "train_seconds": train.estimate, "train_t_half": (train.high - train.low) / 2,
                         "inference_ms_per_image": infer.estimate,
                         "inference_t_half": (infer.high - infer.low) / 2,
                         "per_run_inference_ms": tuple(float(v) for v in 1000 * per_run["infer"] / per_run["n"]),
                         "devices": "; ".join(sorted(set(block["device"].dropna().astype(str))))})
    return pd.DataFrame(rows)


def analyse(collection: Collection, selected: pd.DataFrame, roles: dict, progress: Callable[[str], None] | None = None
            ) -> Analysis:
    say = progress or (lambda _: None)
    say("intervals")
    metrics, dists = metric_table(collection, selected, roles)
    say("paired comparisons")
    paired = paired_table(collection, selected, roles)
    gaps = gap_table(selected, roles, dists)
    say("explanations")
    explanations, errors = explanation_tables(collection, selected, roles)
    per_image = relevance_per_image(collection, selected)
    rel_paired = relevance_paired(collection, selected, roles, per_image)
    timing = timing_table(selected)
    return Analysis(collection, roles, metrics, dists, paired, gaps, explanations, errors, per_image, rel_paired,
                    timing)
