"""The method's default constants, each written once, and the rules they must obey.

``explain``, ``LRPEngine.relevance``, ``ISNet``, ``heatmap_loss(_terms)``, ``total_loss`` and
the benchmark plugins take their defaults from :data:`DEFAULT_LOSS` and :data:`DEFAULT_LRP`.
The values are those of the ISNet authors' code (docs/isnet.md, section 6). A
:class:`LossConfig` checks its values when it is built, so a bad constant is refused where it is
given (building ``ISNet`` or a benchmark method), not at the first training step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace


def check_fraction(name: str, value: float) -> None:
    """Refuse ``value`` outside [0, 1] (the loss weight P, the GWRP decay d)."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")


@dataclass(frozen=True)
class LossConfig:
    """Constants of the total loss ``(1 - P) * CE + P * L_H`` and of the heatmap loss
    ``L_H = w1 * L_bg + w2 * L_fg`` (docs/isnet.md, section 4).

    Built values are checked: finite numbers, ``0 <= P <= 1``, ``0 <= d <= 1``, ``E > 0``,
    ``0 < C1 <= C2``, ``w1, w2 >= 0``; a violation is one ``ValueError`` naming the constant.
    """

    P: float = 0.7  # weight of the heatmap loss in the total loss
    d: float = 0.9  # GWRP decay over the ranked background relevance (0: max, 1: mean)
    E: float = 1.0  # scale of the background term log(1 + g / E)
    C1: float = 1.0  # lower end of the band of total foreground relevance that costs nothing
    C2: float = 25.0  # upper end of that band
    w1: float = 1.0  # weight of the background term
    w2: float = 3.0  # weight of the foreground term

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{field.name} must be a finite number, got {value!r}")
        check_fraction("P", self.P)
        check_fraction("d", self.d)
        if self.E <= 0:
            raise ValueError(f"E must be > 0, got {self.E}")
        if not 0 < self.C1 <= self.C2:
            raise ValueError(f"need 0 < C1 <= C2, got C1={self.C1}, C2={self.C2}")
        if self.w1 < 0 or self.w2 < 0:
            raise ValueError(f"w1 and w2 must be >= 0, got w1={self.w1}, w2={self.w2}")

    def replace(self, **changes: float) -> LossConfig:
        """A copy with ``changes`` (field names of this class), checked like any new one."""
        return replace(self, **changes) if changes else self


@dataclass(frozen=True)
class LRPConfig:
    """Which LRP rules explain a classifier, and their stabiliser (docs/isnet.md, section 3)."""

    rule: str = "epsilon"  # the rule of every layer but the first (a name in isnet.rules.RULES)
    input_rule: str = "zb"  # the rule of the layers reading the input
    epsilon: float = 0.01  # the stabiliser of every rule's denominator
    bounds: tuple[float, float] = (0.0, 1.0)  # the z^B box: the lowest and highest pixel value


DEFAULT_LOSS = LossConfig()
DEFAULT_LRP = LRPConfig()
