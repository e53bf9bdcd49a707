"""The report's README.md, one function per section; each section registers the tables and
figures it shows with :class:`Files`, so the README and the files it links are made together."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from benchmarks.evaluation import catalogue, explanation
from benchmarks.report import behaviour_tables as bt
from benchmarks.report import claims as cl
from benchmarks.report import convergence_diagnostic, ledger, numerics, published, tables
from benchmarks.report import explanation_tables as et
from benchmarks.report import figures as fg
from benchmarks.report.analysis import Analysis
from benchmarks.report.behaviour_estimates import HEADLINE_RULE
from benchmarks.report.behaviour_figure import headline_figure
from benchmarks.report.comparisons import ESTIMATOR
from benchmarks.report.control import control_pairs, control_table
from benchmarks.report.curves import learning_curves
from benchmarks.report.estimates import ALPHA, LEVEL, experiment_keys, interval_text
from benchmarks.report.explanation_estimates import black_background_share
from benchmarks.report.failures import dice_table, failures_table
from benchmarks.report.heatmap_gallery import gallery
from benchmarks.report.study_tables import study_tables
from benchmarks.report.table import Table, slug
from benchmarks.report.tidy import Collection
from benchmarks.resources import read_invocations

PASTE_SUMMARY = (
    "the same objects re-rendered by the data's generator with another background where it can (the same patients in "
    "another hospital's style; the same digits with another class's marker), and composites by the foreground mask "
    "(only-foreground, mixed-same and mixed-random backgrounds, after the Backgrounds Challenge of Xiao et al., ICLR "
    "2021), pasted by the binary masks with the donor's own object filled from its nearest background pixels (the "
    "rule is quoted in every run's `counterfactuals.json`)."
)
PROMISE = (
    "A run is bit-identical on one machine whatever executes it (one thread per CPU run, fixed data order, "
    "checkpointed random states), and on x86-64 machines with AVX2 its CPU kernels are capped at AVX2 so that "
    "AVX2-only and AVX-512 processors compute alike (each run's `provenance.json` records its processor, the "
    "kernels' instruction set and library versions). Beyond that, another machine gives the same conclusions "
    "within the intervals stated here: every run trains its whole schedule and keeps its lowest-validation-loss "
    "epoch, so float noise moves a run's selected model but never ends it early (the study *Stopping rules under "
    "float noise* measures how far)."
)
#: the share of exactly-black background pixels above which input x gradient scores are noted as trivial
BLACK_BACKGROUND = 0.5
COST_TEXT = (
    "The target: `python -m benchmarks run --all` (every method and default experiment, 3 seeds) within 60 "
    "minutes at the cpu profile on a 2-core machine with under 4 GB of memory, and within 3 minutes at the smoke "
    "profile. A target is not a measurement: the table below is what the invocations that produced these records "
    "measured, on the machines it names, met or not. Smoke grids write their records elsewhere (CI uses a "
    "temporary folder), so a smoke row "
    "appears here only when its invocation was logged into this folder (`--log-to`)."
)


class Files:
    """The report being assembled: relative path -> bytes, and the names of every file it
    consists of (figures included when they are not drawn)."""

    def __init__(self, figures: bool, current: set[str] | None = None, digest: str = "") -> None:
        self.files: dict[str, bytes] = {}
        self.names: set[str] = set()
        self.figures = figures
        #: without figures, those on disk drawn from these records (``None``: show every figure, as a check does)
        self.current = current
        self.digest = digest
        #: the figures the README shows -> the digest of the records they were drawn from
        self.drawn_from: dict[str, str] = {}

    def text(self, rel: str, text: str) -> None:
        self.data(rel, text.encode("utf-8"))

    def data(self, rel: str, data: bytes) -> None:
        self.files[rel] = data
        self.names.add(rel)

    def table(self, table: Table) -> str:
        """Register a table's LaTeX and CSV; returns its Markdown with links to both."""
        self.text(f"tables/{table.name}.tex", table.latex())
        self.text(f"tables/{table.name}.csv", table.csv())
        return table.markdown() + f"\n[LaTeX](tables/{table.name}.tex) · [CSV](tables/{table.name}.csv)\n"

    def figure(self, rel: str, png: bytes | None, alt: str) -> str:
        """Register a figure (when figures are drawn); returns its Markdown image link, or a note
        where the figure is neither drawn now nor drawn from these records earlier."""
        if png is None:
            return ""
        self.names.add(rel)
        if self.figures:
            self.files[rel] = png
        elif self.current is not None and rel not in self.current:
            return (f"*Figure not shown: `{rel}` was not drawn from these records (this report was made with "
                    "`--no-figures`; run `python -m benchmarks report` without it to draw it).*\n")
        self.drawn_from[rel] = self.digest
        return f"![{alt}]({rel})\n"


