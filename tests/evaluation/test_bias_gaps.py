"""Bias gaps from per-split metric tables."""

import pandas as pd
import pytest

from benchmarks.evaluation import biased_deceiving_gap, in_distribution_external_gap, split_gap


def _table():
    rows = []
    for method, (acc_b, acc_d) in {"isnet": (0.95, 0.93), "standard": (0.99, 0.40)}.items():
        for seed in (0, 1):
            rows.append(dict(method=method, seed=seed, split="biased", accuracy=acc_b, f1=acc_b - 0.01))
            rows.append(dict(method=method, seed=seed, split="deceiving", accuracy=acc_d, f1=acc_d - 0.02))
            rows.append(dict(method=method, seed=seed, split="unbiased", accuracy=0.5, f1=0.5))
    return pd.DataFrame(rows)


def test_biased_minus_deceiving_per_run():
    gaps = biased_deceiving_gap(_table())
    assert list(gaps.columns) == ["method", "seed", "accuracy", "f1"]
    assert len(gaps) == 4
    std = gaps[gaps.method == "standard"]
    assert std.accuracy.tolist() == pytest.approx([0.59, 0.59])
    assert std.f1.tolist() == pytest.approx([0.60, 0.60])
    assert gaps[gaps.method == "isnet"].accuracy.tolist() == pytest.approx([0.02, 0.02])


def test_mapping_input_and_custom_split_names():
    one_run = {"in_distribution": {"accuracy": 0.9, "auc": 0.95}, "external": {"accuracy": 0.7}}
    assert in_distribution_external_gap(one_run) == pytest.approx({"accuracy": 0.2})
    renamed = {"id": {"accuracy": 0.9}, "ood": {"accuracy": 0.6}}
    assert split_gap(renamed, "id", "ood") == pytest.approx({"accuracy": 0.3})


def test_explicit_metrics_and_errors():
    t = _table()
    gaps = split_gap(t, "biased", "unbiased", metrics=["accuracy"], by=["method", "seed"])
    assert list(gaps.columns) == ["method", "seed", "accuracy"]
    with pytest.raises(ValueError, match="no rows"):
        split_gap(t, "biased", "external")
    with pytest.raises(ValueError, match="lack"):
        split_gap(t.drop(index=1), "biased", "deceiving")  # isnet seed 0 lost its deceiving row
    with pytest.raises(ValueError, match="several rows"):
        split_gap(t, "biased", "deceiving", by=["method"])
