"""The report reads what a method is, and what a split is, from the run records alone."""

from __future__ import annotations

import builtins
import io
import json

import pandas as pd
import pytest

from benchmarks.api import ROLES as API_ROLES
from benchmarks.report import roles
from benchmarks.report.build import generate
from benchmarks.store import RunDir

from .conftest import write_run


def _claims(files) -> pd.DataFrame:
    frame = pd.read_csv(io.BytesIO(files["tables/claims.csv"]))
    return frame[frame["experiment"] != "(overall)"].set_index("claim")


def test_the_report_knows_the_plugin_api_roles():
    assert roles.ROLES == API_ROLES


def test_renamed_and_third_party_methods_land_in_the_rows_of_their_role(tmp_path):
    root = tmp_path / "records"
    cast = {"my_isnet": "reference", "faster_mine": "reference_variant", "plain_cnn": "plain_baseline",
            "isnet_lookalike": "comparison", "third_party": "comparison"}
    for seed in (0, 1):
        for method, role in cast.items():
            deceiving = {"reference": 0.95, "reference_variant": 0.4}.get(role, 0.6)
            write_run(root, method, seed, {"biased": 0.95, "unbiased": 0.9, "deceiving": deceiving}, n=60, role=role)
    files, _ = generate(root, figures=False)
    claims = _claims(files)
    assert "`plain_cnn`" in claims.loc[2, "evidence"] and "`third_party`" not in claims.loc[2, "evidence"]
    claim3 = claims.loc[3, "evidence"]
    assert "`isnet_lookalike`" in claim3 and "`third_party`" in claim3  # a name prefix makes no variant
    assert "`faster_mine`" not in claim3 and "`plain_cnn`" not in claim3
    assert "`faster_mine`" not in claims.loc[4, "evidence"] and "`plain_cnn`" in claims.loc[4, "evidence"]
    assert "(`plain_cnn`)" in claims.loc[5, "evidence"]
    paired = pd.read_csv(io.BytesIO(files["tables/paired_fake_bias_smoke.csv"]))
    assert set(paired["reference"]) == {"my_isnet"}
    assert set(paired["other"]) == set(cast) - {"my_isnet"}
    assert "ISNet is the method with role `reference` (`my_isnet`)" in files["README.md"].decode()
    tidy = pd.read_csv(io.BytesIO(files["tables/tidy.csv"]))
    assert dict(zip(tidy["method"], tidy["role"], strict=True)) == cast


def test_the_report_works_where_the_plugins_are_not_installed(tmp_path, monkeypatch):
    root = tmp_path / "records"
    for seed in (0, 1):
        write_run(root, "isnet", seed, {"biased": 0.9, "deceiving": 0.85}, n=60)
        write_run(root, "standard", seed, {"biased": 0.9, "deceiving": 0.5}, n=60)
    real_import = builtins.__import__

    def no_plugins(name, *args, **kwargs):  # pytest.fail is a BaseException: no `except Exception` hides it
        if name.split(".")[0] == "baselines" or name == "benchmarks.registry":
            pytest.fail(f"the report imported {name}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_plugins)
    monkeypatch.setattr("importlib.metadata.entry_points", lambda **_: pytest.fail("the report looked up plugins"))
    files, _ = generate(root, figures=False)
    assert _claims(files).loc[2, "verdict"] == "holds"


def test_a_record_without_its_roles_is_refused_with_the_reason(tmp_path):
    root = tmp_path / "records"
    folder = write_run(root, "isnet", 0, {"biased": 0.9, "deceiving": 0.85}, n=60)
    config = json.loads((folder / "config.json").read_text())
    del config["role"], config["shift_splits"]
    (folder / "config.json").write_text(json.dumps(config))
    RunDir(folder).mark_done("ok")  # a consistent record, as an older harness wrote it
    with pytest.raises(ValueError, match=r"config.json lacks role, shift_splits: .* older version"):
        generate(root, figures=False)


def test_one_reference_per_experiment_and_one_role_per_method(tmp_path):
    root = tmp_path / "records"
    write_run(root, "isnet", 0, {"biased": 0.9, "deceiving": 0.85}, n=60)
    write_run(root, "other_isnet", 0, {"biased": 0.9, "deceiving": 0.85}, n=60, role="reference")
    with pytest.raises(ValueError, match="several methods state role 'reference' .isnet, other_isnet."):
        generate(root, figures=False)
    write_run(root, "other_isnet", 1, {"biased": 0.9, "deceiving": 0.85}, n=60, role="comparison")
    with pytest.raises(ValueError, match="other_isnet state different roles"):
        generate(root, figures=False)
