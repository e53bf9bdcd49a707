"""The heatmap loss against hand-computed cases, its input checks, and C1/C2 tuning."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import isnet
from isnet import loss as L


def one_map(values, mask):
    """A [1, 1, 1, H, W] heatmap and [1, 1, H, W] mask from nested lists."""
    h = torch.tensor(values, dtype=torch.float64).view(1, 1, 1, *torch.tensor(values).shape)
    m = torch.tensor(mask, dtype=torch.float64).view(1, 1, *torch.tensor(mask).shape)
    return h, m


H_VALS = [[1.0, -2.0], [3.0, 4.0]]
MASK = [[0, 0], [1, 1]]  # foreground: 3, 4 (mean 3.5); background |1|, |-2|


def test_gwrp_limits():
    v = torch.tensor([[0.5, 3.0, 1.0, 0.0]], dtype=torch.float64)
    assert L.gwrp(v, 0.0).item() == 3.0  # max pooling
    assert L.gwrp(v, 1e-9).item() == pytest.approx(3.0, rel=1e-8)
    assert L.gwrp(v, 1.0).item() == pytest.approx(1.125)  # mean pooling
    d = 0.5
    expected = (3.0 + d * 1.0 + d**2 * 0.5 + 0.0) / (1 + d + d**2 + d**3)
    assert L.gwrp(v, d).item() == pytest.approx(expected)


def test_gwrp_truncated_sort_equals_full_sort():
    v = torch.rand(3, 5000, dtype=torch.float64)
    for d in (0.5, 0.9, 0.99):
        w = d ** torch.arange(5000, dtype=torch.float64)
        full = (v.sort(-1, descending=True).values * w).sum(-1) / w.sum()
        torch.testing.assert_close(L.gwrp(v, d), full, rtol=1e-10, atol=0)


@pytest.mark.parametrize("d", [0.0, 1.0, 0.9])
def test_background_term_hand_computed(d):
    h, m = one_map(H_VALS, MASK)
    t = L.heatmap_loss_terms(h, m, d=d, E=1.0, C1=1.0, C2=25.0, w1=1.0, w2=0.0)
    fg_mean = 3.5
    bg_sorted = [2.0 / fg_mean, 1.0 / fg_mean, 0.0, 0.0]  # |-2|, |1|, then the zeroed foreground
    weights = [d**i if d > 0 else float(i == 0) for i in range(4)]
    g = sum(w * s for w, s in zip(weights, bg_sorted, strict=True)) / sum(weights)
    assert t.background.item() == pytest.approx(math.log(1 + g))
    assert t.loss.item() == pytest.approx(math.log(1 + g))


@pytest.mark.parametrize("F_scale,expected",
                         [(1.0, 0.0), (0.25, (1.75 - 7.0) ** 2 / 7.0**2), (5.0, (35 - 20) ** 2 / 7.0**2)])
def test_foreground_dead_zone(F_scale, expected):
    h, m = one_map(H_VALS, MASK)  # foreground absolute relevance F = 7 * F_scale
    t = L.heatmap_loss_terms(h * F_scale, m, C1=7.0, C2=20.0, w1=0.0, w2=1.0)
    assert t.foreground.item() == pytest.approx(expected)
    inside = L.heatmap_loss_terms(h, m, C1=5.0, C2=9.0, w1=0.0, w2=1.0)
    assert inside.foreground.item() == 0.0


def test_weights_batch_mean_and_total_loss():
    h = torch.rand(3, 2, 1, 4, 4, dtype=torch.float64)
    m = torch.zeros(3, 1, 4, 4)
    m[:, :, 1:3, 1:3] = 1
    t = L.heatmap_loss_terms(h, m, w1=1.0, w2=3.0)
    assert t.loss.item() == pytest.approx(t.background.item() + 3 * t.foreground.item())
    logits, labels = torch.randn(3, 2, dtype=torch.float64), torch.tensor([0, 1, 1])
    total = isnet.total_loss(logits, labels, t.loss, P=0.7)
    ce = torch.nn.functional.cross_entropy(logits, labels)
    assert total.item() == pytest.approx(0.3 * ce.item() + 0.7 * t.loss.item())
    assert isnet.heatmap_loss(h, m).item() == pytest.approx(t.loss.item())


def test_all_relevance_inside_mask_gives_zero_background():
    h = torch.zeros(1, 1, 1, 4, 4, dtype=torch.float64)
    h[..., 1:3, 1:3] = 2.0
    m = torch.zeros(1, 1, 4, 4)
    m[..., 1:3, 1:3] = 1
    t = L.heatmap_loss_terms(h, m, C1=1.0, C2=25.0)
    assert t.background.item() == 0.0 and t.foreground.item() == 0.0


def test_masks_are_resized_and_checked():
    h = torch.rand(2, 1, 1, 4, 4, dtype=torch.float64)
    big = torch.zeros(2, 1, 8, 8)
    big[:, :, :4] = 1
    small = torch.zeros(2, 1, 4, 4)
    small[:, :, :2] = 1
    torch.testing.assert_close(isnet.heatmap_loss(h, big), isnet.heatmap_loss(h, small))
    with pytest.raises(ValueError, match="binary"):
        isnet.heatmap_loss(h, big * 0.5)
    with pytest.raises(ValueError, match=r"shape \[B, 1, H, W\]"):
        isnet.heatmap_loss(h, torch.ones(3, 1, 4, 4))
    with pytest.raises(ValueError, match=r"shape \[B, 1, H, W\]"):
        isnet.heatmap_loss(h, torch.ones(2, 3, 4, 4))


def test_nonfinite_relevance_is_warned_counted_and_replaced():
    h, m = one_map(H_VALS, MASK)
    bad = h.clone()
    bad[..., 0, 0] = float("nan")
    bad[..., 0, 1] = float("inf")
    with pytest.warns(UserWarning, match="replaced 2 non-finite"):
        t = L.heatmap_loss_terms(bad, m)
    assert t.nonfinite == 2
    # NaN -> foreground mean (3.5), inf -> the map's largest finite value (4)
    fixed = h.clone()
    fixed[..., 0, 0] = 3.5
    fixed[..., 0, 1] = 4.0
    torch.testing.assert_close(t.loss, L.heatmap_loss_terms(fixed, m).loss)
    assert torch.isfinite(t.loss)


def test_empty_foreground_warns():
    h = torch.rand(1, 1, 1, 4, 4)
    with pytest.warns(UserWarning, match="no foreground"):
        isnet.heatmap_loss(h, torch.zeros(1, 1, 4, 4))


def test_tune_constants_formula():
    totals = torch.tensor([8.0, 10.0, 12.0, 10.0])
    mu, sigma = 10.0, totals.std().item()
    c1, c2 = isnet.tune_constants(totals)
    assert c1 == pytest.approx(max(mu / 5, mu - 3 * sigma))
    assert c2 == pytest.approx(min(25 * c1, mu + 3 * sigma))
    stats = isnet.RelevanceStats()
    stats.update(torch.rand(4, 2, 1, 3, 3))
    assert len(stats) == 8
    a, b = stats.constants()
    assert 0 < a <= b


def test_heatmap_loss_accepts_single_maps_and_no_warning_on_clean_input():
    h = torch.rand(2, 3, 4, 4)
    m = torch.ones(2, 1, 4, 4)
    m[:, :, 0] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.isfinite(isnet.heatmap_loss(h, m))
