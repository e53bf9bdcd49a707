"""When a run has stopped improving: the report's convergence diagnostic (and an opt-in early stop).

A run is *still improving* when the lowest validation loss among its selectable epochs in
the last quarter of its epochs (``ceil(n / 4)`` epochs, at least one) is lower than the
lowest among its selectable epochs before that quarter by more than 1 % of the latter and by
more than 0.001 (a validation loss that has fallen to almost zero, as a classifier reading a
perfect shortcut's does, keeps halving in relative terms without meaning anything). The report
calls a method converged on an experiment when none of its seeds still improves at its last
epoch: a diagnostic of the schedule's length. As a stopping rule (a profile's ``min_epochs``) it
is fragile: float noise moves where it stops by up to 22 epochs (the report's "Stopping rules
under float noise"), so no built-in profile stops early. Pure Python: the report imports it
without torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

#: smallest drop of the best validation loss that counts as an improvement: relative and absolute
MIN_IMPROVEMENT = 0.01
MIN_IMPROVEMENT_ABS = 0.001
RULE = (
    "a run is still improving when the lowest validation loss among its selectable epochs in the last quarter of "
    "its epochs (ceil(epochs / 4), at least one) is lower than the lowest among its selectable epochs before that "
    "quarter by more than 1 % of it and by more than 0.001; a method converged on an experiment when none of its "
    "seeds is still improving (a run with no selectable epoch before its last quarter cannot be judged)"
)


def last_quarter(n_epochs: int) -> int:
    """How many final epochs make up the last quarter of ``n_epochs`` (at least one)."""
    return max(1, math.ceil(n_epochs / 4))


def judge(epochs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The rule applied to one run's per-epoch records (``val_loss``, optional ``selectable``):
    the best validation loss before the last quarter and in it, their relative change, and
    whether the run is still improving (``None`` when nothing before the last quarter can be
    compared with)."""
    tail = last_quarter(len(epochs))
    before, last = _best(epochs[: len(epochs) - tail]), _best(epochs[len(epochs) - tail:])
    if math.isnan(before):
        return {"best_before": before, "best_last_quarter": last, "change": math.nan, "still_improving": None}
    change = (last - before) / abs(before) if before else last - before
    margin = max(MIN_IMPROVEMENT * abs(before), MIN_IMPROVEMENT_ABS)
    improving = bool(not math.isnan(last) and last < before - margin)
    return {"best_before": before, "best_last_quarter": last, "change": change, "still_improving": improving}


def still_improving(epochs: Sequence[Mapping[str, Any]]) -> bool:
    """Whether training should go on: the run is still improving, or cannot be judged yet."""
    return judge(epochs)["still_improving"] is not False


def _best(epochs: Sequence[Mapping[str, Any]]) -> float:
    values = [float(e["val_loss"]) for e in epochs
              if e.get("selectable", True) and e.get("val_loss") is not None and math.isfinite(float(e["val_loss"]))]
    return min(values) if values else math.nan
