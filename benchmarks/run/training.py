"""Train one run: build data and method, train with per-epoch checkpoints, keep the
validation-selected weights, predict every test split with them, measure explanations, and
write the record.

Model selection is one rule for every method (the ISNet authors' rule): after each epoch
the method's training objective is averaged over the in-distribution validation split
(``Method.validation_step``), and the weights of the epoch with the lowest value, among the
epochs whose weights are ``selectable``, are the ones evaluated. Test splits are only ever
read by that final evaluation.

A run is deterministic given its configuration (and, on the CPU, its thread count, which
every executor fixes: :mod:`benchmarks.executors.unit`): the data order of epoch ``e`` comes
from a generator seeded by ``(seed, e)`` (:mod:`benchmarks.run.batching`) and torch's RNG states
are checkpointed, so a run killed after epoch ``e`` and resumed ends with the same weights
as one that never stopped; the selected weights are written (``best.pt``) before the epoch's
checkpoint, so they survive a kill too. Every start and resume appends what it ran on
(threads, device, host, torch) to ``provenance.json``'s ``starts``.
"""

from __future__ import annotations

import math
import random
import time
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from benchmarks.api import (
    Batch,
    DataBundle,
    ExperimentProfile,
    ExperimentSpec,
    Method,
    MethodSpec,
    ModelContext,
)
from benchmarks.architectures import build_backbone
from benchmarks.run import distributed, provenance
from benchmarks.run.batching import count_batches, iterate_batches
from benchmarks.run.behaviour_record import behaviour_record
from benchmarks.run.convergence import still_improving
from benchmarks.run.explanation_record import explanation_record
from benchmarks.run.task import RunTask, profile_settings, task_profile
from benchmarks.store import CorruptRecordError, RunDir


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run is recorded as failed with this reason."""


def perturb_weights(module: torch.nn.Module, relative: float, draw: int) -> None:
    """Multiply every floating-point parameter by ``1 + relative * N(0, 1)`` noise from a
    generator of its own (seeded by ``draw``), leaving torch's global random state alone, so
    that the perturbed run differs from the original in its initial weights only."""
    generator = torch.Generator().manual_seed(1_000_003 + int(draw))
    with torch.no_grad():
        for p in module.parameters():
            if p.is_floating_point():
                noise = torch.randn(p.shape, generator=generator, dtype=torch.float64)
                p.mul_((1 + relative * noise).to(p.dtype))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@torch.no_grad()
def predict_split(method: Method, split: Dataset, batch_size: int, device: torch.device) -> dict[str, np.ndarray]:
    """Logits, labels and groups of every image of a split, in split order, and, for a method
    that segments (:meth:`~benchmarks.api.Method.segment`) on a split with masks, the Dice of
    its foreground prediction per image (``dice``)."""
    method.eval()
    logits, labels, groups, dice = [], [], [], []
    for batch in iterate_batches(split, batch_size, shuffle_seed=None):
        images = batch.images.to(device)
        logits.append(method.predict(images).float().cpu())
        labels.append(batch.labels)
        groups.append(batch.groups)
        predicted = method.segment(images) if batch.masks is not None else None
        if predicted is not None:
            dice.append(dice_per_image(predicted.float().cpu(), batch.masks))
    out = {
        "logits": torch.cat(logits).numpy(),
        "labels": torch.cat(labels).numpy(),
        "groups": torch.cat(groups).numpy(),
        "index": np.arange(len(split)),
    }
    if dice:
        out["dice"] = torch.cat(dice).numpy()
    return out


def dice_per_image(predicted: Tensor, masks: Tensor) -> Tensor:
    """Dice ``2 |P ∩ M| / (|P| + |M|)`` of each predicted foreground (probabilities or 0/1,
    thresholded at 0.5) against the true mask; 1 where both are empty."""
    p = (predicted > 0.5).flatten(1).float()
    m = (masks > 0.5).flatten(1).float()
    both = p.sum(1) + m.sum(1)
    return torch.where(both > 0, 2 * (p * m).sum(1) / both.clamp(min=1), torch.ones_like(both))


SELECTION_RULE = ("lowest mean validation loss (the method's training objective on the in-distribution "
                  "validation split) among the epochs whose weights are selectable")


def validate(method: Method, split: Dataset, batch_size: int, device: torch.device) -> dict[str, float]:
    """Mean of every scalar term of ``method.validation_step`` over ``split`` (``val_loss`` is
    the objective), plus ``val_accuracy`` and ``val_cross_entropy`` of its logits."""
    method.eval()
    sums: dict[str, float] = {}
    correct, total, ce = 0, 0, 0.0
    with torch.enable_grad():
        for batch in iterate_batches(split, batch_size, shuffle_seed=None):
            batch = batch.to(device)
            out = method.validation_step(batch)
            n = len(batch.labels)
            for key, value in out.items():
                if key != "logits" and value.numel() == 1:
                    sums[key] = sums.get(key, 0.0) + float(value.detach()) * n
            logits = out["logits"].detach().float()
            correct += int((logits.argmax(1) == batch.labels).sum())
            ce += float(torch.nn.functional.cross_entropy(logits, batch.labels, reduction="sum"))
            total += n
            del out
    metrics = {f"val_{k}": v / total for k, v in sums.items()}
    metrics["val_accuracy"] = correct / total
    metrics["val_cross_entropy"] = ce / total
    return metrics


def stops_early(profile: ExperimentProfile, epochs: list[dict[str, Any]]) -> bool:
    """Whether a run with these finished ``epochs`` has stopped improving (early stopping is
    on when the profile sets ``min_epochs``)."""
    return profile.min_epochs is not None and len(epochs) >= profile.min_epochs and not still_improving(epochs)


def best_epoch(epochs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The epoch the selection rule picks (ties: the earlier epoch); ``None`` when no epoch is
    selectable or no validation loss is finite."""
    candidates = [e for e in epochs if e.get("selectable", True) and math.isfinite(e["val_loss"])]
    return min(candidates, key=lambda e: (e["val_loss"], e["epoch"])) if candidates else None


