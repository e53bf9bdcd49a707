"""File names of the NLM tuberculosis sets (Montgomery County, Shenzhen; Jaeger et al. 2014).

Both name an image ``<PREFIX>_NNNN_{0|1}`` (``MCUCXR_0001_0``, ``CHNCXR_0001_1``): the number is
taken as the patient, the last digit is the class (1 = tuberculosis).
"""

from __future__ import annotations

import re

from benchmarks.data.real.records import UnknownClassError

LABELS = {"0": "normal", "1": "tuberculosis"}


def parse_nlm_name(stem: str, prefix: str, where: str = "") -> tuple[str, str]:
    """(patient id, class) from a file stem such as ``MCUCXR_0001_0`` (``prefix`` ``MCUCXR``);
    ``where`` names the file in the error (default: the stem)."""
    m = re.match(rf"^({re.escape(prefix)}_\d+)_(\d)$", stem, re.IGNORECASE)
    if m is None:
        raise UnknownClassError(f"{where or stem}: file name does not end in _0 / _1, so its class is unknown")
    if m.group(2) not in LABELS:
        raise UnknownClassError(f"{where or stem}: unknown class digit {m.group(2)!r}; expected 0 (normal) or 1 (TB)")
    return m.group(1).upper(), LABELS[m.group(2)]
