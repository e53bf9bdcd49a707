"""perf/paper_grid_cost.py and perf/grid_timing.py: the cost model (known answers), the
experiments' shapes, and the --quick path end to end on the CPU (structure, not timings)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from benchmarks.registry import discover_experiments
from perf import paper_grid_cost
from perf.grid_timing import CellTiming, Shape, _settled, experiment_shape, walk_schedule
from perf.paper_grid_cost import epoch_seconds, makespan, parse_sizes, run_seconds


def _shape(**kw) -> Shape:
    base = dict(experiment="e", profile="paper", classes=("a", "b"), in_channels=1, image_size=224, batch=32,
                backbone="densenet121", epochs=3, n_train=100, n_val=40, n_test={"x": 300, "y": 20})
    return Shape(**{**base, **kw})


def test_makespan_longest_first():
    assert makespan([5, 4, 3, 3], 2) == 8  # 5 | 4, then 3 on the 4 (7), then 3 on the 5 (8)
    assert makespan([5, 4, 3, 3], 1) == 15
    assert makespan([5, 4, 3, 3], 10) == 5
    assert makespan([], 4) == 0


def test_epoch_and_run_seconds():
    shape = _shape()
    cell = CellTiming("e", "m", build_s=2.0, step_s=[1.0, 0.5, 0.5], val_s=[0.2, 0.1, 0.1], walked=2, infer_s=0.05,
                      explain_chunk_s=0.3, checkpoint_s=0.5)
    # 4 training batches (ceil 100/32), 2 validation batches, one checkpoint per epoch
    assert epoch_seconds(cell, shape) == pytest.approx([4 * 1.0 + 2 * 0.2 + 0.5, 4 * 0.5 + 2 * 0.1 + 0.5, 2.7])
    tests = math.ceil(300 / 32) + 1
    chunks = math.ceil(256 / 32) + 1  # 256 of 300 images explained on x, all 20 on y
    assert run_seconds(cell, shape) == pytest.approx(2.0 + 4.9 + 2.7 + 2.7 + tests * 0.05 + chunks * 0.3)
    unknown = _shape(n_train=None)
    assert epoch_seconds(cell, unknown) is None and run_seconds(cell, unknown) is None


def test_settled_needs_selectable_and_steady_epochs():
    assert not _settled([1.0, 1.0], [True, True], settle=3, tolerance=0.1)
    assert not _settled([1.0, 1.0, 1.0], [False, True, True], settle=3, tolerance=0.1)  # still calibrating
    assert not _settled([0.2, 1.0, 1.05], [True] * 3, settle=3, tolerance=0.1)
    assert _settled([0.2, 1.0, 1.05, 0.98], [False, True, True, True], settle=3, tolerance=0.1)


def test_experiment_shapes_from_the_profiles():
    experiments = discover_experiments()
    mnist = experiment_shape(experiments["biased_mnist"], "paper", Path("unused"))
    assert (len(mnist.classes), mnist.in_channels, mnist.image_size, mnist.batch) == (10, 1, 224, 32)
    assert (mnist.n_train, mnist.n_val, mnist.n_test) == (3500, 500, {"biased": 1000, "unbiased": 1000,
                                                                      "deceiving": 1000})
    covid = experiment_shape(experiments["synthetic_covid"], "paper", Path("unused"))
    assert len(covid.classes) == 3 and covid.n_test == {"in_distribution": 2000, "external": 2000}
    real = experiment_shape(experiments["tb_real"], "paper", Path("unused"))
    assert real.n_train is None and real.explained_chunks() is None
    sized = experiment_shape(experiments["tb_real"], "paper", Path("unused"),
                             parse_sizes(["tb_real:train=700,val=100,in_distribution=200,external=138"])["tb_real"])
    assert (sized.n_train, sized.n_val, sized.n_test["external"]) == (700, 100, 138)
    with pytest.raises(SystemExit):
        parse_sizes(["tb_real:train=many"])


@pytest.mark.slow
def test_quick_run_writes_the_tables(tmp_path):
    code = paper_grid_cost.main(["--quick", "--device", "cpu", "--methods", "standard", "isnet_selective",
                                 "--experiments", "synthetic_tb", "--seeds", "2", "--gpus", "1,4",
                                 "--out-dir", str(tmp_path)])
    assert code == 0
    with open(tmp_path / "grid_cost_smoke.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["experiment"], r["method"]) for r in rows] == [("synthetic_tb", "isnet_selective"),
                                                              ("synthetic_tb", "standard")]
    assert set(rows[0]) == set(paper_grid_cost.FIELDS)
    for r in rows:
        assert r["epochs"] == "1" and r["train_batches"] == "4" and float(r["run_s"]) > 0
    text = (tmp_path / "grid_cost_smoke.md").read_text()
    assert "| synthetic_tb | standard |" in text and "| 4 |" in text
    assert "4 runs (2 method x experiment cells x seeds)" in text


def test_a_cell_out_of_memory_is_reported_not_fatal(monkeypatch):
    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 90 GiB")

    monkeypatch.setattr(paper_grid_cost, "time_cell", oom)
    task = SimpleNamespace(experiment="biased_mnist", method="isnet", hparams={})
    args = SimpleNamespace(steps=1, val_batches=1, seeds=3)
    records, failures = [], []
    paper_grid_cost.measure_cell(task, _shape(), None, torch.device("cpu"), args, records, failures)
    assert records == [] and failures == ["biased_mnist/isnet: out of memory at batch 32 on this device (not in the "
                                          "totals)"]


class _Calibrating:
    """A method whose first two epochs are a discarded calibration phase."""

    def __init__(self) -> None:
        self.started: list[int] = []

    def on_epoch_start(self, epoch: int) -> None:
        self.started.append(epoch)

    def train(self) -> None:
        pass

    @property
    def selectable(self) -> bool:
        return self.started[-1] >= 2


def test_walk_schedule_walks_past_calibration_then_extrapolates():
    method = _Calibrating()
    steps: list[int] = []
    step_s, val_s, walked = walk_schedule(method, lambda: steps.append(1), lambda: None, 10, torch.device("cpu"),
                                          steps=4, val_batches=1, walk_reps=2, settle=3, tolerance=1e9)
    assert walked == 5 and method.started == [0, 1, 2, 3, 4]  # 2 calibration epochs + 3 settled ones
    assert len(step_s) == len(val_s) == 10 and len(set(step_s[5:])) == 1
    assert len(steps) == 5 * 2 + 4  # two timed calls per walked epoch, then the settled state's median of 4
