"""Re-estimating BatchNorm statistics: known answers on a one-layer model."""

from __future__ import annotations

import torch
from torch import nn

from benchmarks.commands.batchnorm_check import reestimate_batchnorm


def test_running_statistics_become_the_clean_data_moments_and_weights_stay():
    torch.manual_seed(0)
    model = nn.Sequential(nn.BatchNorm1d(3))
    model[0].weight.data.fill_(2.0)
    model.train()
    with torch.no_grad():
        model(torch.zeros(8, 3))  # a "blank" pass moves the statistics away from the data
    data = torch.randn(96, 3) * torch.tensor([1.0, 3.0, 0.5]) + torch.tensor([5.0, -2.0, 0.0])
    assert reestimate_batchnorm(model, data.split(32)) == 1
    bn = model[0]
    means = torch.stack([b.mean(0) for b in data.split(32)]).mean(0)  # cumulative average of batch means
    variances = torch.stack([b.var(0, unbiased=True) for b in data.split(32)]).mean(0)
    assert torch.allclose(bn.running_mean, means, atol=1e-6) and torch.allclose(bn.running_var, variances, atol=1e-5)
    assert bn.momentum == 0.1 and not model.training and torch.equal(bn.weight, torch.full((3,), 2.0))


def test_a_model_without_batchnorm_is_left_alone():
    model = nn.Linear(2, 2)
    before = model.weight.clone()
    assert reestimate_batchnorm(model, [torch.randn(4, 2)]) == 0
    assert torch.equal(model.weight, before)
