"""Timing one grid cell (method x experiment) at a profile, on synthetic batches of the
experiment's shape: the harness's own training step, validation pass, test predictions,
explanation record and checkpoint, along the method's epoch schedule.

The schedule is walked, not assumed: every epoch starts with ``method.on_epoch_start(epoch)``
and is timed (a training step and a validation batch, the faster of ``walk_reps`` calls each,
so that the first call of a new phase, e.g. ISNet's first heatmap-loss step after its C1/C2
calibration epochs, pays its warm-up untimed) until the method's weights are ``selectable``
and the step time of the last ``settle`` epochs stays within ``tolerance`` of their median;
the remaining epochs are assumed to cost what the settled state costs, measured as the median
of ``steps`` training steps and ``val_batches`` validation batches.
"""

from __future__ import annotations

import math
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks.api import DataBundle, ExperimentSpec, Method, MethodSpec, TensorSplit
from benchmarks.run import distributed
from benchmarks.run.explanation_record import EXPLAINED_IMAGES
from benchmarks.run.explanation_record import explanation_record as harness_explanation_record
from benchmarks.run.training import build_method, predict_split, train_step, validate
from benchmarks.store import RunDir
from perf.timing import time_call

EXPLAIN_CHUNK = 32  # images per call of an explainer in benchmarks.run.explanation_record


@dataclass(frozen=True)
class Shape:
    """What one experiment's profile trains on, and how much of it (``None``: unknown here,
    e.g. the real collections, whose size is whatever the user's data root holds)."""

    experiment: str
    profile: str
    classes: tuple[str, ...]
    in_channels: int
    image_size: int
    batch: int
    backbone: str
    epochs: int
    n_train: int | None
    n_val: int | None
    n_test: dict[str, int | None]

    def batches(self, n: int | None) -> int | None:
        return None if n is None else math.ceil(n / self.batch)

    def explained_chunks(self) -> int | None:
        """Explainer calls per explainer of the final explanation record (all test splits)."""
        if any(n is None for n in self.n_test.values()):
            return None
        per_split = EXPLAINED_IMAGES.get(self.profile, 128)
        return sum(math.ceil(min(per_split, n) / EXPLAIN_CHUNK) for n in self.n_test.values())


def known_classes() -> dict[str, tuple[str, ...]]:
    """Class names of the built-in experiments, without building their data."""
    from benchmarks.data.cxr_hospitals import COVID_CLASSES, TB_CLASSES
    from benchmarks.data.fashion import FASHION_CLASSES
    from benchmarks.data.mnist import MNIST_CLASSES
    from benchmarks.experiments import real_cxr

    return {"biased_mnist": MNIST_CLASSES, "biased_fashion_mnist": FASHION_CLASSES, "synthetic_covid": COVID_CLASSES,
            "synthetic_tb": TB_CLASSES, "covid_real": real_cxr.COVID_CLASSES, "tb_real": real_cxr.TB_CLASSES}


def experiment_shape(spec: ExperimentSpec, profile: str, cache_dir: Path,
                     sizes: dict[str, int] | None = None) -> Shape:
    """The shape of ``spec``'s ``profile``: class names and channels from the built-in table (a
    third-party experiment builds its smoke profile once to tell them), sizes from the profile's
    ``n_train`` / ``n_val`` / ``n_<split>`` (or ``n_test``) settings, overridden by ``sizes``."""
    prof = spec.profile(profile)
    known = known_classes()
    if spec.name in known:
        classes, channels = known[spec.name], 1 if "grayscale" in spec.tags else 3
    else:
        bundle = spec.build(spec.profile("smoke"), 0, cache_dir)
        classes, channels = bundle.class_names, bundle.in_channels
    data = {k: v for k, v in prof.data.items() if k.startswith("n_")}
    data.update({f"n_{k}": v for k, v in (sizes or {}).items()})
    tests = {s: data.get(f"n_{s}", data.get("n_test")) for s in spec.test_splits}
    return Shape(spec.name, profile, tuple(classes), channels, prof.image_size, prof.batch_size, prof.backbone,
                 prof.epochs, data.get("n_train"), data.get("n_val"), tests)


