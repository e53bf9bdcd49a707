"""Bootstrap and t intervals: coverage on a known distribution, textbook formulas."""

import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import f1_score

from benchmarks.evaluation import batched_metric
from benchmarks.stats import (
    DEFAULT_RESAMPLES,
    bootstrap_ci,
    stratified_bootstrap_indices,
    t_interval,
)


def _mean_batched(values):  # vectorised metric: [B, N] -> [B]
    return values.mean(axis=-1)


def test_percentile_bootstrap_covers_a_bernoulli_mean_about_95_percent():
    # Known distribution: X ~ Bernoulli(0.3), n = 80. Over 300 simulated data sets the 95 %
    # interval should contain 0.3 about 95 % of the time (finite-n percentile intervals for a
    # proportion run a little low; tolerance 0.90-0.99).
    rng = np.random.default_rng(12345)
    p, n, sims = 0.3, 80, 300
    covered = 0
    for s in range(sims):
        x = (rng.random(n) < p).astype(float)
        ci = bootstrap_ci(_mean_batched, x, strata=np.zeros(n), seed=s, vectorized=True)
        covered += ci.low <= p <= ci.high
    assert 0.90 <= covered / sims <= 0.99


def test_defaults_method_string_and_seeding():
    rng = np.random.default_rng(0)
    x = rng.normal(size=50)
    ci = bootstrap_ci(_mean_batched, x, strata=np.zeros(50), vectorized=True)
    assert DEFAULT_RESAMPLES >= 2000
    assert "percentile" in ci.method and f"{DEFAULT_RESAMPLES} resamples" in ci.method
    assert "seed 0" in ci.method and "unstratified" in ci.method and "95%" in ci.method
    assert ci.estimate == pytest.approx(x.mean())
    assert ci.low < ci.estimate < ci.high
    # the bootstrap SD of a mean is close to s / sqrt(n)
    assert ci.std_error == pytest.approx(x.std(ddof=1) / math.sqrt(50), rel=0.15)
    again = bootstrap_ci(_mean_batched, x, strata=np.zeros(50), vectorized=True)
    assert again == ci
    other = bootstrap_ci(_mean_batched, x, strata=np.zeros(50), vectorized=True, seed=1)
    assert other.low != ci.low


def test_stratified_resamples_keep_the_class_counts():
    labels = np.array([0] * 5 + [1] * 12 + [2] * 3)
    labels = np.random.default_rng(0).permutation(labels)
    idx = stratified_bootstrap_indices(labels, 500, np.random.default_rng(1))
    assert idx.shape == (500, 20)
    counts = np.stack([np.bincount(labels[row], minlength=3) for row in idx])
    assert (counts == [5, 12, 3]).all()
    # every member of every stratum gets drawn, and only with its own stratum's share
    assert set(idx.ravel()) == set(range(20))
    share = np.bincount(idx.ravel(), minlength=20) / idx.size
    np.testing.assert_allclose(share, 1 / 20, rtol=0.2)


def test_vectorised_and_looped_metrics_agree():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 60)
    preds = np.where(rng.random(60) < 0.7, labels, rng.integers(0, 3, 60))
    slow = bootstrap_ci(lambda y, p: f1_score(y, p, average="macro"), labels, preds, n_resamples=200, seed=3)
    fast = bootstrap_ci(batched_metric("f1_macro", 3), labels, preds, n_resamples=200, seed=3, vectorized=True)
    assert fast.estimate == pytest.approx(slow.estimate)
    assert fast.low == pytest.approx(slow.low) and fast.high == pytest.approx(slow.high)
    assert "stratified by labels (3 strata)" in fast.method


def test_nan_resamples_are_dropped_and_reported():
    x = np.arange(10.0)
    calls = iter(range(10**6))

    def sometimes_nan(v):
        return float("nan") if next(calls) % 2 else float(v.mean())

    ci = bootstrap_ci(sometimes_nan, x, strata=np.zeros(10), n_resamples=100)
    assert "50 resamples with an undefined metric dropped" in ci.method
    assert not math.isnan(ci.low)


def test_t_interval_matches_the_textbook_formula():
    x = np.array([0.81, 0.85, 0.79, 0.88, 0.83])
    ci = t_interval(x)
    s = x.std(ddof=1)
    half = stats.t.ppf(0.975, df=4) * s / math.sqrt(5)  # t_{4, 0.975} = 2.776
    assert stats.t.ppf(0.975, df=4) == pytest.approx(2.7764, abs=1e-4)
    assert ci.estimate == pytest.approx(x.mean())
    assert ci.half_width == pytest.approx(half)
    by_scipy = stats.t.interval(0.95, 4, loc=x.mean(), scale=s / math.sqrt(5))
    assert (ci.low, ci.high) == pytest.approx(by_scipy)
    assert ci.std_error == pytest.approx(s / math.sqrt(5))
    assert "Student-t" in ci.method and "5 seeds" in ci.method and ci.n == 5
    assert t_interval(x, level=0.9).half_width < ci.half_width


def test_t_interval_single_seed_and_empty():
    one = t_interval([0.9])
    assert one.estimate == 0.9 and math.isnan(one.half_width) and math.isnan(one.low)
    assert "undefined for one seed" in one.method
    assert math.isnan(t_interval([]).estimate)
    assert math.isnan(t_interval([0.9, float("nan")]).estimate)  # a failed seed is not hidden
    with pytest.raises(ValueError):
        t_interval([1.0, 2.0], level=95)
