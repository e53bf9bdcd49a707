"""Studies beside the grid: records under ``<runs>/studies/<name>/runs`` (each written by
``python -m benchmarks.studies.<name> run``), one table each in the report.

* ``stopping``: every candidate stopping rule applied to the validation curves of perturbed
  replicas (:mod:`benchmarks.studies.stopping`);
* ``isnet_protocol``: ISNet's X-ray protocol, arm by arm (:mod:`benchmarks.studies.isnet_protocol`);
* ``sweep``: the baselines' constants, candidate by candidate, and the ones chosen
  (:mod:`benchmarks.studies.sweep`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.registry import discover_methods
from benchmarks.report import behaviour_estimates as bh
from benchmarks.report.estimates import LEVEL
from benchmarks.report.table import Cell, Table, cut_text, num, t_cell, t_text
from benchmarks.report.tidy import Collection, collect
from benchmarks.stats import t_interval
from benchmarks.store import RunRecord
from benchmarks.studies import isnet_protocol, stopping, sweep

STUDIES = "studies"


def study_tables(root: Path) -> list[Table]:
    """The table of every study whose records lie under ``root/studies``, in a fixed order."""
    makers: dict[str, Callable[[Collection], Table | None]] = {"stopping": stopping_table,
                                                                "isnet_protocol": protocol_table,
                                                                "sweep": sweep_table}
    out = []
    for name, make in makers.items():
        folder = Path(root) / STUDIES / name
        if (folder / "runs").is_dir():
            table = make(collect(folder))
            if table is not None:
                out.append(table)
    return out


# ----------------------------------------------------------------------------- stopping
def stopping_table(collection: Collection) -> Table | None:
    """Per configuration and candidate rule: where each replica stops, the epoch it keeps and
    that model's validation accuracy, and their spread over the replicas."""
    curves: dict[tuple, list[tuple[int, list[dict]]]] = {}
    for record in collection.records:
        c = record.config
        draw = (c.get("init_perturbation") or {}).get("draw", 0)
        curves.setdefault((c["experiment"], c["method"], c["seed"]), []).append((draw, record.epochs))
    rows, data = [], []
    for config in stopping.CONFIGURATIONS:
        replicas = [epochs for _, epochs in sorted(curves.get(config, []), key=lambda x: x[0])]
        if len(replicas) < 2:
            continue
        for name, rule in stopping.RULES.items():
            got = [stopping.apply(curve, rule) for curve in replicas]
            epochs = [o.epochs for o in got]
            accuracy = [o.val_accuracy for o in got]
            rows.append([Cell.text(" / ".join(map(str, config))), Cell.text(name),
                         Cell.text(", ".join(map(str, epochs))), Cell.text(", ".join(str(o.selected) for o in got)),
                         Cell.text(", ".join(f"{100 * a:.1f}" for a in accuracy)),
                         Cell.text(max(epochs) - min(epochs)),
                         Cell.text(f"{100 * (max(accuracy) - min(accuracy)):.1f}")])
            data.append({"experiment": config[0], "method": config[1], "seed": config[2], "rule": name,
                         "epochs": epochs, "selected": [o.selected for o in got], "val_accuracy": accuracy,
                         "epoch_spread": max(epochs) - min(epochs), "accuracy_spread": max(accuracy) - min(accuracy)})
    if not rows:
        return None
    caption = (
        "How far float noise moves a run's end. Each configuration (experiment / method / seed, cpu profile) was "
        f"trained for its whole schedule {len(stopping.DRAWS)} times: as is, and with every initial weight "
        f"multiplied by 1 + {stopping.RELATIVE:g}·N(0, 1) (about what another CPU's kernels change in one step). "
        "Each candidate stopping rule is applied to the recorded validation curves as the harness applies it after "
        "every epoch (from epoch 8 on); per replica (unperturbed first): the epochs it would have trained, the "
        "epoch the selection rule then keeps (lowest validation loss) and that model's validation accuracy (%); "
        "the spreads are max − min over the replicas. Only validation data are read. Reproduce: "
        f"`{stopping.COMMAND}`."
    )
    return Table("study_stopping", "Stopping rules under float noise", caption,
                 ["configuration", "rule", "epochs trained", "selected epoch", "selected val. accuracy (%)",
                  "epoch spread", "accuracy spread (pp)"], rows, pd.DataFrame(data), "lllllrr")


