"""A run's numbers do not depend on how it was scheduled: serially in a process with threads
to spare, in a pool, or killed under one executor and resumed under another, a CPU run gives
the same predictions bit for bit, and its provenance records every start."""

from __future__ import annotations

import pytest
import torch

from benchmarks.commands.cli import main
from benchmarks.executors import local
from benchmarks.executors.unit import execute, run_dir
from benchmarks.run import training

from .conftest import Interrupted, assert_same_records, smoke_args, smoke_task

pytestmark = pytest.mark.slow  # trains the smoke runs serially and in a worker pool, kills and resumes one


def test_jobs_1_jobs_2_and_a_resume_give_the_same_bits(serial_reference, smoke_cache, tmp_path, monkeypatch):
    before = torch.get_num_threads()
    torch.set_num_threads(4)  # a serial run in a process holding several threads (a machine's default)
    try:
        serial = tmp_path / "serial"
        assert main([*smoke_args(serial, smoke_cache), "--jobs", "1"]) == 0

        pool = tmp_path / "pool"
        task = smoke_task(pool, smoke_cache, seed=1)
        with monkeypatch.context() as patch:  # trained here, killed before its evaluation ...
            patch.setattr(training, "_evaluate", lambda *a, **k: (_ for _ in ()).throw(Interrupted()))
            assert execute(task, show_progress=False).status == "error"
        assert run_dir(task).read_checkpoint() is not None
        monkeypatch.setattr(local, "usable_cores", lambda: 2)
        assert main([*smoke_args(pool, smoke_cache), "--jobs", "2"]) == 0  # ... and resumed by a pool worker
    finally:
        torch.set_num_threads(before)
    assert_same_records(serial_reference, serial)
    assert_same_records(serial_reference, pool)

    starts = run_dir(task).read().provenance["starts"]
    assert [s["resumed_from_epoch"] for s in starts] == [0, task.experiment_profile["epochs"]]
    assert {s["threads"] for s in starts} == {1}
    assert all(s["device"].startswith("cpu") and s["host"] and s["torch"] == torch.__version__ and s["started"]
               for s in starts)
