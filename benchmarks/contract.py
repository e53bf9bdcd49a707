"""The method contract: what every benchmark method must do, as checks that run on any
installed method, so that a plugin's author can run them on theirs (``python -m benchmarks
check NAME``) and the suite's tests run them on every discovered method.

Each method is built at smoke scale on a fixed tiny batch (4 grey 32x32 images, 3 classes,
masks) and must:

* declare a default for every hyper-parameter it searches, and a search space that can be
  sampled (draws 1..n-1 of ``run --n-hparams n`` come from it);
* build from the harness's model context;
* train for three steps with its own optimiser (and ``grad_clip`` when it declares one), with
  a finite scalar loss that falls: the loss after the three steps, measured on the same batch,
  must be below the first one by at least 0.01 % (each step re-seeds the RNG, so dropout and
  other noise are identical at every measurement and the comparison is deterministic);
* when it does not need masks, train on a batch without them;
* predict finite logits ``[B, K]``; explain ``[B, C or 1, H, W]`` at the input size, finite;
* export a plain ``nn.Module`` (not the Method) that gives the same logits as ``predict``.

The checks run in this order on one method instance; once one fails, those that need its
result are reported as not run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from benchmarks.api import Batch, Method, MethodSpec, ModelContext
from benchmarks.architectures import build_backbone
from benchmarks.registry import select

B, C, SIZE, K = 4, 1, 32, 3
CLASS_NAMES = ("normal", "covid", "pneumonia")
#: the tags of the checks' fake experiment: it has masks and a normal class
TAGS = frozenset({"has_normal_class"})
SEED = 0
PASS, FAIL, SKIP = "pass", "FAIL", "skip"


class ContractError(AssertionError):
    """A method breaks the contract (the message says how)."""


@dataclass
class Subject:
    """The method under check and what the checks hand on to each other."""

    spec: MethodSpec
    method: Method | None = None
    optimizer: torch.optim.Optimizer | None = None
    logits: torch.Tensor | None = None
    notes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Result:
    """One check's outcome: :data:`PASS`, :data:`FAIL` or :data:`SKIP`, and why."""

    check: str
    status: str
    message: str = ""


def smoke_context() -> ModelContext:
    """The model context the checks build every method with (smoke scale, tiny CNN backbone)."""
    return ModelContext(num_classes=K, in_channels=C, image_size=SIZE, scale="smoke", backbone="tiny_cnn",
                        build_backbone=lambda k: build_backbone("tiny_cnn", k, C), class_names=CLASS_NAMES)


def tiny_batch(with_masks: bool = True) -> Batch:
    """Four random grey images, labels 0 1 2 1, and a different square foreground per image."""
    g = torch.Generator().manual_seed(SEED)
    images = torch.rand(B, C, SIZE, SIZE, generator=g)
    labels = torch.tensor([0, 1, 2, 1])
    masks = torch.zeros(B, 1, SIZE, SIZE)
    for i in range(B):
        top, left = 4 + 2 * i, 10 - 2 * i
        masks[i, :, top : top + 16, left : left + 16] = 1.0
    return Batch(images, labels, masks if with_masks else None, torch.zeros(B, dtype=torch.long))


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ContractError(message)


# ------------------------------------------------------------------------------ the checks
def search_space(subject: Subject) -> None:
    """Every searched hyper-parameter has a default, and the space can be sampled."""
    from benchmarks.grid import sample_hparams

    spec = subject.spec
    missing = sorted(set(spec.search_space) - set(spec.defaults))
    _require(not missing, f"searched hyper-parameters without a default: {missing} (draw 0 is the defaults)")
    try:
        sample_hparams(spec, 1)
    except ValueError as err:
        raise ContractError(str(err)) from err


def builds(subject: Subject) -> None:
    """The method builds from the model context, with its defaults, and makes its optimiser."""
    torch.manual_seed(SEED)
    method = subject.spec.cls(smoke_context(), **dict(subject.spec.defaults))
    _require(isinstance(method, Method), f"building gave a {type(method).__name__}, not a Method")
    subject.method = method
    subject.optimizer = method.configure_optimizer()


