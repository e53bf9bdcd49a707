"""The data root of the real-data experiments and each collection's role in one experiment:
which folders must be there, what is missing (said cheaply, in one line, before any run),
and the full expected layout (printed when a build fails)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.data.real.records import DATA_ENV, LayoutError, Record

PREDICTED_MASKS = "predicted-masks"
ROLES = ("train", "external")


@dataclass(frozen=True)
class Source:
    """One collection's role in an experiment.

    ``load(path, data_root, active, stats)`` returns its records (``active``: the source
    names present in this build); ``role`` is ``"train"`` or ``"external"``; a missing
    ``required`` source is an error, a missing optional one is skipped (and noted).
    """

    name: str
    folder: str
    role: str
    required: bool
    load: Callable[[Path, Path, frozenset[str], dict], list[Record]]
    layout: str
    dedup_against: tuple[str, ...] = ()


def data_root_layout(sources: Sequence[Source]) -> str:
    """The expected layout of the data root for ``sources``, each collection's own included."""
    lines = [f"${DATA_ENV}/"]
    for s in sources:
        tag = "required" if s.required else "optional"
        lines.append(f"  {s.folder + '/':<28} {s.role} source, {tag}")
    lines.append(
        f"  {PREDICTED_MASKS + '/<source>/':<28} optional predicted lung masks (python -m benchmarks masks predict)"
    )
    text = "\n".join(lines)
    for s in sources:
        text += f"\n\n{s.folder}/ ({s.name}):\n" + "\n".join("  " + line for line in s.layout.splitlines())
    return text


def _root(data_root: Path | str | None) -> Path | None:
    value = data_root if data_root is not None else os.environ.get(DATA_ENV)
    return Path(value).expanduser() if value else None


def data_problem(sources: Sequence[Source], data_root: Path | str | None = None) -> str | None:
    """Why an experiment with ``sources`` cannot be built from ``data_root`` (default
    ``$ISNET_BENCHMARKS_DATA``), in one line; ``None`` when every required collection and
    one source of each role are there. Looks at folder names only, so it is cheap."""
    return _problem(sources, _root(data_root))


def _problem(sources: Sequence[Source], root: Path | None) -> str | None:
    if root is None:
        return f"{DATA_ENV} is not set: point it (or `run --data-root`) at the folder holding the real collections"
    if not root.is_dir():
        return f"data root {str(root)!r} ({DATA_ENV}) is not a folder"
    missing = [s.folder + "/" for s in sources if s.required and not (root / s.folder).is_dir()]
    if missing:
        return f"{', '.join(missing)} missing under the data root {str(root)!r}"
    for role in ROLES:
        if not any(s.role == role and (root / s.folder).is_dir() for s in sources):
            folders = " or ".join(s.folder + "/" for s in sources if s.role == role)
            return f"no {role} source ({folders}) under the data root {str(root)!r}"
    return None


def locate_sources(
    experiment: str, sources: Sequence[Source], data_root: Path | str | None = None
) -> tuple[Path, list[Source], list[Source]]:
    """``(root, present, absent)``: the data root and the sources found in it or not;
    :class:`LayoutError` (a ``FileNotFoundError``) with :func:`data_problem`'s reason and the
    full expected layout when the experiment cannot be built."""
    root = _root(data_root)
    problem = _problem(sources, root)
    if root is None or problem is not None:
        raise LayoutError(f"{experiment}: {problem}. Expected layout:\n" + data_root_layout(sources))
    present = [s for s in sources if (root / s.folder).is_dir()]
    return root, present, [s for s in sources if s not in present]
