"""Behaviour measures and the faithfulness of heatmaps, on cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.evaluation import behaviour
from benchmarks.evaluation.explanation import absorbed_share, faithful, sum_logit_correlation, sum_over_logit


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
    assert sum_over_logit(logits, logits) == pytest.approx(1.0)
    assert sum_logit_correlation(logits, logits) == pytest.approx(1.0)
    assert absorbed_share(logits, logits) == pytest.approx(0.0) and faithful(logits, logits) == 1.0


def test_a_heatmap_whose_sums_oppose_the_logits_is_not():
    logits = np.array([1.0, 2.0, 0.5, 3.0])
    sums = np.array([-1.3, -2.2, -0.4, -3.5])  # ISNet's case: the sums run against the logits
    assert sum_logit_correlation(sums, logits) < -0.9 and sum_over_logit(sums, logits) < 0
    assert absorbed_share(sums, logits) == pytest.approx(np.abs(logits - sums).sum() / np.abs(logits).sum())
    assert faithful(sums, logits) == 0.0


def test_half_the_logit_absorbed_is_the_boundary():
    logits = np.array([1.0, 2.0, 3.0, 4.0])
    assert faithful(0.5 * logits, logits) == 1.0  # absorbed share exactly 0.5
    assert faithful(0.49 * logits, logits) == 0.0
    assert math.isnan(sum_logit_correlation(np.ones(4), logits)) and faithful(np.ones(4), logits) == 0.0
    with pytest.raises(ValueError, match="differ in length"):
        faithful(np.ones(3), logits)


def test_images_without_a_finite_sum_and_logit_are_left_out():
    logits = np.array([1.0, 2.0, np.nan, 4.0])
    sums = np.array([1.0, 2.0, 3.0, np.inf])
    assert sum_over_logit(sums, logits) == pytest.approx(1.0) and absorbed_share(sums, logits) == 0.0
    assert math.isnan(faithful([np.nan], [1.0]))  # nothing to judge
    assert math.isnan(sum_over_logit([1.0], [0.0])) and math.isnan(absorbed_share([1.0], [0.0]))
