"""Converged schedules, shown: the convergence rule with known answers, and what the report says."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from benchmarks.report.build import generate
from benchmarks.report.convergence_diagnostic import judge, last_quarter, verdict
from benchmarks.store import RunDir

from .conftest import SELECTION_RULE, write_run


def _epochs(losses, selectable=None):
    flags = selectable or [True] * len(losses)
    return [{"epoch": e, "val_loss": v, "selectable": f} for e, (v, f) in enumerate(zip(losses, flags, strict=True))]


def test_the_last_quarter_is_ceil_of_a_quarter_and_at_least_one_epoch():
    assert [last_quarter(n) for n in (1, 2, 4, 5, 8, 9, 24)] == [1, 1, 1, 2, 2, 3, 6]


@pytest.mark.parametrize(("losses", "selectable", "improving", "change"), [
    ([1.0, 0.8, 0.6, 0.5, 0.45, 0.44, 0.40, 0.30], None, True, 0.30 / 0.44 - 1),  # still falling
    ([1.0, 0.5, 0.4, 0.4, 0.4, 0.4, 0.401, 0.399], None, False, -0.0025),       # flat within 1 %
    ([1.0, 0.8, 0.7, 0.99], None, False, 0.99 / 0.7 - 1),                       # worse at the end
    ([1.0, 1.0, 1.0, 0.99], None, False, -0.01),                                # exactly 1 % lower: not more
    ([1.0, 1.0, 1.0, 0.989], None, True, -0.011),
    ([0.05, 0.05, 0.05, 0.0495], None, False, -0.01),                           # 1 % but under the 0.001 floor
    ([0.05, 0.02, 0.0009, 0.0001], None, False, -8 / 9),                         # near zero: halving is no gain
    ([1.0, 0.9, 0.8, 0.1], [True, True, True, False], False, None),             # unselectable epochs do not count
    ([0.5], None, None, None),                                                  # one epoch: cannot be judged
    ([2.0, 1.0], [False, True], None, None),                                    # nothing selectable before
])
def test_still_improving_by_the_rule(losses, selectable, improving, change):
    result = judge(_epochs(losses, selectable))
    assert result["still_improving"] is improving
    if change is not None:
        assert result["change"] == pytest.approx(change)


def test_a_method_converged_when_none_of_its_seeds_is_still_improving():
    assert verdict(pd.Series([False, False])) == "converged"
    assert verdict(pd.Series([False, True])) == "not converged"
    assert verdict(pd.Series([False, None])) == "cannot be judged"
    assert verdict(pd.Series([None, True])) == "not converged"


def test_the_report_says_plainly_which_method_did_not_converge(tmp_path):
    root = tmp_path / "records"
    falling, flat = [1.0, 0.8, 0.6, 0.5, 0.45, 0.44, 0.40, 0.30], [1.0, 0.5, 0.42, 0.4, 0.4, 0.4, 0.41, 0.42]
    for seed in (0, 1):
        write_run(root, "isnet", seed, {"biased": 0.9, "deceiving": 0.85}, n=60, val_loss=falling if seed else flat)
        write_run(root, "standard", seed, {"biased": 0.9, "deceiving": 0.5}, n=60, val_loss=flat)
    files, _ = generate(root)
    text = files["README.md"].decode()
    assert "**Did not converge** by this rule: `isnet` on fake_bias (smoke)." in text
    assert "by more than 1 % of it and by more than 0.001" in text
    assert f'records (`selection_rule`): "{SELECTION_RULE}"' in text
    table = pd.read_csv(io.BytesIO(files["tables/convergence.csv"]))
    assert dict(zip(table["method"], table["verdict"], strict=False)) == {"isnet": "not converged",
                                                                          "standard": "converged"}
    assert table.set_index(["method", "seed"]).loc[("isnet", 1), "selected_epoch"] == 7
    assert "s0: 3, s1: 7" in text  # the selected epoch of each seed
    assert files["figures/learning_curves_fake_bias_smoke.png"].startswith(b"\x89PNG")
    assert "![learning curves, fake_bias](figures/learning_curves_fake_bias_smoke.png)" in text


def test_a_finished_run_without_its_selection_is_refused(tmp_path):
    folder = write_run(tmp_path / "records", "isnet", 0, {"biased": 0.9, "deceiving": 0.85}, n=60)
    summary = json.loads((folder / "summary.json").read_text())
    del summary["selection"]
    (folder / "summary.json").write_text(json.dumps(summary))
    RunDir(folder).mark_done("ok")
    with pytest.raises(ValueError, match="summary.json lacks selection"):
        generate(tmp_path / "records", figures=False)
