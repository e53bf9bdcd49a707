"""Paired comparisons of the reference method (the one whose records state role ``reference``:
ISNet) with each other method on the same test images: accuracy, AUC and macro-F1 tests, and
the share of relevance inside the mask.

The seeds both methods finished are used. When they all tested the same images, each method's
seeds are combined into one prediction per image by averaging their softmax probabilities (the
seed ensemble), and one test is run on the ensembles; otherwise each seed is tested on its own
and the median p-value over seeds is reported. McNemar (exact) for accuracy, DeLong for the
macro one-vs-rest AUC, a paired stratified bootstrap for macro-F1; Holm-Bonferroni over all
comparisons of one experiment and test (every split x every other method).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from benchmarks.evaluation import batched_metric, to_probabilities
from benchmarks.report.estimates import (
    KEY,
    LEVEL,
    N_RESAMPLES,
    NAN,
    SplitRuns,
    boot_seed,
    experiment_keys,
    methods_of,
    rows_of,
    split_runs,
)
from benchmarks.report.explanations import CLAIM_EXPLAINER
from benchmarks.report.roles import MethodRoles
from benchmarks.report.tidy import Collection
from benchmarks.stats import delong_test, holm_bonferroni, mcnemar, paired_bootstrap


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


def paired_table(collection: Collection, selected: pd.DataFrame, roles: dict, cast: dict[tuple[str, str], MethodRoles]
                 ) -> pd.DataFrame:
    rows = []
    for key in experiment_keys(selected):
        methods = methods_of(selected, key)
        reference = cast[key].reference
        if reference is None:
            continue
        ref_rows = rows_of(selected, key, reference)
        for split in roles[key].order:
            ref = split_runs(collection, ref_rows, split)
            for other in methods:
                if other == reference:
                    continue
                oth = split_runs(collection, rows_of(selected, key, other), split)
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


# ------------------------------------------------------------------------------ relevance
def _mean_metric(y: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.asarray(v, dtype=np.float64).mean(axis=-1)


def relevance_paired(collection: Collection, selected: pd.DataFrame, roles: dict,
                     cast: dict[tuple[str, str], MethodRoles], per_image: pd.DataFrame,
                     explainer: str = CLAIM_EXPLAINER) -> pd.DataFrame:
    """The reference method against each other method: mean share of positive relevance inside
    the mask (``explainer``) on the same explained images; paired bootstrap of the difference of
    means, combined over seeds like :func:`paired_table`, Holm over the experiment."""
    rows = []
    data = per_image[per_image["explainer"] == explainer]
    for key in experiment_keys(selected):
        block = data[(data["experiment"] == key[0]) & (data["profile"] == key[1])]
        reference = cast[key].reference
        if reference not in set(block["method"]):
            continue
        for split in roles[key].order:
            ref_runs = split_runs(collection, rows_of(selected, key, reference), split)
            ref = block[(block["method"] == reference) & (block["split"] == split)]
            for other in sorted(set(block["method"]) - {reference}):
                oth = block[(block["method"] == other) & (block["split"] == split)]
                common = sorted(set(ref["seed"]) & set(oth["seed"]))
                if not common:
                    continue
                oth_runs = split_runs(collection, rows_of(selected, key, other), split)
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
