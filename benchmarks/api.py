"""The plugin API: the method and experiment contracts and their registration decorators.

This module sits at the bottom of the harness and imports nothing else of it, so that a
third-party package (or ``baselines/``) can depend on it alone. Decorators only attach a
spec to the class or function they decorate; discovery (``benchmarks.registry``) finds the
decorated objects through the entry-point groups below, so there is no global registry
to mutate.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

METHOD_GROUP = "isnet_benchmarks.methods"
EXPERIMENT_GROUP = "isnet_benchmarks.experiments"
SCALES = ("smoke", "cpu", "paper")
#: what a method is in the comparisons of the report (recorded in every run's config.json):
#: the method under study, a variant of it (Faster ISNet, ablations), the plain classifier
#: every claim is measured against, or one of the competing methods
ROLES = ("reference", "reference_variant", "plain_baseline", "comparison")
#: the optimisers :meth:`Method.build_optimizer` makes (hyper-parameter ``optimizer``)
OPTIMIZERS = ("adam", "sgd")


# --------------------------------------------------------------------------- data contract
@dataclass(frozen=True)
class Batch:
    """A training or evaluation batch.

    images: float32 ``[B, C, H, W]`` in ``[0, 1]``; labels: int64 ``[B]``;
    masks: float32 ``[B, 1, H, W]`` of 0/1 foreground (``None`` when the data has none);
    groups: int64 ``[B]`` source / bias-group tag.
    """

    images: Tensor
    labels: Tensor
    masks: Tensor | None
    groups: Tensor

    def to(self, device: torch.device | str) -> Batch:
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Batch(move(self.images), move(self.labels), move(self.masks), move(self.groups))


class TensorSplit(Dataset):
    """An in-memory split: images stored as uint8 (or float) tensors, batched without copies.

    ``__getitem__`` yields the sample dict of the data contract (``image``, ``label``,
    ``group`` and, when masks exist, ``mask``); ``batch(indices)`` builds a :class:`Batch`
    directly, which is what the harness uses for speed.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        masks: Tensor | None = None,
        groups: Tensor | None = None,
        group_names: Sequence[str] = (),
    ) -> None:
        if images.ndim != 4:
            raise ValueError(f"images must be [N, C, H, W], got shape {tuple(images.shape)}")
        n = images.shape[0]
        if labels.shape != (n,):
            raise ValueError(f"labels must be [N]={n}, got {tuple(labels.shape)}")
        if masks is not None and masks.shape != (n, 1, *images.shape[2:]):
            raise ValueError(f"masks must be [N, 1, H, W], got {tuple(masks.shape)}")
        self.images = images
        self.labels = labels.long()
        self.masks = masks
        self.groups = torch.zeros(n, dtype=torch.long) if groups is None else groups.long()
        self.group_names = tuple(group_names)
        #: per image, the class its background points to (a class marker, or the training-majority
        #: class of its hospital; -1: none), set by data builders that know; used by the
        #: counterfactual tests (:mod:`benchmarks.data.counterfactuals`)
        self.background_class: Tensor | None = None

    def __len__(self) -> int:
        return self.images.shape[0]

    def _image(self, idx: Tensor | int) -> Tensor:
        img = self.images[idx]
        return img.float().div_(255.0) if img.dtype == torch.uint8 else img.float()

    def __getitem__(self, idx: int) -> dict[str, Any]:
        sample = {"image": self._image(idx), "label": int(self.labels[idx]), "group": int(self.groups[idx])}
        if self.masks is not None:
            sample["mask"] = self.masks[idx].float()
        return sample

    def batch(self, indices: Tensor) -> Batch:
        masks = None if self.masks is None else self.masks[indices].float()
        return Batch(self._image(indices), self.labels[indices], masks, self.groups[indices])


@dataclass(frozen=True)
class Counterfactual:
    """A test split with every image's background changed and its foreground kept, aligned
    with the split (image ``i`` here is image ``i`` there).

    ``kind``: ``rerendered`` (the data's generator drew the same object again with another
    background: the same patient in another hospital's style, the same digit with another
    marker: exact), or a composite by the mask (:mod:`benchmarks.data.counterfactuals`);
    ``name``: unique within the split (``rerendered:hospital_B``, ``deceiving``, ``mixed_random``, ...);
    ``images``: ``[N, C, H, W]`` (uint8 or float in [0, 1]); ``background_class``: ``[N]``
    the class the new background points to (-1: none); ``donor``: ``[N]`` index in the split
    of the image whose background was used (-1: none); ``source``: the group whose style was
    used (-1: none).
    """

    kind: str
    name: str
    images: Tensor
    background_class: Tensor
    donor: Tensor
    source: int = -1


