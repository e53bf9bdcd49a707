"""The grid-level progress bar every executor shows."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from tqdm.auto import tqdm

from benchmarks.executors.unit import Outcome, resumes, run_dir
from benchmarks.run.task import RunTask


class GridProgress:
    """A grid-level progress bar with an ETA, labelled with whole runs ("17/114 runs", and how
    many of them resume from a checkpoint: "(2 resumed)").

    The bar moves by epochs: a run weighs ``epochs + 1`` (evaluation weighs one epoch), a run
    not finished counts its finished epochs (the lines of its ``metrics.jsonl``, written by
    whichever process or cluster node trains it, so this works for every executor) and a
    finished run its whole weight. Runs resumed from a checkpoint start the bar where they
    are, so the ETA is measured on this invocation's work only. A background thread polls
    every ``interval`` seconds.
    """

    def __init__(self, tasks: Sequence[RunTask], show: bool, interval: float = 2.0, position: int = 0) -> None:
        self.tasks = list(tasks)
        self.interval = interval
        self.weights = [max(1, int(t.experiment_profile.get("epochs", 1))) + 1 for t in self.tasks]
        self.metrics = [run_dir(t).path / "metrics.jsonl" for t in self.tasks]
        self.finished: set[int] = set()
        self.resumed = sum(map(resumes, self.tasks))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.value = self._progress()  # epochs done (kept here: a disabled bar counts nothing)
        self.bar = tqdm(
            total=sum(self.weights),
            initial=self.value,
            desc=self._runs_done(),
            position=position,
            smoothing=0,
            disable=not show,
            dynamic_ncols=True,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]",
        )
        self.show = show

    def _runs_done(self) -> str:
        resumed = f" ({self.resumed} resumed)" if self.resumed else ""
        return f"grid {len(self.finished)}/{len(self.tasks)} runs{resumed}"

    def _epochs_done(self, i: int) -> int:
        try:
            with open(self.metrics[i], "rb") as handle:
                return sum(1 for line in handle if line.strip())
        except OSError:
            return 0

    def _progress(self) -> int:
        return sum(weight if i in self.finished else min(self._epochs_done(i), weight - 1)
                   for i, weight in enumerate(self.weights))

    def refresh(self) -> None:
        with self._lock:
            value = self._progress()
            if value > self.value:
                self.bar.update(value - self.value)
                self.value = value

    def finish(self, index: int, outcome: Outcome) -> None:
        with self._lock:
            self.finished.add(index)
            self.bar.set_description_str(self._runs_done(), refresh=False)
            self.bar.set_postfix_str(f"{outcome.task.label}: {outcome.status}", refresh=False)
        self.refresh()

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self.refresh()

    def __enter__(self) -> GridProgress:
        if self.show and self.tasks:
            self._thread = threading.Thread(target=self._poll, name="grid-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.bar.close()