# ----------------------------------------------------------------------- ISNet protocol
PROTOCOL_COLUMNS = ("val_accuracy", "accuracy/in_distribution", "accuracy/shifted", "follows/in_distribution",
                    "follows/shifted", "r", "absorbed", "epochs")


def _protocol_row(collection: Collection, record: RunRecord) -> dict[str, float]:
    """One run: its selected validation accuracy; accuracy and the follows-background rate of its
    experiment's headline test (re-rendered by another training hospital; biased MNIST: the
    deceiving rendering) on the in-distribution split and on the first shifted split; its
    in-distribution LRP faithfulness; the epochs it trained."""
    path = collection.relative(record)
    selection = record.summary.get("selection", {})
    id_split, shifted = record.config["id_split"], record.config["shift_splits"][-1]
    out: dict[str, float] = {"epochs": float(selection.get("epochs", math.nan)),
                             "val_accuracy": float(selection.get("selected_val_accuracy", math.nan))}
    arrays = collection.arrays(path, "counterfactuals.npz")
    for split, column in ((id_split, "in_distribution"), (shifted, "shifted")):
        out[f"accuracy/{column}"] = float(record.summary.get("splits", {}).get(split, {}).get("accuracy", math.nan))
        pred = collection.arrays(path, f"predictions/{split}.npz")
        values = None
        if pred and arrays:
            tests = bh._tests(arrays, split, pred["labels"].astype(np.int64), pred["groups"].astype(np.int64),
                              pred["logits"].argmax(1))
            test = next((t for t in (bh.OTHER_TRAINING, "deceiving") if t in tests), None)
            values = tests[test]["follows_background"] if test else None
        out[f"follows/{column}"] = float(np.nanmean(values)) if values is not None and np.isfinite(values).any() \
            else math.nan
    lrp = record.explanations.get("splits", {}).get(id_split, {}).get("lrp", {})
    out["r"] = float(lrp.get("sum_logit_correlation", math.nan))
    out["absorbed"] = float(lrp.get("absorbed_share", math.nan))
    return out


def protocol_table(collection: Collection) -> Table | None:
    """Per experiment and arm: the mean over seeds (t-interval) of :func:`_protocol_row`."""
    rows = [{"arm": r.config["arm"], "experiment": r.config["experiment"], "seed": r.config["seed"],
             **_protocol_row(collection, r)} for r in collection.records if r.status == "ok" and "arm" in r.config]
    if not rows:
        return None
    frame = pd.DataFrame(rows)
    order = {a.name: i for i, a in enumerate(isnet_protocol.ARMS)}
    cells, data = [], []
    groups = sorted(frame.groupby(["experiment", "arm"]), key=lambda g: (g[0][0], order.get(g[0][1], 99)))
    for (experiment, arm), block in groups:
        row = [Cell.text(experiment), Cell.text(arm), Cell.text(len(block))]
        summary = {"experiment": experiment, "arm": arm, "seeds": len(block)}
        for column in PROTOCOL_COLUMNS:
            t = t_interval(block[column].to_numpy(np.float64), LEVEL)
            scale, digits = {"r": (1.0, 2), "epochs": (1.0, 1)}.get(column, (100.0, 1))
            bounds = {"r": (-1.0, 1.0), "epochs": None, "absorbed": (0.0, math.inf)}.get(column, (0.0, 1.0))
            row.append(t_cell(t.estimate, (t.high - t.low) / 2, scale=scale, digits=digits, bounds=bounds))
            summary[column] = t.estimate
        cells.append(row)
        data.append(summary)
    arms = " ".join(f"*{a.name}*: {a.what}." for a in isnet_protocol.ARMS)
    caption = (
        f"`{isnet_protocol.METHOD}` on the synthetic X-rays (cpu profile, seeds "
        f"{', '.join(map(str, isnet_protocol.SEEDS))}) under each protocol. {arms} Validation accuracy (%) of the "
        "selected epoch (the in-distribution validation split: the only number the default's rule reads); accuracy "
        "(%) on the in-distribution test split and on the shifted one (external hospitals; biased MNIST: the deceiving "
        "split); follows (%): among the test images re-rendered in the style of another training hospital whose "
        "majority class is not the image's own (biased MNIST: drawn with another class's marker), the share "
        "predicted as the class the background points to; LRP r and absorbed (%): the in-distribution LRP "
        "heatmaps' relevance sums against the logits they explain (Pearson r; the share of the logits the sums "
        f"leave out). Cell: mean over seeds ±{t_text()}; {cut_text('(accuracies and rates 0–100 %, r −1–1)')} "
        f"{_progress(frame)}"
        f"Reproduce: `{isnet_protocol.COMMAND}`."
    )
    header = ["experiment", "arm", "seeds", "validation acc. (%)", "in-distribution acc. (%)", "shifted acc. (%)",
              "follows, in-distribution (%)", "follows, shifted (%)", "LRP r", "LRP absorbed (%)", "epochs trained"]
    return Table("study_isnet_protocol", isnet_protocol.TITLE, caption, header, cells, pd.DataFrame(data),
                 "llr" + "r" * len(PROTOCOL_COLUMNS))


