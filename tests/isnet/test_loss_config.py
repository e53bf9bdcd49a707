"""One LossConfig: its checks, and every path that builds one refusing a bad constant at once."""

from __future__ import annotations

import pytest
import torch

import isnet
from isnet import LossConfig

BAD = [
    ({"P": 1.5}, r"P must lie in \[0, 1\], got 1.5"),
    ({"P": -0.1}, r"P must lie in \[0, 1\], got -0.1"),
    ({"d": -0.5}, r"d must lie in \[0, 1\], got -0.5"),
    ({"E": 0.0}, "E must be > 0"),
    ({"C1": 5.0, "C2": 1.0}, "need 0 < C1 <= C2, got C1=5.0, C2=1.0"),
    ({"C1": 0.0}, "need 0 < C1 <= C2"),
    ({"w1": -1.0}, "w1 and w2 must be >= 0"),
    ({"P": float("nan")}, "P must be a finite number"),
    ({"d": "0.9"}, "d must be a finite number, got '0.9'"),
]


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("changes,message", BAD)
def test_a_bad_constant_is_one_line_error_when_built(changes, message):
    with pytest.raises(ValueError, match=message) as err:
        LossConfig(**changes)
    _one_line(err)
    with pytest.raises(ValueError, match=message):
        isnet.DEFAULT_LOSS.replace(**changes)


def test_defaults_are_the_authors_constants_and_replace_keeps_the_rest():
    assert isnet.DEFAULT_LOSS == LossConfig(P=0.7, d=0.9, E=1.0, C1=1.0, C2=25.0, w1=1.0, w2=3.0)
    assert isnet.DEFAULT_LOSS.replace(P=0.5) == LossConfig(P=0.5)
    assert isnet.DEFAULT_LOSS.replace() is isnet.DEFAULT_LOSS


@pytest.mark.parametrize("changes,message", BAD[:5])
def test_isnet_refuses_a_bad_constant_when_built(changes, message, lib):
    with pytest.raises(ValueError, match=message):
        isnet.ISNet(lib.small_cnn(), 3, **changes)
    with pytest.raises(ValueError, match=message):
        isnet.ISNet(lib.small_cnn(), 3, loss=isnet.DEFAULT_LOSS.replace(**changes))


def test_dual_constants_are_checked_per_map_group(lib):
    with pytest.raises(ValueError, match="need 0 < C1 <= C2, got C1=30.0, C2=20.0"):
        isnet.ISNet(lib.small_cnn(), 3, "dual", C1=(1.0, 30.0), C2=(25.0, 20.0))
    model = isnet.ISNet(lib.small_cnn(), 3, "dual", P=0.4, C1=(1.0, 2.0), C2=(25.0, 30.0))
    assert model.constants == {"epsilon": (1.0, 25.0), "zplus": (2.0, 30.0)}
    assert {c.P for c in model.losses.values()} == {0.4}
    with pytest.raises(ValueError, match="need 0 < C1 <= C2"):
        model.set_constants(3.0, 2.0)
    assert model.constants == {"epsilon": (1.0, 25.0), "zplus": (2.0, 30.0)}  # unchanged by the refusal


def test_lds_decay_is_checked(lib):
    with pytest.raises(ValueError, match=r"lds_d must lie in \[0, 1\], got 2.0"):
        isnet.ISNet(lib.small_cnn(), 3, lds_layers=["2"], lds_d=2.0)


def test_forward_loss_is_total_loss_of_its_heatmap_term(lib):
    model = isnet.ISNet(lib.small_cnn(classes=4), 4, "selective", loss=LossConfig(P=0.4, C1=0.5, C2=9.0))
    x, y = torch.rand(4, 1, 16, 16), torch.tensor([0, 1, 2, 3])
    masks = torch.zeros(4, 1, 16, 16)
    masks[:, :, 4:12, 4:12] = 1
    out = model(x, masks, y)
    expected = isnet.total_loss(out["logits"], y, out["heatmap_loss"], 0.4)
    assert torch.equal(out["loss"], expected)
    torch.testing.assert_close(out["loss"], 0.6 * out["ce"] + 0.4 * out["heatmap_loss"])


def test_heatmap_loss_takes_one_config_and_fields_fold_into_it():
    h = torch.rand(2, 3, 1, 4, 4, dtype=torch.float64)
    m = torch.zeros(2, 1, 4, 4)
    m[..., 1:3, 1:3] = 1
    config = LossConfig(d=0.5, C1=0.5, C2=2.0, w2=1.0)
    assert torch.equal(isnet.heatmap_loss(h, m, config), isnet.heatmap_loss(h, m, d=0.5, C1=0.5, C2=2.0, w2=1.0))
    with pytest.raises(ValueError, match="need 0 < C1 <= C2"):
        isnet.heatmap_loss(h, m, C1=5.0, C2=1.0)
    with pytest.raises(ValueError, match=r"P must lie in \[0, 1\]"):
        isnet.total_loss(torch.zeros(2, 3), torch.tensor([0, 1]), torch.tensor(0.0), P=1.5)
