"""Writing the report, and checking a committed report against its records.

The report is generated in memory as ``{relative path: bytes}``. :func:`write` puts it under
``reports/`` (a file is rewritten only when its bytes change) and removes files this
generator wrote before but no longer produces. :func:`compare` lists what differs between
the generated report and the files on disk. Files of other generators are never touched
nor compared: ``figures/dataset_samples_*.png``, ``figures/shortcut_audit.png`` and everything
under ``performance/``.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Mapping
from pathlib import Path

from benchmarks.store import atomic_write_bytes

#: paths (relative to ``reports/``) owned by other generators
FOREIGN = ("figures/dataset_samples_*.png", "figures/shortcut_audit.png", "performance/*")
#: what this generator owns: README.md, tables/*, figures/* (less the foreign files)
OWNED_DIRS = ("tables", "figures")
README = "README.md"


def is_foreign(rel: str) -> bool:
    return any(fnmatch.fnmatch(rel, pattern) for pattern in FOREIGN)


def is_owned(rel: str) -> bool:
    if is_foreign(rel):
        return False
    return rel == README or rel.split("/", 1)[0] in OWNED_DIRS


def existing(reports: Path, figures: bool = True) -> dict[str, Path]:
    """Files on disk that this generator owns (PNG figures only when ``figures``)."""
    found = {}
    for folder in OWNED_DIRS:
        for path in sorted((reports / folder).rglob("*")):
            rel = path.relative_to(reports).as_posix()
            if path.is_file() and is_owned(rel) and (figures or not rel.endswith(".png")):
                found[rel] = path
    if (reports / README).is_file():
        found[README] = reports / README
    return found


def write(reports: Path, files: Mapping[str, bytes], figures: bool = True) -> tuple[list[str], list[str]]:
    """Write ``files`` under ``reports``; returns (written, removed) relative paths."""
    reports.mkdir(parents=True, exist_ok=True)
    written, removed = [], []
    for rel in sorted(files):
        if not is_owned(rel):
            raise ValueError(f"the report generator may not write {rel}")
        target = reports / rel
        if target.is_file() and target.read_bytes() == files[rel]:
            continue
        atomic_write_bytes(target, files[rel])
        written.append(rel)
    for rel, path in existing(reports, figures).items():
        if rel not in files:
            path.unlink()
            removed.append(rel)
    return written, removed


def compare(reports: Path, files: Mapping[str, bytes], figures: bool = True, context: int = 2) -> list[str]:
    """What differs between ``files`` (freshly generated) and the report under ``reports``:
    one line per file (changed, missing, stale), followed by a short diff for text files."""
    problems: list[str] = []
    on_disk = existing(reports, figures)
    if not figures:
        files = {rel: data for rel, data in files.items() if not rel.endswith(".png")}
    for rel in sorted(set(files) | set(on_disk)):
        if rel not in on_disk:
            problems.append(f"missing: {rel} (the records produce it; it is not in {reports})")
        elif rel not in files:
            problems.append(f"stale: {rel} (in {reports}, but the records no longer produce it)")
        else:
            old = on_disk[rel].read_bytes()
            if old != files[rel]:
                problems.append(f"differs: {rel}")
                if not rel.endswith(".png"):
                    diff = difflib.unified_diff(old.decode(errors="replace").splitlines(),
                                                files[rel].decode(errors="replace").splitlines(),
                                                f"committed/{rel}", f"regenerated/{rel}", n=context, lineterm="")
                    problems += ["    " + line for line in list(diff)[:40]]
    return problems
