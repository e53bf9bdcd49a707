"""Paired comparisons of two models on the same test images, and multiple-test correction.

* :func:`mcnemar` - accuracy: exact binomial test, or chi-square with continuity correction,
  on the discordant pairs of the two correctness vectors;
* :func:`delong_test` - ROC AUC: DeLong, DeLong & Clarke-Pearson (1988) for two correlated
  AUCs on the same samples; for more than two classes, the macro one-vs-rest AUC (see below);
* :func:`paired_bootstrap` - any metric (macro-F1 by default in the reports): the difference
  of the metric on the same stratified bootstrap resamples;
* :func:`holm_bonferroni` / :func:`holm_adjust` - Holm's step-down family-wise correction.

Every test returns a :class:`PairedTest` whose ``method`` string names the test, so a table
can state it verbatim. Differences are always model A minus model B.

Multi-class DeLong. The macro OvR AUC is the mean of K one-vs-rest AUCs that are all computed on
the same samples, so they are correlated with each other as well as across the two models. We
test the macro average directly through DeLong's structural components: each per-class AUC is,
to first order, a sum of per-sample placement values (``V10`` for the class's own samples,
``V01`` for the others), divided by the class's / the rest's size. Summing these components over
the classes gives one influence value per sample and model; samples of the same true class are
i.i.d. (DeLong conditions on the class counts), so the variance of the macro AUC difference is
``sum_g n_g * Var_g(psi_A - psi_B)`` over the true classes ``g``, with ``Var_g`` the sample
variance within class ``g``. For two classes this is exactly DeLong's ``S10 / m + S01 / n``,
which the tests check. One test per comparison, so there is no per-class multiplicity to correct.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
from scipy import stats

from benchmarks.evaluation.classification import to_numpy, to_probabilities
from benchmarks.stats.intervals import (
    DEFAULT_RESAMPLES,
    _as_arrays,
    _check_level,
    bootstrap_distribution,
    stratified_bootstrap_indices,
)

__all__ = [
    "PairedTest",
    "bootstrap_p_value",
    "delong_test",
    "holm_adjust",
    "holm_bonferroni",
    "mcnemar",
    "mcnemar_from_counts",
    "paired_bootstrap",
]

NAN = float("nan")


@dataclass(frozen=True)
class PairedTest:
    """Result of a paired two-sided test of model A against model B.

    ``estimate`` is the difference A - B (``estimate_a`` - ``estimate_b``); ``low`` / ``high`` a
    confidence interval of it at ``level`` where the test provides one (NaN otherwise);
    ``statistic`` the test statistic the ``method`` string names; ``p_adjusted`` the p-value
    after a multiple-test correction (NaN until :func:`holm_adjust` fills it); ``details``
    test-specific numbers as ``(name, value)`` pairs (e.g. McNemar's discordant counts).
    """

    estimate: float
    statistic: float
    p_value: float
    method: str
    low: float = NAN
    high: float = NAN
    level: float = NAN
    n: int = 0
    estimate_a: float = NAN
    estimate_b: float = NAN
    p_adjusted: float = NAN
    details: tuple[tuple[str, float], ...] = ()

    def detail(self, name: str) -> float:
        return dict(self.details)[name]


# ------------------------------------------------------------------------------- McNemar
McNemarMethod = Literal["exact", "chi2"]


def mcnemar_from_counts(
    b: int, c: int, *, method: McNemarMethod = "exact", correction: bool = True, n: int = 0
) -> PairedTest:
    """McNemar's test from the discordant counts of a paired 2x2 table.

    ``b``: pairs where A is right and B wrong; ``c``: A wrong and B right. Under the null
    (equal accuracy) ``b ~ Binomial(b + c, 1/2)``.

    * ``method="exact"``: two-sided exact binomial p-value (``scipy.stats.binomtest``);
      ``statistic`` is ``min(b, c)``.
    * ``method="chi2"``: ``(|b - c| - 1)^2 / (b + c)`` (Edwards' continuity correction; without
      it when ``correction=False``) against chi-square with 1 degree of freedom.

    With no discordant pair the p-value is 1. ``n`` (total pairs) only scales the accuracy
    difference ``estimate = (b - c) / n``; it is NaN when ``n`` is not given.
    """
    b, c = int(b), int(c)
    if b < 0 or c < 0:
        raise ValueError("counts must be >= 0")
    d = b + c
    estimate = (b - c) / n if n else NAN
    details = (("b", float(b)), ("c", float(c)))
    if method == "exact":
        p = 1.0 if d == 0 else float(stats.binomtest(b, d, 0.5).pvalue)
        stat = float(min(b, c))
        desc = f"McNemar exact binomial test (two-sided; b={b}, c={c})"
    elif method == "chi2":
        if d == 0:
            stat, p = 0.0, 1.0
        else:
            diff = max(abs(b - c) - (1 if correction else 0), 0)
            stat = diff**2 / d
            p = float(stats.chi2.sf(stat, df=1))
        cc = "with" if correction else "without"
        desc = f"McNemar chi-square test {cc} continuity correction (df=1; b={b}, c={c})"
    else:
        raise ValueError(f"unknown McNemar method {method!r}")
    return PairedTest(estimate, float(stat), min(p, 1.0), desc, n=n, details=details)


def mcnemar(correct_a: Any, correct_b: Any, *, method: McNemarMethod = "exact", correction: bool = True) -> PairedTest:
    """McNemar's test on paired correctness vectors (``[N]`` booleans: was model A / B right on
    image i). ``estimate`` is the accuracy difference A - B. See :func:`mcnemar_from_counts`."""
    a = to_numpy(correct_a).astype(bool)
    b_ = to_numpy(correct_b).astype(bool)
    if a.shape != b_.shape or a.ndim != 1:
        raise ValueError(f"correctness vectors must be [N] of one shape, got {a.shape}, {b_.shape}")
    b = int(np.sum(a & ~b_))
    c = int(np.sum(~a & b_))
    res = mcnemar_from_counts(b, c, method=method, correction=correction, n=len(a))
    acc_a = float(a.mean()) if len(a) else NAN
    acc_b = float(b_.mean()) if len(a) else NAN
    return replace(res, estimate_a=acc_a, estimate_b=acc_b)


# -------------------------------------------------------------------------------- DeLong
def _placements(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong placement values for scores of several models ``pos [M, m]``, ``neg [M, n]``.

    ``V10[:, i]`` = share of negatives scored below positive i (ties count 1/2);
    ``V01[:, j]`` = share of positives scored above negative j. Via midranks (Sun & Xu, 2014).
    """
    m, n = pos.shape[1], neg.shape[1]
    tx = stats.rankdata(pos, axis=1)
    ty = stats.rankdata(neg, axis=1)
    tz = stats.rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    return v10, v01


