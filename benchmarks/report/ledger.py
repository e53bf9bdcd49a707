"""Tables about the runs themselves: which hyper-parameter draw was selected, what the runs
and the invocations cost, which runs were left out, and where the runs came from."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pandas as pd

from benchmarks.report import convergence_diagnostic
from benchmarks.report.analysis import Analysis
from benchmarks.report.selection import CLI_COLUMN, NO_CLI
from benchmarks.report.table import Cell, Table, num, signed, t_cell, t_text


def _hparams_cell(hparams: str, from_cli: str) -> Cell:
    """The draw's hyper-parameters, and which of them were set on the command line (if any)."""
    cell = Cell.code(hparams)
    keys = sorted(json.loads(from_cli)) if from_cli and from_cli != NO_CLI else []
    if not keys:
        return cell
    return Cell(cell.md + "; set on the command line: " + ", ".join(f"`{k}`" for k in keys),
                cell.tex + "; set on the command line: " + ", ".join(Cell.code(k).tex for k in keys))


def selection_table(draws: pd.DataFrame, note: str) -> Table:
    draws = draws if CLI_COLUMN in draws else draws.assign(**{CLI_COLUMN: NO_CLI})
    rows = []
    for r in draws.itertuples(index=False):
        rows.append([Cell.text(r.experiment), Cell.text(r.profile), Cell.code(r.method), Cell.text(r.hparam_index),
                     _hparams_cell(r.hparams, getattr(r, CLI_COLUMN)), Cell.text(r.seeds_ok),
                     Cell.text(r.seeds_failed), Cell.text(num(r.val_accuracy)), Cell.text("yes" if r.selected else "")])
    set_on_cli = (draws[CLI_COLUMN] != NO_CLI).any()
    return Table(
        "model_selection", "Model selection",
        note + " Mean validation accuracy (%) over the finished seeds of each draw; draw 0 is the method's "
        "defaults; ties go to the lower draw" + (
            ", then to the draw without values set on the command line (`run --hparams`; they apply to every draw "
            "of the method and are part of each run's identity)." if set_on_cli else "."),
        ["experiment", "profile", "method", "draw", "hyper-parameters", "seeds ok", "seeds failed",
         "val. accuracy", "selected"],
        rows, draws if set_on_cli else draws.drop(columns=CLI_COLUMN), "lllrlrrrl")


# -------------------------------------------------------------------------- convergence
def _seed_cells(block: pd.DataFrame) -> tuple[str, str]:
    epochs, changes = [], []
    for r in block.itertuples(index=False):
        fallback = " (last: no selectable epoch)" if r.fallback else ""
        epochs.append(f"s{r.seed}: {r.selected_epoch}{fallback}")
        if r.still_improving is None:
            changes.append(f"s{r.seed}: n/a")
        else:
            changes.append(f"s{r.seed}: {signed(r.change)} %" + (" (improving)" if r.still_improving else ""))
    return ", ".join(epochs), ", ".join(changes)


def convergence_table(analysis: Analysis) -> Table:
    """Per experiment and method: each seed's selected epoch, the last quarter's best validation
    loss against the best before it, and the verdict of :data:`benchmarks.report.convergence_diagnostic.RULE`."""
    runs = analysis.convergence
    rows, verdicts = [], []
    for (exp, profile, method), block in runs.groupby(["experiment", "profile", "method"], sort=True):
        epochs, changes = _seed_cells(block)
        verdict = convergence_diagnostic.verdict(block["still_improving"])
        schedule = "/".join(str(v) for v in sorted(set(block["epochs"])))
        quarter = "/".join(str(v) for v in sorted(set(block["last_quarter"])))
        rows.append([Cell.text(exp), Cell.text(profile), Cell.code(method), Cell.text(f"{schedule} ({quarter})"),
                     Cell.text(epochs), Cell.text(changes),
                     Cell.text(f"**{verdict}**" if verdict == convergence_diagnostic.NOT_CONVERGED else verdict)])
        verdicts.append({"experiment": exp, "profile": profile, "method": method, "verdict": verdict})
    caption = (
        "Convergence of the training schedules, per experiment and method. Epochs: the schedule's length (and its "
        "last quarter). Selected epoch: the epoch each seed's selection rule kept (counted from 0). Last quarter vs "
        "before: the lowest validation loss among the selectable epochs of the last quarter, relative to the lowest "
        f"before it, per seed. Rule: {convergence_diagnostic.RULE}. Per-run numbers are in the CSV."
    )
    keys = ["experiment", "profile", "method"]
    frame = runs.merge(pd.DataFrame(verdicts, columns=[*keys, "verdict"]), on=keys, how="left")
    return Table("convergence", "Convergence of the training schedules", caption,
                 ["experiment", "profile", "method", "epochs (last quarter)", "selected epoch per seed",
                  "last quarter vs before (val. loss)", "verdict"], rows, frame, "lllrlll")


