"""``python -m benchmarks.audit [EXPERIMENT ...] [--profile cpu] [--write reports/data/shortcut_audit.md]
[--figure reports/figures/shortcut_audit.png]``: build each synthetic experiment's data as a run
does, audit where its shortcut lies (:mod:`benchmarks.audit.shortcut`) and print the page
(:mod:`benchmarks.audit.page`); ``--write`` / ``--figure`` save the page and its figure."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from benchmarks.audit.page import figure, markdown, save
from benchmarks.audit.shortcut import AUDITED, audit_experiment
from benchmarks.registry import discover_experiments


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.audit", description=__doc__)
    parser.add_argument("experiments", nargs="*", help=f"default: {' '.join(AUDITED)}")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--cache-dir", default="datasets/cache")
    parser.add_argument("--write", type=Path, help="the Markdown page")
    parser.add_argument("--figure", type=Path, help="the PNG figure")
    args = parser.parse_args(argv)
    specs = discover_experiments()
    audits = []
    for name in args.experiments or AUDITED:
        if name not in specs:
            parser.error(f"unknown experiment {name!r}; known: {', '.join(sorted(specs))}")
        missing = specs[name].missing_data(Path(args.cache_dir))
        if missing:
            print(f"skipped {name}: {missing}")
            continue
        audits.append(audit_experiment(specs[name], args.profile, Path(args.cache_dir)))
    command = "python -m benchmarks.audit" + (f" {' '.join(args.experiments)}" if args.experiments else "")
    command += f" --profile {args.profile}"
    command += "".join(f" --{flag} {path}" for flag, path in (("write", args.write), ("figure", args.figure)) if path)
    page = markdown(audits, args.profile, command)
    print(page)
    if args.write:
        save(args.write, page.encode())
    if args.figure:
        save(args.figure, figure(audits, args.profile))


if __name__ == "__main__":
    main()
