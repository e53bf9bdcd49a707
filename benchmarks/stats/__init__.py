"""Statistics for the report: confidence intervals and paired tests that say what they are.

Every result carries a ``method`` string (which interval, which test, how many resamples, which
seed) for the tables to print.
"""

from benchmarks.stats.intervals import (
    DEFAULT_RESAMPLES,
    Interval,
    bootstrap_ci,
    stratified_bootstrap_indices,
    t_interval,
)
from benchmarks.stats.paired import (
    HOLM_METHOD,
    PairedTest,
    bootstrap_p_value,
    delong_test,
    holm_adjust,
    holm_bonferroni,
    mcnemar,
    mcnemar_from_counts,
    paired_bootstrap,
)

__all__ = [
    "DEFAULT_RESAMPLES",
    "HOLM_METHOD",
    "Interval",
    "PairedTest",
    "bootstrap_ci",
    "bootstrap_p_value",
    "delong_test",
    "holm_adjust",
    "holm_bonferroni",
    "mcnemar",
    "mcnemar_from_counts",
    "paired_bootstrap",
    "stratified_bootstrap_indices",
    "t_interval",
]
