"""Reports: run records -> tables and figures under ``reports/``.

One small module per step:

* :mod:`~benchmarks.report.tidy` - records -> one tidy table (a row per run and test split),
  plus the damaged and errored runs to list;
* :mod:`~benchmarks.report.splits` - each experiment's split order and roles;
* :mod:`~benchmarks.report.selection` - one hyper-parameter draw per method, chosen on
  validation accuracy only;
* :mod:`~benchmarks.report.analysis` - intervals over seeds and test images, paired tests
  against ISNet, bias gaps, explanation scores, costs;
* :mod:`~benchmarks.report.tables` - Markdown, LaTeX (booktabs) and CSV tables;
* :mod:`~benchmarks.report.figures` - PNG figures (seaborn / matplotlib, Agg);
* :mod:`~benchmarks.report.claims` - the paper's claims decided by the numbers;
* :mod:`~benchmarks.report.writer` - deterministic writing and ``--check``;
* :mod:`~benchmarks.report.build` - :func:`build_report`, the entry the CLI calls.
"""

from benchmarks.report.build import build_report

__all__ = ["build_report"]