def _progress(frame: pd.DataFrame) -> str:
    """How much of the study exists: runs recorded out of all, and the arms with none yet."""
    total = sum(len(a.experiments) for a in isnet_protocol.ARMS) * len(isnet_protocol.SEEDS)
    missing = [a.name for a in isnet_protocol.ARMS if a.name not in set(frame["arm"])]
    text = f"{len(frame)} of {total} runs are recorded"
    return f"{text}; arms not yet run: {', '.join(missing)}. " if missing else f"{text}. "


# ------------------------------------------------------------------------------- sweep
def sweep_table(collection: Collection) -> Table | None:
    """Per baseline and candidate: the mean selected validation accuracy per experiment (over
    seeds), their mean, and which candidate the sweep's rule chose."""
    found: dict[tuple[str, int, str], list[float]] = {}
    for record in collection.records:
        if record.status != "ok":
            continue
        c = record.config
        value = record.summary.get("selection", {}).get("selected_val_accuracy")
        if value is not None:
            found.setdefault((c["method"], int(c["hparam_index"]), c["experiment"]), []).append(float(value))
    if not found:
        return None
    means = {k: float(np.mean(v)) for k, v in found.items()}
    chosen = sweep.choose({k: v for k, v in means.items() if len(found[k]) == len(sweep.SEEDS)})
    defaults = {name: dict(spec.defaults) for name, spec in discover_methods().items()}
    rows, data = [], []
    for method, candidates in sweep.CANDIDATES.items():
        for index, hparams in enumerate(candidates):
            values = [means.get((method, index, e), math.nan) for e in sweep.EXPERIMENTS]
            changed = {k: v for k, v in hparams.items() if sweep.BEFORE[method].get(k) != v}
            pick = chosen.get(method, {}).get("candidate") == index
            is_default = defaults.get(method) == hparams
            verdict = ("**chosen**" + ("" if is_default else ", not the plugin's default yet") if pick
                       else ("" if method in chosen else "not judged: sweep incomplete"))
            label = ", ".join(f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}" for k, v in changed.items())
            seeds = min((len(found.get((method, index, e), [])) for e in sweep.EXPERIMENTS), default=0)
            rows.append([Cell.code(method), Cell.text(label or "before the sweep"), Cell.text(seeds),
                         *(Cell.text(num(v)) for v in values), Cell.text(num(float(np.mean(values)))),
                         Cell.text(verdict)])
            data.append({"method": method, "candidate": index, "changes": label, "seeds": seeds,
                         **{f"val_accuracy/{e}": v for e, v in zip(sweep.EXPERIMENTS, values, strict=True)},
                         "mean": float(np.mean(values)), "chosen": pick, "judged": method in chosen,
                         "default": is_default})
    caption = (
        "The baselines' free constants, candidate by candidate, at cpu scale: the selected epoch's in-distribution "
        f"validation accuracy (%), mean over seeds {', '.join(map(str, sweep.SEEDS))}, per experiment and their mean. "
        f"Rule, stated before the runs: the candidate with the highest mean replaces the constants before the sweep "
        f"only when it beats them by more than {100 * sweep.MARGIN:.0f} percentage point; no shifted or test split "
        f"is read. A method is judged only once every candidate has every seed on every experiment; a chosen "
        f"candidate is the default of the grid once its plugin's declared defaults equal it. "
        f"{len(collection.records)} of {sweep.RUNS} runs are recorded. ISNet keeps the "
        f"authors' constants. Reproduce: `{sweep.COMMAND}`."
    )
    header = ["method", "candidate", "seeds", *(f"{e} (%)" for e in sweep.EXPERIMENTS), "mean (%)", ""]
    return Table("study_sweep", sweep.TITLE, caption, header, rows, pd.DataFrame(data),
                 "llr" + "r" * (len(sweep.EXPERIMENTS) + 1) + "l")
