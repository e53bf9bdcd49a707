"""Comparisons of the reference method (the one whose records state role ``reference``: ISNet)
with each other method, on the same numbers the tables show.

One estimator for every comparison (:data:`ESTIMATOR`): the effect is the difference of the two
methods' seed means (exactly the difference of their cells in a table); its interval and
p-value come from the bootstrap resamples of the test images behind the tables' brackets, the
same resamples for both methods where they tested the same images (a paired bootstrap), the
p-value two-sided by inverting the percentile interval, Holm-Bonferroni adjusted over every
comparison of one experiment (all splits x all other methods), per metric.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from benchmarks.evaluation import catalogue
from benchmarks.report.estimates import (
    KEY,
    LEVEL,
    N_RESAMPLES,
    NAN,
    boot_seed,
    experiment_keys,
    methods_of,
    quantiles,
    rows_of,
    split_runs,
)
from benchmarks.report.explanation_estimates import CLAIM_EXPLAINER
from benchmarks.report.roles import MethodRoles
from benchmarks.report.tidy import Collection
from benchmarks.stats import bootstrap_p_value, holm_bonferroni

ESTIMATOR = (
    "the difference of the two methods' seed means (exactly the difference of their cells in the tables); its "
    f"{LEVEL:.0%} interval and p-value come from the {N_RESAMPLES} bootstrap resamples of the test images behind the "
    "tables' brackets, the same resamples for both methods where they tested the same images (a paired bootstrap); "
    "p two-sided, by inverting the percentile interval; Holm-Bonferroni adjusted over every comparison of one "
    "experiment (all splits × all other methods)"
)


def difference(a: float, b: float, dist_a: np.ndarray, dist_b: np.ndarray) -> dict[str, float]:
    """``a - b`` with the percentile interval and the two-sided p-value of its bootstrap
    distribution ``dist_a - dist_b``."""
    d = np.asarray(dist_a, dtype=np.float64) - np.asarray(dist_b, dtype=np.float64)
    low, high = quantiles(d)
    return {"diff": a - b, "low": low, "high": high, "p": bootstrap_p_value(d)}


def holm(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Add ``<column>_holm``: each p-value column Holm-adjusted within each experiment."""
    if frame.empty:
        return frame
    frame = frame.copy()
    for column in columns:
        frame[f"{column}_holm"] = NAN
        for _, block in frame.groupby(KEY, sort=True):
            frame.loc[block.index, f"{column}_holm"] = holm_bonferroni(block[column].to_numpy(np.float64))
    return frame


# ------------------------------------------------------------------------------- the metrics
def paired_table(selected: pd.DataFrame, roles: dict, cast: dict[tuple[str, str], MethodRoles],
                 metrics: pd.DataFrame, dists: dict) -> pd.DataFrame:
    """Per experiment, split and other method: for every resampled catalogue metric, the
    reference's seed mean, the other's, their difference with its bootstrap interval and p."""
    rows = []
    for key in experiment_keys(selected):
        reference = cast[key].reference
        if reference is None:
            continue
        block = metrics[(metrics["experiment"] == key[0]) & (metrics["profile"] == key[1])].set_index(
            ["method", "split", "metric"])
        present = set(block.index)
        for split in roles[key].order:
            primary = (split, catalogue.PRIMARY)
            for other in methods_of(selected, key):
                if other == reference or not {(reference, *primary), (other, *primary)} <= present:
                    continue
                ref, oth = block.loc[(reference, *primary)], block.loc[(other, *primary)]
                row = {"experiment": key[0], "profile": key[1], "split": split, "reference": reference, "other": other,
                       "seeds_ref": int(ref["seeds"]), "seeds_other": int(oth["seeds"]),
                       "pairing": "paired" if ref["resamples"] == oth["resamples"] else "independent resamples"}
                for metric in catalogue.resampled():
                    a, b = block.loc[(reference, split, metric.key)], block.loc[(other, split, metric.key)]
                    result = difference(a["mean"], b["mean"], dists[(*key, reference, split, metric.key)],
                                        dists[(*key, other, split, metric.key)])
                    row.update({f"{metric.key}_ref": a["mean"], f"{metric.key}_other": b["mean"],
                                **{f"{metric.key}_{k}": v for k, v in result.items()}})
                rows.append(row)
    return holm(pd.DataFrame(rows), [f"{m.key}_p" for m in catalogue.resampled()])


# ------------------------------------------------------------------------------ relevance
def _relevance(block: pd.DataFrame, indices: np.ndarray) -> tuple[float, np.ndarray, int] | None:
    """Mean over seeds of each seed's mean relevance inside the mask over its explained images
    (the explanation table's number), its bootstrap distribution over ``indices``, and the
    number of seeds; ``None`` when the seeds explained different numbers of images."""
    wide = block.pivot(index="image", columns="seed", values="relevance_inside_mask")
    values = wide.to_numpy(np.float64).T  # [seeds, images]
    if values.shape[1] != indices.shape[1] or np.isnan(values).all(axis=1).any():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        point = float(np.mean(np.nanmean(values, axis=1)))
        dist = np.mean([np.nanmean(v[indices], axis=1) for v in values], axis=0)
    return point, dist, values.shape[0]


def relevance_paired(collection: Collection, selected: pd.DataFrame, roles: dict,
                     cast: dict[tuple[str, str], MethodRoles], per_image: pd.DataFrame,
                     explainer: str = CLAIM_EXPLAINER) -> pd.DataFrame:
    """The reference method against each other method: share of positive relevance inside the
    mask (``explainer``), the difference of seed means with its bootstrap interval and p over the
    explained images (one resample of the images for every method and seed)."""
    rows = []
    data = per_image[per_image["explainer"] == explainer]
    for key in experiment_keys(selected):
        block = data[(data["experiment"] == key[0]) & (data["profile"] == key[1])]
        reference = cast[key].reference
        if reference not in set(block["method"]):
            continue
        for split in roles[key].order:
            here = block[block["split"] == split]
            n = here.groupby(["method", "seed"])["image"].count()
            if here.empty or n.nunique() != 1:
                continue
            rng = np.random.default_rng(boot_seed(*key, split, explainer))
            indices = rng.integers(0, int(n.iloc[0]), (N_RESAMPLES, int(n.iloc[0])))
            ref = _relevance(here[here["method"] == reference], indices)
            ref_runs = split_runs(collection, rows_of(selected, key, reference), split)
            for other in sorted(set(here["method"]) - {reference}):
                oth = _relevance(here[here["method"] == other], indices)
                if ref is None or oth is None:
                    continue
                oth_runs = split_runs(collection, rows_of(selected, key, other), split)
                same = ref_runs.shared and oth_runs.shared and bool(ref_runs.labels) and bool(oth_runs.labels) \
                    and np.array_equal(ref_runs.labels[0], oth_runs.labels[0])
                rows.append({"experiment": key[0], "profile": key[1], "split": split, "explainer": explainer,
                             "reference": reference, "other": other, "seeds_ref": ref[2], "seeds_other": oth[2],
                             "images": int(n.iloc[0]), "pairing": "paired" if same else "independent images",
                             "inside_ref": ref[0], "inside_other": oth[0],
                             **difference(ref[0], oth[0], ref[1], oth[1])})
    return holm(pd.DataFrame(rows), ["p"])
