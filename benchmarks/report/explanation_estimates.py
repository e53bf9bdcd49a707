"""Explanation scores of the selected runs: the mean over seeds of each explanation measure the
report shows (:func:`benchmarks.evaluation.explanation.shown_in`) per method, explainer and split,
the explainers that failed, and the per-image share of relevance inside the mask."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmarks.evaluation import explanation
from benchmarks.report.estimates import LEVEL, NAN, experiment_keys, methods_of, rows_of
from benchmarks.report.tidy import Collection
from benchmarks.stats import t_interval

EXPLAINER_ORDER = ("own", "lrp", "gradcam", "input_x_gradient")
#: the explainer that decides the background-relevance claim (the one the ISNet paper used)
CLAIM_EXPLAINER = "lrp"


def _explainer_rank(name: str) -> tuple[int, str]:
    return (EXPLAINER_ORDER.index(name) if name in EXPLAINER_ORDER else len(EXPLAINER_ORDER), name)


def explanation_tables(collection: Collection, selected: pd.DataFrame, roles: dict
                       ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mean over seeds (t-interval) of each explanation measure the report shows, per method,
    explainer and split, and the explainers that failed (with their reasons)."""
    rows, errors = [], []
    runs = selected[selected["status"] == "ok"].drop_duplicates("path")
    for key in experiment_keys(selected):
        for method in methods_of(selected, key):
            block = rows_of(runs, key, method).sort_values("seed", kind="stable")
            values: dict[tuple[str, str, str], list[float]] = {}
            for path in block["path"]:
                record = collection.record(path)
                for split, per in (record.explanations.get("splits") or {}).items():
                    for explainer, scores in per.items():
                        if "error" in scores:
                            errors.append({"experiment": key[0], "profile": key[1], "method": method,
                                           "explainer": explainer, "split": split, "error": scores["error"]})
                            continue
                        for measure in explanation.shown_in():
                            if measure.key in scores:
                                values.setdefault((split, explainer, measure.key), []).append(
                                    _nan(scores[measure.key]))
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


def faithful(explanations: pd.DataFrame, key: tuple[str, str], method: str, split: str,
             explainer: str = CLAIM_EXPLAINER) -> bool | None:
    """Whether ``method``'s heatmaps (by ``explainer``) on ``split`` account for the logits they
    explain by :data:`~benchmarks.evaluation.explanation.FAITHFULNESS_RULE`, read on the seed means
    of the explanation table; ``None`` when the records do not say (written before it was measured)."""
    e = explanations
    if e.empty:
        return None
    block = e[(e["experiment"] == key[0]) & (e["profile"] == key[1]) & (e["method"] == method)
              & (e["split"] == split) & (e["explainer"] == explainer)].set_index("metric")["mean"]
    if not {"sum_logit_correlation", "absorbed_share"} <= set(block.index):
        return None
    return explanation.meets_faithfulness_rule(block["sum_logit_correlation"], block["absorbed_share"])


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


def black_background_share(collection: Collection, selected: pd.DataFrame, key: tuple[str, str]) -> float | None:
    """The share of background pixels (outside the mask) that are exactly 0 in every channel,
    over the gallery images of ``key``'s selected runs (``None`` when there is no gallery).
    Where it is large, input x gradient is zero on the background by construction."""
    runs = selected[(selected["experiment"] == key[0]) & (selected["profile"] == key[1])
                    & (selected["status"] == "ok")].drop_duplicates("path").sort_values("path")
    black, total = 0, 0
    for path in runs["path"]:
        arrays = collection.arrays(path, "explanations.npz")
        for name in sorted(k for k in arrays if k.endswith("/gallery/images")):
            images = np.asarray(arrays[name], dtype=np.float32)
            background = np.asarray(arrays[name.replace("/images", "/masks")]) == 0
            zero = np.all(images == 0, axis=1)
            black += int((zero & background).sum())
            total += int(background.sum())
    return black / total if total else None
