"""Claims and comparison tables read the same numbers as the tables above them."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest

from benchmarks.report.build import analysed, generate
from benchmarks.stats import bootstrap_p_value

from .conftest import write_run


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("comparisons") / "records"
    for seed in (0, 1, 2):  # three seeds right on different images: their ensemble is not their mean
        write_run(root, "isnet", seed, {"biased": 0.9, "unbiased": 0.75, "deceiving": 0.62}, n=200, inside=0.7)
        write_run(root, "standard", seed, {"biased": 0.9, "unbiased": 0.7, "deceiving": 0.55}, n=200, inside=0.5)
        write_run(root, "rrr", seed, {"biased": 0.9, "unbiased": 0.7, "deceiving": 0.6}, n=200, inside=0.6)
    files, _ = generate(root, figures=False)
    return root, files


def _csv(files, name) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(files[f"tables/{name}.csv"]))


def test_the_claim_is_the_difference_of_the_accuracy_table_cells(report):
    _, files = report
    accuracy = _csv(files, "accuracy_fake_bias_smoke").set_index(["method", "split"])["mean"]
    expected = accuracy[("isnet", "deceiving")] - accuracy[("standard", "deceiving")]
    paired = _csv(files, "paired_fake_bias_smoke").set_index(["split", "other"])
    assert paired.loc[("deceiving", "standard"), "accuracy_diff"] == pytest.approx(expected, abs=1e-6)
    claims = _csv(files, "claims")
    evidence = claims[(claims["claim"] == 2) & (claims["experiment"] == "fake_bias")]["evidence"].iloc[0]
    shown = float(re.search(r"deceiving vs `standard`: ([+-][0-9.]+) pp", evidence).group(1))
    assert shown == pytest.approx(round(100 * expected, 1))
    assert "3 vs 3 seeds" in evidence


def test_its_p_value_comes_from_the_resamples_behind_the_brackets(report):
    root, files = report
    _, _, _, _, analysis = analysed(root)
    key = ("fake_bias", "smoke")
    a = analysis.distributions[(*key, "isnet", "deceiving", "accuracy")]
    b = analysis.distributions[(*key, "standard", "deceiving", "accuracy")]
    paired = _csv(files, "paired_fake_bias_smoke").set_index(["split", "other"])
    assert paired.loc[("deceiving", "standard"), "accuracy_p"] == pytest.approx(bootstrap_p_value(a - b), rel=1e-5)
    low, high = np.quantile(a - b, [0.025, 0.975])
    assert paired.loc[("deceiving", "standard"), "accuracy_low"] == pytest.approx(low, rel=1e-5)
    assert paired.loc[("deceiving", "standard"), "accuracy_high"] == pytest.approx(high, rel=1e-5)
    accuracy = _csv(files, "accuracy_fake_bias_smoke").set_index(["method", "split"])
    bracket = accuracy.loc[("isnet", "deceiving")]  # the table's bracket is the same distribution's percentiles
    assert (bracket["boot_low"], bracket["boot_high"]) == pytest.approx(tuple(np.quantile(a, [0.025, 0.975])),
                                                                        rel=1e-5)


def test_every_table_metric_is_compared(report):
    _, files = report
    paired = _csv(files, "paired_fake_bias_smoke")
    for key in ("accuracy", "balanced_accuracy", "f1_macro", "auc_macro_ovr"):
        assert {f"{key}_diff", f"{key}_low", f"{key}_high", f"{key}_p", f"{key}_p_holm"} <= set(paired.columns)
        assert (paired[f"{key}_p_holm"] >= paired[f"{key}_p"] - 1e-12).all()


def test_the_background_claim_reads_the_explanation_table(report):
    _, files = report
    table = _csv(files, "explanations_relevance_inside_mask_fake_bias_smoke")
    lrp = table[table["explainer"] == "lrp"].set_index(["method", "split"])["mean"]
    paired = _csv(files, "background_relevance_paired_fake_bias_smoke").set_index(["split", "other"])
    row = paired.loc[("deceiving", "standard")]
    assert row["inside_ref"] == pytest.approx(lrp[("isnet", "deceiving")], abs=1e-6)
    assert row["diff"] == pytest.approx(lrp[("isnet", "deceiving")] - lrp[("standard", "deceiving")], abs=1e-6)
