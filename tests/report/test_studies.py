"""The studies' rules on scripted numbers with known answers."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from benchmarks.report import study_tables
from benchmarks.report.tidy import collect
from benchmarks.studies import stopping, sweep

from .conftest import write_run


def _curve(losses, accuracy=0.9):
    return [{"epoch": e, "val_loss": v, "val_accuracy": accuracy, "selectable": True} for e, v in enumerate(losses)]


def test_the_sweep_keeps_the_constants_unless_a_candidate_beats_them_by_the_margin():
    base = {("rrr", i, e): 0.80 for i in (0, 1, 2) for e in sweep.EXPERIMENTS}
    close = {**base, **{("rrr", 1, e): 0.805 for e in sweep.EXPERIMENTS}}  # +0.5 pp: within the margin
    assert sweep.choose(close)["rrr"]["candidate"] == 0
    better = {**base, ("rrr", 2, "synthetic_covid"): 0.84, ("rrr", 2, "synthetic_tb"): 0.79}  # mean +1.5 pp
    chosen = sweep.choose(better)["rrr"]
    assert chosen["candidate"] == 2 and chosen["hparams"]["lambda_rrr"] == 5.0
    assert abs(chosen["mean"] - 0.815) < 1e-12 and chosen["before"] == 0.80
    assert "gain" not in sweep.choose(base)  # no records: nothing to choose


def test_a_sweep_in_progress_chooses_nothing():
    started = {("rrr", 0, e): 0.5 for e in sweep.EXPERIMENTS} | {("rrr", 1, e): 0.99 for e in sweep.EXPERIMENTS}
    assert "rrr" not in sweep.choose(started)  # candidate 2 not yet measured: not judged
    one_experiment = started | {("rrr", 2, "synthetic_covid"): 0.6}
    assert "rrr" not in sweep.choose(one_experiment)  # measured on one experiment only: not judged


def test_every_candidate_is_the_constants_before_the_sweep_with_one_change():
    for method, candidates in sweep.CANDIDATES.items():
        assert candidates[0] == sweep.BEFORE[method]
        for candidate, change in zip(candidates[1:], sweep.CHANGES[method], strict=True):
            assert {k: v for k, v in candidate.items() if sweep.BEFORE[method][k] != v} == change


def test_stopping_rules_on_a_curve_with_a_late_improvement():
    curve = _curve([1.0, 0.8, 0.7, 0.69, 0.695, 0.69, 0.69, 0.69, 0.69, 0.5, 0.5, 0.5])
    assert stopping.stop_epochs(curve, stopping.fixed) == 12
    assert stopping.stop_epochs(curve, stopping.last_quarter) == 8  # flat from epoch 3: stops before the drop
    assert stopping.stop_epochs(curve, stopping.patience(4)) == 8  # the best (0.69, epoch 3) is 4 epochs old at 8
    assert stopping.stop_epochs(curve, stopping.patience(6)) == 12  # 5 epochs old when the drop comes
    assert stopping.apply(curve, stopping.fixed).selected == 9


def _sweep_records(root, best: int) -> None:
    """Every rrr candidate on every sweep experiment and seed; candidate ``best`` validates at 0.9, the others at
    0.8 (write_run's validation accuracy is ``val_accuracy`` minus the loss / 10)."""
    for index in range(len(sweep.CANDIDATES["rrr"])):
        for experiment in sweep.EXPERIMENTS:
            for seed in sweep.SEEDS:
                write_run(root, "rrr", seed, {"biased": 0.5}, experiment=experiment, hparam_index=index,
                          val_accuracy=(0.95 if index == best else 0.85))


def _row(table, method: str, index: int) -> dict:
    return table.data.set_index(["method", "candidate"]).loc[(method, index)].to_dict()


def test_the_sweep_table_says_whether_the_chosen_candidate_is_the_plugins_default(tmp_path, monkeypatch):
    _sweep_records(tmp_path, best=2)
    chosen = sweep.CANDIDATES["rrr"][2]
    specs = {"rrr": SimpleNamespace(defaults=dict(sweep.BEFORE["rrr"]))}
    monkeypatch.setattr(study_tables, "discover_methods", lambda: specs)
    table = study_tables.sweep_table(collect(tmp_path))
    row = _row(table, "rrr", 2)
    assert row["chosen"] and not row["default"] and abs(row["mean"] - 0.9) < 1e-9
    assert "**chosen**, not the plugin's default yet" in table.markdown()
    assert not _row(table, "rrr", 0)["chosen"] and "not judged: sweep incomplete" in table.markdown()  # gain: no runs
    specs["rrr"] = SimpleNamespace(defaults=dict(chosen))
    table = study_tables.sweep_table(collect(tmp_path))
    assert _row(table, "rrr", 2)["default"] and "not the plugin's default yet" not in table.markdown()


def test_every_choice_of_the_committed_sweep_is_its_plugins_default():
    """The default grid uses what the committed sweep chose: a judged method whose chosen candidate is not its
    plugin's declared defaults fails here (and its row in the report says so)."""
    root = Path(__file__).resolve().parents[2] / "results" / "studies" / "sweep"
    if not (root / "runs").is_dir():
        pytest.skip("no committed sweep records in this checkout")
    table = study_tables.sweep_table(collect(root))
    chosen = table.data[table.data["chosen"]]
    assert chosen["default"].all(), chosen[["method", "changes"]].to_dict("records")
