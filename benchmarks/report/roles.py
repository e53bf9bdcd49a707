"""What each method is in the comparisons, as its run records state (``config.json`` "role").

A method registers its role with the plugin API and every run records it, so the report finds
the reference method, its variants, the plain baseline and the comparison methods by what the
records say, never by a method's name: a renamed or third-party method lands in the right rows,
and the report works where the plugins are not installed.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

REFERENCE = "reference"
VARIANT = "reference_variant"
PLAIN = "plain_baseline"
COMPARISON = "comparison"
#: the roles a record may state (the plugin API's ``ROLES``)
ROLES = (REFERENCE, VARIANT, PLAIN, COMPARISON)


@dataclass(frozen=True)
class MethodRoles:
    """The methods of one experiment (and profile) by role."""

    experiment: str
    by_method: dict[str, str]

    def of(self, role: str) -> list[str]:
        """The methods with ``role``, sorted."""
        return sorted(m for m, r in self.by_method.items() if r == role)

    @property
    def reference(self) -> str | None:
        """The reference method (the one every comparison is made against); ``None`` when the
        records hold none."""
        found = self.of(REFERENCE)
        return found[0] if found else None

    @property
    def plain(self) -> list[str]:
        return self.of(PLAIN)

    @property
    def variants(self) -> list[str]:
        return self.of(VARIANT)

    @property
    def comparisons(self) -> list[str]:
        return self.of(COMPARISON)

    def baselines(self) -> list[str]:
        """Every method the reference is compared with, its own variants left out."""
        return sorted(self.plain + self.comparisons)


def method_roles(selected: pd.DataFrame) -> dict[tuple[str, str], MethodRoles]:
    """The roles of the methods of every (experiment, profile) in the tidy table ``selected``
    (its ``role`` column, read from each run's ``config.json``). A method must state one role
    in all its records, and an experiment may have one reference method."""
    out = {}
    for (experiment, profile), block in selected.groupby(["experiment", "profile"], sort=True):
        by_method = {}
        for method, roles in block.groupby("method", sort=True)["role"]:
            stated = sorted(set(roles))
            if len(stated) != 1:
                raise ValueError(f"the records of {experiment}/{method} state different roles {stated}; "
                                 "re-run them with one version of the method")
            if stated[0] not in ROLES:
                raise ValueError(f"the records of {experiment}/{method} state role {stated[0]!r}, not one of {ROLES}")
            by_method[method] = stated[0]
        roles = MethodRoles(experiment, by_method)
        if len(roles.of(REFERENCE)) > 1:
            raise ValueError(f"{experiment} ({profile}): several methods state role 'reference' "
                             f"({', '.join(roles.of(REFERENCE))}); the report compares one reference with the rest")
        out[(experiment, profile)] = roles
    return out
