"""The metric catalogue: every entry's known answer, and its bootstrap values against a
recomputation on each resample."""

import math

import numpy as np
import pytest

from benchmarks.evaluation import Scores, classification_metrics, metric, metrics, resampled

# labels 0 0 1 1 2 2, predicted 0 1 1 1 2 0 (probability 0.8 on the predicted class, 0.1 on the others)
LABELS = np.array([0, 0, 1, 1, 2, 2])
PREDICTED = np.array([0, 1, 1, 1, 2, 0])
PROBS = np.full((6, 3), 0.1) + 0.7 * np.eye(3)[PREDICTED]
LOGITS = np.log(PROBS)
#: by hand: recalls 1/2, 1, 1/2; precisions 1/2, 2/3, 1; F1 1/2, 4/5, 2/3; one-vs-rest AUCs (ties count
#: half) 5/8, 7/8, 6/8. Every catalogue entry must have its known answer here.
KNOWN = {
    "accuracy": 4 / 6,
    "balanced_accuracy": 2 / 3,
    "precision_macro": 13 / 18,
    "recall_macro": 2 / 3,
    "f1_macro": 59 / 90,
    "auc_macro_ovr": 0.75,
}


def test_every_catalogue_metric_has_its_known_answer():
    assert [m.key for m in metrics()] == list(KNOWN)
    for m in metrics():
        assert m.point(LABELS, LOGITS) == pytest.approx(KNOWN[m.key]), m.key
        assert m.point(LABELS, PROBS, kind="probabilities") == pytest.approx(KNOWN[m.key]), m.key


def test_classification_metrics_has_every_catalogue_metric():
    out = classification_metrics(LABELS, PROBS, ["a", "b", "c"])
    assert {m.key: out[m.key] for m in metrics()} == pytest.approx(KNOWN)


def test_bootstrap_values_are_the_metric_of_each_resample():
    rng = np.random.default_rng(0)
    labels = np.arange(40) % 3
    logits = rng.normal(size=(40, 3)).round(1) + np.eye(3)[labels]
    indices = rng.integers(0, 40, (9, 40))
    indices[0] = np.where(labels == 2, 0, np.arange(40))  # a resample without class 2
    drawn = Scores(labels, logits, indices)
    for m in resampled():
        expected = [m.point(labels[i], logits[i]) for i in indices]
        np.testing.assert_allclose(m.compute(drawn), expected, rtol=0, atol=1e-12, err_msg=m.key)
    assert math.isnan(metric("auc_macro_ovr").compute(drawn)[0])


def test_the_catalogue_says_how_each_metric_is_shown():
    assert [m.key for m in resampled()] == ["accuracy", "balanced_accuracy", "f1_macro", "auc_macro_ovr"]
    assert all(m.higher_is_better for m in metrics())
    assert not metric("auc_macro_ovr").percent and metric("accuracy").percent
    with pytest.raises(KeyError, match="no metric 'nope'"):
        metric("nope")
