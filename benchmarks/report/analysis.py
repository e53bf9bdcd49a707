"""Statistics of the selected runs, as tidy DataFrames for the tables, the figures and the
claims: :mod:`~benchmarks.report.estimates` (intervals, bias gaps),
:mod:`~benchmarks.report.comparisons` (paired tests against ISNet),
:mod:`~benchmarks.report.explanation_estimates` (explanation scores),
:mod:`~benchmarks.report.behaviour_estimates` (counterfactual background tests),
:mod:`~benchmarks.report.convergence_diagnostic` (learning curves, convergence) and the costs below."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmarks.report import behaviour_estimates, convergence_diagnostic
from benchmarks.report.comparisons import paired_table, relevance_paired
from benchmarks.report.estimates import LEVEL, experiment_keys, gap_table, methods_of, metric_table, rows_of
from benchmarks.report.explanation_estimates import explanation_tables, relevance_per_image
from benchmarks.report.roles import MethodRoles
from benchmarks.report.splits import SplitRoles
from benchmarks.report.tidy import Collection
from benchmarks.stats import t_interval


@dataclass
class Analysis:
    """Everything the tables, figures and claims read."""

    collection: Collection
    selected: pd.DataFrame
    roles: dict[tuple[str, str], SplitRoles]
    cast: dict[tuple[str, str], MethodRoles]
    metrics: pd.DataFrame
    distributions: dict[tuple[str, str, str, str, str], np.ndarray]
    paired: pd.DataFrame
    gaps: pd.DataFrame
    explanations: pd.DataFrame
    explanation_errors: pd.DataFrame
    relevance: pd.DataFrame
    relevance_paired: pd.DataFrame
    timing: pd.DataFrame
    curves: pd.DataFrame
    convergence: pd.DataFrame
    behaviour: pd.DataFrame
    behaviour_paired: pd.DataFrame


def timing_table(selected: pd.DataFrame) -> pd.DataFrame:
    """Training seconds per run and inference milliseconds per test image (all splits of a
    run pooled), mean over seeds with t-intervals, and the devices they were measured on."""
    rows = []
    ok = selected[(selected["status"] == "ok") & selected["split"].notna()]
    for key in experiment_keys(selected):
        for method in methods_of(selected, key):
            block = rows_of(ok, key, method)
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


def analyse(collection: Collection, selected: pd.DataFrame, roles: dict[tuple[str, str], SplitRoles],
            cast: dict[tuple[str, str], MethodRoles], progress: Callable[[str], None] | None = None) -> Analysis:
    """The statistics of the selected runs; ``roles``: each experiment's split roles, ``cast``:
    the role of each of its methods (both as the records state them)."""
    say = progress or (lambda _: None)
    say("intervals")
    metrics, dists = metric_table(collection, selected, roles)
    say("paired comparisons")
    paired = paired_table(selected, roles, cast, metrics, dists)
    gaps = gap_table(selected, roles, dists)
    say("explanations")
    explanations, errors = explanation_tables(collection, selected, roles)
    per_image = relevance_per_image(collection, selected)
    rel_paired = relevance_paired(collection, selected, roles, cast, per_image)
    timing = timing_table(selected)
    say("behaviour under changed backgrounds")
    values = behaviour_estimates.collect_values(collection, selected)
    behaviour_rows, behaviour_dists = behaviour_estimates.behaviour_table(values, selected)
    behaviour_vs = behaviour_estimates.behaviour_paired(behaviour_rows, behaviour_dists, selected, cast)
    say("convergence")
    return Analysis(collection, selected, roles, cast, metrics, dists, paired, gaps, explanations, errors, per_image,
                    rel_paired, timing, convergence_diagnostic.curves(collection, selected),
                    convergence_diagnostic.runs_table(collection, selected), behaviour_rows, behaviour_vs)
