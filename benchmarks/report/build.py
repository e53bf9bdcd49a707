"""``python -m benchmarks report``: run records -> ``reports/`` (README.md, tables, figures).

Pipeline: :mod:`~benchmarks.report.tidy` (records -> one tidy table) ->
:mod:`~benchmarks.report.selection` (one hyper-parameter draw per method, on validation
accuracy) -> :mod:`~benchmarks.report.analysis` (intervals, paired tests, gaps, explanation
scores, costs) -> :mod:`~benchmarks.report.claims` -> :mod:`~benchmarks.report.readme` (the
README's sections with their tables and figures) -> :mod:`~benchmarks.report.writer`.

The whole report is generated in memory first; ``check=True`` writes it to a temporary
folder and compares it with the report on disk instead of replacing it.
"""

from __future__ import annotations

import gzip
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from benchmarks.report import claims as cl
from benchmarks.report import writer
from benchmarks.report.analysis import analyse
from benchmarks.report.estimates import experiment_keys
from benchmarks.report.readme import Files, Inputs, readme
from benchmarks.report.roles import method_roles
from benchmarks.report.selection import draw_table, select, selection_note
from benchmarks.report.splits import SplitRoles, split_roles, stated
from benchmarks.report.table import to_csv
from benchmarks.report.tidy import Collection, collect, columns, tidy


def generate(out: Path, figures: bool = True, progress: Callable[[str], None] | None = None
             ) -> tuple[dict[str, bytes], dict[str, int]]:
    """The report of the records under ``out`` as ``{path relative to reports/: bytes}``."""
    say = progress or (lambda _: None)
    collection = collect(out)
    frame = tidy(collection)
    if frame.empty:
        raise FileNotFoundError(f"no finished runs under {out}/runs; run `python -m benchmarks run --all` first")
    draws = draw_table(frame)
    note = selection_note(draws)
    selected = select(frame, draws)
    analysis = analyse(collection, selected, _split_roles(collection, selected), method_roles(selected), say)
    claims = cl.decide(analysis)
    files = Files(figures)
    files.text(writer.README, readme(Inputs(files, collection, frame, draws, note, selected, analysis, claims, say)))
    chosen = frame["path"].isin(set(selected["path"]))
    files.text("tables/tidy.csv", to_csv(frame[columns()].assign(selected=chosen)))
    files.text("tables/claims.csv", to_csv(cl.claims_frame(claims)))
    # large (a row per explained image): gzip with a fixed header so rebuilds stay byte-identical
    per_image = to_csv(analysis.relevance.drop(columns=["background_share"], errors="ignore"))
    files.files["tables/background_relevance_per_image.csv.gz"] = gzip.compress(per_image.encode(), mtime=0)
    runs = frame.drop_duplicates("path")
    counts = {"runs": len(runs), "ok": int((runs["status"] == "ok").sum()),
              "failed": int((runs["status"] != "ok").sum()), "errored": len(collection.errored),
              "damaged": len(collection.damaged)}
    return files.files, counts


def _split_roles(collection: Collection, selected: pd.DataFrame) -> dict[tuple[str, str], SplitRoles]:
    """Each experiment's split roles, as the records of its selected runs state them."""
    out = {}
    for key in experiment_keys(selected):
        block = selected[(selected["experiment"] == key[0]) & (selected["profile"] == key[1])]
        statements = [stated(collection.record(p).config) for p in block["path"].unique()]
        out[key] = split_roles(statements, block["split"].dropna(), key[0])
    return out


def build_report(out: Path, reports: Path, figures: bool = True, check: bool = False) -> int:
    """Write the report of every record under ``out`` into ``reports`` (``check=False``), or
    regenerate it into a temporary folder and list what differs from ``reports``
    (``check=True``; returns 1 when anything differs, 0 when it is identical)."""
    out, reports = Path(out), Path(reports)
    files, counts = generate(out, figures, progress=lambda s: print(f"report: {s}", file=sys.stderr))
    if counts["damaged"]:
        print(f"warning: {counts['damaged']} damaged record(s) left out; see the report's 'Runs left out'",
              file=sys.stderr)
    if check:
        with tempfile.TemporaryDirectory(prefix="report-check-") as tmp:
            writer.write(Path(tmp), files, figures)
            regenerated = {rel: path.read_bytes() for rel, path in writer.existing(Path(tmp), figures).items()}
        problems = writer.compare(reports, regenerated, figures)
        if problems:
            print(f"report check FAILED: {reports} differs from what the records under {out} produce:")
            for line in problems:
                print(f"  {line}")
            print("regenerate it with `python -m benchmarks report` and commit the result")
            return 1
        print(f"report check passed: {len(regenerated)} files in {reports} match the records under {out}")
        return 0
    written, removed = writer.write(reports, files, figures)
    print(f"report written to {reports}/README.md ({counts['runs']} runs: {counts['ok']} ok, {counts['failed']} "
          f"failed, {counts['errored']} errored, {counts['damaged']} damaged; {len(written)} files changed, "
          f"{len(removed)} removed)")
    return 0
