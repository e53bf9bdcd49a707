"""Classification metrics against scikit-learn and hand-made tiny cases."""

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from benchmarks.evaluation import (
    batched_confusion_matrix,
    batched_metric,
    classification_metrics,
    confusion_matrix,
    macro_ovr_auc,
    predicted_labels,
    scores_from_confusion,
    to_probabilities,
)

NAMES3 = ["Normal", "COVID-19", "Pneumonia"]


def _random_case(rng, n=60, k=3):
    labels = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[labels]
    return labels, logits


def test_matches_sklearn_on_a_random_three_class_split():
    rng = np.random.default_rng(0)
    labels, logits = _random_case(rng)
    probs = to_probabilities(logits)
    pred = probs.argmax(1)
    out = classification_metrics(labels, logits, NAMES3)
    assert out["n"] == 60
    assert out["accuracy"] == pytest.approx(skm.accuracy_score(labels, pred))
    assert out["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(labels, pred))
    p, r, f, _ = skm.precision_recall_fscore_support(labels, pred, average="macro")
    assert out["precision_macro"] == pytest.approx(p)
    assert out["recall_macro"] == pytest.approx(r)
    assert out["f1_macro"] == pytest.approx(f)
    per_class = skm.f1_score(labels, pred, average=None)
    assert [out["f1_normal"], out["f1_covid_19"], out["f1_pneumonia"]] == pytest.approx(per_class)
    assert out["auc_macro_ovr"] == pytest.approx(skm.roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
    for c, key in enumerate(["normal", "covid_19", "pneumonia"]):
        assert out[f"auc_{key}"] == pytest.approx(skm.roc_auc_score(labels == c, probs[:, c]))
    assert all(isinstance(v, float) for v in out.values())


def test_logits_and_probabilities_give_the_same_metrics():
    rng = np.random.default_rng(1)
    labels, logits = _random_case(rng)
    a = classification_metrics(labels, logits, NAMES3)
    b = classification_metrics(labels, to_probabilities(logits), NAMES3)
    assert a == pytest.approx(b)


def test_hand_made_binary_case():
    # labels 0 0 1 1, positive scores 0.1 0.6 0.4 0.9 -> preds 0 1 0 1
    labels = np.array([0, 0, 1, 1])
    p1 = np.array([0.1, 0.6, 0.4, 0.9])
    out = classification_metrics(labels, np.stack([1 - p1, p1], 1), ["neg", "pos"])
    assert out["accuracy"] == 0.5
    assert out["balanced_accuracy"] == 0.5
    assert out["f1_neg"] == 0.5 and out["f1_pos"] == 0.5
    # pairs (pos, neg): (0.4,0.1) ok, (0.4,0.6) wrong, (0.9,*) ok -> 3/4
    assert out["auc_macro_ovr"] == 0.75
    assert out["auc_pos"] == 0.75
    # 1-D positive-class probabilities are accepted too
    assert classification_metrics(labels, p1, ["neg", "pos"]) == pytest.approx(out)


def test_binary_auc_uses_the_positive_class_score_even_from_logits():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 50)
    logits = rng.normal(size=(50, 2))
    res = macro_ovr_auc(labels, logits)
    expected = skm.roc_auc_score(labels, to_probabilities(logits)[:, 1])
    assert res.value == pytest.approx(expected)
    assert res.reason == ""


def test_absent_class_gives_nan_auc_with_a_reason_and_is_left_out_of_macro_f1():
    labels = np.array([0, 0, 1, 1, 0, 1])  # class 2 absent
    probs = np.array(
        [
            [0.8, 0.1, 0.1],
            [0.6, 0.3, 0.1],
            [0.2, 0.7, 0.1],
            [0.1, 0.2, 0.7],
            [0.5, 0.4, 0.1],
            [0.3, 0.6, 0.1],
        ]
    )
    res = macro_ovr_auc(labels, probs, NAMES3)
    assert math.isnan(res.value)
    assert "Pneumonia" in res.reason and "absent" in res.reason
    assert res.per_class[0] == pytest.approx(skm.roc_auc_score(labels == 0, probs[:, 0]))
    out = classification_metrics(labels, probs, NAMES3)
    assert math.isnan(out["auc_macro_ovr"]) and math.isnan(out["auc_pneumonia"])
    # preds 0 0 1 2 0 1: class 2 predicted once but absent -> F1 0 (a real error, counted)
    assert out["f1_pneumonia"] == 0.0
    assert out["f1_macro"] == pytest.approx((1.0 + 0.8 + 0.0) / 3)
    # balanced accuracy: mean recall over the present classes only
    assert out["balanced_accuracy"] == pytest.approx((1.0 + 2 / 3) / 2)
    assert out["recall_macro"] == pytest.approx((1.0 + 2 / 3) / 2)


def test_class_neither_present_nor_predicted_is_nan_not_zero():
    labels = np.array([0, 1, 0, 1])
    probs = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.2, 0.7, 0.1]])
    out = classification_metrics(labels, probs, NAMES3)
    assert math.isnan(out["f1_pneumonia"])
    assert out["f1_macro"] == 1.0 and out["precision_macro"] == 1.0