@dataclass
class DataBundle:
    """Everything an experiment's data recipe produces for one (profile, seed).

    ``counterfactuals``: exact counterfactual renderings of test splits, where the data's
    generator can make them (the harness adds composites by the mask for every split with
    masks)."""

    train: Dataset
    val: Dataset
    tests: dict[str, Dataset]
    class_names: tuple[str, ...]
    in_channels: int
    image_size: int
    checksum: str
    notes: dict[str, Any] = field(default_factory=dict)
    counterfactuals: dict[str, list[Counterfactual]] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def has_masks(self) -> bool:
        sample = self.train[0]
        return "mask" in sample


# --------------------------------------------------------------------------- experiments
@dataclass(frozen=True)
class ExperimentProfile:
    """What one profile (smoke / cpu / paper) of an experiment uses.

    Every run trains ``epochs`` epochs and keeps its lowest-validation-loss epoch. ``min_epochs``
    opts into early stopping: the run stops as soon as it has trained ``min_epochs`` epochs and its
    validation loss is no longer improving (:func:`benchmarks.run.convergence.still_improving`); no
    built-in profile uses it, because float noise moves where such a rule stops (the report's
    "Stopping rules under float noise").
    """

    backbone: str
    image_size: int
    epochs: int
    batch_size: int
    lr: float = 1e-3
    data: Mapping[str, Any] = field(default_factory=dict)
    min_epochs: int | None = None


@dataclass(frozen=True)
class ExperimentSpec:
    """A registered experiment: a data recipe, its test splits and per-profile settings.

    ``id_split`` names the in-distribution test split (used for model selection only via
    the validation split, and as the reference of the bias gaps); ``shift_splits`` name the
    splits that measure the shortcut (deceiving, external, ...). A non-empty ``extended``
    says why the experiment is left out of the default grid (``run --all``) and runs only
    with ``run --all --extended``.
    """

    name: str
    build: Callable[[ExperimentProfile, int, Path], DataBundle]
    test_splits: tuple[str, ...]
    id_split: str
    shift_splits: tuple[str, ...]
    profiles: Mapping[str, ExperimentProfile]
    summary: str = ""
    tags: frozenset[str] = frozenset()
    unavailable: Callable[[Path], str | None] | None = None
    extended: str = ""

    def missing_data(self, cache_dir: Path) -> str | None:
        """Why the data cannot be built here (``None`` when they can); ``run --all`` skips
        such experiments with this reason instead of failing every run."""
        return None if self.unavailable is None else self.unavailable(cache_dir)

    def profile(self, scale: str) -> ExperimentProfile:
        if scale not in self.profiles:
            raise KeyError(f"experiment {self.name!r} has no profile {scale!r}; it has {sorted(self.profiles)}")
        return self.profiles[scale]


def register_experiment(
    name: str,
    *,
    test_splits: Sequence[str],
    id_split: str,
    shift_splits: Sequence[str],
    profiles: Mapping[str, ExperimentProfile],
    summary: str = "",
    tags: Sequence[str] = (),
    unavailable: Callable[[Path], str | None] | None = None,
    extended: str = "",
) -> Callable[[Callable[..., DataBundle]], Callable[..., DataBundle]]:
    """Mark ``build(profile, seed, cache_dir) -> DataBundle`` as an experiment.

    ``unavailable(cache_dir)`` optionally tells, cheaply, why the data cannot be had on this
    machine (``None`` when they can). ``extended``: why the experiment is outside the default
    grid (empty: it is in it).
    """
    if id_split not in test_splits or not set(shift_splits) <= set(test_splits):
        raise ValueError(f"{name}: id_split and shift_splits must be among test_splits {list(test_splits)}")
    missing = set(SCALES) - set(profiles)
    if missing:
        raise ValueError(f"{name}: profiles missing for {sorted(missing)}")

    def decorate(build: Callable[..., DataBundle]) -> Callable[..., DataBundle]:
        build.__experiment_spec__ = ExperimentSpec(  # type: ignore[attr-defined]
            name=name,
            build=build,
            test_splits=tuple(test_splits),
            id_split=id_split,
            shift_splits=tuple(shift_splits),
            profiles=dict(profiles),
            summary=summary,
            tags=frozenset(tags),
            unavailable=unavailable,
            extended=extended,
        )
        return build

    return decorate


