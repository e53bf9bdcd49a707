"""Explanation metrics with known answers (Quantus style: all inside, none, half)."""

import math

import numpy as np
import pytest

from benchmarks.evaluation import (
    background_relevance_share,
    explanation_metrics,
    pointing_game,
    relevance_inside_mask,
)


def _mask(h=8, w=8):
    m = np.zeros((1, 1, h, w), dtype=np.float32)
    m[..., 2:6, 2:6] = 1.0  # 16 foreground pixels in the centre
    return m


def test_all_relevance_inside():
    m = _mask()
    r = m * 3.0
    assert relevance_inside_mask(r, m)[0] == 1.0
    assert background_relevance_share(r, m)[0] == 0.0
    assert pointing_game(r, m)[0] == 1.0


def test_no_relevance_inside():
    m = _mask()
    r = (1 - m) * 2.0
    assert relevance_inside_mask(r, m)[0] == 0.0
    assert background_relevance_share(r, m)[0] == 1.0
    assert pointing_game(r, m)[0] == 0.0


def test_half_inside_half_outside():
    m = _mask()
    r = np.zeros_like(m)
    r[..., 2, 2] = 1.0  # inside
    r[..., 0, 0] = 1.0  # outside
    assert relevance_inside_mask(r, m)[0] == 0.5
    assert background_relevance_share(r, m)[0] == 0.5
    # tied maxima, one inside and one outside: expected hit under random tie-break
    assert pointing_game(r, m)[0] == 0.5


def test_channels_are_summed_and_negative_relevance_handled():
    m = _mask()
    r = np.zeros((1, 3, 8, 8))
    r[0, :, 3, 3] = 1.0  # 3 inside after summing channels
    r[0, 0, 0, 0] = 1.0  # 1 outside
    r[0, 1, 7, 7] = -4.0  # negative, outside
    assert relevance_inside_mask(r, m)[0] == pytest.approx(3 / 4)  # positives only
    assert background_relevance_share(r, m)[0] == pytest.approx(5 / 8)  # |R|: 1 + 4 of 8
    assert pointing_game(r, m)[0] == 1.0


def test_undefined_cases_are_nan():
    m = _mask()
    neg = -np.ones_like(m)
    assert math.isnan(relevance_inside_mask(neg, m)[0])
    zero = np.zeros_like(m)
    assert math.isnan(background_relevance_share(zero, m)[0])
    assert math.isnan(pointing_game(m, np.zeros_like(m))[0])
    # a constant heatmap points at chance level: the mask's area fraction
    assert pointing_game(zero, m)[0] == pytest.approx(16 / 64)


def test_pointing_game_tolerance_dilates_the_mask():
    m = _mask()
    r = np.zeros_like(m)
    r[..., 7, 7] = 1.0  # Chebyshev distance 2 from the mask corner (5, 5)
    assert pointing_game(r, m, tolerance=0)[0] == 0.0
    assert pointing_game(r, m, tolerance=1)[0] == 0.0
    assert pointing_game(r, m, tolerance=2)[0] == 1.0
    with pytest.raises(ValueError):
        pointing_game(r, m, tolerance=-1)


def test_batch_and_summary_and_torch():
    m = np.concatenate([_mask(), _mask(), _mask()])
    r = np.concatenate([_mask() * 1.0, (1 - _mask()) * 1.0, -np.ones_like(_mask())])
    out = explanation_metrics(r, m)
    assert out["relevance_inside_mask"] == 0.5 and out["relevance_inside_mask_n"] == 2
    assert out["pointing_game"] == pytest.approx((1 + 0 + 16 / 64) / 3)
    assert out["background_relevance_share"] == pytest.approx((0 + 1 + 48 / 64) / 3)
    torch = pytest.importorskip("torch")
    np.testing.assert_allclose(
        relevance_inside_mask(torch.tensor(r, requires_grad=True), torch.tensor(m)),
        relevance_inside_mask(r, m),
    )


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        relevance_inside_mask(np.zeros((2, 1, 8, 8)), np.zeros((2, 1, 4, 4)))
    with pytest.raises(ValueError):
        relevance_inside_mask(np.zeros((2, 8, 8)), np.zeros((2, 1, 8, 8)))
