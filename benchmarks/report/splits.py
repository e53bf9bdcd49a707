"""The test splits of an experiment: their order, the in-distribution one and the shifted ones,
as the run records state them (``config.json``: ``test_splits``, ``id_split``,
``shift_splits`` and ``experiment_tags``; a ``synthetic_bias`` tag marks an injected bias)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: the tag of a no-shortcut control experiment
CONTROL_TAG = "no_shortcut_control"
#: the config.json fields that state an experiment's split roles
FIELDS = ("test_splits", "id_split", "shift_splits", "experiment_tags")


@dataclass(frozen=True)
class SplitRoles:
    """How an experiment's test splits relate to its training distribution."""

    order: tuple[str, ...]
    id_split: str | None
    shift_splits: tuple[str, ...]
    synthetic_bias: bool
    #: a no-shortcut control (tag ``no_shortcut_control``): reported beside its experiment, never claim evidence
    control: bool = False

    def gap_pairs(self) -> list[tuple[str, str]]:
        """(in-distribution, shifted) pairs of the bias gaps, in split order."""
        if self.id_split is None:
            return []
        return [(self.id_split, s) for s in self.order if s in self.shift_splits and s != self.id_split]


def stated(config: Mapping[str, Any]) -> tuple:
    """What one record's ``config.json`` states about its experiment's splits, comparable
    between records."""
    return (tuple(config["test_splits"]), config["id_split"], tuple(config["shift_splits"]),
            tuple(config["experiment_tags"]))


def split_roles(statements: Iterable[tuple], seen: Iterable[str], experiment: str) -> SplitRoles:
    """Roles of the splits ``seen`` in the records of ``experiment``, from the :func:`stated`
    tuples of those records (they must agree)."""
    distinct = sorted(set(statements), key=repr)
    if len(distinct) != 1:
        raise ValueError(f"the records of {experiment} state {len(distinct)} different split roles "
                         f"({'; '.join(map(repr, distinct)) or 'none'}); re-run them with one version of the "
                         "experiment")
    test_splits, id_split, shift_splits, tags = distinct[0]
    seen = sorted(set(seen))
    order = [s for s in test_splits if s in seen] + [s for s in seen if s not in test_splits]
    shift = tuple(s for s in order if s in shift_splits)
    return SplitRoles(tuple(order), id_split if id_split in seen else None, shift, "synthetic_bias" in tags,
                      CONTROL_TAG in tags)
