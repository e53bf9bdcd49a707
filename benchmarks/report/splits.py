"""The test splits of an experiment: their order, the in-distribution one and the shifted ones.

Taken from the experiment's registration (``ExperimentSpec.test_splits``, ``id_split``,
``shift_splits``, ``tags``) when the experiment is registered where the report is built;
otherwise from the split names the records hold (``biased`` / ``in_distribution`` is the
in-distribution split, ``unbiased`` / ``deceiving`` / ``external`` the shifted ones).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

#: split names in the order tables show them when the experiment is not registered
KNOWN_ORDER = ("biased", "unbiased", "deceiving", "in_distribution", "external")
ID_NAMES = ("biased", "in_distribution")
SHIFT_NAMES = ("unbiased", "deceiving", "external")


@dataclass(frozen=True)
class SplitRoles:
    """How an experiment's test splits relate to its training distribution."""

    order: tuple[str, ...]
    id_split: str | None
    shift_splits: tuple[str, ...]
    synthetic_bias: bool
    source: str  # "registration" or "split names"

    def gap_pairs(self) -> list[tuple[str, str]]:
        """(in-distribution, shifted) pairs of the bias gaps, in split order."""
        if self.id_split is None:
            return []
        return [(self.id_split, s) for s in self.order if s in self.shift_splits and s != self.id_split]


@lru_cache(maxsize=1)
def _registered() -> dict[str, Any]:
    try:
        from benchmarks.registry import discover_experiments

        return discover_experiments()
    except Exception:  # noqa: BLE001 - a broken plugin must not stop the report; names decide then
        return {}


def split_roles(experiment: str, seen: Iterable[str]) -> SplitRoles:
    """Roles of the splits ``seen`` in the records of ``experiment``."""
    seen = sorted(set(seen))
    spec = _registered().get(experiment)
    if spec is not None:
        order = [s for s in spec.test_splits if s in seen] + [s for s in seen if s not in spec.test_splits]
        id_split = spec.id_split if spec.id_split in seen else None
        shift = tuple(s for s in order if s in spec.shift_splits)
        synthetic = "synthetic_bias" in spec.tags or "deceiving" in seen
        return SplitRoles(tuple(order), id_split, shift, synthetic, "registration")
    order = [s for s in KNOWN_ORDER if s in seen] + [s for s in seen if s not in KNOWN_ORDER]
    id_split = next((s for s in ID_NAMES if s in seen), None)
    shift = tuple(s for s in order if s in SHIFT_NAMES)
    return SplitRoles(tuple(order), id_split, shift, "deceiving" in seen, "split names")