@dataclass
class Inputs:
    """What the sections read."""

    files: Files
    collection: Collection
    frame: pd.DataFrame
    draws: pd.DataFrame
    note: str
    selected: pd.DataFrame
    analysis: Analysis
    claims: list[cl.Claim]
    say: Callable[[str], None]

    @property
    def draw(self) -> bool:
        return self.files.figures


def readme(inputs: Inputs) -> str:
    """The whole README.md."""
    out = header(inputs) + how_to_read(inputs) + claims(inputs) + behaviour_overview(inputs)
    out += convergence_section(inputs)
    out += ["## Results per experiment", ""]
    for key in experiment_keys(inputs.selected):
        inputs.say(f"tables and figures of {key[0]} ({key[1]})")
        out += experiment(inputs, key)
    sections = (controls, published_figures, studies, bias_strength, timing, cost, model_selection, left_out,
                provenance, files_list)
    for section in sections:
        out += section(inputs)
    return "\n".join(out).rstrip("\n") + "\n"


def header(inputs: Inputs) -> list[str]:
    runs = inputs.frame.drop_duplicates("path")
    n_ok = int((runs["status"] == "ok").sum())
    collection = inputs.collection
    smoke = ["", f"**Warning: records of the {cl.SMOKE_NOTE}; every claim below says so.**"] \
        if (runs["profile"] == "smoke").any() else []
    return [
        "# Results",
        *smoke,
        "",
        "Generated by `python -m benchmarks report` from the run records; do not edit by hand "
        "(`python -m benchmarks report --check` fails when this folder differs from what the records produce). "
        f"{len(runs)} finished run records ({n_ok} ok, {len(runs) - n_ok} failed), {len(collection.errored)} runs "
        f"that stopped on an error, {len(collection.damaged)} damaged records left out.",
        "",
    ]


def how_to_read(inputs: Inputs) -> list[str]:
    references = sorted({c.reference for c in inputs.analysis.cast.values() if c.reference is not None})
    rules = sorted({inputs.collection.record(p).config["selection_rule"]
                    for p in inputs.selected.loc[inputs.selected["status"] == "ok", "path"].unique()})
    named = ", ".join(f"`{m}`" for m in references) or "none among these records"
    return [
        "## How to read the numbers",
        "",
        f"- **{inputs.note}** The selected draw of every method is listed under [Model selection](#model-selection).",
        "- **Selected checkpoints.** Every model evaluated is its run's validation-selected checkpoint, by the rule "
        "each run's `config.json` records (`selection_rule`): " + "; ".join(f"\"{r}\"" for r in rules) + ". The "
        "epoch each run kept is in [Convergence](#convergence-of-the-training-schedules).",
        "- **Seeds.** Every number is the mean over the seeds of the selected draw; `±` is the half-width of the "
        f"{LEVEL:.0%} Student-t interval of that mean over seeds (undefined, `n/a`, for one seed).",
        f"- **Test images.** Brackets are the {interval_text()} of the seed mean, seeded per (experiment, "
        "profile, split) by a CRC-32 of their names and shared by all methods (every method is scored on the same "
        "resamples). When all seeds tested the same images, one resample of the images is "
        "applied to every seed (so the interval reflects which images were tested, not which seed was trained); "
        "where the test images depend on the seed (marked †), each seed's test set is resampled independently.",
        f"- **Roles.** Each run's `config.json` states its method's role, and the report reads it from there: "
        f"ISNet is the method with role `reference` ({named}); methods with role `reference_variant` are ISNet's "
        "own variants (compared with ISNet, but not baselines it must beat); the method with role "
        "`plain_baseline` is the standard classifier; every other method is a comparison method. Split roles "
        "(in-distribution, shifted) come from the records too.",
        f"- **Comparisons** (ISNet against every other method, in the comparison tables and the claims): {ESTIMATOR}. "
        f"Significance at α = {ALPHA}. A claim reads exactly the numbers of the tables it sits above.",
        "- **Explanations.** 'own' is each method's own heatmap; LRP-epsilon, Grad-CAM and input × gradient are "
        "applied to every method. Relevance inside the mask: share of the positive relevance on the foreground; "
        "background share = 1 − that; pointing game: is the relevance peak on the foreground. A heatmap counts as "
        "evidence about what a model reads only where it accounts for the logit it explains (the faithfulness "
        "tables).",
        "- **Behaviour.** What a model reads is measured by changing the background of its test images and watching "
        "its predictions (the behaviour tables), with no explainer involved.",
        f"- **Reproducibility.** {PROMISE}",
        "",
    ]


