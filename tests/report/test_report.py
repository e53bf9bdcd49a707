"""``python -m benchmarks report``: determinism, model selection, runs left out, claims, --check."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from benchmarks.report import build_report
from benchmarks.report.build import generate
from benchmarks.report.claims import FAILS, HOLDS, NOT_MEASURED
from benchmarks.report.selection import draw_table, select
from benchmarks.report.tidy import collect, tidy

from .conftest import damage, failing_records, holding_records, write_errored, write_run


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _claims(reports) -> pd.DataFrame:
    frame = pd.read_csv(reports / "tables" / "claims.csv")
    return frame[frame["experiment"] == "(overall)"].set_index("claim")["verdict"]


def test_two_builds_are_byte_identical_wherever_the_records_lie(tmp_path, capsys):
    records = holding_records(tmp_path / "records", seeds=(0, 1))
    write_run(records, "standard", 9, {}, status="failed", reason="non-finite loss at epoch 0")
    assert build_report(records, tmp_path / "a") == 0
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(records, moved)
    assert build_report(moved, tmp_path / "b") == 0
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert sorted(a) == sorted(b)
    assert [name for name in a if a[name] != b[name]] == []
    assert any(name.endswith(".png") for name in a) and any(name.endswith(".tex") for name in a)
    assert str(tmp_path) not in a["README.md"].decode()
    for name, data in a.items():  # no date / version stamps in the figures
        if name.endswith(".png"):
            assert b"Software" not in data and b"matplotlib" not in data.lower()


def test_model_selection_uses_validation_accuracy_only(tmp_path):
    root = tmp_path / "records"
    for seed in (0, 1):
        # draw 0: the best test accuracy everywhere, but the worse validation accuracy
        write_run(root, "standard", seed, {"biased": 0.95, "unbiased": 0.95, "deceiving": 0.95}, hparam_index=0,
                  val_accuracy=0.80)
        # draw 1: worse on every test split, better on validation -> selected
        write_run(root, "standard", seed, {"biased": 0.70, "unbiased": 0.60, "deceiving": 0.50}, hparam_index=1,
                  val_accuracy=0.90)
    frame = tidy(collect(root))
    draws = draw_table(frame)
    assert draws.loc[draws["selected"], "hparam_index"].tolist() == [1]
    assert set(select(frame, draws)["hparam_index"]) == {1}

    reports = tmp_path / "reports"
    assert build_report(root, reports, figures=False) == 0
    accuracy = pd.read_csv(reports / "tables" / "accuracy_fake_bias_smoke.csv")
    assert set(accuracy["hparam_index"]) == {1}
    assert accuracy.set_index("split").loc["deceiving", "mean"] == pytest.approx(0.50)
    text = (reports / "README.md").read_text()
    assert "best mean validation accuracy" in text
    for table in ("accuracy", "balanced_accuracy", "f1_macro", "auc_macro_ovr", "bias_gaps"):
        assert "Model selection: for each method, the hyper-parameter draw" in \
            (reports / "tables" / f"{table}_fake_bias_smoke.tex").read_text()


def test_failed_errored_and_damaged_runs_are_listed_and_damaged_left_out(tmp_path):
    root = holding_records(tmp_path / "records", seeds=(0, 1))
    write_run(root, "rrr", 7, {}, status="failed", reason="non-finite loss at epoch 3, step 2")
    write_errored(root, "isnet", 8, "RuntimeError: CUDA out of memory")
    bad = write_run(root, "standard", 5, {"biased": 0.5, "unbiased": 0.5, "deceiving": 0.5})
    damage(bad)
    reports = tmp_path / "reports"
    assert build_report(root, reports, figures=False) == 0
    text = (reports / "README.md").read_text()
    assert "non-finite loss at epoch 3, step 2" in text
    assert "RuntimeError: CUDA out of memory" in text
    bad_rel = bad.relative_to(root).as_posix()
    assert bad_rel in text and "does not match its digest" in text
    tidy_csv = pd.read_csv(reports / "tables" / "tidy.csv")
    assert bad_rel not in set(tidy_csv["path"])
    assert (tidy_csv["seed"] == 5).sum() == 0
    accuracy = pd.read_csv(reports / "tables" / "accuracy_fake_bias_smoke.csv")
    assert accuracy.set_index(["method", "split"]).loc[("standard", "biased"), "seeds"] == 2
    failed = pd.read_csv(reports / "tables" / "failed_runs.csv")
    assert sorted(failed["status"]) == ["error", "failed"]


def test_claims_hold_when_the_numbers_support_them(tmp_path):
    reports = tmp_path / "reports"
    assert build_report(holding_records(tmp_path / "records"), reports, figures=False) == 0
    verdicts = _claims(reports)
    assert verdicts.to_dict() == {1: HOLDS, 2: HOLDS, 3: HOLDS, 4: HOLDS, 5: HOLDS}
    paired = pd.read_csv(reports / "tables" / "paired_fake_bias_smoke.csv")
    assert set(paired["other"]) == {"isnet_fast", "rrr", "standard"}
    assert paired["pairing"].str.startswith("seed ensemble").all()
    assert (paired["mcnemar_p_holm"] >= paired["mcnemar_p"]).all()


def test_claims_do_not_hold_when_the_numbers_contradict_them(tmp_path):
    reports = tmp_path / "reports"
    assert build_report(failing_records(tmp_path / "records"), reports, figures=False) == 0
    verdicts = _claims(reports)
    assert verdicts.to_dict() == {1: FAILS, 2: FAILS, 3: FAILS, 4: FAILS, 5: FAILS}
    assert "Verdict: **does not hold**" in (reports / "README.md").read_text()


def test_claims_not_measured_without_isnet(tmp_path):
    root = tmp_path / "records"
    for seed in (0, 1):
        write_run(root, "standard", seed, {"biased": 0.9, "unbiased": 0.7, "deceiving": 0.4})
    files, _ = generate(root, figures=False)
    text = files["README.md"].decode()
    assert set(_claims_from(files).values()) == {NOT_MEASURED}
    assert "Not computed: no `isnet` runs" in text
    assert "Not drawn: fewer than two bias strengths" in text


def _claims_from(files) -> dict:
    import io

    frame = pd.read_csv(io.BytesIO(files["tables/claims.csv"]))
    return frame[frame["experiment"] == "(overall)"].set_index("claim")["verdict"].to_dict()


def test_bias_strength_figure_when_strengths_are_recorded(tmp_path):
    root = tmp_path / "records"
    for strength, experiment in ((0.5, "fake_bias_50"), (1.0, "fake_bias_100")):
        for method in ("isnet", "standard"):
            write_run(root, method, 0, {"biased": 0.9, "deceiving": 0.9 - 0.4 * strength * (method == "standard")},
                      experiment=experiment, bias_strength=strength, n=60)
    files, _ = generate(root, figures=True)
    assert "figures/accuracy_vs_bias_strength.png" in files
    assert "figures/gallery_fake_bias_50_smoke_deceiving.png" in files


def test_check_detects_changed_missing_and_stale_files(tmp_path, capsys):
    root = tmp_path / "records"
    for seed in (0, 1):
        write_run(root, "isnet", seed, {"biased": 0.9, "deceiving": 0.85}, n=60)
        write_run(root, "standard", seed, {"biased": 0.9, "deceiving": 0.5}, n=60)
    reports = tmp_path / "reports"
    assert build_report(root, reports) == 0
    foreign = reports / "figures" / "dataset_samples_mnist.png"
    foreign.write_bytes(b"owned by another generator")
    (reports / "performance").mkdir()
    (reports / "performance" / "smoke.md").write_text("timings")
    capsys.readouterr()
    assert build_report(root, reports, check=True) == 0
    assert "check passed" in capsys.readouterr().out

    table = reports / "tables" / "accuracy_fake_bias_smoke.tex"
    table.write_text(table.read_text().replace("90.0", "99.0"))
    (reports / "tables" / "timing.csv").unlink()
    (reports / "tables" / "old_experiment.csv").write_text("stale\n")
    assert build_report(root, reports, check=True) == 1
    out = capsys.readouterr().out
    assert "differs: tables/accuracy_fake_bias_smoke.tex" in out
    assert "missing: tables/timing.csv" in out
    assert "stale: tables/old_experiment.csv" in out
    assert "dataset_samples" not in out and "performance" not in out

    assert build_report(root, reports) == 0  # regenerating repairs it and keeps the foreign files
    assert not (reports / "tables" / "old_experiment.csv").exists()
    assert foreign.read_bytes() == b"owned by another generator"
    assert (reports / "performance" / "smoke.md").exists()
    assert build_report(root, reports, check=True) == 0