# -------------------------------------------------------------------------------- costs
def timing_table(analysis: Analysis, note: str) -> Table:
    t = analysis.timing
    rows = [[Cell.text(r.experiment), Cell.text(r.profile), Cell.code(r.method), Cell.text(r.seeds),
             t_cell(r.train_seconds, r.train_t_half, scale=1, digits=1),
             t_cell(r.inference_ms_per_image, r.inference_t_half, scale=1, digits=3), Cell.text(r.devices)]
            for r in t.itertuples(index=False)]
    caption = (
        "Training time (seconds per run, all epochs) and inference time (milliseconds per test image, every test "
        f"split of a run pooled) per method; mean over seeds ±{t_text()}. Timings come from the machines named "
        "in the last column and are comparable only within one device. " + note
    )
    data = t.drop(columns=["per_run_inference_ms"]) if "per_run_inference_ms" in t else t
    return Table("timing", "Training and inference time", caption,
                 ["experiment", "profile", "method", "seeds", "training (s)", "inference (ms / image)", "device"],
                 rows, data, "lllrrrl")


# -------------------------------------------------------------- cost of the invocations
def _gib(value: object) -> str:
    return "" if value is None else f"{float(value) / 2**30:.2f}"


def invocations_table(records: Sequence[dict]) -> Table:
    """One row per ``run`` invocation that trained runs into this records folder (``invocations.jsonl``)."""
    rows, data = [], []
    for r in records:
        machine = r.get("machine") or {}
        memory = machine.get("memory_bytes")
        where = (f"{machine.get('cpu', '?')}, {machine.get('usable_cores', '?')} cores, "
                 f"{float(memory) / 2**30:.0f} GiB" if memory else str(machine.get("cpu", "?")))
        counts = r.get("outcomes") or {}
        trained = f"{r.get('runs_trained', '?')} of {r.get('runs_in_grid', '?')} " \
                  f"({counts.get('ok', 0)} ok, {counts.get('failed', 0)} failed, {counts.get('error', 0)} errors)"
        jobs = f"{r.get('jobs')} x {r.get('threads_per_job')}" if r.get("jobs") else str(r.get("executor", ""))
        wall = float(r.get("wall_seconds") or 0.0)
        rows.append([Cell.text(r.get("finished", "")), Cell.text(r.get("profile", "")),
                     Cell.text(" ".join(str(s) for s in r.get("seeds", []))), Cell.text(trained),
                     Cell.text(f"{wall / 60:.1f}"), Cell.text(jobs), Cell.text(r.get("device", "")), Cell.text(where),
                     Cell.text(_gib(r.get("peak_pss_bytes"))), Cell.text(_gib(r.get("peak_rss_sum_bytes"))),
                     Cell.code(str(r.get("git_commit") or "unknown")[:12])])
        data.append({"finished": r.get("finished"), "profile": r.get("profile"), "seeds": r.get("seeds"),
                     "runs_in_grid": r.get("runs_in_grid"), "runs_trained": r.get("runs_trained"), **counts,
                     "wall_seconds": r.get("wall_seconds"), "jobs": r.get("jobs"),
                     "threads_per_job": r.get("threads_per_job"), "device": r.get("device"), "cpu": machine.get("cpu"),
                     "usable_cores": machine.get("usable_cores"), "memory_bytes": memory,
                     "peak_pss_bytes": r.get("peak_pss_bytes"), "peak_rss_sum_bytes": r.get("peak_rss_sum_bytes"),
                     "sampling_interval_s": r.get("sampling_interval_s"), "git_commit": r.get("git_commit"),
                     "torch": r.get("torch")})
    caption = (
        "Every `python -m benchmarks run` invocation that trained runs into these records (`invocations.jsonl`; "
        "an invocation that resumed an interrupted grid trains only what was left). Wall time: the whole grid, "
        "data building and evaluation included. Jobs: worker processes x torch threads each. Peak memory: the "
        "largest sum of proportional set sizes (PSS, shared library pages counted once) over the invocation's "
        "processes, sampled every few seconds (`sampling_interval_s` in the CSV); the next column adds each "
        "process's own peak resident set (VmHWM), an "
        "upper bound that counts shared pages once per process."
    )
    return Table("invocations", "Cost of the runs", caption,
                 ["finished (UTC)", "profile", "seeds", "runs trained", "wall (min)", "jobs", "device", "machine",
                  "peak PSS (GiB)", "sum of peak RSS (GiB)", "commit"],
                 rows, pd.DataFrame(data), "llllrlllrrl")