def behaviour_overview(inputs: Inputs) -> list[str]:
    """The figure of every experiment's headline behaviour measure (claim 6 reads it)."""
    png = headline_figure(inputs.analysis, draw=inputs.draw)
    if png is None:
        return []
    return ["## What the models do when the background changes", "",
            f"Every run predicts counterfactual copies of its test splits: {PASTE_SUMMARY} Each experiment's "
            f"section has the full table; here, the headline measure claim 6 reads: {HEADLINE_RULE}.", "",
            inputs.files.figure("figures/behaviour.png", png, "headline behaviour measure per experiment"),
            f"*Figure: the headline behaviour measure per test split and method (lower: the predictions follow the "
            f"background less); error bars: {interval_text()} of the seed mean.*\n"]


def convergence_section(inputs: Inputs) -> list[str]:
    runs = inputs.analysis.convergence
    failing = convergence_diagnostic.not_converged(runs)
    verdicts = [convergence_diagnostic.verdict(v)
                for _, v in runs.groupby(["experiment", "profile", "method"])["still_improving"]]
    unjudged = verdicts.count(convergence_diagnostic.UNDETERMINED)
    said = []
    if failing:
        said.append("**Did not converge** by this rule: " + "; ".join(f"`{m}` on {e} ({p})" for e, p, m in failing)
                    + ". Their numbers are those of a schedule that was still improving when it ended.")
    if unjudged:
        said.append(f"{unjudged} of {len(verdicts)} method × experiment pairs cannot be judged (too few epochs).")
    if not said:
        said.append("Every method converged on every experiment by this rule.")
    return ["## Convergence of the training schedules", "",
            f"Rule: {convergence_diagnostic.RULE}. The validation loss is each method's own training objective on the "
            "in-distribution validation split, so losses are compared within a run, never between methods. "
            "The learning curves are in each experiment's section.", "", " ".join(said), "",
            inputs.files.table(ledger.convergence_table(inputs.analysis))]


def claims(inputs: Inputs) -> list[str]:
    return [
        "## Claims of the ISNet paper",
        "",
        "Each verdict is computed from the tables below by the rule stated with it (holds / does not hold / "
        "inconclusive / not measured); see [tables/claims.csv](tables/claims.csv).",
        "",
        cl.markdown(inputs.claims),
    ]


# ------------------------------------------------------------------------------ per experiment
def experiment(inputs: Inputs, key: tuple[str, str]) -> list[str]:
    roles = inputs.analysis.roles[key]
    shift = ", ".join(f"`{s}`" for s in roles.shift_splits) or "none"
    out = [f"### {key[0]} ({key[1]} profile)", "",
           f"Test splits, in order: {', '.join(f'`{s}`' for s in roles.order)}; in-distribution: "
           f"`{roles.id_split}`; shifted: {shift} (as the run records state them).", ""]
    warning = numerics.mixed(inputs.collection, inputs.selected, key)
    out += [warning, ""] if warning else []
    png = learning_curves(inputs.analysis.curves, inputs.analysis.convergence, inputs.selected, key, draw=inputs.draw)
    if png is not None:
        out += ["#### Learning curves", "",
                inputs.files.figure(f"figures/learning_curves_{slug(*key)}.png", png, f"learning curves, {key[0]}"),
                "*Figure: validation loss (each method's own objective, so each panel has its own scale) and "
                "validation accuracy per epoch, mean over seeds (line) and their range (band); ▼ marks the epoch "
                "each seed's selection rule kept; the shaded last quarter is where the convergence rule looks.*\n"]
    for part in (metric_tables, paired, gaps, behaviour, explanations, galleries):
        out += part(inputs, key)
    return out


def behaviour(inputs: Inputs, key: tuple[str, str]) -> list[str]:
    """The counterfactual background tests of one experiment, and ISNet against each method on
    its headline behaviour measure."""
    table = bt.behaviour_table(inputs.analysis, key, inputs.note)
    if table is None:
        return ["#### Behaviour under changed backgrounds", "",
                "Not measured: the records hold no counterfactual tests (no foreground masks, or records written "
                "before the tests existed).", ""]
    out = ["#### Behaviour under changed backgrounds", "", inputs.files.table(table)]
    extra = (bt.behaviour_paired_table(inputs.analysis, key, inputs.note),
             failures_table(inputs.analysis, key, inputs.note), dice_table(inputs.analysis, key, inputs.note))
    return out + [inputs.files.table(t) for t in extra if t is not None]