def test_binary_with_one_class_only():
    res = macro_ovr_auc(np.array([1, 1, 1]), np.array([0.2, 0.5, 0.9]), ["neg", "pos"])
    assert math.isnan(res.value) and "'neg' absent" in res.reason


def test_confusion_matrix_matches_sklearn_and_keeps_absent_classes():
    rng = np.random.default_rng(3)
    labels, logits = _random_case(rng, n=40)
    cm = confusion_matrix(labels, logits)
    np.testing.assert_array_equal(cm, skm.confusion_matrix(labels, logits.argmax(1)))
    cm4 = confusion_matrix(np.array([0, 1]), np.array([1, 1]), num_classes=4)
    assert cm4.shape == (4, 4) and cm4[0, 1] == 1 and cm4[1, 1] == 1 and cm4.sum() == 2
    rows = confusion_matrix(labels, logits, normalize="true")
    np.testing.assert_allclose(rows.sum(1), 1.0)


def test_batched_scores_equal_the_per_split_metrics():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, (7, 30))
    labels[0][labels[0] == 2] = 1  # one row with an absent class
    preds = np.where(rng.random((7, 30)) < 0.6, labels, rng.integers(0, 3, (7, 30)))
    cm = batched_confusion_matrix(labels, preds, 3)
    scores = scores_from_confusion(cm)
    for b in range(7):
        expected = skm.confusion_matrix(labels[b], preds[b], labels=[0, 1, 2])
        np.testing.assert_array_equal(cm[b], expected)
        one_hot = np.eye(3)[preds[b]] + 1e-3  # probabilities whose argmax is preds[b]
        out = classification_metrics(labels[b], one_hot / one_hot.sum(1, keepdims=True), NAMES3)
        for key in ("accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro"):
            assert scores[key][b] == pytest.approx(out[key], nan_ok=True), key
    f1 = batched_metric("f1_macro", 3)(labels, preds)
    np.testing.assert_allclose(f1, scores["f1_macro"])
    with pytest.raises(ValueError):
        batched_metric("auc", 3)


def test_torch_inputs_and_shape_checks():
    torch = pytest.importorskip("torch")
    labels = torch.tensor([0, 1, 1])
    logits = torch.tensor([[2.0, -1.0], [0.0, 1.0], [1.0, 0.5]], requires_grad=True)
    out = classification_metrics(labels, logits, ["a", "b"])
    assert out["accuracy"] == pytest.approx(2 / 3)
    np.testing.assert_array_equal(predicted_labels(logits.detach()), [0, 1, 0])
    with pytest.raises(ValueError):
        classification_metrics(labels, logits, ["a", "b", "c"])
    with pytest.raises(ValueError):
        classification_metrics(labels[:2], logits, ["a", "b"])
    with pytest.raises(ValueError):
        classification_metrics(labels, logits, ["a b", "a-b"])  # same key a_b


def test_probability_detection_and_explicit_kind():
    p = np.array([[0.2, 0.8], [0.5, 0.5]])
    np.testing.assert_allclose(to_probabilities(p), p)
    np.testing.assert_allclose(to_probabilities(p, "logits").sum(1), 1.0)
    assert not np.allclose(to_probabilities(p, "logits"), p)
    logits = np.array([[3.0, -2.0], [0.0, 0.0]])
    np.testing.assert_allclose(to_probabilities(logits)[0, 0], 1 / (1 + np.exp(-5)))
