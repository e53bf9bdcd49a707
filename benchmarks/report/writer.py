"""Writing the report, and checking a report on disk against its records.

The report is generated in memory as ``{relative path: bytes}``, together with its manifest
(:data:`MANIFEST`): the list of every file the report consists of, figures included even when
they were not drawn this time, and for each figure the README shows, a digest of the records it
was drawn from (a report made with ``--no-figures`` shows only figures drawn from the same
records). The manifest is what makes a folder the report's own:

* :func:`prepare` refuses a folder that is not empty and holds no manifest (the report would
  mix with files it did not write), and a folder that cannot be written;
* :func:`write` writes the files (a file is rewritten only when its bytes change), refuses to
  overwrite a file that no earlier report listed, and removes only files that the previous
  manifest listed and the new one does not;
* :func:`compare` lists what differs between the generated report and the one on disk.

Files of other generators in the same folder (dataset figures, speed reports) are in no
manifest, so they are never touched nor compared.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath

from benchmarks.store import atomic_write_bytes

MANIFEST = "report-manifest.json"
README = "README.md"
WRITER = "python -m benchmarks report"


class NotAReportFolder(ValueError):
    """A folder the report may not write into."""


def manifest(names: Iterable[str], drawn_from: Mapping[str, str] | None = None) -> bytes:
    """The manifest of a report made of ``names`` (relative paths; the manifest itself aside);
    ``drawn_from``: the figures the README shows, each with the digest of the records it was
    drawn from (see :func:`current_figures`)."""
    files = sorted(set(names) - {MANIFEST})
    figures = dict(sorted((drawn_from or {}).items()))
    return (json.dumps({"written_by": WRITER, "files": files, "figures_drawn_from": figures}, indent=1)
            + "\n").encode()


def current_figures(reports: Path, digest: str) -> set[str]:
    """The figures in ``reports`` that its manifest says were drawn from records of ``digest``
    (so a report made without figures may show them); none where there is no manifest."""
    own = set(listed(reports) or [])
    drawn = json.loads((reports / MANIFEST).read_text()).get("figures_drawn_from") if own else None
    if not isinstance(drawn, dict):
        return set()
    return {rel for rel, value in drawn.items() if rel in own and value == digest and (reports / rel).is_file()}


def listed(reports: Path) -> list[str] | None:
    """The files the manifest in ``reports`` lists (``None``: no manifest there)."""
    path = reports / MANIFEST
    if not path.is_file():
        return None
    try:
        names = json.loads(path.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise NotAReportFolder(f"{path} is not a report manifest ({err}); move it away or choose another "
                               "folder") from err
    for name in names:
        _check_relative(name, path)
    return list(names)


def _check_relative(name: str, where: Path) -> None:
    pure = PurePosixPath(name)
    if not name or pure.is_absolute() or ".." in pure.parts:
        raise NotAReportFolder(f"{where} lists {name!r}, which is not a path inside the report folder")


def prepare(reports: Path) -> None:
    """Fail, before anything is computed, when the report may not be written into ``reports``."""
    if reports.exists() and not reports.is_dir():
        raise NotAReportFolder(f"{reports} is a file, not a folder")
    if reports.is_dir() and listed(reports) is None and any(reports.iterdir()):
        raise NotAReportFolder(
            f"{reports} is not empty and holds no {MANIFEST}, so no earlier report wrote it: the report writes only "
            "into a new or empty folder, or over an earlier report (whose manifest says which files are its own)")
    existing = next(p for p in (reports, *reports.resolve().parents) if p.exists())
    if not existing.is_dir():
        raise NotAReportFolder(f"{reports} cannot be created: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"{reports} cannot be written ({existing} is not writable)")


def write(reports: Path, files: Mapping[str, bytes]) -> tuple[list[str], list[str]]:
    """Write ``files`` (their :data:`MANIFEST` included) under ``reports``; returns (written,
    removed) relative paths."""
    prepare(reports)
    new = json.loads(files[MANIFEST])["files"]
    for name in new:
        _check_relative(name, reports / MANIFEST)
    previous = set(listed(reports) or [])
    strangers = [rel for rel in sorted(set(new) | set(files) - {MANIFEST})
                 if rel not in previous and (reports / rel).exists()]
    if strangers:
        raise NotAReportFolder(f"{reports}: the report would overwrite {', '.join(strangers)}, which no earlier "
                               f"report wrote (they are not in its {MANIFEST}); move them away first")
    written, removed = [], []
    for rel in sorted(files):
        target = reports / rel
        if target.is_file() and target.read_bytes() == files[rel]:
            continue
        atomic_write_bytes(target, files[rel])
        written.append(rel)
    for rel in sorted(previous - set(new)):
        target = reports / rel
        if target.is_file():
            target.unlink()
            removed.append(rel)
            _remove_empty_parents(target.parent, reports)
    return written, removed


def _remove_empty_parents(folder: Path, reports: Path) -> None:
    while folder != reports and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


def compare(reports: Path, files: Mapping[str, bytes], figures: bool = True, context: int = 2) -> list[str]:
    """What differs between ``files`` (freshly generated) and the report under ``reports``:
    one line per file (changed, missing, stale), followed by a short diff for text files.
    PNG figures are left out when ``figures`` is False."""
    problems: list[str] = []
    keep = (lambda rel: True) if figures else (lambda rel: not rel.endswith(".png"))
    on_disk = {rel for rel in (listed(reports) or []) if keep(rel)}
    if (reports / MANIFEST).is_file():
        on_disk.add(MANIFEST)
    generated = {rel: data for rel, data in files.items() if keep(rel)}
    for rel in sorted(set(generated) | on_disk):
        path = reports / rel
        if rel not in generated:
            problems.append(f"stale: {rel} (in {reports}, but the records no longer produce it)")
        elif not path.is_file():
            problems.append(f"missing: {rel} (the records produce it; it is not in {reports})")
        elif path.read_bytes() != generated[rel]:
            problems.append(f"differs: {rel}")
            if not rel.endswith(".png"):
                diff = difflib.unified_diff(path.read_bytes().decode(errors="replace").splitlines(),
                                            generated[rel].decode(errors="replace").splitlines(),
                                            f"committed/{rel}", f"regenerated/{rel}", n=context, lineterm="")
                problems += ["    " + line for line in list(diff)[:40]]
    return problems
