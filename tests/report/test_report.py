"""``python -m benchmarks report``: determinism, model selection, runs left out, claims, --check."""

from __future__ import annotations

import io
import shutil

import pandas as pd
import pytest

from benchmarks.report import build_report, figures, writer
from benchmarks.report.build import generate
from benchmarks.report.claims import FAILS, HOLDS, NOT_MEASURED
from benchmarks.report.selection import draw_table, select
from benchmarks.report.splits import split_roles, stated
from benchmarks.report.tidy import collect, tidy

from .conftest import damage, experiment_fields, failing_records, holding_records, write_errored, write_run


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _verdicts(claims_csv: bytes) -> dict:
    frame = pd.read_csv(io.BytesIO(claims_csv))
    return frame[frame["experiment"] == "(overall)"].set_index("claim")["verdict"].to_dict()


@pytest.fixture(scope="module")
def holding(tmp_path_factory):
    """Records where every claim holds, plus a failed, an errored and a damaged run, and
    their report (with figures)."""
    base = tmp_path_factory.mktemp("holding")
    root = holding_records(base / "records", seeds=(0, 1))
    write_run(root, "rrr", 7, {}, status="failed", reason="non-finite loss at epoch 3, step 2")
    write_errored(root, "isnet", 8, "RuntimeError: CUDA out of memory")
    bad = write_run(root, "standard", 5, {"biased": 0.5, "unbiased": 0.5, "deceiving": 0.5})
    damage(bad)
    reports = base / "reports"
    assert build_report(root, reports) == 0
    return root, reports, bad.relative_to(root).as_posix()


@pytest.mark.slow
def test_two_builds_are_byte_identical_wherever_the_records_lie(holding, tmp_path):
    root, reports, _ = holding
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(root, moved)
    assert build_report(moved, tmp_path / "again") == 0
    a, b = _files(reports), _files(tmp_path / "again")
    assert sorted(a) == sorted(b)
    assert [name for name in a if a[name] != b[name]] == []
    assert {"README.md", "tables/accuracy_fake_bias_smoke.tex", "tables/accuracy_fake_bias_smoke.csv",
            "tables/tidy.csv", "figures/accuracy_fake_bias_smoke.png", "figures/timing.png",
            "figures/gallery_fake_bias_smoke_deceiving.png",
            "figures/background_relevance_fake_bias_smoke.png"} <= set(a)
    assert str(root.parent) not in a["README.md"].decode()
    for name, data in a.items():  # no date or version stamps in the figures
        if name.endswith(".png"):
            assert b"Software" not in data and b"matplotlib" not in data.lower()


@pytest.mark.slow
def test_claims_hold_when_the_numbers_support_them(holding):
    _, reports, _ = holding
    assert _verdicts((reports / "tables" / "claims.csv").read_bytes()) == {1: HOLDS, 2: HOLDS, 3: HOLDS, 4: HOLDS,
                                                                           5: HOLDS, 6: HOLDS}
    paired = pd.read_csv(reports / "tables" / "paired_fake_bias_smoke.csv")
    assert set(paired["other"]) == {"isnet_fast", "rrr", "standard"}
    assert (paired["pairing"] == "paired").all()
    assert (paired["accuracy_p_holm"] >= paired["accuracy_p"]).all()
    text = (reports / "README.md").read_text()
    assert "the difference of the two methods' seed means" in text and "Holm-Bonferroni" in text


@pytest.mark.slow
def test_failed_errored_and_damaged_runs_are_listed_and_damaged_left_out(holding):
    _, reports, bad = holding
    text = (reports / "README.md").read_text()
    assert "non-finite loss at epoch 3, step 2" in text
    assert "RuntimeError: CUDA out of memory" in text
    assert bad in text and "does not match its digest" in text
    tidy_csv = pd.read_csv(reports / "tables" / "tidy.csv")
    assert bad not in set(tidy_csv["path"])
    assert (tidy_csv["seed"] == 5).sum() == 0
    accuracy = pd.read_csv(reports / "tables" / "accuracy_fake_bias_smoke.csv")
    assert accuracy.set_index(["method", "split"]).loc[("standard", "biased"), "seeds"] == 2
    failed = pd.read_csv(reports / "tables" / "failed_runs.csv")
    assert sorted(failed["status"]) == ["error", "failed"]


def test_model_selection_uses_validation_accuracy_only(tmp_path):
    root = tmp_path / "records"
    for seed in (0, 1):
        # draw 0: the best test accuracy everywhere, but the worse validation accuracy
        write_run(root, "standard", seed, {"biased": 0.95, "unbiased": 0.95, "deceiving": 0.95}, hparam_index=0,
                  val_accuracy=0.80, n=60)
        # draw 1: worse on every test split, better on validation -> selected
        write_run(root, "standard", seed, {"biased": 0.70, "unbiased": 0.60, "deceiving": 0.50}, hparam_index=1,
                  val_accuracy=0.90, n=60)
    frame = tidy(collect(root))
    draws = draw_table(frame)
    assert draws.loc[draws["selected"], "hparam_index"].tolist() == [1]
    assert set(select(frame, draws)["hparam_index"]) == {1}

    files, _ = generate(root, figures=False)
    accuracy = pd.read_csv(io.BytesIO(files["tables/accuracy_fake_bias_smoke.csv"]))
    assert set(accuracy["hparam_index"]) == {1}
    assert accuracy.set_index("split").loc["deceiving", "mean"] == pytest.approx(0.50)
    assert "best mean validation accuracy" in files["README.md"].decode()
    for table in ("accuracy", "balanced_accuracy", "f1_macro", "auc_macro_ovr", "bias_gaps", "timing",
                  "explanations_relevance_inside_mask"):
        name = f"tables/{table}_fake_bias_smoke.tex" if table != "timing" else "tables/timing.tex"
        assert "Model selection: for each method, the hyper-parameter draw" in files[name].decode()