def _accuracy_and_loss(pred: dict[str, np.ndarray]) -> tuple[float, float]:
    logits = torch.from_numpy(pred["logits"])
    labels = torch.from_numpy(pred["labels"]).long()
    loss = torch.nn.functional.cross_entropy(logits, labels).item()
    return float((logits.argmax(1) == labels).float().mean()), loss


def build_method(spec: MethodSpec, bundle: DataBundle, scale: str, backbone: str, hparams: dict[str, Any]) -> Method:
    ctx = ModelContext(
        num_classes=bundle.num_classes,
        in_channels=bundle.in_channels,
        image_size=bundle.image_size,
        scale=scale,
        backbone=backbone,
        build_backbone=lambda k: build_backbone(backbone, k, bundle.in_channels),
        class_names=bundle.class_names,
    )
    return spec.cls(ctx, **hparams)


def train_run(
    task: RunTask,
    experiment: ExperimentSpec,
    method_spec: MethodSpec,
    position: int = 0,
    show_progress: bool = True,
    keep_weights: bool = False,
) -> str:
    """Train, evaluate and record one run; returns its final status (``ok`` / ``failed``).
    ``keep_weights`` keeps ``best.pt`` (the selected weights) and ``checkpoint.pt`` in the
    finished record, for studies that start another run from the trained weights."""
    run = distributed.run_dir(task.folder)
    profile = task_profile(task, experiment)
    device = torch.device(task.device)
    seed_everything(task.seed)
    bundle = experiment.build(profile, task.seed, task.cache_dir)
    if method_spec.needs_masks and not bundle.has_masks:
        raise ValueError(f"{task.method} needs foreground masks but {task.experiment} has none")
    method = build_method(method_spec, bundle, task.profile, profile.backbone, task.hparams)
    if task.init:
        from benchmarks.run.pretraining import load_matching, pretrained_state

        load_matching(method.export(), pretrained_state(task.init, profile.backbone, bundle.in_channels,
                                                        profile.image_size, task.cache_dir))
    if task.perturbation:
        perturb_weights(method, *task.perturbation)
    method = method.to(device)
    optimizer = method.configure_optimizer()

    epochs, earlier = _resume(run, task, method, optimizer, device)
    start = provenance.start_entry(device, resumed_from_epoch=len(epochs))
    if earlier is None:
        splits = {"test_splits": experiment.test_splits, "id_split": experiment.id_split,
                  "shift_splits": experiment.shift_splits, "experiment_tags": sorted(experiment.tags)}
        run.write_json("config.json", {**task.config, "experiment_profile": profile_settings(profile), **splits,
                                       "role": method_spec.role, "selection_rule": SELECTION_RULE})
        run.write_json("provenance.json", {**provenance.collect(device, bundle.checksum), **distributed.describe(),
                                           "starts": [start]})
    else:
        run.write_json("provenance.json", {**earlier, "starts": [*earlier.get("starts", []), start]})
    replicas = distributed.start_run(method, len(epochs), task.seed)

    per_epoch = count_batches(bundle.train, profile.batch_size)
    bar = tqdm(total=profile.epochs * per_epoch, initial=len(epochs) * per_epoch, desc=task.label,
               position=position, leave=False, disable=not show_progress, dynamic_ncols=True)
    try:
        for epoch in range(len(epochs), profile.epochs):
            if stops_early(profile, epochs):
                break
            epochs.append(_train_epoch(method, optimizer, replicas, bundle, profile, device, epoch, task.seed, bar))
            run.write_epochs(epochs)
            selected = best_epoch(epochs)
            if selected is not None and selected["epoch"] == epoch:  # saved before the checkpoint: survives a kill
                run.write_best({"epoch": epoch, "model": method.state_dict()})
            run.write_checkpoint({"config": task.config, "model": method.state_dict(),
                                  "optimizer": optimizer.state_dict(), "extra": method.extra_state(),
                                  **rng_states(device), "epochs": epochs})
    except TrainingDiverged as err:
        bar.close()
        run.write_json("summary.json", {"status": "failed", "reason": str(err), "epochs": epochs})
        run.mark_done("failed", reason=str(err))
        return "failed"
    bar.close()
    _evaluate(run, task, experiment, method, bundle, profile.batch_size, device, epochs, keep_weights)
    return "ok"