def synthetic_split(shape: Shape, n: int, seed: int) -> TensorSplit:
    """``n`` images uniform in [0, 1] (stored as uint8, as the harness's caches hold them), labels
    cycling through the classes, a centred rectangular foreground mask."""
    g = torch.Generator().manual_seed(seed)
    side = shape.image_size
    images = torch.randint(0, 256, (n, shape.in_channels, side, side), dtype=torch.uint8, generator=g)
    masks = torch.zeros(n, 1, side, side)
    q = side // 4
    masks[..., q: side - q, q // 2: side - q // 2] = 1.0
    return TensorSplit(images, torch.arange(n) % len(shape.classes), masks)


def synthetic_bundle(shape: Shape) -> DataBundle:
    """One batch for training and validation, one explainer chunk per test split."""
    tests = {s: synthetic_split(shape, min(EXPLAIN_CHUNK, shape.batch), i + 2) for i, s in enumerate(shape.n_test)}
    return DataBundle(synthetic_split(shape, shape.batch, 0), synthetic_split(shape, shape.batch, 1), tests,
                      shape.classes, shape.in_channels, shape.image_size, "synthetic")


@dataclass
class CellTiming:
    """Seconds measured for one grid cell; ``step_s`` / ``val_s`` hold one value per epoch of the
    profile (walked epochs as timed, the rest the settled state's median)."""

    experiment: str
    method: str
    build_s: float
    step_s: list[float]
    val_s: list[float]
    walked: int
    infer_s: float
    explain_chunk_s: float
    checkpoint_s: float


def _settled(steps: list[float], selectable: list[bool], settle: int, tolerance: float) -> bool:
    """The last ``settle`` epochs were selectable and their step times lie within ``tolerance``
    (relative) of their median."""
    if len(steps) < settle or not all(selectable[-settle:]):
        return False
    tail = steps[-settle:]
    mid = statistics.median(tail)
    return all(abs(t - mid) <= tolerance * mid for t in tail)


def walk_schedule(method: Method, step: Callable[[], None], val: Callable[[], None], epochs: int,
                  device: torch.device, *, steps: int, val_batches: int, walk_reps: int, settle: int,
                  tolerance: float) -> tuple[list[float], list[float], int]:
    """Seconds of one training step and one validation batch for every epoch, and how many epochs
    were walked (timed one by one) before the schedule settled (see the module doc)."""
    step_s: list[float] = []
    val_s: list[float] = []
    selectable: list[bool] = []
    for epoch in range(epochs):
        method.on_epoch_start(epoch)
        method.train()
        step_s.append(min(time_call(step, device) for _ in range(walk_reps)))
        val_s.append(min(time_call(val, device) for _ in range(walk_reps)))
        selectable.append(bool(method.selectable))
        if _settled(step_s, selectable, settle, tolerance):
            break
    walked = len(step_s)
    if walked < epochs:
        method.train()
        step_s += [statistics.median(time_call(step, device) for _ in range(steps))] * (epochs - walked)
        val_s += [statistics.median(time_call(val, device) for _ in range(val_batches))] * (epochs - walked)
    return step_s, val_s, walked


def time_cell(spec: MethodSpec, shape: Shape, hparams: dict, device: torch.device, *, steps: int = 8,
              val_batches: int = 3, walk_reps: int = 2, settle: int = 3, tolerance: float = 0.1) -> CellTiming:
    """Walk ``spec`` through ``shape``'s epoch schedule on synthetic batches (see the module doc)."""
    import captum.attr  # noqa: F401 - imported once per process, outside the timed explanation record

    bundle = synthetic_bundle(shape)
    torch.manual_seed(0)
    holder: dict = {}

    def build() -> None:
        holder["method"] = build_method(spec, bundle, shape.profile, shape.backbone, hparams).to(device)

    build_s = time_call(build, device)
    method = holder.pop("method")
    optimizer = method.configure_optimizer()
    grad_clip = method.hparams.get("grad_clip")
    batch = bundle.train.batch(torch.arange(shape.batch)).to(device)
    replicas = distributed.start_run(method, 0, 0)

    def step() -> None:  # the harness's own optimiser step
        train_step(method, optimizer, replicas, batch, grad_clip)

    def val() -> None:
        validate(method, bundle.val, shape.batch, device)

    step_s, val_s, walked = walk_schedule(method, step, val, shape.epochs, device, steps=steps,
                                          val_batches=val_batches, walk_reps=walk_reps, settle=settle,
                                          tolerance=tolerance)
    infer_s = min(time_call(lambda: predict_split(method, bundle.val, shape.batch, device), device)
                  for _ in range(walk_reps))
    explain_s = time_call(lambda: harness_explanation_record(method, bundle, list(bundle.tests), shape.profile,
                                                             device), device) / max(len(bundle.tests), 1)
    checkpoint_s = _checkpoint_seconds(method, optimizer)
    return CellTiming(shape.experiment, spec.name, build_s, step_s, val_s, walked, infer_s, explain_s, checkpoint_s)


def _checkpoint_seconds(method: torch.nn.Module, optimizer: torch.optim.Optimizer) -> float:
    """One epoch's checkpoint (weights, optimiser state) and ``best.pt`` (weights), written by the
    harness's own ``RunDir`` (serialised in memory, then an atomic, fsync-ed file write) into a
    temporary folder."""
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir(Path(tmp))

        def save() -> None:
            run.write_checkpoint({"model": method.state_dict(), "optimizer": optimizer.state_dict()})
            run.write_best({"epoch": 0, "model": method.state_dict()})

        return time_call(save, torch.device("cpu"))