def test_claims_do_not_hold_when_the_numbers_contradict_them(tmp_path):
    files, _ = generate(failing_records(tmp_path / "records"), figures=False)
    assert _verdicts(files["tables/claims.csv"]) == {1: FAILS, 2: FAILS, 3: FAILS, 4: FAILS, 5: FAILS,
                                                     6: FAILS}
    assert "Verdict: **does not hold**" in files["README.md"].decode()


def test_claims_not_measured_without_isnet(tmp_path):
    root = tmp_path / "records"
    for seed in (0, 1):
        write_run(root, "standard", seed, {"biased": 0.9, "unbiased": 0.7, "deceiving": 0.4}, n=60)
    files, _ = generate(root, figures=False)
    text = files["README.md"].decode()
    assert set(_verdicts(files["tables/claims.csv"]).values()) == {NOT_MEASURED}
    assert "Not computed: no runs of a reference method (role `reference` in the records)" in text
    assert "Not drawn: fewer than two bias strengths" in text


def test_bias_strength_figure_when_strengths_are_recorded(tmp_path):
    root = tmp_path / "records"
    for strength, experiment in ((0.5, "fake_bias_50"), (1.0, "fake_bias_100")):
        for method in ("isnet", "standard"):
            write_run(root, method, 0, {"biased": 0.9, "deceiving": 0.9 - 0.4 * strength * (method == "standard")},
                      experiment=experiment, bias_strength=strength, n=60)
    files, _ = generate(root, figures=False)
    assert "![accuracy against bias strength](figures/accuracy_vs_bias_strength.png)" in files["README.md"].decode()
    selected = select(tidy(collect(root)))
    statement = stated(experiment_fields("fake_bias"))
    roles = {(e, "smoke"): split_roles([statement], ["biased", "deceiving"], e)
             for e in ("fake_bias_50", "fake_bias_100")}
    assert figures.bias_strength(selected, roles).startswith(b"\x89PNG")
    assert figures.bias_strength(selected[selected["experiment"] == "fake_bias_50"], roles) is None


def test_check_detects_changed_missing_and_stale_files(tmp_path, capsys):
    root = tmp_path / "records"
    for seed in (0, 1):
        write_run(root, "isnet", seed, {"biased": 0.9, "deceiving": 0.85}, n=60)
        write_run(root, "standard", seed, {"biased": 0.9, "deceiving": 0.5}, n=60)
    reports = tmp_path / "reports"
    assert build_report(root, reports, figures=False) == 0
    (reports / "figures").mkdir(exist_ok=True)
    foreign = reports / "figures" / "dataset_samples_mnist.png"
    foreign.write_bytes(b"owned by another generator")
    (reports / "performance").mkdir()
    (reports / "performance" / "smoke.md").write_text("timings")
    capsys.readouterr()
    assert build_report(root, reports, figures=False, check=True) == 0
    assert "check passed" in capsys.readouterr().out

    table = reports / "tables" / "accuracy_fake_bias_smoke.tex"
    table.write_text(table.read_text().replace("90.0", "99.0"))
    (reports / "tables" / "timing.csv").unlink()
    listed = writer.listed(reports)
    (reports / writer.MANIFEST).write_bytes(writer.manifest([*listed, "tables/old_experiment.csv"]))
    (reports / "tables" / "old_experiment.csv").write_text("stale\n")
    assert build_report(root, reports, figures=False, check=True) == 1
    out = capsys.readouterr().out
    assert "differs: tables/accuracy_fake_bias_smoke.tex" in out
    assert "missing: tables/timing.csv" in out
    assert "stale: tables/old_experiment.csv" in out
    assert "differs: report-manifest.json" in out
    assert "dataset_samples" not in out and "performance" not in out

    assert build_report(root, reports, figures=False) == 0  # regenerating repairs it, foreign files stay
    assert not (reports / "tables" / "old_experiment.csv").exists()
    assert foreign.read_bytes() == b"owned by another generator"
    assert (reports / "performance" / "smoke.md").exists()
    assert build_report(root, reports, figures=False, check=True) == 0


@pytest.mark.slow
def test_check_compares_figures_too(holding):
    _, reports, _ = holding
    regenerated = {rel: (reports / rel).read_bytes() for rel in [*writer.listed(reports), writer.MANIFEST]}
    assert writer.compare(reports, regenerated) == []
    regenerated["figures/timing.png"] = regenerated["figures/timing.png"][:-10] + b"0123456789"
    assert writer.compare(reports, regenerated) == ["differs: figures/timing.png"]
    assert writer.compare(reports, regenerated, figures=False) == []
