"""A new entry of the explanation catalogue reaches the report's tables, with no change to the
report's code."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from benchmarks.evaluation import explanation
from benchmarks.report.build import generate

from .conftest import write_run

#: a per-image measure with a table of its own, and a per-set one in the faithfulness table
CENTRE = explanation.Measure("relevance_at_centre", "Share of relevance at the image centre", "centre", "image",
                             lambda e: e.relevance_sums * 0, True, True, "explanations", "share at the centre")
SPREAD = explanation.Measure("sum_spread", "Spread of the relevance sums", "spread", "set",
                             lambda e: 0.0, None, False, "faithfulness", "standard deviation of the sums")


def test_new_explanation_measures_appear_in_their_tables(tmp_path, monkeypatch):
    monkeypatch.setattr(explanation, "MEASURES", (*explanation.MEASURES, CENTRE, SPREAD))
    root = tmp_path / "records"
    for seed, centre in ((0, 0.25), (1, 0.35)):
        for method in ("isnet", "standard"):
            write_run(root, method, seed, {"biased": 0.9, "deceiving": 0.7}, faithful=True,
                      explanation_scores={"relevance_at_centre": centre, "sum_spread": 1.5 + seed})
    files, _ = generate(root, figures=False)

    table = pd.read_csv(io.BytesIO(files["tables/explanations_relevance_at_centre_fake_bias_smoke.csv"]))
    lrp = table[(table["method"] == "isnet") & (table["explainer"] == "lrp") & (table["split"] == "biased")]
    assert lrp["mean"].item() == pytest.approx(0.3)
    readme = files["README.md"].decode()
    assert "Share of relevance at the image centre (%), `fake_bias` (smoke profile)" in readme
    assert "| `isnet` | lrp | 2 | 30.0 +63.5/−30.0‡ |" in readme  # a share: its interval cut at [0, 100] %
    faith = pd.read_csv(io.BytesIO(files["tables/faithfulness_fake_bias_smoke.csv"]))
    assert faith[faith["metric"] == "sum_spread"]["mean"].unique().tolist() == [pytest.approx(2.0)]
    assert "| spread | faithful |" in readme and "standard deviation of the sums" in readme
    assert "| 20.0 ±0.0 | 2.00 ±6.35 | yes |" in readme  # shown as is, with two decimals
