"""``run --all --profile smoke`` then ``report`` in a temporary folder, as a user would.

The grid is limited to two experiments (one with a synthetic bias, one with external
hospitals) to keep the suite fast; every method is still run on both, and CI runs the whole
``run --all --profile smoke`` grid in ``.ci/run``.
"""

from __future__ import annotations

import pytest

from benchmarks.commands.cli import main
from benchmarks.registry import discover_experiments
from benchmarks.resources import read_invocations

pytestmark = pytest.mark.slow  # the smoke grid of every method on two experiments, then its report


def test_run_all_smoke_then_report(tmp_path, capsys):
    out, reports, cache = tmp_path / "runs", tmp_path / "reports", tmp_path / "cache"
    experiments = ["biased_mnist", "synthetic_tb"]
    args = ["run", "--all", "--experiments", *experiments, "--profile", "smoke", "--seeds", "0", "--out", str(out),
            "--cache-dir", str(cache), "--no-progress"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "0 errors" in first

    invocations = read_invocations(out)
    assert len(invocations) == 1 and invocations[0]["profile"] == "smoke"
    assert invocations[0]["runs_trained"] == invocations[0]["outcomes"]["ok"] > 0

    assert main(args) == 0  # everything is done: nothing runs again
    assert "to run" in capsys.readouterr().out
    assert len(read_invocations(out)) == 1  # an invocation that trains nothing is not logged
    assert main(args + ["--dry-run"]) == 0
    assert ", 0 to run" in capsys.readouterr().out

    assert main(["report", "--out", str(out), "--reports", str(reports)]) == 0
    text = (reports / "README.md").read_text()
    assert "## Cost of the runs" in text and "smoke" in (reports / "tables" / "invocations.csv").read_text()
    for name, exp in discover_experiments().items():
        if name not in experiments:
            continue
        assert f"### {name}" in text
        for split in exp.test_splits:
            assert split in text
