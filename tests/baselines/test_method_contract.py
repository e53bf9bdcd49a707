"""One smoke test of the method contract over every method the harness can discover.

Methods are found the way the harness finds them (``benchmarks.registry.discover_methods``,
through the ``isnet_benchmarks.methods`` entry points), so a plugin -- an ISNet variant, a
third-party baseline -- is covered as soon as it is installed. Each is built at smoke scale
on a fixed tiny batch (4 grey 32x32 images, 3 classes, masks) and must:

* train for three steps with its own optimiser (and ``grad_clip`` when it declares one),
  with a finite loss that falls: the loss after the three steps is measured on the same
  batch and must be below the first one by at least 0.01 % (monotonic descent is not
  required; each step re-seeds the RNG, so dropout and other noise are identical at every
  measurement and the comparison is deterministic);
* when it does not need masks, train on a batch without them;
* predict logits ``[B, K]``; explain ``[B, C or 1, H, W]`` at the input size, finite;
* export a plain ``nn.Module`` (not the Method) that gives the same logits as ``predict``.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest
import torch
from torch import nn

from benchmarks.api import Batch, Method, MethodSpec, ModelContext
from benchmarks.architectures import build_backbone
from benchmarks.registry import discover_methods

B, C, SIZE, K = 4, 1, 32, 3
CLASS_NAMES = ("normal", "covid", "pneumonia")
TAGS = frozenset({"has_normal_class"})  # the fake experiment: masks and a normal class
SEED = 0


def in_tree_specs() -> dict[str, MethodSpec]:
    """Specs of the Method subclasses defined in the modules of ``baselines/``."""
    import baselines

    found: dict[str, MethodSpec] = {}
    for info in pkgutil.iter_modules(baselines.__path__):
        module = importlib.import_module(f"baselines.{info.name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, Method) and "spec" in vars(obj) and obj.spec.cls is obj:
                found[obj.spec.name] = obj.spec
    return found


SPECS = discover_methods()


def smoke_context() -> ModelContext:
    return ModelContext(
        num_classes=K,
        in_channels=C,
        image_size=SIZE,
        scale="smoke",
        backbone="tiny_cnn",
        build_backbone=lambda k: build_backbone("tiny_cnn", k, C),
        class_names=CLASS_NAMES,
    )


def tiny_batch(with_masks: bool = True) -> Batch:
    g = torch.Generator().manual_seed(SEED)
    images = torch.rand(B, C, SIZE, SIZE, generator=g)
    labels = torch.tensor([0, 1, 2, 1])
    masks = torch.zeros(B, 1, SIZE, SIZE)
    for i in range(B):  # a different square foreground per image
        top, left = 4 + 2 * i, 10 - 2 * i
        masks[i, :, top : top + 16, left : left + 16] = 1.0
    return Batch(images, labels, masks if with_masks else None, torch.zeros(B, dtype=torch.long))


def _train_step(method: Method, optimizer: torch.optim.Optimizer, batch: Batch) -> float:
    torch.manual_seed(SEED + 1)
    out = method.training_step(batch)
    loss = out["loss"]
    assert loss.ndim == 0, f"loss must be a scalar, got shape {tuple(loss.shape)}"
    assert torch.isfinite(loss), f"non-finite loss {float(loss)}"
    assert out["logits"].shape == (B, K)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_clip = method.hparams.get("grad_clip")
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(method.parameters(), float(grad_clip))
    optimizer.step()
    return float(loss.detach())


def test_every_in_tree_method_is_discoverable() -> None:
    missing = sorted(set(in_tree_specs()) - set(SPECS))
    assert not missing, (
        f"methods defined in baselines/ but not discovered: {missing}; declare their modules in "
        "pyproject.toml under [project.entry-points.'isnet_benchmarks.methods'] and reinstall (pip install -e .)"
    )


@pytest.mark.parametrize("name", sorted(SPECS))
def test_method_contract(name: str) -> None:
    spec = SPECS[name]
    assert set(spec.search_space) <= set(spec.defaults), "every searched hyper-parameter needs a default"
    reason = spec.reason_not_applicable(TAGS)
    if reason:
        pytest.skip(f"{name} does not apply to the test experiment: {reason}")

    torch.manual_seed(SEED)
    method = spec.cls(smoke_context())
    assert isinstance(method, Method)
    optimizer = method.configure_optimizer()
    batch = tiny_batch()

    method.train()
    losses = [_train_step(method, optimizer, batch) for _ in range(3)]
    torch.manual_seed(SEED + 1)
    final = float(method.training_step(batch)["loss"].detach())
    assert torch.isfinite(torch.tensor(final))
    assert losses[0] - final > 1e-4 * abs(losses[0]), f"loss did not fall: steps {losses}, then {final}"

    if not spec.needs_masks:
        out = method.training_step(tiny_batch(with_masks=False))
        assert torch.isfinite(out["loss"])

    method.eval()
    images, labels = batch.images, batch.labels
    with torch.no_grad():
        logits = method.predict(images)
    assert logits.shape == (B, K)
    assert torch.isfinite(logits).all()

    heat = method.explain(images, labels)
    assert heat.ndim == 4 and heat.shape[0] == B and heat.shape[1] in (1, C), f"explain shape {tuple(heat.shape)}"
    assert heat.shape[-2:] == (SIZE, SIZE), f"explain must be at the input size, got {tuple(heat.shape)}"
    assert torch.isfinite(heat).all()

    exported = method.export()
    assert isinstance(exported, nn.Module) and not isinstance(exported, Method)
    with torch.no_grad():
        assert torch.allclose(exported(images), logits, atol=1e-5, rtol=1e-4)
