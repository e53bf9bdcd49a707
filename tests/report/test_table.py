"""Numbers in table cells: no signed zeros, and t-intervals cut at the metric's range (explanation
scores and the percentages of the metric tables), saying so."""

from __future__ import annotations

from benchmarks.report.build import generate
from benchmarks.report.table import CUT, interval_cell, num, signed, t_cell

from .conftest import write_run


def test_a_number_that_rounds_to_zero_has_no_sign():
    assert num(-0.0001) == "0.0" and signed(-0.0001) == "0.0" and signed(0.0001) == "0.0"  # was "-0.0", "+0.0"
    assert num(-0.001) == "-0.1" and signed(0.001) == "+0.1" and signed(-0.0004, 1, 3) == "0.000"
    assert signed(-0.0006, 1, 3) == "-0.001"


def test_an_interval_past_the_metric_range_is_cut_and_marked():
    assert t_cell(0.5, 3.177, scale=100, digits=1, bounds=(0.0, 1.0)).md == f"50.0 +50.0/−50.0{CUT}"  # was ±317.7
    assert t_cell(0.9, 0.2, scale=100, digits=1, bounds=(0.0, 1.0)).md == f"90.0 +10.0/−20.0{CUT}"
    assert t_cell(0.5, 0.1, scale=100, digits=1, bounds=(0.0, 1.0)).md == "50.0 ±10.0"
    assert t_cell(1 + 2e-16, 0.0, scale=100, digits=1, bounds=(0.0, 1.0)).md == "100.0 ±0.0"  # rounding is no cut
    assert t_cell(1.0, 1e-5, scale=100, digits=1, bounds=(0.0, 1.0)).md == "100.0 ±0.0"  # nor what the cell cannot show
    assert t_cell(0.5, 3.177, scale=100, digits=1, bounds=(0.0, 1.0)).tex == r"50.0 $^{+50.0}_{-50.0}{}^\ddagger$"
    cell = interval_cell(0.985, 0.04, 0.979, 0.99, scale=100, digits=1, bounds=(0.0, 1.0))
    assert cell.md == f"98.5 +1.5/−4.0{CUT} [97.9, 99.0]"  # was 98.5 ±4.0 [97.9, 99.0]
    assert t_cell(5.0, 9.0, scale=1, digits=1).md == "5.0 ±9.0"  # no range given: nothing cut


def test_the_explanation_table_states_its_cut_intervals(tmp_path):
    root = tmp_path / "records"
    for seed, inside, accuracy in ((0, 0.1, 0.6), (1, 0.9, 0.99)):  # far apart: t(1 df) makes the half-width huge
        write_run(root, "isnet", seed, {"biased": accuracy}, inside=inside)
    text = generate(root, figures=False)[0]["README.md"].decode()
    assert f"50.0 +50.0/−50.0{CUT}" in text  # the explanation table
    assert f"| `isnet` | 0 | 2 | 79.5 +20.5/−79.5{CUT} [76.5, 82.3] |" in text  # the accuracy table
    assert text.count(f"{CUT}: the t-interval runs past the metric's range [0, 100] %") >= 3
