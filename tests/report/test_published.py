"""Published figures beside the suite's numbers: the Decoy MNIST table on a small synthetic
analysis table with known answers, and the README section only where decoy_mnist records exist."""

from __future__ import annotations

import pandas as pd

from benchmarks.report.build import generate
from benchmarks.report.published import RRR_DECOY_MNIST, comparison_table, section

from .conftest import write_run


def _metrics(rows: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    """An Analysis.metrics-shaped frame: (profile, method, split, mean) rows of decoy_mnist."""
    return pd.DataFrame([{"experiment": "decoy_mnist", "profile": profile, "method": method, "split": split,
                          "metric": "accuracy", "mean": mean, "t_low": mean - 0.01, "t_high": mean + 0.01,
                          "t_half": 0.01, "boot_low": mean - 0.02, "boot_high": mean + 0.02, "seeds": 3,
                          "images_shared_by_seeds": True, "hparam_index": 0, "majority_share": 0.1}
                         for profile, method, split, mean in rows])


def test_the_published_figures_are_the_authors_notebook_values():
    got = {f.method: (f.accuracy, f.split) for f in RRR_DECOY_MNIST.figures}
    assert got == {"standard": (0.5155, "decoy"), "rrr": (0.9607, "decoy"), None: (0.9611, "decoy")}
    assert "IJCAI 2017" in RRR_DECOY_MNIST.source and "dtak/rrr" in RRR_DECOY_MNIST.source


def test_suite_numbers_sit_beside_the_published_ones():
    metrics = _metrics([("cpu", "standard", "decoy", 0.71552), ("cpu", "standard", "biased", 0.99),
                        ("cpu", "rrr", "decoy", 0.91072), ("cpu", "isnet", "decoy", 0.9)])
    table = comparison_table(metrics, RRR_DECOY_MNIST, "cpu")
    text = table.markdown()
    assert "| `standard` | 3 | 71.6 ±1.0 [69.6, 73.6] | 51.5 | MLP, cross-entropy only" in text
    assert text.count("+20.0") == 1 and text.count("-5.0") == 1  # 71.552 - 51.55; 91.072 - 96.07
    assert "| `isnet` | 3 | 90.0 ±1.0 [88.0, 92.0] | — | not in the paper | — |" in text
    assert "| — | — | — | 96.1 | MLP trained and tested on plain MNIST" in text
    assert [r[0].md for r in table.rows] == ["`rrr`", "`standard`", "`isnet`", "—"]  # published ones first
    data = table.data.set_index("method")
    assert abs(data.loc["standard", "difference"] - 0.20002) < 1e-12 and data.loc["standard", "published"] == 0.5155
    assert "\\pm" in table.latex()
    assert "| +20.0 | 99.0 | — |" in text  # standard's own biased split beside, no deceiving run
    assert data.loc["standard", "suite_mean/biased"] == 0.99 and "`deceiving`" in table.caption


def test_a_method_without_runs_shows_a_dash():
    table = comparison_table(_metrics([("cpu", "standard", "decoy", 0.5)]), RRR_DECOY_MNIST, "cpu")
    assert "| `rrr` | — | — | 96.1 |" in table.markdown()


def test_the_section_appears_only_with_decoy_mnist_runs():
    registered = []

    def table(t):
        registered.append(t.name)
        return t.markdown()

    assert section(pd.DataFrame(), table) == []
    other = _metrics([("cpu", "standard", "decoy", 0.5)]).assign(experiment="biased_mnist")
    assert section(other, table) == [] and registered == []
    both = _metrics([("cpu", "standard", "decoy", 0.5), ("smoke", "standard", "decoy", 0.2)])
    lines = section(both, table)
    assert lines[0] == "## Decoy MNIST beside the RRR paper"
    assert registered == ["published_decoy_mnist_cpu", "published_decoy_mnist_smoke"]
    assert any(line.startswith("- **RRR's weight.**") for line in lines)


def test_the_report_readme_carries_the_section_for_decoy_mnist_records(tmp_path):
    decoy, other = tmp_path / "decoy", tmp_path / "other"
    for seed in (0, 1):
        write_run(decoy, "standard", seed, {"biased": 0.99, "decoy": 0.5, "deceiving": 0.1}, experiment="decoy_mnist",
                  n=60, k=10)
        write_run(other, "standard", seed, {"biased": 0.99, "unbiased": 0.9, "deceiving": 0.3}, n=60)
    files, _ = generate(decoy, figures=False)
    text = files["README.md"].decode()
    assert "## Decoy MNIST beside the RRR paper" in text and "tables/published_decoy_mnist_smoke.csv" in files
    assert text.index("## Decoy MNIST beside the RRR paper") < text.index("## Model selection")
    files, _ = generate(other, figures=False)
    assert "RRR paper" not in files["README.md"].decode()
