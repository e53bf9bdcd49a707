"""``run --hparams``: the parser and its errors, the type checks against the declared defaults,
the constructor as judge of loose defaults, every draw overridden, the values in config.json
and in the run's identity (a changed value never resumes an old record)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from baselines.standard import StandardClassifier
from benchmarks import grid
from benchmarks.api import MethodSpec, ModelContext, register_method
from benchmarks.commands import hparams
from benchmarks.commands.cli import main
from benchmarks.commands.hparams import check, checked_value, judge_by_constructor, parse, parse_value
from benchmarks.run.training import train_run


@register_method("tunable", needs_masks=False,
                 defaults={"lr": 1e-2, "weight_decay": 0.0, "depth": 2, "flag": False, "mode": "plain",
                           "layers": [], "C1": "auto", "extra": None},
                 search_space={"lr": ("loguniform", 1e-3, 1e-1), "depth": [1, 2, 3],
                               "weight_decay": ("uniform", 0.0, 1e-3)})
class Tunable(StandardClassifier):
    """The standard classifier with hyper-parameters of every kind; ``C1`` must be "auto" or a number."""

    def __init__(self, ctx: ModelContext, **values: Any) -> None:
        super().__init__(ctx, **values)
        c1 = self.hparams["C1"]
        if c1 != "auto" and not isinstance(c1, (int, float)):
            raise ValueError(f"C1 must be 'auto' or a number, got {c1!r}\nsecond line never shown")


SPEC: MethodSpec = Tunable.spec


# ------------------------------------------------------------------------------------ parsing
@pytest.mark.parametrize(("text", "value"), [
    ("0.5", 0.5), ("3", 3), ("true", True), ("null", None), ('"adam"', "adam"), ("adam", "adam"),
    ("[1, 2]", [1, 2]), ('{"a": 1}', {"a": 1}), ("1e-3", 1e-3), ("", ""),
])
def test_values_are_json_where_they_parse_else_strings(text, value):
    assert parse_value(text) == value and type(parse_value(text)) is type(value)


def test_both_forms_mix_and_merge():
    got = parse(["isnet.P=0.5", "rrr.lambda_rrr=5", '{"isnet": {"d": 0.99}, "gain": {"alpha": 3}}',
                 " isnet.optimizer = sgd "])
    assert got == {"isnet": {"P": 0.5, "d": 0.99, "optimizer": "sgd"}, "rrr": {"lambda_rrr": 5},
                   "gain": {"alpha": 3}}
    assert parse(["isnet.P=0.5", '{"isnet": {"P": 0.5}}']) == {"isnet": {"P": 0.5}}  # the same value twice is fine
    assert parse([]) == {}


@pytest.mark.parametrize(("items", "message"), [
    (["isnet.P"], "expected METHOD.KEY=VALUE"),
    (["P=0.5"], "expected METHOD.KEY=VALUE"),
    (["isnet.=0.5"], "expected METHOD.KEY=VALUE"),
    ([".P=0.5"], "expected METHOD.KEY=VALUE"),
    (["{bad"], "not valid JSON"),
    (['{"isnet": 0.5}'], "maps each method to an object"),
    (["isnet.P=0.5", "isnet.P=0.6"], "isnet.P is given twice, as 0.5 and 0.6"),
])
def test_parse_errors_are_one_line(items, message):
    with pytest.raises(ValueError, match=message) as err:
        parse(items)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------------------------- checks
@pytest.mark.parametrize(("key", "value", "expected"), [
    ("lr", 0.5, 0.5), ("lr", 1, 1.0), ("depth", 3, 3), ("flag", True, True), ("mode", "fancy", "fancy"),
    ("layers", ["a"], ["a"]), ("C1", 3, 3), ("C1", "whatever", "whatever"), ("extra", [1], [1]),
])
def test_values_of_the_defaults_type_are_accepted(key, value, expected):
    got = checked_value(SPEC, key, value)
    assert got == expected and type(got) is type(expected)  # an int for a float default becomes a float


@pytest.mark.parametrize(("key", "value", "message"), [
    ("lr", "fast", "tunable's lr takes a number (its default is 0.01), got a string"),
    ("lr", True, "tunable's lr takes a number (its default is 0.01), got true/false"),
    ("depth", 2.5, "tunable's depth takes an integer (its default is 2), got a number"),
    ("depth", False, "tunable's depth takes an integer"),
    ("flag", 1, "tunable's flag takes true or false (its default is false), got an integer"),
    ("mode", 3, "tunable's mode takes a string"),
    ("layers", "conv1", "tunable's layers takes a list (its default is []), got a string"),
    ("lr", float("inf"), "the value must be finite"),
    ("depht", 3, "tunable has no hyper-parameter 'depht'. Did you mean 'depth'?"),
])
def test_wrong_types_and_unknown_keys_are_one_line_errors(key, value, message):
    with pytest.raises(ValueError, match="^--hparams tunable." + key) as err:
        checked_value(SPEC, key, value)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_method_outside_the_grid_is_an_error():
    methods = {"tunable": SPEC}
    assert check({"tunable": {"lr": 1}}, methods) == {"tunable": {"lr": 1.0}}
    with pytest.raises(ValueError, match="method 'tunabel' is not in this grid. Did you mean 'tunable'"):
        check({"tunabel": {"lr": 1}}, methods)
    with pytest.raises(ValueError, match="method 'isnet' is not in this grid. Its methods: tunable"):
        check({"isnet": {"P": 0.5}}, methods)


def test_the_constructor_judges_loose_defaults(tiny_experiment):
    experiments = {"tiny": tiny_experiment}
    judge_by_constructor({"tunable": {"C1": 2.5, "lr": 0.1}}, {"tunable": SPEC}, experiments)  # accepted
    judge_by_constructor({"tunable": {"lr": "never built"}}, {"tunable": SPEC}, experiments)  # no loose key: not built
    with pytest.raises(ValueError) as err:
        judge_by_constructor({"tunable": {"C1": "high"}}, {"tunable": SPEC}, experiments)
    assert str(err.value) == ('--hparams tunable: C1="high" is refused by tunable (built at smoke scale on tiny): '
                              "C1 must be 'auto' or a number, got 'high'")


# ------------------------------------------------------------------------------- the grid
def _expand(tmp_path: Path, tiny_experiment, overrides=None, n_hparams: int = 1, seeds=(0,)):
    return grid.expand({"tiny": tiny_experiment}, {"tunable": SPEC}, list(seeds), "smoke", n_hparams, tmp_path,
                       tmp_path / "cache", "cpu", overrides)[0]


def test_overrides_apply_to_every_draw_and_enter_the_identity(tmp_path, tiny_experiment):
    plain = _expand(tmp_path, tiny_experiment, n_hparams=3)
    assert all(not t.hparams_from_cli and hparams.CONFIG_KEY not in t.config for t in plain)
    before = _expand(tmp_path, tiny_experiment, None, n_hparams=3)
    assert [t.folder for t in before] == [t.folder for t in plain]  # no --hparams: the same records as ever

    tasks = _expand(tmp_path, tiny_experiment, {"tunable": {"lr": 0.05}}, n_hparams=3)
    assert [t.hparam_index for t in tasks] == [0, 1, 2]
    assert all(t.hparams_from_cli == {"lr": 0.05} and t.hparams["lr"] == 0.05 for t in tasks)
    assert [t.hparams["depth"] for t in tasks] == [t.hparams["depth"] for t in plain]  # the rest is still drawn
    assert all(t.config[hparams.CONFIG_KEY] == {"lr": 0.05} for t in tasks)
    assert tasks[0].label == "tiny/tunable/seed0[lr=0.05]"
    changed = _expand(tmp_path, tiny_experiment, {"tunable": {"lr": 0.06}}, n_hparams=3)
    folders = {t.folder for t in plain} | {t.folder for t in tasks} | {t.folder for t in changed}
    assert len(folders) == 9  # a changed value is never an old record


def test_draws_made_identical_by_the_overrides_run_once(tmp_path, tiny_experiment):
    tasks = _expand(tmp_path, tiny_experiment, {"tunable": {"lr": 0.05, "depth": 2, "weight_decay": 0.0}}, n_hparams=4,
                    seeds=(0, 1))
    assert [(t.hparam_index, t.seed) for t in tasks] == [(0, 0), (0, 1)]


def test_config_json_records_the_values_and_a_changed_value_starts_afresh(tmp_path, tiny_experiment):
    (task,) = _expand(tmp_path, tiny_experiment, {"tunable": {"lr": 0.05, "C1": 1}})
    assert train_run(task, tiny_experiment, SPEC, show_progress=False) == "ok"
    config = json.loads((task.folder / "config.json").read_text())
    assert config[hparams.CONFIG_KEY] == {"lr": 0.05, "C1": 1} and config["hparams"]["lr"] == 0.05
    (again,) = _expand(tmp_path, tiny_experiment, {"tunable": {"C1": 1, "lr": 0.05}})
    assert again.folder == task.folder  # the same values in another order: the same run
    (other,) = _expand(tmp_path, tiny_experiment, {"tunable": {"lr": 0.02, "C1": 1}})
    assert other.folder != task.folder and not other.folder.exists()


# -------------------------------------------------------------------------------- the CLI
DRY = ["run", "--methods", "standard", "rrr", "--experiments", "biased_mnist", "--profile", "smoke", "--seeds", "0",
       "--dry-run"]


def test_cli_shows_the_values_in_the_grid(tmp_path, capsys):
    assert main([*DRY, "--out", str(tmp_path), "--hparams", "rrr.lambda_rrr=5", '{"standard": {"lr": 0.01}}']) == 0
    out = capsys.readouterr().out
    assert "would run biased_mnist/rrr/seed0[lambda_rrr=5.0]" in out
    assert "would run biased_mnist/standard/seed0[lr=0.01]" in out


@pytest.mark.parametrize(("value", "message"), [
    ("rrr.lambda_rrr=big", "error: --hparams rrr.lambda_rrr=\"big\": rrr's lambda_rrr takes a number"),
    ("rrr.lamda_rrr=5", "error: --hparams rrr.lamda_rrr=5: rrr has no hyper-parameter 'lamda_rrr'"),
    ("isnet.P=0.5", "error: --hparams: method 'isnet' is not in this grid"),
    ("lambda_rrr=5", "error: --hparams 'lambda_rrr=5': expected METHOD.KEY=VALUE"),
])
def test_cli_refuses_bad_values_in_one_line_before_anything_runs(tmp_path, capsys, value, message):
    assert main([*DRY, "--out", str(tmp_path / "out"), "--hparams", value]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