# --------------------------------------------------------------------------- methods
@dataclass(frozen=True)
class ModelContext:
    """What a method is built from: the task's shape and the profile's backbone factory.

    ``build_backbone(num_classes)`` returns a fresh classifier for the profile (small CNN
    at cpu scale, DenseNet121 at paper scale, ...); methods with their own architecture
    look at ``scale`` instead.
    """

    num_classes: int
    in_channels: int
    image_size: int
    scale: str
    backbone: str
    build_backbone: Callable[[int], nn.Module]
    class_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class MethodSpec:
    """A registered method's name, mask need, hyper-parameter defaults and search space.

    ``search_space`` maps a hyper-parameter to a list of choices or to
    ``("loguniform", low, high)`` / ``("uniform", low, high)``.
    ``applies_to(tags)`` returns ``None`` when the method applies to an experiment with
    those tags, else the reason it does not. ``role`` is one of :data:`ROLES` (what the
    report compares the method as); a non-empty ``extended`` says why the method is left out
    of the default grid (``run --all``) and runs only with ``run --all --extended``.
    """

    name: str
    cls: type
    needs_masks: bool
    defaults: Mapping[str, Any]
    search_space: Mapping[str, Any]
    summary: str = ""
    applies_to: Callable[[frozenset[str]], str | None] | None = None
    role: str = "comparison"
    extended: str = ""

    def reason_not_applicable(self, tags: frozenset[str]) -> str | None:
        return None if self.applies_to is None else self.applies_to(tags)


def register_method(
    name: str,
    *,
    needs_masks: bool,
    defaults: Mapping[str, Any] | None = None,
    search_space: Mapping[str, Any] | None = None,
    summary: str = "",
    applies_to: Callable[[frozenset[str]], str | None] | None = None,
    role: str = "comparison",
    extended: str = "",
) -> Callable[[type[Method]], type[Method]]:
    """Mark a :class:`Method` subclass as a benchmark method (timm-style decorator).

    ``role``: one of :data:`ROLES` (a third-party method is a ``"comparison"`` unless it says
    otherwise); ``extended``: why the method is outside the default grid (empty: it is in it).
    """
    if role not in ROLES:
        raise ValueError(f"@register_method({name!r}): role must be one of {ROLES}, got {role!r}")

    def decorate(cls: type[Method]) -> type[Method]:
        if not (isinstance(cls, type) and issubclass(cls, Method)):
            raise TypeError(f"@register_method({name!r}) must decorate a Method subclass, got {cls!r}")
        doc = summary or ((cls.__doc__ or "").strip().splitlines() or [""])[0]
        cls.spec = MethodSpec(
            name=name,
            cls=cls,
            needs_masks=needs_masks,
            defaults=dict(defaults or {}),
            search_space=dict(search_space or {}),
            summary=doc,
            applies_to=applies_to,
            role=role,
            extended=extended,
        )
        return cls

    return decorate