def _delong_components(y: np.ndarray, scores: np.ndarray, classes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Macro OvR AUC over ``classes`` for each model, and the covariance of those AUCs.

    ``scores [M, N, K]``. Returns ``auc [M]`` and ``cov [M, M]`` (see the module docstring).
    """
    n_models, n = scores.shape[:2]
    psi = np.zeros((n_models, n))
    auc = np.zeros(n_models)
    for c in classes:
        pos = y == c
        m_c, n_c = int(pos.sum()), int((~pos).sum())
        v10, v01 = _placements(scores[:, pos, c], scores[:, ~pos, c])
        auc += v10.mean(axis=1)
        psi[:, pos] += v10 / m_c
        psi[:, ~pos] += v01 / n_c
    k = len(classes)
    auc /= k
    psi /= k
    cov = np.zeros((n_models, n_models))
    for g in np.unique(y):
        members = psi[:, y == g]
        cov += members.shape[1] * np.cov(members, ddof=1).reshape(n_models, n_models)
    return auc, cov


def delong_test(labels: Any, scores_a: Any, scores_b: Any, *, level: float = 0.95) -> PairedTest:
    """DeLong's test for the difference of two correlated ROC AUCs on the same samples.

    Binary problems: ``scores_*`` are ``[N]`` positive-class scores (any monotone score) or
    ``[N, 2]`` logits / probabilities (the positive class, index 1, is scored). More than two
    classes: ``[N, K]`` logits / probabilities (softmax applied to logits); the compared
    quantity is the macro one-vs-rest AUC, tested through its structural components (module
    docstring). ``statistic`` is ``z = (AUC_A - AUC_B) / se``, the p-value two-sided normal;
    ``low`` / ``high`` the matching Wald interval of the difference. Every class needs at least
    two samples (else the result is NaN with the reason in ``method``).
    """
    _check_level(level)
    y = to_numpy(labels).astype(np.int64)
    sa, sb = to_numpy(scores_a), to_numpy(scores_b)
    if sa.shape != sb.shape or len(sa) != len(y) or y.ndim != 1:
        raise ValueError(f"scores {sa.shape}, {sb.shape} and labels {y.shape} do not match")
    if sa.ndim == 1:
        k = 2
        scores = np.stack([np.stack([-sa, sa], 1), np.stack([-sb, sb], 1)]).astype(np.float64)
    else:
        k = sa.shape[1]
        scores = np.stack([to_probabilities(sa), to_probabilities(sb)])
    if y.size and (y.min() < 0 or y.max() >= k):
        raise ValueError(f"labels outside 0..{k - 1}")
    counts = np.bincount(y, minlength=k)
    if k == 2:
        classes: list[int] = [1]
        what = "DeLong test for two correlated ROC AUCs (binary, positive class 1)"
    else:
        classes = list(range(k))
        what = (
            f"DeLong test for two correlated macro one-vs-rest ROC AUCs ({k} classes, "
            "structural components of the macro average)"
        )
    if counts.min() < 2:
        return PairedTest(
            NAN,
            NAN,
            NAN,
            what + ": undefined, a class has fewer than 2 samples",
            level=level,
            n=len(y),
        )
    auc, cov = _delong_components(y, scores, classes)
    diff = float(auc[0] - auc[1])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    if var <= 1e-15:
        z = 0.0 if abs(diff) < 1e-12 else float(np.sign(diff) * np.inf)
        p = 1.0 if z == 0.0 else 0.0
        se = 0.0
    else:
        se = var**0.5
        z = diff / se
        p = float(2 * stats.norm.sf(abs(z)))
    half = float(stats.norm.ppf((1 + level) / 2)) * se
    return PairedTest(
        diff,
        z,
        p,
        what + f"; {level:.0%} Wald interval of the difference",
        low=diff - half,
        high=diff + half,
        level=level,
        n=len(y),
        estimate_a=float(auc[0]),
        estimate_b=float(auc[1]),
        details=(("se", se),),
    )


# ----------------------------------------------------------------------- paired bootstrap
def paired_bootstrap(
    metric: Callable[..., Any],
    labels: Any,
    preds_a: Any,
    preds_b: Any,
    *,
    strata: Any = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
    vectorized: bool = False,
    name: str = "metric",
) -> PairedTest:
    """Paired stratified bootstrap of ``metric(labels, preds_a) - metric(labels, preds_b)``.

    Both models are scored on the *same* resamples of the test images (stratified by
    ``strata``, default ``labels``; see :func:`benchmarks.stats.bootstrap_ci`), so the
    correlation between them is kept. ``low`` / ``high``: percentile interval of the
    difference. ``p_value``: two-sided, by inverting the percentile interval: twice the smaller
    share of resampled differences on either side of 0, add-one smoothed
    (``(1 + #) / (B + 1)``), capped at 1. ``statistic``: difference / bootstrap standard
    deviation. ``name`` labels the metric in ``method`` (e.g. ``"macro-F1"``).
    """
    _check_level(level)
    if n_resamples < 1:
        raise ValueError("n_resamples must be >= 1")
    y, a, b = _as_arrays(labels, (preds_a, preds_b))
    if a.shape != b.shape:
        raise ValueError(f"predictions of A {a.shape} and B {b.shape} differ in shape")
    strata_arr = y if strata is None else to_numpy(strata)
    if len(strata_arr) != len(y):
        raise ValueError("strata must have one entry per sample")
    idx = stratified_bootstrap_indices(strata_arr, n_resamples, np.random.default_rng(seed))
    if vectorized:
        est_a = float(np.asarray(metric(y[None], a[None]), dtype=np.float64)[0])
        est_b = float(np.asarray(metric(y[None], b[None]), dtype=np.float64)[0])
    else:
        est_a, est_b = float(metric(y, a)), float(metric(y, b))
    dist = bootstrap_distribution(metric, (y, a), idx, vectorized=vectorized) - (
        bootstrap_distribution(metric, (y, b), idx, vectorized=vectorized)
    )
    ok = ~np.isnan(dist)
    d = dist[ok]
    n_strata = len(np.unique(strata_arr))
    strat = f"stratified ({n_strata} strata)" if n_strata > 1 else "unstratified"
    method = (
        f"paired bootstrap of the {name} difference, {strat}, {n_resamples} resamples of "
        f"{len(y)} test images, seed {seed}; {level:.0%} percentile interval, two-sided p by "
        "interval inversion"
    )
    if (~ok).sum():
        method += f"; {int((~ok).sum())} resamples with an undefined metric dropped"
    estimate = est_a - est_b
    if d.size == 0:
        return PairedTest(estimate, NAN, NAN, method, level=level, n=len(y), estimate_a=est_a, estimate_b=est_b)
    alpha = 1 - level
    low, high = (float(v) for v in np.quantile(d, [alpha / 2, 1 - alpha / 2]))
    p = bootstrap_p_value(d)
    sd = float(np.std(d, ddof=1)) if d.size > 1 else NAN
    stat = estimate / sd if sd and sd > 0 else (0.0 if estimate == 0 else NAN)
    return PairedTest(
        estimate,
        stat,
        p,
        method,
        low=low,
        high=high,
        level=level,
        n=len(y),
        estimate_a=est_a,
        estimate_b=est_b,
        details=(("bootstrap_sd", sd),),
    )


def bootstrap_p_value(differences: Any) -> float:
    """Two-sided p-value of "the difference is 0" from its bootstrap distribution, by inverting
    the percentile interval: twice the smaller share of resampled differences on either side of
    0 (ties count on both), add-one smoothed (``(1 + #) / (B + 1)``), capped at 1. Undefined
    (NaN) resamples are dropped; NaN when none is left."""
    d = np.asarray(differences, dtype=np.float64)
    d = d[~np.isnan(d)]
    if not d.size:
        return NAN
    below = (1 + int(np.sum(d <= 0))) / (d.size + 1)
    above = (1 + int(np.sum(d >= 0))) / (d.size + 1)
    return min(1.0, 2 * min(below, above))


# ------------------------------------------------------------------------- Holm-Bonferroni
HOLM_METHOD = "Holm-Bonferroni step-down adjustment"


def holm_bonferroni(p_values: Any) -> np.ndarray:
    """Holm-adjusted p-values, in the input's order and shape.

    With the m non-NaN p-values sorted ascending, ``p_adj(i) = max_{j <= i} min(1, (m - j + 1)
    p(j))``; reject the hypotheses with ``p_adj <= alpha`` to control the family-wise error
    rate at ``alpha``. NaN p-values stay NaN and do not count in m.
    """
    p = np.asarray(p_values, dtype=np.float64)
    flat = p.ravel()
    out = np.full_like(flat, np.nan)
    ok = np.flatnonzero(~np.isnan(flat))
    if ok.size:
        if np.any((flat[ok] < 0) | (flat[ok] > 1)):
            raise ValueError("p-values must lie in [0, 1]")
        order = ok[np.argsort(flat[ok], kind="stable")]
        m = ok.size
        scaled = (m - np.arange(m)) * flat[order]
        out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out.reshape(p.shape)


def holm_adjust(tests: Sequence[PairedTest]) -> tuple[PairedTest, ...]:
    """Fill ``p_adjusted`` of a family of tests by :func:`holm_bonferroni` and say so in each
    ``method`` (e.g. ISNet against every baseline on one split)."""
    adjusted = holm_bonferroni([t.p_value for t in tests])
    m = int(np.sum(~np.isnan(adjusted)))
    return tuple(
        replace(t, p_adjusted=float(q), method=f"{t.method}; {HOLM_METHOD} over {m} tests")
        for t, q in zip(tests, adjusted, strict=True)
    )