def train_step(method: Method, optimizer: torch.optim.Optimizer, replicas: distributed.Replicas, batch: Batch,
               grad_clip: float | None, where: str = "") -> dict[str, float]:
    """One optimiser step on ``batch`` (gradients all-reduced across replicas, clipped at norm
    ``grad_clip``); returns the step's scalar loss terms. Raises :class:`TrainingDiverged`,
    naming ``where``, on a non-finite loss."""
    out = method.training_step(batch)
    loss = out["loss"]
    if not replicas.all_finite(loss):
        terms = {k: float(v.detach()) for k, v in out.items() if k != "logits" and v.numel() == 1}
        raise TrainingDiverged(f"non-finite loss at {where}: {terms}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    replicas.all_reduce_gradients(out)
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(method.parameters(), float(grad_clip))
    optimizer.step()
    return {k: float(v.detach()) for k, v in out.items() if k != "logits" and v.numel() == 1}


def _train_epoch(method: Method, optimizer: torch.optim.Optimizer, replicas: distributed.Replicas,
                 bundle: DataBundle, profile: ExperimentProfile, device: torch.device, epoch: int, seed: int,
                 bar: tqdm) -> dict[str, Any]:
    """Train one epoch (this rank's shard of each batch), then validate; the epoch's line of
    ``metrics.jsonl``. Raises :class:`TrainingDiverged` on a non-finite loss."""
    started = time.perf_counter()
    grad_clip = method.hparams.get("grad_clip")
    method.on_epoch_start(epoch)
    method.train()
    sums: dict[str, float] = {}
    steps = 0
    for step, batch in enumerate(replicas.batches(bundle.train, profile.batch_size, seed * 100_003 + epoch)):
        terms = train_step(method, optimizer, replicas, batch.to(device), grad_clip, f"epoch {epoch}, step {step}")
        for key, value in terms.items():
            sums[key] = sums.get(key, 0.0) + value
        steps += 1
        bar.update(1)
        bar.set_postfix(loss=f"{terms['loss']:.3f}", refresh=False)
    return {
        "epoch": epoch,
        **{f"train_{k}": v / max(steps, 1) for k, v in sums.items()},
        **validate(method, bundle.val, profile.batch_size, device),
        "selectable": bool(method.selectable),
        "seconds": time.perf_counter() - started,
    }


def rng_states(device: torch.device) -> dict[str, Tensor]:
    """torch's random generators (the CPU's, and the GPU's on CUDA) as tensors for a checkpoint."""
    states = {"torch_rng": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda_rng"] = torch.cuda.get_rng_state(device)
    return states


def _resume(run: RunDir, task: RunTask, method: Method, optimizer: torch.optim.Optimizer,
            device: torch.device) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Load the run's checkpoint into ``method`` and ``optimizer``: the finished epochs and the
    provenance recorded so far (``[], None`` for a fresh start).

    A checkpoint (or ``best.pt``) that is not plain data, one of another configuration, or an
    unreadable ``provenance.json`` beside it makes the folder damaged: it is moved aside, not
    read further, and the run starts afresh.
    """
    try:
        checkpoint = run.read_checkpoint()
        if checkpoint is None:
            return [], None
        if checkpoint.get("config") != task.config:
            raise CorruptRecordError(f"{run.path}: checkpoint.pt was written for another configuration")
        run.read_best()
        earlier = run.read_json("provenance.json", {})
    except CorruptRecordError as err:
        moved = run.set_aside()
        where = f"; the folder was moved to {moved}" if moved else ""
        print(f"{task.label}: damaged checkpoint, starting afresh: {err}{where}", flush=True)
        return [], None
    method.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    method.load_extra_state(checkpoint.get("extra", {}))
    torch.set_rng_state(checkpoint["torch_rng"])
    if device.type == "cuda" and "cuda_rng" in checkpoint:
        torch.cuda.set_rng_state(checkpoint["cuda_rng"], device)
    return checkpoint["epochs"], earlier


def _evaluate(
    run: RunDir,
    task: RunTask,
    experiment: ExperimentSpec,
    method: Method,
    bundle: DataBundle,
    batch_size: int,
    device: torch.device,
    epochs: list[dict[str, Any]],
    keep_weights: bool = False,
) -> None:
    """Load the selected weights, predict every test split, measure explanations, then write
    the summary and ``done``."""
    selection = _select(run, method, epochs, task_profile(task, experiment).epochs)
    summary: dict[str, Any] = {"status": "ok", "train_seconds": sum(e["seconds"] for e in epochs), "splits": {},
                               "selection": selection}
    intact: dict[str, np.ndarray] = {}
    for name in experiment.test_splits:
        split = bundle.tests[name]
        started = time.perf_counter()
        pred = predict_split(method, split, batch_size, device)
        seconds = time.perf_counter() - started
        run.write_predictions(name, pred)
        intact[name] = pred["logits"].argmax(1).astype(np.int16)
        accuracy, loss = _accuracy_and_loss(pred)
        summary["splits"][name] = {"accuracy": accuracy, "loss": loss, "n": len(split), "inference_seconds": seconds,
                                   **({"dice": float(pred["dice"].mean())} if "dice" in pred else {})}
    chosen = epochs[selection["selected_epoch"]] if epochs else {}
    summary["val_accuracy"] = chosen.get("val_accuracy", float("nan"))
    summary["val_loss"] = chosen.get("val_loss", float("nan"))
    record, arrays = behaviour_record(method, bundle, experiment.test_splits, intact, batch_size, device)
    run.write_json("counterfactuals.json", record)
    run.write_arrays("counterfactuals.npz", arrays)
    record, arrays = explanation_record(method, bundle, experiment.test_splits, task.profile, device)
    run.write_json("explanations.json", record)
    run.write_arrays("explanations.npz", arrays)
    run.write_json("summary.json", summary)
    run.mark_done("ok", keep_checkpoint=keep_weights)


def _select(run: RunDir, method: Method, epochs: list[dict[str, Any]], max_epochs: int) -> dict[str, Any]:
    """Load the weights the selection rule picks into ``method``; returns what the record says
    of the choice (the last epoch's validation metrics too, and whether the run stopped before
    ``max_epochs``). When no epoch is selectable the last epoch's weights stay and the record
    says why."""
    last = epochs[-1] if epochs else {}
    selection: dict[str, Any] = {
        "rule": SELECTION_RULE,
        "epochs": len(epochs),
        "last_epoch": last.get("epoch"),
        "last_val_loss": last.get("val_loss"),
        "last_val_accuracy": last.get("val_accuracy"),
    }
    selection["stopped_early"] = bool(epochs) and len(epochs) < max_epochs
    chosen = best_epoch(epochs)
    if chosen is None:
        return {**selection, "selected_epoch": last.get("epoch"), "fallback": "no selectable epoch with a finite "
                "validation loss: the last epoch's weights are evaluated"}
    if chosen["epoch"] != last.get("epoch"):
        saved = run.read_best()
        if saved is None or saved["epoch"] != chosen["epoch"]:
            raise RuntimeError(f"{run.path}: best.pt does not hold the selected epoch {chosen['epoch']}")
        method.load_state_dict(saved["model"])
    return {**selection, "selected_epoch": chosen["epoch"], "selected_val_loss": chosen["val_loss"],
            "selected_val_accuracy": chosen["val_accuracy"]}
