"""Fixtures: data roots for the real-data experiments, in the collections' real layouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from .trees import make_covid_root, make_tb_root


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny tensors: one thread is faster than several fighting over 2 shared cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def covid_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data root for covid_real with all four sources (BrixIA only when pydicom exists)."""
    root = make_covid_root(tmp_path / "data")
    monkeypatch.setenv("ISNET_BENCHMARKS_DATA", str(root))
    return root


@pytest.fixture
def tb_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = make_tb_root(tmp_path / "data")
    monkeypatch.setenv("ISNET_BENCHMARKS_DATA", str(root))
    return root
