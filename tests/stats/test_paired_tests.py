"""Paired tests: DeLong by hand, McNemar on a published table, paired bootstrap, Holm."""

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import f1_score, roc_auc_score

from benchmarks.evaluation import batched_metric, to_probabilities
from benchmarks.stats import (
    PairedTest,
    delong_test,
    holm_adjust,
    holm_bonferroni,
    mcnemar,
    mcnemar_from_counts,
    paired_bootstrap,
)
from benchmarks.stats.paired import _delong_components


# ------------------------------------------------------------------------------- DeLong
def _delong_by_definition(y, a, b):
    """DeLong, DeLong & Clarke-Pearson (1988) written out: placement values from the kernel
    psi(x, y) = 1 if x > y, 1/2 if x == y, 0 otherwise, then S10 / m + S01 / n."""
    psi = lambda x, z: 1.0 if x > z else 0.5 if x == z else 0.0  # noqa: E731
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    m, n = len(pos), len(neg)
    v10 = np.array([[np.mean([psi(s[i], s[j]) for j in neg]) for i in pos] for s in (a, b)])
    v01 = np.array([[np.mean([psi(s[i], s[j]) for i in pos]) for j in neg] for s in (a, b)])
    s10, s01 = np.cov(v10), np.cov(v01)
    cov = s10 / m + s01 / n
    auc = v10.mean(1)
    return auc, cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]


def test_delong_hand_computed_example():
    # 3 positives, 3 negatives (a tie in model B). By hand:
    #   A: V10 = (1, 1, 2/3), V01 = (2/3, 1, 1)         AUC_A = 8/9
    #   B: V10 = (2/3, 1/2, 2/3), V01 = (5/6, 0, 1)     AUC_B = 11/18
    #   S10 = [[1/27, -1/108], [-1/108, 1/108]], S01 = [[1/27, -1/27], [-1/27, 31/108]]
    #   Var(A - B) = (1/27 + 1/108 + 2/108) / 3 + (1/27 + 31/108 + 2/27) / 3 = 25/162
    #   z = (5/18) / sqrt(25/162) = 1/sqrt(2)
    y = np.array([1, 1, 1, 0, 0, 0])
    a = np.array([0.9, 0.6, 0.4, 0.5, 0.3, 0.1])
    b = np.array([0.8, 0.3, 0.7, 0.3, 0.9, 0.2])
    res = delong_test(y, a, b)
    assert res.estimate_a == pytest.approx(8 / 9) == roc_auc_score(y, a)
    assert res.estimate_b == pytest.approx(11 / 18) == roc_auc_score(y, b)
    assert res.estimate == pytest.approx(5 / 18)
    assert res.detail("se") ** 2 == pytest.approx(25 / 162)
    assert res.statistic == pytest.approx(1 / math.sqrt(2))
    assert res.p_value == pytest.approx(2 * stats.norm.sf(1 / math.sqrt(2)))
    assert res.p_value == pytest.approx(0.4795, abs=1e-4)
    half = 1.959964 * math.sqrt(25 / 162)
    assert (res.low, res.high) == pytest.approx((5 / 18 - half, 5 / 18 + half), abs=1e-6)
    auc, var = _delong_by_definition(y, a, b)
    assert tuple(auc) == pytest.approx((8 / 9, 11 / 18))
    assert var == pytest.approx(25 / 162)
    assert "DeLong" in res.method and "binary" in res.method


def test_delong_matches_the_definition_on_random_data_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 40)
    a = np.round(y + rng.normal(size=40), 1)  # rounding makes ties
    b = np.round(0.5 * y + rng.normal(size=40), 1)
    res = delong_test(y, a, b)
    auc, var = _delong_by_definition(y, a, b)
    assert (res.estimate_a, res.estimate_b) == pytest.approx(tuple(auc))
    assert res.estimate_a == pytest.approx(roc_auc_score(y, a))
    assert res.detail("se") ** 2 == pytest.approx(var)
    # [N, 2] logits: the positive-class probability is scored
    la = np.stack([np.zeros(40), a], 1)
    lb = np.stack([np.zeros(40), b], 1)
    res2 = delong_test(y, la, lb)
    assert res2.estimate == pytest.approx(res.estimate)
    assert res2.p_value == pytest.approx(res.p_value)


