"""``python -m benchmarks report``: run records -> ``reports/`` (README.md, tables, figures).

Pipeline: :mod:`~benchmarks.report.tidy` (records -> one tidy table) ->
:mod:`~benchmarks.report.selection` (one hyper-parameter draw per method, on validation
accuracy) -> :mod:`~benchmarks.report.analysis` (intervals, paired tests, gaps, explanation
scores, costs) -> :mod:`~benchmarks.report.claims` -> :mod:`~benchmarks.report.readme` (the
README's sections with their tables and figures) -> :mod:`~benchmarks.report.writer`.

The whole report is generated in memory first; ``check=True`` compares it with the report on
disk instead of writing it.
"""

from __future__ import annotations

import gzip
import hashlib
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from benchmarks.report import claims as cl
from benchmarks.report import writer
from benchmarks.report.analysis import Analysis, analyse
from benchmarks.report.estimates import experiment_keys
from benchmarks.report.readme import Files, Inputs, readme
from benchmarks.report.roles import method_roles
from benchmarks.report.selection import draw_table, select, selection_note, with_cli_hparams
from benchmarks.report.splits import SplitRoles, split_roles, stated
from benchmarks.report.table import to_csv
from benchmarks.report.tidy import Collection, collect, columns, tidy
from benchmarks.store import DONE

#: the checkout this package runs from (its committed reference: results/ -> reports/)
REPOSITORY = Path(__file__).resolve().parents[2]


def analysed(runs: Path, progress: Callable[[str], None] | None = None
             ) -> tuple[Collection, pd.DataFrame, pd.DataFrame, pd.DataFrame, Analysis]:
    """The records under ``runs`` read and analysed: (collection, tidy table, draws, selected
    rows, analysis)."""
    collection = collect(runs)
    frame = tidy(collection)
    if frame.empty:
        raise FileNotFoundError(f"no finished runs under {runs}/runs; run `python -m benchmarks run --all` first")
    frame = with_cli_hparams(frame, collection)
    draws = draw_table(frame)
    selected = select(frame, draws)
    analysis = analyse(collection, selected, _split_roles(collection, selected), method_roles(selected), progress)
    return collection, frame, draws, selected, analysis


def records_digest(collection: Collection) -> str:
    """A digest of the records the report reads (each one's path and ``done`` marker, which holds
    the digests of all its files): a figure drawn from records of the same digest is current."""
    digest = hashlib.sha256()
    for record in sorted(collection.records, key=collection.relative):
        digest.update(collection.relative(record).encode() + b"\0" + (record.path / DONE).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def generate(out: Path, figures: bool = True, progress: Callable[[str], None] | None = None,
             shown_from: Path | None = None) -> tuple[dict[str, bytes], dict[str, int]]:
    """The report of the records under ``out`` as ``{path relative to the report folder: bytes}``.
    Without figures, the README shows every figure, or, with ``shown_from``, only those of that
    report folder drawn from these same records (what ``--no-figures`` would leave there)."""
    say = progress or (lambda _: None)
    collection, frame, draws, selected, analysis = analysed(out, say)
    note = selection_note(draws)
    claims = cl.decide(analysis)
    digest = records_digest(collection)
    current = writer.current_figures(shown_from, digest) if shown_from is not None and not figures else None
    files = Files(figures, current, digest)
    files.text(writer.README, readme(Inputs(files, collection, frame, draws, note, selected, analysis, claims, say)))
    chosen = frame["path"].isin(set(selected["path"]))
    files.text("tables/tidy.csv", to_csv(frame[columns()].assign(selected=chosen)))
    files.text("tables/claims.csv", to_csv(cl.claims_frame(claims)))
    # large (a row per explained image): gzip with a fixed header so rebuilds stay byte-identical
    per_image = to_csv(analysis.relevance.drop(columns=["background_share"], errors="ignore"))
    files.data("tables/background_relevance_per_image.csv.gz", gzip.compress(per_image.encode(), mtime=0))
    files.data(writer.MANIFEST, writer.manifest(files.names, files.drawn_from))
    runs = frame.drop_duplicates("path")
    counts = {"runs": len(runs), "ok": int((runs["status"] == "ok").sum()),
              "failed": int((runs["status"] != "ok").sum()), "errored": len(collection.errored),
              "damaged": len(collection.damaged),
              "not_shown": sum(rel.endswith(".png") and rel not in files.drawn_from for rel in files.names)}
    return files.files, counts


def _split_roles(collection: Collection, selected: pd.DataFrame) -> dict[tuple[str, str], SplitRoles]:
    """Each experiment's split roles, as the records of its selected runs state them."""
    out = {}
    for key in experiment_keys(selected):
        block = selected[(selected["experiment"] == key[0]) & (selected["profile"] == key[1])]
        statements = [stated(collection.record(p).config) for p in block["path"].unique()]
        out[key] = split_roles(statements, block["split"].dropna(), key[0])
    return out


def default_reports(runs: Path) -> Path:
    """Where the report of the records under ``runs`` goes unless ``--reports`` says: the
    committed ``reports/`` for this checkout's committed reference records ``results/``, and
    ``RUNS/report/`` for any other records (so that a user's report never replaces the
    committed one)."""
    if Path(runs).resolve() == REPOSITORY / "results":
        return REPOSITORY / "reports"
    return Path(runs) / "report"


def build_report(runs: Path, reports: Path | None = None, figures: bool = True, check: bool = False) -> int:
    """Write the report of every record under ``runs`` into ``reports`` (default:
    :func:`default_reports`), or (``check=True``) list what differs between the report the
    records produce and the one in ``reports`` (returns 1 when anything differs, 0 when it is
    identical)."""
    runs = Path(runs)
    reports = default_reports(runs) if reports is None else Path(reports)
    if not check:
        try:
            writer.prepare(reports)
        except (writer.NotAReportFolder, PermissionError) as err:
            raise type(err)(f"--reports {reports}: {err}") from None
    files, counts = generate(runs, figures, progress=lambda s: print(f"report: {s}", file=sys.stderr),
                             shown_from=reports)
    if counts["not_shown"] and not check:
        print(f"note: {counts['not_shown']} figure(s) were not drawn from these records, so the README does not show "
              "them; run the report without --no-figures to draw them", file=sys.stderr)
    if counts["damaged"]:
        print(f"warning: {counts['damaged']} damaged record(s) left out; see the report's 'Runs left out'",
              file=sys.stderr)
    if check:
        problems = writer.compare(reports, files, figures)
        if problems:
            print(f"report check FAILED: {reports} differs from what the records under {runs} produce:")
            for line in problems:
                print(f"  {line}")
            print(f"regenerate it with `python -m benchmarks report --runs {runs} --reports {reports}` and commit "
                  "the result")
            return 1
        compared = sum(figures or not rel.endswith(".png") for rel in files)
        print(f"report check passed: {compared} files in {reports} match the records under {runs}")
        return 0
    written, removed = writer.write(reports, files)
    print(f"report written to {reports}/README.md ({counts['runs']} runs: {counts['ok']} ok, {counts['failed']} "
          f"failed, {counts['errored']} errored, {counts['damaged']} damaged; {len(written)} files changed, "
          f"{len(removed)} removed)")
    return 0
