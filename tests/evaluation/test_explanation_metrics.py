"""Explanation measures with known answers (Quantus style: all inside, none, half), and the
catalogue that lists them: every entry has its known answer here."""

import math

import numpy as np
import pytest

from benchmarks.evaluation import explanation
from benchmarks.evaluation.explanation import (
    Explained,
    background_relevance_share,
    pointing_game,
    relevance_inside_mask,
    scores,
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


def test_batch_means_ignore_undefined_images_and_torch_is_accepted():
    m = np.concatenate([_mask(), _mask(), _mask()])
    r = np.concatenate([_mask() * 1.0, (1 - _mask()) * 1.0, -np.ones_like(_mask())])
    out, kept = scores(Explained(r, m, np.ones(3)))
    assert out["relevance_inside_mask"] == 0.5  # the third image has no positive relevance: left out
    assert math.isnan(kept["relevance_inside_mask"][2])
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


# ------------------------------------------------------------------------------ the catalogue
def _case() -> Explained:
    """Two images: the first's relevance all inside the mask and its sum equal to its logit; the
    second's all outside, summing to half its logit."""
    m = np.concatenate([_mask(), _mask()])
    r = np.concatenate([_mask() * 0.25, (1 - _mask()) * 0.5])  # sums 16 * 0.25 = 4 and 48 * 0.5 = 24
    return Explained(r, m, np.array([4.0, 48.0]))


#: every catalogue entry's value on :func:`_case` (a new entry adds its known answer here)
KNOWN = {
    "relevance_inside_mask": 0.5,
    "pointing_game": 0.5,
    "background_relevance_share": 0.5,
    "sum_over_logit": 0.75,  # median of 4 / 4 and 24 / 48
    "sum_logit_correlation": 1.0,  # two points lie on a line
    "absorbed_share": 24 / 52,
    "faithful": 1.0,
}


def test_every_catalogue_entry_has_its_known_answer():
    assert [m.key for m in explanation.MEASURES] == list(KNOWN)
    values, kept = scores(_case())
    assert list(values) == list(KNOWN)  # a record's keys, in catalogue order
    assert values == pytest.approx(KNOWN)
    assert set(kept) == {m.key for m in explanation.MEASURES if m.keep_per_image}
    np.testing.assert_array_equal(kept["relevance_inside_mask"], [1.0, 0.0])
    np.testing.assert_array_equal(kept["background_relevance_share"], [0.0, 1.0])


def test_the_catalogue_keeps_the_keys_and_tables_of_the_records():
    assert [m.key for m in explanation.shown_in("explanations")] == ["relevance_inside_mask", "pointing_game"]
    assert [m.key for m in explanation.shown_in("faithfulness")] == [
        "background_relevance_share", "sum_over_logit", "sum_logit_correlation", "absorbed_share"]
    assert len(explanation.shown_in()) == 6  # 'faithful' is recorded only: the report judges seed means
    assert {m.key for m in explanation.MEASURES if m.keep_per_image} == {"relevance_inside_mask",
                                                                        "background_relevance_share"}
    assert explanation.measure("pointing_game").over == "image" and explanation.measure("faithful").over == "set"
    with pytest.raises(KeyError, match="unknown explanation measure"):
        explanation.measure("nope")


def test_each_direction_prefers_the_heatmap_on_the_object():
    m = _mask()
    on, off = Explained(m * 1.0, m, np.array([16.0])), Explained((1 - m) * 1.0, m, np.array([48.0]))
    for measure in explanation.MEASURES:
        if measure.over != "image" or measure.higher_is_better is None:
            continue
        better, worse = (on, off) if measure.higher_is_better else (off, on)
        assert measure.compute(better)[0] > measure.compute(worse)[0], measure.key
    logits = np.array([1.0, 2.0, 3.0, 4.0])
    conserving = Explained(logits[:, None, None, None], np.ones((4, 1, 1, 1)), logits)
    opposing = Explained(-logits[:, None, None, None], np.ones((4, 1, 1, 1)), logits)
    for measure in explanation.MEASURES:
        if measure.over != "set" or measure.higher_is_better is None:
            continue
        better, worse = (conserving, opposing) if measure.higher_is_better else (opposing, conserving)
        assert measure.compute(better) > measure.compute(worse), measure.key
