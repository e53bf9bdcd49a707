"""Multi-process training of one run: ``torchrun --nproc_per_node 2`` on the gloo backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from benchmarks.commands.cli import main
from benchmarks.run import distributed
from benchmarks.run.batching import iterate_batches
from benchmarks.store import iter_records

from . import tiny

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """``torchrun --standalone --nproc_per_node 2`` running ``python -m benchmarks run`` on the tiny run."""
    out = tmp_path_factory.mktemp("ddp")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(HERE / "ddp_ranks.py"), str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    return out, done, ranks


@pytest.mark.slow
def test_ddp_weights_equal_one_process_on_the_whole_batch(ddp_run, tmp_path, monkeypatch):
    out, _, ranks = ddp_run
    assert ranks[0]["cli"] == ranks[1]["cli"] == 0
    rank0, rank1 = (torch.load(out / f"weights_rank{r}.pt") for r in (0, 1))
    tiny.plug_in(monkeypatch.setattr)
    single = tiny.capture_weights(monkeypatch.setattr)
    assert main(tiny.cli_args(tmp_path)) == 0  # one process, the same run
    assert set(single) == set(rank0)
    for name, value in single.items():
        assert torch.equal(rank0[name], rank1[name]), name  # the replicas never drift apart
        torch.testing.assert_close(rank0[name], value, rtol=1e-5, atol=1e-6)
    assert torch.equal(rank0["unused.weight"], single["unused.weight"])  # no gradient, never touched

    (ddp,) = iter_records(out)
    (one,) = iter_records(tmp_path)
    assert ddp.path.relative_to(out) == one.path.relative_to(tmp_path)  # the same run, the same record folder
    np.testing.assert_allclose(ddp.predictions("a")["logits"], one.predictions("a")["logits"], rtol=1e-5, atol=1e-5)
    # logged losses are those of the global batch, not of rank 0's shard
    np.testing.assert_allclose([e["train_cross_entropy"] for e in ddp.epochs],
                               [e["train_cross_entropy"] for e in one.epochs], rtol=1e-5)
    assert ddp.provenance["distributed"]["world_size"] == 2 and "distributed" not in one.provenance


@pytest.mark.slow
def test_only_rank0_writes_the_record_and_prints(ddp_run, monkeypatch, capsys):
    out, done, ranks = ddp_run
    assert ranks[1]["writes"] == []  # rank 1 trained and evaluated, but wrote nothing
    (record,) = iter_records(out)
    assert record.status == "ok"
    assert str(record.path / "done") in ranks[0]["writes"]
    assert str(record.path / "checkpoint.pt") in ranks[0]["writes"]
    assert done.stdout.count("1 runs in the grid") == 1  # rank 1 prints nothing
    assert "differed from rank 0" not in done.stderr

    tiny.plug_in(monkeypatch.setattr)
    assert main([*tiny.cli_args(out), "--dry-run"]) == 0
    assert "1 done, 0 to run" in capsys.readouterr().out  # a single process sees the DDP record as done


class _Plain(Dataset):
    """A dataset that is not a TensorSplit: batched through the DataLoader path."""

    def __init__(self, split):
        self.split = split

    def __len__(self):
        return len(self.split)

    def __getitem__(self, i):
        return self.split[i]


@pytest.mark.parametrize("plain", [False, True], ids=["tensor-split", "dataloader"])
def test_rank_shards_cut_the_single_process_batches(plain, monkeypatch):
    split = tiny._split(49, 1)
    data = _Plain(split) if plain else split
    single = [b.images for b in iterate_batches(data, 16, shuffle_seed=7)]
    shards, weights = {}, {}
    with torch.random.fork_rng():
        for rank in (0, 1):
            replicas = distributed.Replicas(distributed.Group(rank, 2, rank, "gloo", owns_group=False), module=None,
                                            seed=0, epoch=0)
            shards[rank], weights[rank] = [], []
            for batch in replicas.batches(data, 16, shuffle_seed=7):
                shards[rank].append(batch.images)
                weights[rank].append(replicas.weight)
    assert len(shards[0]) == len(shards[1]) == len(single) == 4  # every rank takes part in every step
    for step, whole in enumerate(single[:3]):
        torch.testing.assert_close(shards[0][step], whole[0::2])
        torch.testing.assert_close(shards[1][step], whole[1::2])
    torch.testing.assert_close(shards[0][3], single[3])  # the last batch has one image ...
    assert weights[0] == [0.5, 0.5, 0.5, 1.0] and weights[1] == [0.5, 0.5, 0.5, 0.0]  # ... rank 1's copy weighs 0
