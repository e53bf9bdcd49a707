"""When a run has stopped improving: one rule for early stopping and for the report.

A run is *still improving* when the lowest validation loss among its selectable epochs in
the last quarter of its epochs (``ceil(n / 4)`` epochs, at least one) is more than 1 %
below the lowest among its selectable epochs before that quarter. The harness stops a run
as soon as it is no longer improving (once it has trained its profile's ``min_epochs``), and
the report calls a method converged on an experiment when none of its seeds still improves
at its last epoch. Pure Python: the report imports it without torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

#: smallest relative drop of the best validation loss that counts as an improvement
MIN_IMPROVEMENT = 0.01


def last_quarter(n_epochs: int) -> int:
    """How many final epochs make up the last quarter of ``n_epochs`` (at least one)."""
    return max(1, math.ceil(n_epochs / 4))


def still_improving(epochs: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the run whose per-epoch records are ``epochs`` (``val_loss``, optional
    ``selectable``) was still improving at its last epoch, by the rule above. A run with no
    finite selectable validation loss before its last quarter counts as still improving."""
    tail = last_quarter(len(epochs))
    head, last = epochs[:-tail], epochs[-tail:]
    before = _best(head)
    if before is None:
        return True
    after = _best(last)
    return after is not None and after < before - MIN_IMPROVEMENT * abs(before)


def _best(epochs: Sequence[Mapping[str, Any]]) -> float | None:
    values = [float(e["val_loss"]) for e in epochs
              if e.get("selectable", True) and e.get("val_loss") is not None and math.isfinite(float(e["val_loss"]))]
    return min(values) if values else None
