"""The model-selection table with values set by ``run --hparams``: a draw is its index, its
hyper-parameters and those values, so runs of one index with other values are never pooled;
the table names the keys set on the command line; reports without such runs are unchanged."""

from __future__ import annotations

import io

import pandas as pd

from benchmarks.report.build import generate
from benchmarks.report.selection import CLI_COLUMN, draw_table, select, selection_note, with_cli_hparams
from benchmarks.report.tidy import collect, tidy

from .conftest import write_run

ACCURACY = {"biased": 0.9, "unbiased": 0.8, "deceiving": 0.7}


def _frame(root):
    collection = collect(root)
    return with_cli_hparams(tidy(collection), collection)


def test_a_draw_set_on_the_command_line_is_a_draw_of_its_own(tmp_path):
    root = tmp_path / "records"
    for seed in (0, 1):
        write_run(root, "standard", seed, ACCURACY, val_accuracy=0.80, n=60)
        write_run(root, "standard", seed, {**ACCURACY, "deceiving": 0.2}, val_accuracy=0.90, n=60,
                  hparams_from_cli={"lr": 0.5})
    frame = _frame(root)
    draws = draw_table(frame)
    assert len(draws) == 2 and draws["seeds_ok"].tolist() == [2, 2]  # four runs of draw 0, never pooled
    chosen = draws[draws["selected"]].iloc[0]
    assert chosen[CLI_COLUMN] == '{"lr": 0.5}' and '"lr": 0.5' in chosen["hparams"]
    selected = select(frame, draws)
    assert len(selected.drop_duplicates("path")) == 2 and set(selected[CLI_COLUMN]) == {'{"lr": 0.5}'}
    assert "for each method, the hyper-parameter draw (of up to 2)" in selection_note(draws)

    files, _ = generate(root, figures=False)
    text = files["README.md"].decode()
    assert "set on the command line: `lr`" in text and "then to the draw without values set on the command line" in text
    table = pd.read_csv(io.BytesIO(files["tables/model_selection.csv"]))
    assert table[CLI_COLUMN].tolist() == ["{}", '{"lr": 0.5}'] and table["selected"].tolist() == [False, True]
    accuracy = pd.read_csv(io.BytesIO(files["tables/accuracy_fake_bias_smoke.csv"]))
    assert accuracy.set_index("split").loc["deceiving", "mean"] == 0.2


def test_ties_go_to_the_draw_without_command_line_values(tmp_path):
    root = tmp_path / "records"
    write_run(root, "standard", 0, ACCURACY, val_accuracy=0.85, n=60, hparams_from_cli={"lr": 0.5})
    write_run(root, "standard", 0, ACCURACY, val_accuracy=0.85, n=60)
    draws = draw_table(_frame(root))
    assert draws.loc[draws["selected"], CLI_COLUMN].tolist() == ["{}"]


def test_one_draw_set_on_the_command_line_says_so(tmp_path):
    root = tmp_path / "records"
    write_run(root, "standard", 0, ACCURACY, n=60, hparams_from_cli={"lr": 0.5, "weight_decay": 0.1})
    note = selection_note(draw_table(_frame(root)))
    assert "its defaults, with the values set on the command line where the model-selection table says so" in note
    files, _ = generate(root, figures=False)
    assert "set on the command line: `lr`, `weight_decay`" in files["README.md"].decode()


def test_records_without_command_line_values_keep_the_former_table(tmp_path):
    root = tmp_path / "records"
    write_run(root, "standard", 0, ACCURACY, n=60)
    files, _ = generate(root, figures=False)
    table = pd.read_csv(io.BytesIO(files["tables/model_selection.csv"]))
    assert list(table.columns) == ["experiment", "profile", "method", "hparam_index", "hparams", "seeds_ok",
                                   "seeds_failed", "val_accuracy", "selected"]
    assert "command line" not in files["README.md"].decode()
    frame = tidy(collect(root))  # a tidy table without the column still works
    assert CLI_COLUMN not in select(frame)
