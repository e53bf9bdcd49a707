"""Every study's command: the same options, its records under results/studies/<name> by default."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.studies import isnet_protocol, running, stopping, sweep


@pytest.mark.parametrize("study", [isnet_protocol, stopping, sweep])
def test_each_study_lists_its_runs_or_runs_nothing_twice(study, tmp_path, capsys, monkeypatch):
    seen = {}

    def no_runs(out, cache_dir):
        seen["out"], seen["cache"] = out, cache_dir
        return []

    monkeypatch.setattr(study, "tasks", no_runs)
    assert study.main(["run", "--out", str(tmp_path / "records"), "--cache-dir", str(tmp_path / "cache")]) == 0
    assert seen == {"out": tmp_path / "records", "cache": tmp_path / "cache"}
    assert "0 runs in the study: 0 done, 0 to run" in capsys.readouterr().out


def test_the_default_folder_is_named_after_the_study(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    seen = {}

    def no_runs(out, cache_dir):
        seen["out"] = out
        return []

    running.study_main("sweep", "doc", no_runs, ["run"])
    assert seen["out"] == (tmp_path / "results" / "studies" / "sweep").resolve()


def test_the_protocol_study_lists_its_arms(capsys):
    assert isnet_protocol.main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(f"{arm.name}: " in out for arm in isnet_protocol.ARMS)
    assert out.strip().endswith(f"{len(isnet_protocol.tasks(Path('.'), Path('.')))} runs")