def metric_tables(inputs: Inputs, key: tuple[str, str]) -> list[str]:
    """A table per resampled catalogue metric; the primary metric has a figure too."""
    out: list[str] = []
    for metric in catalogue.resampled():
        out += [f"#### {metric.name}", "", inputs.files.table(tables.metric_table(inputs.analysis, key, metric,
                                                                                   inputs.note))]
        if metric.key == catalogue.PRIMARY:
            png = fg.split_bars(inputs.analysis, key, metric.key, draw=inputs.draw)
            out.append(inputs.files.figure(f"figures/{metric.key}_{slug(*key)}.png", png,
                                           f"{metric.phrase} per split, {key[0]}"))
            out.append(f"*Figure: {metric.phrase} per test split and method; error bars: {interval_text()} "
                       f"of the seed-mean {metric.phrase}.*\n")
    return out


def paired(inputs: Inputs, key: tuple[str, str]) -> list[str]:
    out = ["#### Comparisons with ISNet", ""]
    table = tables.paired_table(inputs.analysis, key, inputs.note)
    if table is not None:
        return out + [inputs.files.table(table)]
    if inputs.analysis.cast[key].reference is None:
        return out + ["Not computed: no runs of a reference method (role `reference` in the records) in this "
                      "experiment.", ""]
    return out + ["Not computed: no other method shares test images with ISNet.", ""]


def gaps(inputs: Inputs, key: tuple[str, str]) -> list[str]:
    table = tables.gap_table(inputs.analysis, key, inputs.note)
    body = [inputs.files.table(table)] if table is not None else ["No in-distribution / shifted split pair.", ""]
    return ["#### Bias gaps", "", *body]


def explanations(inputs: Inputs, key: tuple[str, str]) -> list[str]:
    out = ["#### Explanations", ""]
    scored = [t for t in (et.explanation_table(inputs.analysis, key, m, inputs.note)
                          for m in explanation.shown_in("explanations")) if t is not None]
    out += [inputs.files.table(t) for t in scored]
    out += _trivial_by_construction(inputs, key, scored)
    faith = et.faithfulness_table(inputs.analysis, key, inputs.note)
    if faith is not None:
        out.append(inputs.files.table(faith))
    rel = et.relevance_paired_table(inputs.analysis, key, inputs.note)
    if rel is not None:
        out.append(inputs.files.table(rel))
    if not scored:
        return out + ["No explanation scores (the experiment has no foreground masks).", ""]
    png = fg.relevance_distribution(inputs.analysis, key, draw=inputs.draw)
    if png is not None:
        out.append(inputs.files.figure(f"figures/background_relevance_{slug(*key)}.png", png,
                                       f"background relevance, {key[0]}"))
        out.append("*Figure: per-image share of positive relevance on the background (1 − relevance inside the "
                   "mask), per explainer, split and method (boxes: quartiles; whiskers: 1.5 IQR), all seeds of "
                   "the selected draw pooled.*\n")
    return out


def _trivial_by_construction(inputs: Inputs, key: tuple[str, str], scored: list[Table]) -> list[str]:
    """A note where a score says nothing by construction: input x gradient on black backgrounds."""
    if not any("input_x_gradient" in set(t.data["explainer"]) for t in scored):
        return []
    share = black_background_share(inputs.collection, inputs.selected, key)
    if share is None or share < BLACK_BACKGROUND:
        return []
    return [f"*Trivial by construction:* input × gradient is the input times its gradient, so it is zero wherever the "
            f"image is zero; {100 * share:.0f} % of the background pixels of this experiment's images are exactly 0 "
            "(black), so there its relevance lies inside the mask whatever the model attends to. The same holds for "
            "the 'own' heatmap of a method whose own explanation is input × gradient (the harness's default for "
            "methods without one). LRP-epsilon and Grad-CAM do not share this.", ""]


def galleries(inputs: Inputs, key: tuple[str, str]) -> list[str]:
    roles = inputs.analysis.roles[key]
    out = []
    for split in list(roles.shift_splits) or list(roles.order):
        result = gallery(inputs.collection, inputs.selected, key, split, inputs.analysis.explanation_errors,
                         draw=inputs.draw)
        if result is None:
            continue
        png, text = result
        out.append(inputs.files.figure(f"figures/{slug('gallery', *key, split)}.png", png,
                                       f"heatmaps on {split}, {key[0]}"))
        out.append(f"*Figure: the first images of the `{split}` split (top row, columns named by their true class, "
                   f"foreground outlined) and each method's own heatmap of the true class (red: positive relevance, "
                   f"blue: negative; each heatmap divided by its largest magnitude, see the colour bar), with the "
                   f"class the method predicted below each heatmap (green: right, red: wrong); 'no heatmap' where "
                   f"the method's own explainer gave none or a heatmap is zero everywhere, 'uniform map' where its "
                   f"values span less than 5 % of its largest magnitude; {text}.*\n")
    return out


