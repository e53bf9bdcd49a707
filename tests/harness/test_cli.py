"""The command line: list, bad names, unwritable output, dry runs."""

from __future__ import annotations

import os

import pytest

from benchmarks.cli import main


def test_list_shows_methods_with_mask_needs_and_experiments_with_splits(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "standard" in out and "biased_mnist" in out
    assert "biased, unbiased, deceiving" in out


def test_unknown_method_suggests_the_closest_name(capsys):
    assert main(["run", "--methods", "standrd", "--experiments", "biased_mnist", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "unknown method 'standrd'" in err and "Did you mean 'standard'" in err


def test_unknown_experiment_lists_valid_names(capsys):
    assert main(["run", "--experiments", "mnist_biased", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "unknown experiment 'mnist_biased'" in err and "biased_mnist" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_out_fails_before_training(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert main(["run", "--methods", "standard", "--experiments", "biased_mnist", "--out", str(locked / "x")]) == 2
    assert "not writable" in capsys.readouterr().err


def test_out_that_is_a_file_fails_before_training(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["run", "--methods", "standard", "--experiments", "biased_mnist", "--profile", "smoke",
                 "--out", str(blocker / "sub")]) == 2
    assert "not writable" in capsys.readouterr().err


def test_dry_run_lists_the_grid(tmp_path, capsys):
    assert main(["run", "--methods", "standard", "--experiments", "biased_mnist", "--seeds", "0", "1",
                 "--profile", "smoke", "--out", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 runs in the grid" in out and out.count("would run") == 2


def test_run_all_skips_an_experiment_whose_data_are_missing(tmp_path, capsys, monkeypatch):
    import benchmarks.data.fashion as fashion

    monkeypatch.setenv("ISNET_FASHION_MNIST_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setattr(fashion, "DEBIAN_DIR", tmp_path / "nowhere")
    assert main(["run", "--all", "--profile", "smoke", "--seeds", "0", "--out", str(tmp_path / "runs"),
                 "--cache-dir", str(tmp_path / "cache"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "not running biased_fashion_mnist: its data are missing here" in out
    assert "apt-get install dataset-fashion-mnist" in out
    assert "would run biased_fashion_mnist" not in out and "would run biased_mnist/standard" in out
