"""The report deletes or overwrites only what an earlier report wrote, goes next to the user's
records by default, and fails on an unusable --reports before computing anything."""

from __future__ import annotations

import re

import pytest

from benchmarks.commands.cli import main
from benchmarks.report import build, writer

from .conftest import write_run


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    root = tmp_path_factory.mktemp("writer") / "records"
    for seed in (0, 1):
        write_run(root, "isnet", seed, {"biased": 0.9, "deceiving": 0.85}, n=60)
        write_run(root, "standard", seed, {"biased": 0.9, "deceiving": 0.5}, n=60)
    return root


def _user_files(folder):
    files = {"figures/fig1_final.pdf": b"%PDF final", "figures/drafts/sketch.png": b"sketch",
             "tables/my.csv": b"mine\n"}
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    return files


def test_a_folder_of_someone_else_is_refused_and_left_as_it_was(records, tmp_path, capsys):
    folder = tmp_path / "paper"
    mine = _user_files(folder)
    assert main(["report", "--out", str(records), "--reports", str(folder), "--no-figures"]) == 2
    err = capsys.readouterr().err
    assert f"--reports {folder}" in err and "is not empty and holds no report-manifest.json" in err
    assert {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == mine


def test_an_earlier_report_is_replaced_and_nothing_else_is_touched(records, tmp_path):
    folder = tmp_path / "report"
    assert build.build_report(records, folder, figures=False) == 0
    mine = _user_files(folder)
    old = "tables/accuracy_gone_smoke.csv"  # a file an earlier report wrote that this one no longer makes
    (folder / old).write_text("old\n")
    (folder / writer.MANIFEST).write_bytes(writer.manifest([*writer.listed(folder), old]))
    assert build.build_report(records, folder, figures=False) == 0
    assert not (folder / old).exists()
    for rel, data in mine.items():
        assert (folder / rel).read_bytes() == data
    assert set(writer.listed(folder)) >= {"README.md", "tables/accuracy_fake_bias_smoke.csv"}
    assert "figures/accuracy_fake_bias_smoke.png" in writer.listed(folder)  # listed, though not drawn this time


def _shown(folder) -> set[str]:
    """The figures the README in ``folder`` shows."""
    return set(re.findall(r"!\[[^]]*\]\((figures/[^)]+)\)", (folder / "README.md").read_text()))


def test_without_figures_the_readme_shows_only_figures_drawn_from_these_records(tmp_path, capsys):
    records = tmp_path / "records"
    for seed in (0, 1):
        write_run(records, "isnet", seed, {"biased": 0.9, "deceiving": 0.85}, n=60)
    folder = tmp_path / "report"
    assert build.build_report(records, folder) == 0
    drawn = _shown(folder)
    assert "figures/accuracy_fake_bias_smoke.png" in drawn and all((folder / rel).is_file() for rel in drawn)
    readme = (folder / "README.md").read_bytes()
    assert build.build_report(records, folder, figures=False) == 0  # same records: the figures are current
    assert (folder / "README.md").read_bytes() == readme

    for seed in (0, 1):  # a method added: every figure on disk shows the records without it
        write_run(records, "standard", seed, {"biased": 0.9, "deceiving": 0.5}, n=60)
    capsys.readouterr()
    assert build.build_report(records, folder, figures=False) == 0
    assert _shown(folder) == set()  # they were still shown, stale
    assert f"{len(drawn)} figure(s) were not drawn from these records" in capsys.readouterr().err
    text = (folder / "README.md").read_text()
    assert "*Figure not shown: `figures/accuracy_fake_bias_smoke.png` was not drawn from these records" in text
    assert all((folder / rel).is_file() for rel in drawn) and set(writer.listed(folder)) >= drawn  # still owned
    assert build.build_report(records, folder, figures=False) == 0
    assert _shown(folder) == set()  # and stay unshown until they are drawn again
    assert build.build_report(records, folder) == 0
    assert _shown(folder) == drawn
    assert build.build_report(records, folder, check=True, figures=False) == 0


def test_a_file_no_report_wrote_is_never_overwritten(records, tmp_path):
    folder = tmp_path / "report"
    assert build.build_report(records, folder, figures=False) == 0
    manifest = writer.listed(folder)
    (folder / writer.MANIFEST).write_bytes(writer.manifest([m for m in manifest if m != "tables/timing.csv"]))
    (folder / "tables" / "timing.csv").write_text("a user's own table\n")
    with pytest.raises(writer.NotAReportFolder, match="would overwrite tables/timing.csv"):
        build.build_report(records, folder, figures=False)
    assert (folder / "tables" / "timing.csv").read_text() == "a user's own table\n"


def test_the_report_of_a_users_records_goes_next_to_them(records, tmp_path, monkeypatch):
    assert build.default_reports(records) == records / "report"
    monkeypatch.setattr(build, "REPOSITORY", tmp_path)
    assert build.default_reports(tmp_path / "results") == tmp_path / "reports"
    assert main(["report", "--runs", str(records), "--no-figures"]) == 0
    assert (records / "report" / "README.md").is_file()


def test_an_unusable_reports_folder_fails_before_the_computation(records, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(build, "generate", lambda *a, **k: pytest.fail("computed before checking --reports"))
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(["report", "--runs", str(records), "--reports", str(blocker)]) == 2
    assert f"--reports {blocker}: {blocker} is a file" in capsys.readouterr().err
    monkeypatch.setattr(writer.os, "access", lambda *a: False)
    assert main(["report", "--runs", str(records), "--reports", str(tmp_path / "new")]) == 2
    assert f"--reports {tmp_path / 'new'}" in capsys.readouterr().err


def test_report_help_shows_every_default(capsys):
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--runs RUNS, --out RUNS" in text
    for default in ("(default: output;", "(default: RUNS/report;", "(default: figures too)",
                    "(default: write the report)"):
        assert default in text