def _train_step(subject: Subject, batch: Batch) -> float:
    method, optimizer = subject.method, subject.optimizer
    torch.manual_seed(SEED + 1)
    out = method.training_step(batch)
    loss = out["loss"]
    _require(loss.ndim == 0, f"the loss must be a scalar, got shape {tuple(loss.shape)}")
    _require(bool(torch.isfinite(loss)), f"non-finite loss {float(loss.detach())}")
    _require(tuple(out["logits"].shape) == (B, K), f"training_step logits must be {(B, K)}, got "
                                                    f"{tuple(out['logits'].shape)}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_clip = method.hparams.get("grad_clip")
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(method.parameters(), float(grad_clip))
    optimizer.step()
    return float(loss.detach())


def loss_falls(subject: Subject) -> None:
    """Three optimiser steps on the tiny batch lower the loss by at least 0.01 %."""
    subject.method.train()
    batch = tiny_batch()
    losses = [_train_step(subject, batch) for _ in range(3)]
    torch.manual_seed(SEED + 1)
    final = float(subject.method.training_step(batch)["loss"].detach())
    _require(bool(torch.isfinite(torch.tensor(final))), f"non-finite loss {final} after three steps")
    _require(losses[0] - final > 1e-4 * abs(losses[0]), f"the loss did not fall: steps {losses}, then {final}")


def trains_without_masks(subject: Subject) -> str | None:
    """A method that does not need masks trains on a batch without them."""
    if subject.spec.needs_masks:
        return "the method needs masks"
    out = subject.method.training_step(tiny_batch(with_masks=False))
    _require(bool(torch.isfinite(out["loss"])), "non-finite loss on a batch without masks")
    return None


def predicts(subject: Subject) -> None:
    """predict gives finite logits [B, K]."""
    subject.method.eval()
    with torch.no_grad():
        logits = subject.method.predict(tiny_batch().images)
    _require(tuple(logits.shape) == (B, K), f"predict must give logits {(B, K)}, got {tuple(logits.shape)}")
    _require(bool(torch.isfinite(logits).all()), "predict gave non-finite logits")
    subject.logits = logits


def explains(subject: Subject) -> None:
    """explain gives finite heatmaps [B, C or 1, H, W] at the input size."""
    batch = tiny_batch()
    heat = subject.method.explain(batch.images, batch.labels)
    _require(heat.ndim == 4 and heat.shape[0] == B and heat.shape[1] in (1, C),
             f"explain must give [B, C or 1, H, W], got {tuple(heat.shape)}")
    _require(tuple(heat.shape[-2:]) == (SIZE, SIZE), f"explain must be at the input size, got {tuple(heat.shape)}")
    _require(bool(torch.isfinite(heat).all()), "explain gave non-finite values")


def exports(subject: Subject) -> None:
    """export gives a plain nn.Module with the logits of predict."""
    exported = subject.method.export()
    _require(isinstance(exported, nn.Module) and not isinstance(exported, Method),
             f"export must give a plain nn.Module (what is tested), got {type(exported).__name__}")
    with torch.no_grad():
        logits = exported(tiny_batch().images)
    _require(torch.allclose(logits, subject.logits, atol=1e-5, rtol=1e-4),
             "the exported module's logits differ from predict's")


#: the checks in the order they run, each with what it needs run before it
CHECKS: tuple[tuple[Callable[[Subject], str | None], tuple[str, ...]], ...] = (
    (search_space, ()),
    (builds, ()),
    (loss_falls, ("builds",)),
    (trains_without_masks, ("loss_falls",)),
    (predicts, ("loss_falls",)),
    (explains, ("loss_falls",)),
    (exports, ("predicts",)),
)


def check_method(spec: MethodSpec) -> list[Result]:
    """Every check of the contract on ``spec``, in order (an error inside a method is a failure
    that names it, not a crash); an empty list when the method does not apply to the checks'
    fake experiment (see :data:`TAGS`)."""
    if spec.reason_not_applicable(TAGS):
        return []
    subject = Subject(spec)
    passed: set[str] = set()
    results = []
    for check, needs in CHECKS:
        name = check.__name__
        missing = [n for n in needs if n not in passed]
        if missing:
            results.append(Result(name, SKIP, f"not run: {missing[0]} did not pass"))
            continue
        try:
            skipped = check(subject)
        except Exception as err:  # noqa: BLE001 - a broken plugin is reported, check by check
            results.append(Result(name, FAIL, err.args[0] if isinstance(err, ContractError) else
                                  f"{type(err).__name__}: {err}"))
            continue
        passed.add(name)
        results.append(Result(name, SKIP, skipped) if skipped else Result(name, PASS))
    return results


def summary(check: str) -> str:
    """The one-line description of a check (its docstring's first line, without the full stop)."""
    function = next(c for c, _ in CHECKS if c.__name__ == check)
    return (function.__doc__ or check).strip().splitlines()[0].rstrip(".")


def check_command(methods: Mapping[str, MethodSpec], patterns: Sequence[str]) -> int:
    """``python -m benchmarks check NAME...``: every check on every method the names or glob
    patterns select, one line each; exit status 1 when a method breaks the contract."""
    broken = []
    chosen = select(dict(methods), patterns, "method")
    for name in chosen:
        spec = methods[name]
        results = check_method(spec)
        print(f"{name} (role {spec.role}, {'needs' if spec.needs_masks else 'no'} masks):")
        if not results:
            print(f"  {SKIP}  not checked: {spec.reason_not_applicable(TAGS)}")
        for r in results:
            print(f"  {r.status}  {summary(r.check)}" + (f": {r.message}" if r.message else ""))
        if any(r.status == FAIL for r in results):
            broken.append(name)
    print(f"{len(chosen)} method(s) checked: " + (f"{', '.join(broken)} broke the contract" if broken else
                                                   "all keep the contract"))
    return 1 if broken else 0
