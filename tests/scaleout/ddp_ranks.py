"""One rank of the DDP test, launched by ``torchrun --nproc_per_node 2`` (gloo, CPU).

Runs ``python -m benchmarks run`` on the tiny run (see ``tiny.py``) as a user would, and
leaves ``rank<r>.json`` (the exit code and every file this rank wrote through the run
store) and ``weights_rank<r>.pt`` (its final weights) in ``OUT`` for the test to compare.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import tiny  # the script's own folder is on sys.path
import torch

from benchmarks import store
from benchmarks.commands.cli import main
from benchmarks.run import distributed

out = Path(sys.argv[1])
writes: list[str] = []
atomic_write_bytes = store.atomic_write_bytes


def audited(path, data):
    writes.append(str(path))
    atomic_write_bytes(path, data)


store.atomic_write_bytes = audited  # every record and checkpoint write goes through it
tiny.plug_in()
weights = tiny.capture_weights()
code = main(tiny.cli_args(out))
rank = distributed.rank()
torch.save(weights, out / f"weights_rank{rank}.pt")
(out / f"rank{rank}.json").write_text(json.dumps({"cli": code, "writes": writes}))