# ---------------------------------------------------------------------------- whole grid
def studies(inputs: Inputs) -> list[str]:
    """The studies recorded beside the grid (``<runs>/studies/<name>``)."""
    tables = study_tables(inputs.collection.root)
    if not tables:
        return []
    return ["## Studies", "", "Records of these studies lie beside the grid's, under `studies/<name>/`; each table "
            "says how to run its study again.", "", *(inputs.files.table(t) for t in tables)]


def controls(inputs: Inputs) -> list[str]:
    """Each no-shortcut control beside its experiment (controls are never claim evidence)."""
    pairs = control_pairs(inputs.analysis)
    if not pairs:
        return []
    out = ["## No-shortcut controls", "",
           "A control experiment renders the same patients with every hospital in one style, so the shortcut is gone "
           "and only the disease can be learnt; the claims leave controls out.", ""]
    for control, main in pairs:
        table = control_table(inputs.analysis, control, main, inputs.note)
        if table is not None:
            out.append(inputs.files.table(table))
    return out


def published_figures(inputs: Inputs) -> list[str]:
    """Other papers' published figures beside ours, for the experiments that reproduce their
    benchmarks (nothing when the records hold no such experiment)."""
    return published.section(inputs.analysis.metrics, inputs.files.table)


def bias_strength(inputs: Inputs) -> list[str]:
    out = ["## Accuracy against bias strength", ""]
    png = fg.bias_strength(inputs.selected, inputs.analysis.roles, draw=inputs.draw)
    if png is None:
        return out + ["Not drawn: fewer than two bias strengths are recorded in the runs' experiment profiles "
                      "(`experiment_profile.data.bias_strength`).", ""]
    return out + [inputs.files.figure("figures/accuracy_vs_bias_strength.png", png, "accuracy against bias strength"),
                  "*Figure: accuracy per test split against the bias strength recorded in the experiments' "
                  "profiles (`experiment_profile.data.bias_strength`); mean over seeds with t-intervals.*\n"]


def timing(inputs: Inputs) -> list[str]:
    warning = numerics.mixed(inputs.collection, inputs.selected)
    out = ["## Training and inference time", "", *([warning, ""] if warning else []),
           inputs.files.table(ledger.timing_table(inputs.analysis, inputs.note))]
    png = fg.timing(inputs.analysis, draw=inputs.draw)
    if png is not None:
        out.append(inputs.files.figure("figures/timing.png", png, "training and inference time"))
        out.append("*Figure: training time per run and inference time per test image of each method (mean over "
                   "seeds; error bars: t-interval over seeds), per experiment.*\n")
    return out


def cost(inputs: Inputs) -> list[str]:
    table = ledger.invocations_table(read_invocations(inputs.collection.root))
    return ["## Cost of the runs", "", COST_TEXT, "", inputs.files.table(table)]


def model_selection(inputs: Inputs) -> list[str]:
    return ["## Model selection", "", inputs.files.table(ledger.selection_table(inputs.draws, inputs.note))]


def left_out(inputs: Inputs) -> list[str]:
    return ["## Runs left out", "", inputs.files.table(ledger.failed_table(inputs.frame, inputs.collection.errored)),
            inputs.files.table(ledger.damaged_table(inputs.collection.damaged))]


def provenance(inputs: Inputs) -> list[str]:
    records = [(inputs.collection.relative(r), r) for r in inputs.collection.records]
    return ["## Provenance", "", *(inputs.files.table(t) for t in ledger.provenance_tables(records, inputs.frame))]


def files_list(inputs: Inputs) -> list[str]:
    return ["## Files", "", "- [tables/tidy.csv](tables/tidy.csv): one row per run and test split, all draws "
            "(column `selected`), metrics recomputed from the stored predictions.",
            "- [tables/background_relevance_per_image.csv.gz](tables/background_relevance_per_image.csv.gz): "
            "per-image relevance inside the mask (background share = 1 minus it) of every selected run, split and "
            "explainer.",
            "- `tables/*.tex`: the tables above for LaTeX (booktabs; `\\usepackage{booktabs,graphicx}`).", ""]
