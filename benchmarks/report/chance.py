"""When a method's accuracy says nothing: at chance, degenerate (one class for almost every
image), or never learnt the task. One rule for the claims and the tables."""

from __future__ import annotations

import pandas as pd

from benchmarks.evaluation.catalogue import PRIMARY
from benchmarks.report.analysis import Analysis
from benchmarks.report.estimates import LEVEL

#: a side whose every seed gives one class to at least this share of a split's images is degenerate
DEGENERATE_SHARE = 0.95
CHANCE_RULE = (
    "A comparison in which both sides are at chance is inconclusive, whatever the difference: a side is at chance "
    f"when the {LEVEL:.0%} bootstrap interval over test images of its seed-mean accuracy contains the split's "
    "majority-class share, or when it is degenerate: every seed predicts one class for at least "
    f"{DEGENERATE_SHARE:.0%} of the split's images, whatever its accuracy (a classifier at chance is the same "
    "everywhere and beats nothing)."
)
LEARNING_RULE = (
    "A method did not learn an experiment when it is at chance, by this rule, on the in-distribution test split; it "
    "is marked so in the tables and left out of every claim's verdict (a claim about ISNet is not measured where "
    "ISNet did not learn)."
)


def _primary(analysis: Analysis, key: tuple[str, str], method: str, split: str) -> pd.Series | None:
    m = analysis.metrics
    row = m[(m["experiment"] == key[0]) & (m["profile"] == key[1]) & (m["method"] == method)
            & (m["split"] == split) & (m["metric"] == PRIMARY)]
    return None if row.empty else row.iloc[0]


def degenerate(analysis: Analysis, key: tuple[str, str], method: str, split: str) -> bool:
    """Whether every seed of ``method`` gives one class to at least :data:`DEGENERATE_SHARE` of
    ``split``'s images (False when it was not measured)."""
    r = _primary(analysis, key, method, split)
    return r is not None and bool(r.get("top_class_share", 0.0) >= DEGENERATE_SHARE)


def at_chance(analysis: Analysis, key: tuple[str, str], method: str, split: str) -> bool:
    """Whether ``method`` is at chance on ``split`` by :data:`CHANCE_RULE`: the bootstrap interval
    of its seed-mean accuracy contains the split's majority-class share, or it is
    :func:`degenerate` (False when it was not measured)."""
    r = _primary(analysis, key, method, split)
    if r is None:
        return False
    contains = r["boot_low"] <= r["majority_share"] + 1e-9 and r["majority_share"] <= r["boot_high"] + 1e-9
    return bool(contains) or degenerate(analysis, key, method, split)


def did_not_learn(analysis: Analysis, key: tuple[str, str], method: str) -> bool:
    """Whether ``method`` is at chance on ``key``'s in-distribution test split (:data:`LEARNING_RULE`)."""
    roles = analysis.roles.get(key)
    return roles is not None and roles.id_split is not None and at_chance(analysis, key, method, roles.id_split)
