"""``python -m benchmarks report``: records -> ``reports/`` (Markdown, CSV)."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from benchmarks.report.tidy import load_records, tidy
from benchmarks.store import atomic_write_bytes


def accuracy_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds of each split's accuracy, per experiment and method."""
    ok = frame[(frame["status"] == "ok") & frame["split"].notna()]
    grouped = ok.groupby(["experiment", "method", "split"])["accuracy"]
    stats = grouped.agg(mean="mean", std="std", seeds="count").reset_index()
    return stats


def _markdown(stats: pd.DataFrame) -> str:
    lines = []
    for experiment, block in stats.groupby("experiment", sort=True):
        splits = list(dict.fromkeys(block["split"]))
        lines += [f"### {experiment}", "", "| method | seeds | " + " | ".join(splits) + " |",
                  "|---|---|" + "---|" * len(splits)]
        for method, rows in block.groupby("method", sort=True):
            cells = []
            for split in splits:
                row = rows[rows["split"] == split]
                if row.empty:
                    cells.append("")
                    continue
                mean, std = row["mean"].iloc[0], row["std"].iloc[0]
                cells.append(f"{100 * mean:.1f} ± {100 * std:.1f}" if pd.notna(std) else f"{100 * mean:.1f}")
            lines.append(f"| {method} | {int(rows['seeds'].max())} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def build_report(out: Path, reports: Path, figures: bool = True) -> int:
    """Write the report of every record under ``out`` into ``reports``."""
    records, problems = load_records(out)
    for problem in problems:
        print(f"warning: damaged record left out (run `python -m benchmarks run` again to redo it): {problem}",
              file=sys.stderr)
    if not records:
        raise FileNotFoundError(f"no finished runs under {out}/runs; run `python -m benchmarks run --all` first")
    frame = tidy(records)
    stats = accuracy_table(frame)
    reports.mkdir(parents=True, exist_ok=True)
    text = "# Results\n\nAccuracy (%) per test split: mean ± standard deviation over seeds.\n\n" + _markdown(stats)
    atomic_write_bytes(reports / "README.md", text.encode())
    atomic_write_bytes(reports / "accuracy.csv", stats.to_csv(index=False).encode())
    print(f"report written to {reports}/README.md ({len(records)} runs)")
    return 0