def test_delong_identical_models_and_degenerate_classes():
    y = np.array([0, 1, 0, 1, 1, 0])
    s = np.array([0.1, 0.4, 0.35, 0.8, 0.7, 0.2])
    same = delong_test(y, s, s)
    assert same.estimate == 0.0 and same.p_value == 1.0
    tiny = delong_test(np.array([0, 1, 1]), s[:3], s[:3][::-1])
    assert math.isnan(tiny.p_value) and "fewer than 2" in tiny.method


def test_macro_delong_reduces_to_binary_delong_for_two_classes():
    # For K = 2 with complementary probabilities both OvR AUCs are the same number, and the
    # structural-component variance of their mean must equal DeLong's S10/m + S01/n.
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 50)
    pa = to_probabilities(np.stack([np.zeros(50), y + rng.normal(size=50)], 1))
    pb = to_probabilities(np.stack([np.zeros(50), y + 2 * rng.normal(size=50)], 1))
    scores = np.stack([pa, pb])
    auc_bin, cov_bin = _delong_components(y, scores, [1])
    auc_mac, cov_mac = _delong_components(y, scores, [0, 1])
    np.testing.assert_allclose(auc_mac, auc_bin)
    np.testing.assert_allclose(cov_mac, cov_bin)
    _, var = _delong_by_definition(y, pa[:, 1], pb[:, 1])
    assert cov_bin[0, 0] + cov_bin[1, 1] - 2 * cov_bin[0, 1] == pytest.approx(var)


def test_macro_delong_auc_matches_sklearn_and_variance_matches_simulation():
    k, counts = 3, np.array([30, 30, 30])
    y = np.repeat(np.arange(k), counts)
    rng = np.random.default_rng(2)

    def draw():
        base = np.eye(k)[y]
        return base * 1.0 + rng.normal(size=(len(y), k)), base * 0.6 + rng.normal(size=(len(y), k))

    la, lb = draw()
    res = delong_test(y, la, lb)
    pa, pb = to_probabilities(la), to_probabilities(lb)
    assert res.estimate_a == pytest.approx(roc_auc_score(y, pa, multi_class="ovr"))
    assert res.estimate_b == pytest.approx(roc_auc_score(y, pb, multi_class="ovr"))
    assert "macro one-vs-rest" in res.method
    # The DeLong variance should estimate the sampling variance of the macro-AUC difference
    # (fixed class counts, independent draws): compare with 300 simulated test sets.
    diffs, variances = [], []
    for _ in range(300):
        la, lb = draw()
        r = delong_test(y, la, lb)
        diffs.append(r.estimate)
        variances.append(r.detail("se") ** 2)
    assert np.mean(variances) == pytest.approx(np.var(diffs, ddof=1), rel=0.2)


# ------------------------------------------------------------------------------ McNemar
def _survey_vectors():
    # Agresti, A. (2007). An Introduction to Categorical Data Analysis, 2nd ed., Wiley,
    # Section 8.1, Table 8.1 (from Agresti 1990, Categorical Data Analysis, p. 350): ratings of
    # the U.S. President's performance by 1600 people in two surveys a month apart:
    # approve/approve 794, approve/disapprove 150, disapprove/approve 86,
    # disapprove/disapprove 570. "Approve" plays "correct" here. Agresti reports the
    # proportions 0.59 and 0.55 and McNemar's z = (86 - 150) / sqrt(86 + 150) = -4.17.
    first = np.repeat([1, 1, 0, 0], [794, 150, 86, 570]).astype(bool)
    second = np.repeat([1, 0, 1, 0], [794, 150, 86, 570]).astype(bool)
    return first, second


def test_mcnemar_on_agresti_presidential_approval_table():
    first, second = _survey_vectors()
    plain = mcnemar(first, second, method="chi2", correction=False)
    assert plain.detail("b") == 150 and plain.detail("c") == 86
    assert plain.estimate_a == pytest.approx(0.59) and plain.estimate_b == pytest.approx(0.55)
    assert plain.estimate == pytest.approx(0.04)
    assert math.sqrt(plain.statistic) == pytest.approx(4.17, abs=0.005)
    assert plain.p_value == pytest.approx(2 * stats.norm.sf(64 / math.sqrt(236)))
    assert plain.p_value < 0.001
    corrected = mcnemar(first, second, method="chi2")
    assert corrected.statistic == pytest.approx(63**2 / 236)  # 16.818
    assert corrected.statistic == pytest.approx(16.818, abs=1e-3)
    assert corrected.p_value == pytest.approx(stats.chi2.sf(16.818, 1), rel=1e-3)
    assert "with continuity correction" in corrected.method
    exact = mcnemar(first, second)
    assert exact.statistic == 86
    assert exact.p_value == pytest.approx(2 * stats.binom.cdf(86, 236, 0.5))
    assert "exact binomial" in exact.method


