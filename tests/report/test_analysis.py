"""The report's statistics: resampled AUC, split roles, seeds with different test images."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from benchmarks.evaluation import macro_ovr_auc, resampled_macro_auc
from benchmarks.report.build import generate
from benchmarks.report.splits import split_roles, stated

from .conftest import experiment_fields, write_run


def test_resampled_auc_matches_the_auc_of_each_resample():
    rng = np.random.default_rng(0)
    for k in (2, 3):
        y = np.arange(90) % k
        p = rng.dirichlet(np.ones(k), 90).round(1)  # rounded: many ties
        p /= p.sum(1, keepdims=True)
        idx = rng.integers(0, 90, (7, 90))
        expected = [macro_ovr_auc(y[i], p[i]).value for i in idx]
        np.testing.assert_allclose(resampled_macro_auc(y, p, idx, chunk=3), expected, rtol=0, atol=1e-12)
    assert np.isnan(resampled_macro_auc(np.zeros(5, dtype=int), rng.dirichlet(np.ones(3), 5), idx[:, :5] % 5)).all()


def test_split_roles_are_what_the_records_state():
    statement = stated(experiment_fields("fake_real"))
    roles = split_roles([statement, statement], ["external", "in_distribution"], "fake_real")
    assert roles.order == ("in_distribution", "external") and not roles.synthetic_bias
    assert roles.gap_pairs() == [("in_distribution", "external")]
    # names mean nothing: a record may call its in-distribution split anything
    odd = stated({"test_splits": ["b", "a"], "id_split": "a", "shift_splits": ["b"],
                  "experiment_tags": ["synthetic_bias"]})
    roles = split_roles([odd], ["a", "b"], "odd")
    assert roles.order == ("b", "a") and roles.id_split == "a" and roles.gap_pairs() == [("a", "b")]
    assert roles.synthetic_bias
    with pytest.raises(ValueError, match="2 different split roles"):
        split_roles([statement, odd], ["a"], "mixed")


def test_seeds_with_different_test_images_are_resampled_per_seed_and_still_paired(tmp_path):
    root = tmp_path / "records"
    for seed in (0, 1):  # a seed-dependent split: each seed tests other images (here, another number)
        n = 60 + 2 * seed
        write_run(root, "isnet", seed, {"in_distribution": 0.9, "external": 0.8}, experiment="fake_real", n=n)
        write_run(root, "standard", seed, {"in_distribution": 0.9, "external": 0.6}, experiment="fake_real", n=n)
    files, _ = generate(root, figures=False)
    paired = pd.read_csv(io.BytesIO(files["tables/paired_fake_real_smoke.csv"]))
    assert (paired["pairing"] == "paired").all()  # both methods: the same resamples of each seed's test set
    accuracy = pd.read_csv(io.BytesIO(files["tables/accuracy_fake_real_smoke.csv"]))
    assert not accuracy["images_shared_by_seeds"].any()
    text = files["README.md"].decode()
    assert "† marks splits whose test images depend on the seed" in text
    assert "in_distribution − external" in text


def test_a_classifier_at_chance_is_not_evidence_of_bias_robustness(tmp_path):
    root = tmp_path / "records"
    for seed in (0, 1):  # ISNet at chance on every split, in distribution too: it learnt nothing
        write_run(root, "isnet", seed, {"biased": 0.5, "unbiased": 0.5, "deceiving": 0.5}, n=60)
    files, _ = generate(root, figures=False)
    claims = pd.read_csv(io.BytesIO(files["tables/claims.csv"]))
    row = claims[(claims["claim"] == 1) & (claims["experiment"] == "fake_bias")].iloc[0]
    assert row["verdict"] == "not measured" and "ISNet did not learn" in row["evidence"]


def test_one_chance_rule_for_every_claim_that_compares_accuracies(tmp_path):
    root = tmp_path / "records"
    for seed in (0, 1):  # on `deceiving` ISNet and the standard classifier are both at chance; rrr falls for the bias
        write_run(root, "isnet", seed, {"biased": 0.95, "unbiased": 0.5, "deceiving": 0.5}, n=200)
        write_run(root, "standard", seed, {"biased": 0.95, "unbiased": 0.5, "deceiving": 0.5}, n=200)
        write_run(root, "rrr", seed, {"biased": 0.95, "unbiased": 0.5, "deceiving": 0.1}, n=200)
    files, _ = generate(root, figures=False)
    claims = pd.read_csv(io.BytesIO(files["tables/claims.csv"]))
    rows = claims[claims["experiment"] == "fake_bias"].set_index("claim")
    assert rows.loc[2, "verdict"] == "inconclusive" and "vs `standard`" in rows.loc[2, "evidence"]
    assert "both at chance" in rows.loc[2, "evidence"]
    assert rows.loc[3, "verdict"] == "holds" and "both at chance" not in rows.loc[3, "evidence"]
    assert rows.loc[1, "verdict"] == "does not hold"  # ISNet is not at chance on `biased`: a real gap
    assert files["README.md"].decode().count("A comparison in which both sides are at chance is inconclusive") == 3
