"""A new entry of the metric catalogue reaches every table of the report, with no change to
the report's code."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from benchmarks.evaluation import catalogue
from benchmarks.report.build import generate

from .conftest import write_run

ERROR_RATE = catalogue.Metric("error_rate", "Error rate", "error rate",
                              lambda s: 1.0 - s.confusion_scores["accuracy"], higher_is_better=False)


def test_a_new_catalogue_entry_appears_in_every_table(tmp_path, monkeypatch):
    monkeypatch.setattr(catalogue, "METRICS", (*catalogue.METRICS, ERROR_RATE))
    root = tmp_path / "records"
    for seed in (0, 1):
        write_run(root, "isnet", seed, {"biased": 0.9, "deceiving": 0.8}, n=60)
        write_run(root, "standard", seed, {"biased": 0.9, "deceiving": 0.5}, n=60)
    files, _ = generate(root, figures=False)

    tidy = pd.read_csv(io.BytesIO(files["tables/tidy.csv"]))
    np.testing.assert_allclose(tidy["error_rate"], 1 - tidy["accuracy"], atol=1e-6)
    table = pd.read_csv(io.BytesIO(files["tables/error_rate_fake_bias_smoke.csv"])).set_index(["method", "split"])
    accuracy = pd.read_csv(io.BytesIO(files["tables/accuracy_fake_bias_smoke.csv"])).set_index(["method", "split"])
    np.testing.assert_allclose(table["mean"], 1 - accuracy["mean"], atol=1e-6)
    assert table.loc[("standard", "deceiving"), "mean"] == pytest.approx(0.5)
    assert "error_rate_fake_bias_smoke.tex" in {name.split("/")[-1] for name in files}

    readme = files["README.md"].decode()
    assert "#### Error rate" in readme
    section = readme.split("#### Error rate")[1].split("####")[0]
    isnet = next(line for line in section.splitlines() if line.startswith("| `isnet`"))
    assert isnet.split("|")[-2].strip().startswith("**20.0**")  # lower is better: ISNet's 20 % is the best
