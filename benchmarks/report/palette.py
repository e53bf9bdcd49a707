"""One colour per method, fixed by its name, the same in every figure of the report.

The suite's own methods have fixed colours (:data:`BUILT_IN`), so ``isnet`` is the same blue
whichever methods a figure shows. Any other method (a plugin) takes one of the colours left
over (:data:`SPARE`), chosen by a CRC-32 of its name. Where two methods of one report want
the same colour, the one whose name sorts later takes the next free colour: the spare ones
first, then those of built-in methods absent from the report, then evenly spaced hues. The
map is made once per report from all its methods, so a method keeps its colour in figures
where others are missing; a built-in method keeps it whatever is added.
"""

from __future__ import annotations

import colorsys
import zlib
from collections.abc import Iterable

import matplotlib
import matplotlib.colors
import numpy as np

#: sixteen colours, any two at least 25 CIELAB units apart (the colour-blind palette without its
#: light pink, yellow and light blue, which pair with its orchid, orange and blue; then colours far from all)
DISTINCT = ("#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161", "#949494", "#023eff", "#000000",
            "#1ac938", "#4b0082", "#00d7ff", "#bcbd22", "#e7298a", "#c44e52", "#e8000b")
#: the suite's methods and their colours (ISNet blue, its variants cool colours, the standard classifier grey)
BUILT_IN = {
    "isnet": "#0173b2", "isnet_dual": "#029e73", "isnet_selective": "#00d7ff", "isnet_stochastic": "#4b0082",
    "isnet_grad_input": "#023eff", "standard": "#949494", "vit": "#000000", "multitask_unet": "#de8f05",
    "ag_sononet": "#cc78bc", "segment_then_classify": "#ca9161", "gain": "#d55e00", "ham": "#bcbd22",
    "rrr": "#e7298a",
}
#: the colours no built-in method has, for other methods
SPARE = tuple(c for c in DISTINCT if c not in BUILT_IN.values())

RGB = tuple[float, float, float]


def _rgb(color: str) -> RGB:
    return tuple(matplotlib.colors.to_rgb(color))  # type: ignore[return-value]


def method_colors(names: Iterable[str]) -> dict[str, RGB]:
    """The colour of every method of a report (pass all of them, not one figure's share)."""
    names = sorted(set(names))
    chosen = {n: BUILT_IN[n] for n in names if n in BUILT_IN}
    unused = [c for m, c in BUILT_IN.items() if m not in chosen]
    overflow = []
    for name in (n for n in names if n not in BUILT_IN):
        start = zlib.crc32(name.encode()) % len(SPARE)
        taken = set(chosen.values())
        color = next((c for c in (*SPARE[start:], *SPARE[:start], *unused) if c not in taken), None)
        if color is None:
            overflow.append(name)
        else:
            chosen[name] = color
    colors = {n: _rgb(c) for n, c in chosen.items()}
    colors.update({n: colorsys.hls_to_rgb(i / len(overflow), 0.45, 0.8) for i, n in enumerate(overflow)})
    return colors


def series_colors(names: Iterable[str]) -> dict[str, RGB]:
    """Colours of series that are not methods (e.g. experiments), from a palette unlike the
    methods' (evenly spaced along cividis) so that they are not read as methods."""
    names = list(dict.fromkeys(names))
    shades = matplotlib.colormaps["cividis"](np.linspace(0.15, 0.85, len(names)))
    return {n: tuple(float(v) for v in c[:3]) for n, c in zip(names, shades, strict=True)}
