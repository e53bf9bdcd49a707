"""Behaviour measures and the faithfulness of heatmaps, on cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.evaluation import behaviour
from benchmarks.evaluation.explanation import faithfulness


def test_behaviour_measures_per_image():
    labels = np.array([0, 1, 2, 0, 1])
    intact = np.array([0, 1, 2, 1, 1])
    pred = np.array([2, 1, 0, 1, 0])
    points_to = np.array([2, 1, 1, -1, 0])  # image 1: its own class; image 3: nowhere
    values = behaviour.per_image(pred, intact, labels, points_to)
    assert values["accuracy"].tolist() == [0, 1, 0, 0, 0]
    assert values["flip_rate"].tolist() == [1, 0, 1, 0, 1]
    follows = values["follows_background"]
    assert follows[0] == 1 and follows[2] == 0 and follows[4] == 1
    assert math.isnan(follows[1]) and math.isnan(follows[3])
    s = behaviour.summary(values)
    assert s["follows_background"] == pytest.approx(2 / 3) and s["follows_background_n"] == 3
    assert s["flip_rate"] == pytest.approx(0.6) and s["accuracy_n"] == 5


def test_every_measure_is_listed_once_with_its_direction():
    keys = [m.key for m in behaviour.MEASURES]
    assert len(keys) == len(set(keys)) == 3
    assert behaviour.measure("flip_rate").lower_is_better and not behaviour.measure("accuracy").lower_is_better
    with pytest.raises(KeyError, match="unknown behaviour measure"):
        behaviour.measure("nope")


def test_a_conserving_heatmap_is_faithful():
    logits = np.array([1.0, 2.0, -0.5, 3.0])
    out = faithfulness(logits, logits)
    assert out["sum_over_logit"] == pytest.approx(1.0) and out["sum_logit_correlation"] == pytest.approx(1.0)
    assert out["absorbed_share"] == pytest.approx(0.0) and out["faithful"] == 1.0


def test_a_heatmap_whose_sums_oppose_the_logits_is_not():
    logits = np.array([1.0, 2.0, 0.5, 3.0])
    sums = np.array([-1.3, -2.2, -0.4, -3.5])  # ISNet's case: the sums run against the logits
    out = faithfulness(sums, logits)
    assert out["sum_logit_correlation"] < -0.9 and out["sum_over_logit"] < 0
    assert out["absorbed_share"] == pytest.approx(np.abs(logits - sums).sum() / np.abs(logits).sum())
    assert out["faithful"] == 0.0


def test_half_the_logit_absorbed_is_the_boundary():
    logits = np.array([1.0, 2.0, 3.0, 4.0])
    assert faithfulness(0.5 * logits, logits)["faithful"] == 1.0  # absorbed share exactly 0.5
    assert faithfulness(0.49 * logits, logits)["faithful"] == 0.0
    constant = faithfulness(np.ones(4), logits)
    assert math.isnan(constant["sum_logit_correlation"]) and constant["faithful"] == 0.0
    with pytest.raises(ValueError, match="differ in length"):
        faithfulness(np.ones(3), logits)
