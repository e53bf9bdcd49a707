"""Bad input gives clear messages: unsupported operations, z^B bounds, targets, epsilon, masks, train mode."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import isnet


class WithGelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(1, 2, 3), nn.GELU())
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        return self.fc(self.block(x).mean((2, 3)))


class WithSigmoid(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x):
        return torch.sigmoid(self.conv(x)).flatten(1)


class DataDependent(nn.Module):
    def forward(self, x):
        return x.flatten(1) if x.sum() > 0 else -x.flatten(1)


def test_unsupported_module_names_op_and_path():
    with pytest.raises(isnet.UnsupportedOperationError, match=r"module GELU at module path 'block\.1'"):
        isnet.explain(WithGelu(), torch.rand(1, 1, 5, 5), 0)


def test_unsupported_function_names_op_and_path():
    with pytest.raises(isnet.UnsupportedOperationError, match=r"sigmoid.*module path '<top level>'"):
        isnet.explain(WithSigmoid(), torch.rand(1, 1, 5, 5), 0)


def test_untraceable_model_is_reported():
    with pytest.raises(isnet.UnsupportedOperationError, match="could not trace DataDependent"):
        isnet.explain(DataDependent(), torch.rand(1, 1, 2, 2), 0)


def test_inputs_outside_zbox_bounds(lib):
    net = lib.small_cnn().eval()
    x = torch.rand(2, 1, 8, 8) * 2 - 0.5
    with pytest.raises(ValueError, match="outside the z\\^B bounds"):
        isnet.explain(net, x, 0)
    assert isnet.explain(net, x, 0, bounds=(-0.5, 1.5)).shape == x.shape
    assert isnet.explain(net, x, 0, input_rule="epsilon").shape == x.shape


def test_bad_targets_and_rules(lib):
    net = lib.small_cnn().eval()
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match=r"class indices must lie in \[0, 3\)"):
        isnet.explain(net, x, 5)
    with pytest.raises(ValueError, match="shape"):
        isnet.explain(net, x, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="'all'"):
        isnet.explain(net, x, "every")
    with pytest.raises(ValueError, match="rule must be one of"):
        isnet.explain(net, x, 0, rule="gamma")
    with pytest.raises(ValueError, match="epsilon must be > 0"):
        isnet.explain(net, x, 0, epsilon=0.0)


def test_explain_output_shapes(lib):
    net = lib.small_cnn().eval()
    x = torch.rand(2, 1, 8, 8)
    assert isnet.explain(net, x, 1).shape == (2, 1, 8, 8)
    assert isnet.explain(net, x, torch.tensor([0, 2])).shape == (2, 1, 8, 8)
    assert isnet.explain(net, x, "all").shape == (2, 3, 1, 8, 8)
    h = isnet.explain(net, x, "all", create_graph=True)
    assert h.requires_grad
    assert not isnet.explain(net, x, 0).requires_grad


def test_train_mode_warning_explains_behaviour(lib):
    net = lib.small_cnn().train()
    with pytest.warns(UserWarning, match="BatchNorm uses \\(detached\\) batch statistics"):
        isnet.explain(net, torch.rand(2, 1, 8, 8), 0)


def test_isnet_rejects_bad_configuration(lib):
    with pytest.raises(ValueError, match="variant must be one of"):
        isnet.ISNet(lib.small_cnn(), 3, "fast")
    with pytest.raises(ValueError, match="0 < C1 <= C2"):
        isnet.ISNet(lib.small_cnn(), 3, C1=5.0, C2=1.0)
    with pytest.raises(ValueError, match="one C1/C2 per map group"):
        isnet.ISNet(lib.small_cnn(), 3, "dual", C1=(1.0, 2.0, 3.0))


class FunctionalDropout(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 8), nn.Linear(8, 2)

    def forward(self, x):
        return self.fc2(nn.functional.dropout(torch.relu(self.fc1(x)), 0.5, self.training))


def test_trace_follows_train_eval_switch():
    """fx freezes ``self.training``; the engine re-traces when the mode changes."""
    net = FunctionalDropout().double()
    x = torch.rand(3, 4, dtype=torch.float64)
    isnet.explain(net.train(), x, 0, input_rule="epsilon")
    net.eval()
    a = isnet.explain(net, x, 0, input_rule="epsilon")
    b = isnet.explain(net, x, 0, input_rule="epsilon")
    torch.testing.assert_close(a, b)  # deterministic: dropout is off in eval mode