def test_mcnemar_exact_small_hand_example_and_symmetry():
    # b = 1, c = 6: P = 2 * P(X <= 1 | X ~ Bin(7, 1/2)) = 2 * (1 + 7) / 128 = 0.125
    res = mcnemar_from_counts(1, 6, n=20)
    assert res.p_value == pytest.approx(0.125)
    assert res.estimate == pytest.approx(-5 / 20)
    assert mcnemar_from_counts(6, 1).p_value == pytest.approx(0.125)
    assert mcnemar_from_counts(0, 0).p_value == 1.0
    assert mcnemar_from_counts(0, 0, method="chi2").p_value == 1.0
    assert mcnemar_from_counts(3, 3).p_value == 1.0
    with pytest.raises(ValueError):
        mcnemar_from_counts(1, 2, method="z")


# ---------------------------------------------------------------------- paired bootstrap
def _two_models(rng, n=120, k=3):
    y = rng.integers(0, k, n)
    good = np.where(rng.random(n) < 0.85, y, rng.integers(0, k, n))
    bad = np.where(rng.random(n) < 0.45, y, rng.integers(0, k, n))
    return y, good, bad


def test_paired_bootstrap_detects_a_better_model_and_not_an_identical_one():
    rng = np.random.default_rng(3)
    y, good, bad = _two_models(rng)
    f1 = batched_metric("f1_macro", 3)
    res = paired_bootstrap(f1, y, good, bad, vectorized=True, name="macro-F1")
    assert res.estimate == pytest.approx(f1_score(y, good, average="macro") - f1_score(y, bad, average="macro"))
    assert res.low > 0 and res.p_value < 0.01 and res.statistic > 3
    assert "paired bootstrap of the macro-F1 difference" in res.method
    assert "2000 resamples" in res.method and "stratified (3 strata)" in res.method
    same = paired_bootstrap(f1, y, good, good, vectorized=True)
    assert same.estimate == 0 and same.low == 0 and same.high == 0 and same.p_value == 1.0


def test_paired_bootstrap_looped_equals_vectorised_and_holds_the_null():
    rng = np.random.default_rng(4)
    y, good, _ = _two_models(rng, n=80)
    other = np.where(rng.random(80) < 0.85, y, rng.integers(0, 3, 80))  # same accuracy level
    slow = paired_bootstrap(lambda t, p: f1_score(t, p, average="macro"), y, good, other, n_resamples=150, seed=5)
    fast = paired_bootstrap(batched_metric("f1_macro", 3), y, good, other, n_resamples=150, seed=5, vectorized=True)
    assert (fast.estimate, fast.low, fast.high, fast.p_value) == pytest.approx(
        (slow.estimate, slow.low, slow.high, slow.p_value)
    )
    assert fast.p_value > 0.05


# ---------------------------------------------------------------------- Holm-Bonferroni
def test_holm_hand_worked_example():
    # p = (0.01, 0.04, 0.03, 0.005), m = 4. Sorted: 0.005*4 = 0.02, 0.01*3 = 0.03,
    # 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06. Back in input order:
    p = [0.01, 0.04, 0.03, 0.005]
    np.testing.assert_allclose(holm_bonferroni(p), [0.03, 0.06, 0.06, 0.02])
    # at alpha = 0.05 Holm rejects the two smallest, Bonferroni (0.05 / 4) only the smallest
    assert (holm_bonferroni(p) <= 0.05).sum() == 2
    np.testing.assert_allclose(holm_bonferroni([0.5, 0.9]), [1.0, 1.0])
    out = holm_bonferroni([0.01, float("nan"), 0.02])  # NaN does not count in m
    np.testing.assert_allclose(out, [0.02, np.nan, 0.02])
    assert holm_bonferroni([]).shape == (0,)
    with pytest.raises(ValueError):
        holm_bonferroni([1.2])


def test_holm_adjust_fills_the_results():
    tests = [PairedTest(0.1, 2.0, p, "some test") for p in (0.01, 0.04, 0.03, 0.005)]
    adjusted = holm_adjust(tests)
    assert [t.p_adjusted for t in adjusted] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert all("Holm-Bonferroni" in t.method and "over 4 tests" in t.method for t in adjusted)
    assert [t.p_value for t in adjusted] == [t.p_value for t in tests]
    with pytest.raises(dataclasses.FrozenInstanceError):
        adjusted[0].p_value = 0.5  # frozen
