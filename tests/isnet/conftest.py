"""Shared fixtures for the isnet tests: small float64 models and BN randomisation."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn


@pytest.fixture(autouse=True)
def _single_thread_seeded():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def randomize_bn(model: nn.Module, zero_shift: bool = False, eps: float | None = None) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine parameters."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                if zero_shift:
                    m.running_mean.zero_()
                    m.bias.zero_()
                else:
                    m.running_mean.normal_(0, 0.2)
                    m.bias.normal_(0, 0.1)
                if eps is not None:
                    m.eps = eps
    return model


def zero_biases(model: nn.Module) -> nn.Module:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.zero_()
    return model


class TinyNet(nn.Module):
    """Conv-BN-ReLU, a residual sum, a channel concatenation, max and average pooling, Linear."""

    def __init__(self, in_ch: int = 1, classes: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(4)
        self.conv3 = nn.Conv2d(8, 3, 1)
        self.pool = nn.MaxPool2d(2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(3, classes)

    def forward(self, x):
        a = torch.relu(self.bn1(self.conv1(x)))
        b = self.bn2(self.conv2(a))
        c = torch.relu(a + b)
        d = torch.cat([c, a], 1)
        e = torch.relu(self.conv3(self.pool(d)))
        return self.fc(torch.flatten(self.gap(e), 1))


@pytest.fixture
def tiny_net() -> nn.Module:
    return randomize_bn(TinyNet()).double().eval()


def small_cnn(classes: int = 3, in_ch: int = 1) -> nn.Sequential:
    """The cpu-profile style backbone: Conv/BN/ReLU/MaxPool, adaptive pooling, Flatten, Linear."""
    return nn.Sequential(
        nn.Conv2d(in_ch, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, classes),
    )


@pytest.fixture
def lib() -> SimpleNamespace:
    """Helpers for tests (fixtures rather than imports, so any pytest import mode works)."""
    return SimpleNamespace(randomize_bn=randomize_bn, zero_biases=zero_biases, TinyNet=TinyNet,
                           small_cnn=small_cnn)
