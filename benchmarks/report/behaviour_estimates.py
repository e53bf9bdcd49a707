"""What the selected models do when the background changes: the counterfactual tests of every
run (``counterfactuals.npz``) grouped into tests, with intervals, and ISNet against every other
method on each experiment's headline behaviour measure.

Tests per test split (each image's measure averaged over the copies a test pools):

* ``rerendered, other training source``: the same object re-rendered in the style of every
  training source (hospital) other than its own; ``rerendered, unseen source``: in the style
  of every source training never saw (external hospitals);
* a re-rendering with no source (biased MNIST's ``deceiving`` and ``unbiased`` renderings of
  the same digits) is a test of its own;
* the composites ``only_foreground``, ``mixed_same``, ``mixed_random``, each a test, and
  ``mixed_same − mixed_random``, the gap in accuracy between them.

Intervals follow the rest of the report: the seed mean, a Student-t interval over seeds, and a
stratified (by class) bootstrap of the test images, the same resamples for every method.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmarks.evaluation.behaviour import MEASURES, per_image
from benchmarks.report.comparisons import difference, holm
from benchmarks.report.estimates import LEVEL, N_RESAMPLES, boot_seed, experiment_keys, methods_of, quantiles
from benchmarks.report.roles import MethodRoles
from benchmarks.report.tidy import Collection
from benchmarks.stats import stratified_bootstrap_indices, t_interval

OTHER_TRAINING = "rerendered, other training source"
UNSEEN = "rerendered, unseen source"
GAP = "mixed_same − mixed_random"
COMPOSITES = ("only_foreground", "mixed_same", "mixed_random")
#: which measure of which test an experiment's behaviour is judged by (claim 6), in order of preference
HEADLINE = (
    (OTHER_TRAINING, "follows_background"),
    ("deceiving", "flip_rate"),
    (GAP, "accuracy"),
)
HEADLINE_RULE = (
    "the headline behaviour measure of an experiment is, where its generator re-renders the same patients in other "
    "hospitals' styles, the follows-background rate under re-rendering by another training hospital; where it "
    "renders the same digits with another class's marker (biased MNIST), the flip rate between the biased and the "
    "deceiving rendering; elsewhere the gap in accuracy between mixed-same and mixed-random composites. Lower is "
    "better: a model that ignores the background scores 0 on each"
)


@dataclass(frozen=True)
class SeedValues:
    """One method's per-image values of one measure of one test on one split, by seed."""

    seeds: tuple[int, ...]
    values: tuple[np.ndarray, ...]
    labels: np.ndarray