class Method(nn.Module, ABC):
    """One benchmark method. Subclass, implement the abstract members, decorate with
    :func:`register_method`, and declare the module in the ``isnet_benchmarks.methods``
    entry-point group.

    The harness builds ``cls(ctx, **hparams)``, calls ``configure_optimizer()`` once, then
    per batch ``training_step(batch)`` and back-propagates its ``"loss"``. After every epoch
    it scores the validation split with ``validation_step`` (in eval mode) and keeps the
    weights of the epoch with the lowest mean validation ``"loss"`` among the epochs whose
    weights were ``selectable``; that checkpoint is the one evaluated on the test splits.
    Test-time predictions come from ``predict`` (logits), heatmaps from ``explain``, and the
    module deployed at test time from ``export``.
    """

    spec: ClassVar[MethodSpec]

    def __init__(self, ctx: ModelContext, **hparams: Any) -> None:
        super().__init__()
        unknown = set(hparams) - set(self.spec.defaults)
        if unknown:
            raise TypeError(f"{self.spec.name}: unknown hyper-parameters {sorted(unknown)}; "
                            f"known: {sorted(self.spec.defaults)}")
        self.ctx = ctx
        self.hparams: dict[str, Any] = {**self.spec.defaults, **hparams}

    @abstractmethod
    def training_step(self, batch: Batch) -> dict[str, Tensor]:
        """Return ``{"loss": scalar, "logits": [B, K], <other named loss terms>}``."""

    @abstractmethod
    def export(self) -> nn.Module:
        """The plain module used at test time (image in, logits out)."""

    def validation_step(self, batch: Batch) -> dict[str, Tensor]:
        """The training objective on a validation batch: ``{"loss": scalar, "logits": [B, K], ...}``.

        Model selection minimises its mean over the validation split (the ISNet authors'
        rule: the checkpoint with the lowest in-distribution validation loss, the loss being
        the one the model is trained on). Called in eval mode with gradients enabled (heatmap
        and input-gradient terms need them); nothing is back-propagated. The default calls
        :meth:`training_step`; a method whose training step changes its own state (step
        counters, warm-up phases) overrides this with the same objective and no side effects.
        """
        return self.training_step(batch)

    @property
    def selectable(self) -> bool:
        """Whether the current weights may become the run's selected model. ``False`` while a
        method is in a preliminary phase whose weights it discards (e.g. ISNet's C1/C2
        calibration, after which it retrains from scratch)."""
        return True

    def predict(self, images: Tensor) -> Tensor:
        """Logits ``[B, K]`` for images ``[B, C, H, W]``."""
        return self.export()(images)

    def explain(self, images: Tensor, target: Tensor) -> Tensor:
        """The method's own heatmap for class ``target`` ([B] int), shape ``[B, C|1, H, W]``.

        The default is input x gradient of the target logit; methods override it with the
        explanation they are built around (LRP, Grad-CAM, attention, ...).
        """
        return input_x_gradient(self.export(), images, target)

    def segment(self, images: Tensor) -> Tensor | None:
        """The method's own foreground prediction ``[B, 1, H, W]`` in ``[0, 1]``, for methods that
        make one (a segmenter before the classifier, a segmentation decoder); ``None`` for the
        others. The harness scores it against the true masks of every test split (Dice), so a
        failure can be traced to the segmentation."""
        return None

    def configure_optimizer(self) -> torch.optim.Optimizer:
        """The optimiser: :meth:`build_optimizer` of the hyper-parameter ``optimizer`` (``"adam"``
        when absent)."""
        return self.build_optimizer(str(self.hparams.get("optimizer", "adam")))

    def build_optimizer(self, kind: str) -> torch.optim.Optimizer:
        """``kind`` (one of :data:`OPTIMIZERS`) over all of this method's parameters, at the
        hyper-parameters ``lr`` (1e-3 when absent) and ``weight_decay`` (0) and, for SGD,
        ``momentum`` (0)."""
        h = self.hparams
        lr, weight_decay = float(h.get("lr", 1e-3)), float(h.get("weight_decay", 0.0))
        if kind == "adam":
            return torch.optim.Adam(self.parameters(), lr=lr, weight_decay=weight_decay)
        if kind == "sgd":
            return torch.optim.SGD(self.parameters(), lr=lr, momentum=float(h.get("momentum", 0.0)),
                                   weight_decay=weight_decay)
        raise ValueError(f"{self.spec.name}: optimizer must be one of {OPTIMIZERS}, got {kind!r}")

    def on_epoch_start(self, epoch: int) -> None:
        """Hook for per-epoch schedules (warm-ups, calibration); default does nothing."""

    def extra_state(self) -> dict[str, Any]:
        """Non-parameter state to checkpoint (e.g. tuned loss constants)."""
        return {}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`extra_state` returned."""


class CrossEntropyMethod(Method):
    """A method that trains one classifier with cross-entropy alone and deploys it as it is.

    Subclasses implement :meth:`build_model`; the network is ``self.model``.
    """

    def __init__(self, ctx: ModelContext, **hparams: Any) -> None:
        super().__init__(ctx, **hparams)
        self.model = self.build_model(ctx)

    @abstractmethod
    def build_model(self, ctx: ModelContext) -> nn.Module:
        """The classifier (images in, logits out); ``self.hparams`` are set already."""

    def training_step(self, batch: Batch) -> dict[str, Tensor]:
        logits = self.model(batch.images)
        loss = F.cross_entropy(logits, batch.labels)
        return {"loss": loss, "logits": logits, "cross_entropy": loss.detach()}

    def export(self) -> nn.Module:
        return self.model


# --------------------------------------------------------------------------- explanation helpers
def input_x_gradient(model: nn.Module, images: Tensor, target: Tensor) -> Tensor:
    """Input x gradient of the ``target`` logits ([B] class indices), detached."""
    x = images.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        score = model(x).gather(1, target.view(-1, 1)).sum()
        (grad,) = torch.autograd.grad(score, x)
    return (grad * x).detach()


def lrp_or_input_x_gradient(model: nn.Module, images: Tensor, target: Tensor) -> Tensor:
    """LRP-epsilon of ``target`` (``isnet.explain``) where the engine supports ``model``, else
    input x gradient; the fallback is announced with a warning naming why, never silent."""
    import isnet

    try:
        return isnet.explain(model, images, target).detach()
    except (NotImplementedError, TypeError, ValueError) as err:
        warnings.warn(f"isnet.explain cannot explain {type(model).__name__} ({err}); using input x gradient",
                      stacklevel=2)
    return input_x_gradient(model, images, target)
