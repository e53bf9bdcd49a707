"""Fixtures: data roots for the real-data experiments, in the collections' real layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .trees import (
    cxr,
    make_brixia,
    make_cohen,
    make_covid_qu_ex,
    make_folder,
    make_montgomery,
    make_shenzhen,
    make_tbx11k,
)


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
    root = tmp_path / "data"
    make_covid_qu_ex(root / "covid-qu-ex", per_cell=2)
    make_cohen(root / "covid-chestxray-dataset")
    try:
        import pydicom  # noqa: F401

        make_brixia(root / "brixia")
    except ImportError:
        pass
    make_folder(root / "covid-external", {"normal": 3, "pneumonia": 3}, masks=None)
    monkeypatch.setenv("ISNET_BENCHMARKS_DATA", str(root))
    return root


@pytest.fixture
def tb_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "data"
    make_montgomery(root / "montgomery", size=64)
    make_shenzhen(root / "shenzhen", root / "shenzhen-masks")
    mc = np.asarray(Image.open(root / "montgomery" / "MontgomerySet" / "CXR_png" / "MCUCXR_0001_0.png"))
    copy_resized = np.asarray(Image.fromarray(mc).resize((48, 48), Image.Resampling.BILINEAR))
    make_tbx11k(
        root / "tbx11k",
        extra={
            "extra/mc/MCUCXR_0002_0.png": cxr(32),  # recognisable by name
            "health/h9999.png": copy_resized,  # a renamed, resized copy: caught by content
        },
    )
    monkeypatch.setenv("ISNET_BENCHMARKS_DATA", str(root))
    return root