def _tests(arrays: dict[str, np.ndarray], split: str, labels: np.ndarray, groups: np.ndarray,
           intact: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Per test of one run and split: each measure per image (NaN where undefined)."""
    names = sorted({k.split("/")[1] for k in arrays if k.startswith(f"{split}/")})
    pooled: dict[str, dict[str, list[np.ndarray]]] = {}
    for name in names:
        copy = {field: arrays[f"{split}/{name}/{field}"] for field in ("kind", "source", "pred", "background_class")}
        kind, source = str(copy["kind"]), int(copy["source"])
        points_to = copy["background_class"].astype(np.int64)
        measures = per_image(copy["pred"], intact, labels, points_to)
        if kind == "rerendered" and source >= 0:
            foreign = groups != source  # the image's own source re-renders it unchanged: left out
            test = OTHER_TRAINING if (points_to >= 0).any() else UNSEEN
            measures = {k: np.where(foreign, v, np.nan) for k, v in measures.items()}
        else:
            test = name if kind == "rerendered" else kind
        for key, values in measures.items():
            pooled.setdefault(test, {}).setdefault(key, []).append(values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # images no copy of a test defines
        return {test: {k: np.nanmean(np.stack(v), axis=0) for k, v in per.items()} for test, per in pooled.items()}


def collect_values(collection: Collection, selected: pd.DataFrame) -> dict[tuple, SeedValues]:
    """``(experiment, profile, method, split, test, measure) -> SeedValues`` of every selected,
    finished run with counterfactual records; the gap test is added where both mixed tests exist."""
    found: dict[tuple, tuple[list[int], list[np.ndarray], np.ndarray]] = {}
    runs = selected[(selected["status"] == "ok")].drop_duplicates("path").sort_values(
        ["experiment", "profile", "method", "seed"], kind="stable")
    for exp, profile, method, seed, path in zip(runs["experiment"], runs["profile"], runs["method"], runs["seed"],
                                                runs["path"], strict=True):
        arrays = collection.arrays(path, "counterfactuals.npz")
        for split in sorted({k.split("/")[0] for k in arrays}):
            pred = collection.arrays(path, f"predictions/{split}.npz")
            if not pred:
                continue
            labels = pred["labels"].astype(np.int64)
            intact = pred["logits"].argmax(1)
            tests = _tests(arrays, split, labels, pred["groups"].astype(np.int64), intact)
            if {"mixed_same", "mixed_random"} <= set(tests):
                tests[GAP] = {"accuracy": tests["mixed_same"]["accuracy"] - tests["mixed_random"]["accuracy"]}
            for test, measures in tests.items():
                for key, values in measures.items():
                    seeds, vals, _ = found.setdefault((exp, profile, method, split, test, key), ([], [], labels))
                    seeds.append(int(seed))
                    vals.append(values)
    return {k: SeedValues(tuple(s), tuple(v), y) for k, (s, v, y) in found.items()}


def _resamples(labels: np.ndarray, key: tuple[str, str], split: str) -> np.ndarray:
    return stratified_bootstrap_indices(labels, N_RESAMPLES, np.random.default_rng(boot_seed(*key, split, "behaviour")))


def _seed_mean(v: SeedValues, indices: np.ndarray | None = None) -> np.ndarray | float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if indices is None:
            return float(np.mean([np.nanmean(x) for x in v.values]))
        return np.mean([np.nanmean(x[indices], axis=1) for x in v.values], axis=0)


def behaviour_table(values: dict[tuple, SeedValues], selected: pd.DataFrame
                    ) -> tuple[pd.DataFrame, dict[tuple, np.ndarray]]:
    """Per experiment, method, split, test and measure: the seed mean, its t-interval over
    seeds, its bootstrap interval over test images, the images where it is defined; and the
    bootstrap distributions (for the comparisons)."""
    rows, dists = [], {}
    cache: dict[tuple, np.ndarray] = {}
    for (exp, profile, method, split, test, measure), v in sorted(values.items()):
        resample_key = (exp, profile, split, v.labels.tobytes())
        if resample_key not in cache:
            cache[resample_key] = _resamples(v.labels, (exp, profile), split)
        dist = _seed_mean(v, cache[resample_key])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            per_seed = [float(np.nanmean(x)) for x in v.values]
        t = t_interval(per_seed, LEVEL)
        low, high = quantiles(np.asarray(dist, dtype=np.float64))
        defined = int(np.mean([np.isfinite(x).sum() for x in v.values]))
        dists[(exp, profile, method, split, test, measure)] = np.asarray(dist, dtype=np.float64)
        rows.append({"experiment": exp, "profile": profile, "method": method, "split": split, "test": test,
                     "measure": measure, "mean": t.estimate, "t_low": t.low, "t_high": t.high,
                     "t_half": (t.high - t.low) / 2, "boot_low": low, "boot_high": high, "seeds": t.n,
                     "images": defined})
    frame = pd.DataFrame(rows, columns=["experiment", "profile", "method", "split", "test", "measure", "mean", "t_low",
                                        "t_high", "t_half", "boot_low", "boot_high", "seeds", "images"])
    return frame, dists


def headline(table: pd.DataFrame, key: tuple[str, str]) -> tuple[str, str] | None:
    """The (test, measure) an experiment's behaviour is judged by (:data:`HEADLINE_RULE`)."""
    block = table[(table["experiment"] == key[0]) & (table["profile"] == key[1])]
    present = set(zip(block["test"], block["measure"], strict=True))
    return next((h for h in HEADLINE if h in present), None)


def behaviour_paired(table: pd.DataFrame, dists: dict[tuple, np.ndarray], selected: pd.DataFrame,
                     cast: dict[tuple[str, str], MethodRoles]) -> pd.DataFrame:
    """The reference method against every other method on each experiment's headline measure,
    per split: the difference of the seed means, its bootstrap interval and two-sided p (the same
    image resamples for both methods), Holm-adjusted over the experiment's comparisons."""
    rows = []
    for key in experiment_keys(selected):
        chosen = headline(table, key)
        reference = cast[key].reference if key in cast else None
        if chosen is None or reference is None:
            continue
        test, measure = chosen
        block = table[(table["experiment"] == key[0]) & (table["profile"] == key[1]) & (table["test"] == test)
                      & (table["measure"] == measure)]
        for split in sorted(set(block["split"])):
            here = block[block["split"] == split].set_index("method")
            if reference not in here.index:
                continue
            for other in methods_of(selected, key):
                if other == reference or other not in here.index:
                    continue
                a, b = here.loc[reference], here.loc[other]
                result = difference(a["mean"], b["mean"], dists[(*key, reference, split, test, measure)],
                                    dists[(*key, other, split, test, measure)])
                rows.append({"experiment": key[0], "profile": key[1], "split": split, "test": test,
                             "measure": measure, "reference": reference, "other": other,
                             "seeds_ref": int(a["seeds"]), "seeds_other": int(b["seeds"]),
                             "ref": a["mean"], "value_other": b["mean"], **result})
    frame = pd.DataFrame(rows)
    return holm(frame, ["p"]) if not frame.empty else frame


def measure_name(key: str) -> str:
    return next((m.name for m in MEASURES if m.key == key), key)