# ------------------------------------------------------------------------ runs left out
def failed_table(frame: pd.DataFrame, errored: Sequence) -> Table:
    failed = frame[frame["status"] != "ok"].drop_duplicates("path")
    rows, data = [], []
    for r in failed.itertuples(index=False):
        rows.append([Cell.text(r.experiment), Cell.code(r.method), Cell.text(r.seed), Cell.text(r.hparam_index),
                     Cell.text(r.status), Cell.text(r.reason), Cell.code(r.path)])
        data.append({"experiment": r.experiment, "method": r.method, "seed": r.seed, "hparam_index": r.hparam_index,
                     "status": r.status, "reason": r.reason, "path": r.path})
    for e in errored:
        rows.append([Cell.text(e.experiment), Cell.code(e.method), Cell.text(e.seed), Cell.text(e.hparam_index),
                     Cell.text("error"), Cell.text(e.reason), Cell.code(e.path)])
        data.append({"experiment": e.experiment, "method": e.method, "seed": e.seed, "hparam_index": e.hparam_index,
                     "status": "error", "reason": e.reason, "path": e.path})
    caption = ("Runs that did not finish: 'failed' runs were recorded with their reason (e.g. a diverging loss) and "
               "count as missing seeds; 'error' runs stopped on an unexpected exception, left no record and are "
               "retried by the next `python -m benchmarks run`.")
    return Table("failed_runs", "Failed and errored runs", caption,
                 ["experiment", "method", "seed", "draw", "status", "reason", "folder"], rows,
                 pd.DataFrame(data, columns=["experiment", "method", "seed", "hparam_index", "status", "reason",
                                             "path"]), "llrrlll")


def damaged_table(damaged: Sequence) -> Table:
    rows = [[Cell.code(d.path), Cell.text(d.reason)] for d in damaged]
    caption = ("Records whose `done` marker does not match their files (edited or half-written): left out of every "
               "table and figure; `python -m benchmarks run` re-runs them.")
    return Table("damaged_records", "Damaged records left out", caption, ["folder", "problem"], rows,
                 pd.DataFrame([{"path": d.path, "reason": d.reason} for d in damaged], columns=["path", "reason"]),
                 "ll")


# --------------------------------------------------------------------------- provenance
def _kernel_items(kernels: dict | None) -> list[tuple[str, str]]:
    """What a CPU start recorded about its numerics (:func:`benchmarks.run.kernels.describe`)."""
    if not isinstance(kernels, dict):
        return []
    cpu_id = kernels.get("cpu_id") or {}
    ident = ", ".join(f"{k} {v}" for k, v in sorted(cpu_id.items()))
    caps = ", ".join(f"{k}={v}" for k, v in sorted((kernels.get("caps") or {}).items())) or "none"
    return [("CPU", f"{kernels.get('cpu')} ({ident}); flags: {' '.join(kernels.get('kernel_flags') or [])}"),
            ("CPU kernels", f"ATen {kernels.get('aten_capability')}; caps: {caps}"),
            ("oneDNN / MKL", f"{kernels.get('onednn')} / {kernels.get('mkl')}")]


def provenance_tables(collection_records: Sequence, frame: pd.DataFrame) -> list[Table]:
    """Distinct commits, devices, platforms and package versions, and data checksums per
    experiment, each with the number of runs it covers."""
    runs = frame.drop_duplicates("path").set_index("path")
    counts: dict[tuple[str, str], int] = {}
    checks: dict[tuple[str, str, str], int] = {}
    for path, rec in collection_records:
        prov = rec.provenance
        items = [("git commit", str(prov.get("git_commit"))), ("device", str(prov.get("device"))),
                 ("platform", str(prov.get("platform"))), ("python", str(prov.get("python")))]
        items += [(f"package {k}", str(v)) for k, v in sorted((prov.get("packages") or {}).items())]
        items += sorted({item for start in prov.get("starts") or [] for item in _kernel_items(start.get("kernels"))})
        for item in items:
            counts[item] = counts.get(item, 0) + 1
        exp = runs.loc[path, "experiment"] if path in runs.index else rec.config.get("experiment")
        prof = runs.loc[path, "profile"] if path in runs.index else rec.config.get("profile")
        ck = (str(exp), str(prof), str(prov.get("data_checksum")))
        checks[ck] = checks.get(ck, 0) + 1
    rows = [[Cell.text(k), Cell.code(v), Cell.text(n)] for (k, v), n in sorted(counts.items())]
    env = Table("provenance", "Provenance of the runs",
                "Every distinct code version, device, platform and package version the runs recorded, with the "
                "number of runs.", ["what", "value", "runs"], rows,
                pd.DataFrame([{"what": k, "value": v, "runs": n} for (k, v), n in sorted(counts.items())],
                             columns=["what", "value", "runs"]), "llr")
    rows = [[Cell.text(e), Cell.text(p), Cell.code(c), Cell.text(n)] for (e, p, c), n in sorted(checks.items())]
    data = Table("data_checksums", "Data checksums",
                 "SHA-256 data checksums recorded by the runs of each experiment (one per distinct dataset build; "
                 "real-data experiments whose split depends on the seed have one per seed).",
                 ["experiment", "profile", "checksum", "runs"], rows,
                 pd.DataFrame([{"experiment": e, "profile": p, "checksum": c, "runs": n}
                               for (e, p, c), n in sorted(checks.items())],
                              columns=["experiment", "profile", "checksum", "runs"]), "lllr")
    return [env, data]
