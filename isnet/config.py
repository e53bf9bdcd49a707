"""The method's default constants, each written once.

``explain``, ``LRPEngine.relevance``, ``ISNet``, ``heatmap_loss(_terms)``, ``total_loss`` and
the benchmark plugins take their defaults from :data:`DEFAULT_LOSS` and :data:`DEFAULT_LRP`.
The values are those of the ISNet authors' code (docs/isnet.md, section 6).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LossConfig:
    """Constants of the total loss ``(1 - P) * CE + P * L_H`` and of the heatmap loss
    ``L_H = w1 * L_bg + w2 * L_fg`` (docs/isnet.md, section 4)."""

    P: float = 0.7  # weight of the heatmap loss in the total loss
    d: float = 0.9  # GWRP decay over the ranked background relevance (0: max, 1: mean)
    E: float = 1.0  # scale of the background term log(1 + g / E)
    C1: float = 1.0  # lower end of the band of total foreground relevance that costs nothing
    C2: float = 25.0  # upper end of that band
    w1: float = 1.0  # weight of the background term
    w2: float = 3.0  # weight of the foreground term


@dataclass(frozen=True)
class LRPConfig:
    """Which LRP rules explain a classifier, and their stabiliser (docs/isnet.md, section 3)."""

    rule: str = "epsilon"  # the rule of every layer but the first (a name in isnet.rules.RULES)
    input_rule: str = "zb"  # the rule of the layers reading the input
    epsilon: float = 0.01  # the stabiliser of every rule's denominator
    bounds: tuple[float, float] = (0.0, 1.0)  # the z^B box: the lowest and highest pixel value


DEFAULT_LOSS = LossConfig()
DEFAULT_LRP = LRPConfig()
