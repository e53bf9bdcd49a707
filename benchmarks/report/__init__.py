"""Reports: run records -> README, tables and figures in a report folder.

One small module per step:

* :mod:`~benchmarks.report.tidy` - records -> one tidy table (a row per run and test split),
  plus the damaged and errored runs to list;
* :mod:`~benchmarks.report.splits`, :mod:`~benchmarks.report.roles` - each experiment's split
  roles and each method's role, as the records state them;
* :mod:`~benchmarks.report.selection` - one hyper-parameter draw per method, chosen on
  validation accuracy only;
* :mod:`~benchmarks.report.analysis` - the statistics of the selected runs:
  :mod:`~benchmarks.report.estimates` (intervals over seeds and test images, bias gaps),
  :mod:`~benchmarks.report.comparisons` (paired tests against ISNet),
  :mod:`~benchmarks.report.explanation_estimates` (explanation scores),
  :mod:`~benchmarks.report.convergence_diagnostic` (learning curves, convergence) and costs;
* :mod:`~benchmarks.report.numerics` - warnings where a table mixes thread counts or devices;
* :mod:`~benchmarks.report.table` - the table object (Markdown, LaTeX booktabs, CSV) and cell
  formatting; :mod:`~benchmarks.report.tables` - the tables of results per experiment;
  :mod:`~benchmarks.report.ledger` - the tables about the runs (selection, costs, left out,
  provenance);
* :mod:`~benchmarks.report.figures` - PNG figures (seaborn / matplotlib, Agg), with
  :mod:`~benchmarks.report.heatmap_gallery` (heatmaps) and :mod:`~benchmarks.report.curves` (learning
  curves);
* :mod:`~benchmarks.report.claims` - the paper's claims decided by the numbers;
* :mod:`~benchmarks.report.readme` - README.md, one function per section;
* :mod:`~benchmarks.report.writer` - writing (only over its own earlier report, by its
  manifest) and ``--check``;
* :mod:`~benchmarks.report.build` - :func:`build_report`, the entry the CLI calls.

The metrics themselves are listed once, in :mod:`benchmarks.evaluation.catalogue`.
"""

from benchmarks.report.build import build_report

__all__ = ["build_report"]
