"""Reports: run records -> tables and figures under ``reports/``."""

from benchmarks.report.build import build_report

__all__ = ["build_report"]
