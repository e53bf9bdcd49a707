"""Shortcut audit: where a synthetic dataset's shortcut lies, measured on held-out images.

For a built :class:`~benchmarks.api.DataBundle` with foreground masks it measures:

1. **The foreground carries no bias group.** Two classifiers that see only the foreground, a
   logistic regression on statistics of the masked region (:func:`mask_statistics`) and a
   small CNN on images whose background is zeroed, are given the label too and predict the
   bias group; a logistic regression on the label alone is the reference. The group may
   follow the label by design; the foreground must add nothing beyond it. The same CNN on
   the background only (foreground zeroed) predicts the group: the check has power.
2. **The background carries the shortcut, in distribution only.** A CNN on background-only
   images predicts the label well above chance on the in-distribution test split and near
   chance on the shifted ones (external hospitals; unbiased).
3. **The class signal transfers.** A CNN on foreground-only images is no less accurate on the
   shifted splits than in distribution: the 95 % bootstrap interval of the difference (in
   distribution minus shifted) reaches 0. The check is one-sided because a group cue in the
   foreground can only make the shifted accuracy lower; a shifted split that happens to come
   out easier is no leak.

The group: for the synthetic X-rays the hospital (``split.groups``), fitted on ``train`` and
tested on the in-distribution split; for the marked-object sets (biased MNIST) the class of
the marker drawn (``marker_class``), on the ``deceiving`` split, where the marker is drawn at
random among the other classes so that the label does not fix it (two-fold cross-fitting:
each half is predicted by models fitted on the other half; images without a marker left out).
Label classifiers are fitted on ``train``. Every CNN trains for a fixed number of steps
(:class:`CNNConfig`), so the audit's cost does not grow with the profile's sizes.

``python -m benchmarks.audit --write reports/data/shortcut_audit.md`` runs it on every
synthetic experiment (:mod:`benchmarks.audit.page` writes the page).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmarks.api import DataBundle, ExperimentSpec
from benchmarks.data.bias import single_thread
from benchmarks.stats.intervals import (
    Interval,
    bootstrap_ci,
    bootstrap_distribution,
    stratified_bootstrap_indices,
)

#: the synthetic experiments whose shortcut the audit checks
AUDITED = ("synthetic_covid", "synthetic_tb", "biased_mnist", "biased_fashion_mnist")
RESAMPLES = 2000
#: what "no more than the label" allows: the foreground may add at most this much group accuracy
FOREGROUND_TOLERANCE = 0.05
#: "well above chance": background-only label accuracy in distribution, and foreground-only
#: label accuracy, exceed the majority-class share by at least this much
ABOVE_CHANCE = 0.20
#: "near chance": background-only label accuracy on a shifted split exceeds its majority-class
#: share by at most this much
NEAR_CHANCE = 0.05
STAT_NAMES = ("area", "mean", "std", "q05", "q25", "q50", "q75", "q95", "high_freq", "edge")


# --------------------------------------------------------------------------- arrays
@dataclass(frozen=True)
class Arrays:
    """Images float32 ``[N, C, H, W]`` in [0, 1], masks bool ``[N, 1, H, W]``, labels and groups ``[N]``."""

    images: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    groups: np.ndarray

    def take(self, idx: np.ndarray) -> Arrays:
        return Arrays(self.images[idx], self.masks[idx], self.labels[idx], self.groups[idx])

    def foreground(self) -> np.ndarray:
        """Images with the background zeroed."""
        return self.images * self.masks

    def background(self) -> np.ndarray:
        """Images with the foreground zeroed."""
        return self.images * ~self.masks


def arrays_of(split, group: str = "groups") -> Arrays:
    """A split's tensors as :class:`Arrays`; ``group`` names the attribute holding the group."""
    if split.masks is None:
        raise ValueError("the shortcut audit needs foreground masks")
    images = split.images.numpy()
    images = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)
    return Arrays(images, split.masks.numpy() > 0, split.labels.numpy().astype(np.int64),
                  getattr(split, group).numpy().astype(np.int64))


# --------------------------------------------------------------------------- statistics
def mask_statistics(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per image ``[N, 10]`` (:data:`STAT_NAMES`), from pixels inside the mask only: its area
    (share of the image), mean, standard deviation and 5/25/50/75/95 % quantiles of the
    intensity; high-frequency energy (root mean squared 4-neighbour Laplacian) and edge energy
    (root mean squared gradient) over pixels whose neighbours are all inside the mask, so no
    background pixel enters. Channels are averaged first."""
    x = images.mean(1).astype(np.float64)
    m = masks[:, 0]
    n = len(x)
    count = m.reshape(n, -1).sum(1)
    safe = np.maximum(count, 1)
    mean = (x * m).sum((1, 2)) / safe
    std = np.sqrt(np.maximum((x ** 2 * m).sum((1, 2)) / safe - mean ** 2, 0))
    ranked = np.sort(np.where(m, x, np.inf).reshape(n, -1), axis=1)  # the mask's pixels first
    ranked[np.isinf(ranked)] = 0.0
    last = np.maximum(count - 1, 0)
    quantiles = []
    for q in (0.05, 0.25, 0.5, 0.75, 0.95):  # linear interpolation, as numpy's default
        pos = q * last
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, last)
        value = ranked[np.arange(n), lo] * (1 - (pos - lo)) + ranked[np.arange(n), hi] * (pos - lo)
        quantiles.append(np.where(count > 0, value, 0.0))
    core = m[:, 1:-1, 1:-1] & m[:, :-2, 1:-1] & m[:, 2:, 1:-1] & m[:, 1:-1, :-2] & m[:, 1:-1, 2:]
    c = x[:, 1:-1, 1:-1]
    lap = 4 * c - x[:, :-2, 1:-1] - x[:, 2:, 1:-1] - x[:, 1:-1, :-2] - x[:, 1:-1, 2:]
    grad = (x[:, 2:, 1:-1] - x[:, :-2, 1:-1]) ** 2 + (x[:, 1:-1, 2:] - x[:, 1:-1, :-2]) ** 2
    inner = np.maximum(core.sum((1, 2)), 1)
    high = np.sqrt((lap ** 2 * core).sum((1, 2)) / inner)
    edge = np.sqrt((grad * core).sum((1, 2)) / inner)
    return np.column_stack([count / m[0].size, mean, std, *quantiles, high, edge])


def _one_hot(labels: np.ndarray, k: int) -> np.ndarray:
    return np.eye(k)[labels]


def _label_features(stats: np.ndarray | None, labels: np.ndarray, k: int, scale: tuple) -> np.ndarray:
    """The label one-hot, and (with ``stats``) the standardised statistics per label (interactions),
    so the model can use the statistics differently within each class."""
    onehot = _one_hot(labels, k)
    if stats is None:
        return onehot
    z = (stats - scale[0]) / scale[1]
    return np.column_stack([onehot, (z[:, :, None] * onehot[:, None, :]).reshape(len(z), -1)])


def logistic_group_accuracy(fit: Arrays, test: Arrays, num_classes: int, use_stats: bool) -> float:
    """Accuracy on ``test`` of a logistic regression predicting the group from the label
    (``use_stats``: and the foreground statistics) fitted on ``fit``."""
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(fit.groups)) < 2:
        return float(np.mean(test.groups == fit.groups[0]))
    s_fit = mask_statistics(fit.images, fit.masks) if use_stats else None
    s_test = mask_statistics(test.images, test.masks) if use_stats else None
    scale = (s_fit.mean(0), s_fit.std(0) + 1e-6) if use_stats else ()
    model = LogisticRegression(C=1.0, max_iter=5000)
    model.fit(_label_features(s_fit, fit.labels, num_classes, scale), fit.groups)
    pred = model.predict(_label_features(s_test, test.labels, num_classes, scale))
    return float(np.mean(pred == test.groups))


# --------------------------------------------------------------------------- small CNN
class AuditCNN(nn.Module):
    """Three 3x3 convolutions (16, 32, 32 channels, two 2x2 max-pools), global mean and max
    pooling, then one linear layer that also sees ``side`` features (the label's one-hot)."""

    def __init__(self, in_channels: int, num_outputs: int, side: int = 0) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        )
        self.head = nn.Linear(64 + side, num_outputs)

    def forward(self, x: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        return self.head(torch.cat([f.mean((2, 3)), f.amax((2, 3)), side], 1))


@dataclass(frozen=True)
class CNNConfig:
    """Training of the audit CNN: Adam, cross-entropy, fixed seed, one thread; a fixed number
    of optimiser ``steps`` (whole epochs, at least that many steps), so the cost does not grow
    with the split's size and small splits still get enough updates."""

    steps: int = 160
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0


def cnn_predict(x_fit: np.ndarray, y_fit: np.ndarray, x_test: np.ndarray, num_outputs: int,
                side_fit: np.ndarray | None = None, side_test: np.ndarray | None = None,
                config: CNNConfig = CNNConfig()) -> np.ndarray:
    """Train :class:`AuditCNN` on ``(x_fit, side_fit) -> y_fit`` and return its predictions on ``x_test``."""
    with single_thread():
        torch.manual_seed(config.seed)
        width = 0 if side_fit is None else side_fit.shape[1]
        model = AuditCNN(x_fit.shape[1], num_outputs, width)
        opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        x, y = torch.from_numpy(x_fit), torch.from_numpy(y_fit)
        s = torch.zeros(len(y), 0) if side_fit is None else torch.from_numpy(side_fit).float()
        gen = torch.Generator().manual_seed(config.seed)
        model.train()
        epochs = math.ceil(config.steps / math.ceil(len(y) / config.batch_size))
        for _ in range(epochs):
            for idx in torch.randperm(len(y), generator=gen).split(config.batch_size):
                opt.zero_grad()
                nn.functional.cross_entropy(model(x[idx], s[idx]), y[idx]).backward()
                opt.step()
        model.eval()
        xt = torch.from_numpy(x_test)
        st = torch.zeros(len(xt), 0) if side_test is None else torch.from_numpy(side_test).float()
        with torch.no_grad():
            return torch.cat([model(xt[i:i + 512], st[i:i + 512]).argmax(1) for i in range(0, len(xt), 512)]).numpy()


def cnn_group_accuracy(fit: Arrays, test: Arrays, num_classes: int, view: str, config: CNNConfig) -> float:
    """Group accuracy on ``test`` of the CNN given the label and the ``view`` (``"foreground"``
    or ``"background"``) of each image."""
    groups = np.unique(np.concatenate([fit.groups, test.groups]))
    index = {g: i for i, g in enumerate(groups)}
    y = np.array([index[g] for g in fit.groups])
    pred = cnn_predict(getattr(fit, view)(), y, getattr(test, view)(), len(groups),
                       _one_hot(fit.labels, num_classes), _one_hot(test.labels, num_classes), config)
    return float(np.mean(groups[pred] == test.groups))


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class GroupAudit:
    """Held-out group accuracy of classifiers given the label and one view of the image."""

    group: str
    where: str
    n_test: int
    majority: float  # share of the most common group among the test images
    label_alone: float
    foreground_stats: float
    foreground_cnn: float
    background_cnn: float  # power: the group is readable from the background

    @property
    def foreground_gain(self) -> float:
        """What the better foreground classifier adds to the label alone."""
        return max(self.foreground_stats, self.foreground_cnn) - self.label_alone


@dataclass(frozen=True)
class ShortcutAudit:
    """The audit of one experiment (see the module docstring)."""

    experiment: str
    checksum: str  # the bundle's data checksum
    id_split: str
    shift_splits: tuple[str, ...]
    group: GroupAudit
    chance: dict[str, float]  # majority-class share per test split
    background_label: dict[str, Interval]
    foreground_label: dict[str, Interval]
    foreground_gap: dict[str, Interval]  # in-distribution minus shifted accuracy, per shifted split


def _accuracy(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Accuracy over the last axis (one value per bootstrap resample when given ``[B, N]``)."""
    return np.mean(y == p, axis=-1)


def _gap(y_a: np.ndarray, p_a: np.ndarray, y_b: np.ndarray, p_b: np.ndarray, seed: int) -> Interval:
    """Accuracy on A minus accuracy on B, with a 95 % percentile interval from independent
    bootstrap resamples of the two splits (each stratified by class)."""
    rng = np.random.default_rng(seed)
    dist = [bootstrap_distribution(_accuracy, (y, p), stratified_bootstrap_indices(y, RESAMPLES, rng),
                                   vectorized=True) for y, p in ((y_a, p_a), (y_b, p_b))]
    diff = dist[0] - dist[1]
    low, high = np.quantile(diff, [0.025, 0.975])
    method = (f"95% bootstrap percentile interval of the difference, independent stratified resamples "
              f"({RESAMPLES}) of {len(y_a)} and {len(y_b)} test images, seed {seed}")
    return Interval(float(_accuracy(y_a, p_a) - _accuracy(y_b, p_b)), float(low), float(high), 0.95, method,
                    len(y_a) + len(y_b), float(np.std(diff, ddof=1)))


# --------------------------------------------------------------------------- the audit
def group_folds(bundle: DataBundle, id_split: str) -> tuple[str, str, list[tuple[Arrays, Arrays]]]:
    """``(group name, where, [(fit, test), ...])`` of the group task (module docstring)."""
    deceiving = bundle.tests.get("deceiving")
    if deceiving is not None and hasattr(deceiving, "marker_class"):
        a = arrays_of(deceiving, "marker_class")
        a = a.take(np.flatnonzero(a.groups >= 0))
        order = np.random.default_rng(0).permutation(len(a.labels))
        order = order[np.argsort(a.labels[order], kind="stable")]  # deal each class out in turn
        halves = [np.sort(order[0::2]), np.sort(order[1::2])]
        folds = [(a.take(halves[0]), a.take(halves[1])), (a.take(halves[1]), a.take(halves[0]))]
        return "marker class", "deceiving split, 2-fold cross-fitting", folds
    fit, test = arrays_of(bundle.train), arrays_of(bundle.tests[id_split])
    return "hospital", f"train -> {id_split}", [(fit, test)]


def audit_group(bundle: DataBundle, id_split: str, config: CNNConfig) -> GroupAudit:
    """Part 1 of the audit (module docstring)."""
    name, where, folds = group_folds(bundle, id_split)
    k = bundle.num_classes
    parts = {"label_alone": [], "foreground_stats": [], "foreground_cnn": [], "background_cnn": []}
    sizes = []
    for fit, test in folds:
        sizes.append(len(test.labels))
        parts["label_alone"].append(logistic_group_accuracy(fit, test, k, use_stats=False))
        parts["foreground_stats"].append(logistic_group_accuracy(fit, test, k, use_stats=True))
        parts["foreground_cnn"].append(cnn_group_accuracy(fit, test, k, "foreground", config))
        parts["background_cnn"].append(cnn_group_accuracy(fit, test, k, "background", config))
    weights = np.asarray(sizes, dtype=float) / sum(sizes)
    tested = np.concatenate([test.groups for _, test in folds])
    majority = float(np.bincount(tested - tested.min()).max() / len(tested))
    return GroupAudit(name, where, int(sum(sizes)), majority,
                      **{key: float(np.dot(weights, values)) for key, values in parts.items()})


def audit_bundle(bundle: DataBundle, experiment: str, id_split: str, shift_splits: tuple[str, ...],
                 config: CNNConfig = CNNConfig()) -> ShortcutAudit:
    """The whole audit of one built bundle (module docstring)."""
    fit = arrays_of(bundle.train)
    group = audit_group(bundle, id_split, config)
    splits = (id_split, *shift_splits)
    tests = {name: arrays_of(bundle.tests[name]) for name in splits}
    k = bundle.num_classes
    preds = {}
    for view in ("background", "foreground"):
        x_test = np.concatenate([getattr(tests[name], view)() for name in splits])
        pred = cnn_predict(getattr(fit, view)(), fit.labels, x_test, k, config=config)
        bounds = np.cumsum([0] + [len(tests[name].labels) for name in splits])
        preds[view] = {name: pred[bounds[i]:bounds[i + 1]] for i, name in enumerate(splits)}
    intervals = {view: {name: bootstrap_ci(_accuracy, tests[name].labels, preds[view][name],
                                           n_resamples=RESAMPLES, seed=0, vectorized=True) for name in splits}
                 for view in preds}
    y_id, p_id = tests[id_split].labels, preds["foreground"][id_split]
    gaps = {name: _gap(y_id, p_id, tests[name].labels, preds["foreground"][name], seed=i + 1)
            for i, name in enumerate(shift_splits)}
    chance = {name: float(np.bincount(tests[name].labels).max() / len(tests[name].labels)) for name in splits}
    return ShortcutAudit(experiment, bundle.checksum, id_split, tuple(shift_splits), group, chance,
                         intervals["background"], intervals["foreground"], gaps)


def verdicts(a: ShortcutAudit) -> dict[str, tuple[bool, str]]:
    """Each check of the audit: ``{name: (passed, the numbers behind it)}``."""
    g = a.group
    out = {
        "foreground adds nothing to the label": (
            g.foreground_gain <= FOREGROUND_TOLERANCE,
            f"{g.group} accuracy from label + foreground: statistics {g.foreground_stats:.3f}, CNN "
            f"{g.foreground_cnn:.3f}; label alone {g.label_alone:.3f} (tolerance +{FOREGROUND_TOLERANCE:.2f})"),
        "background reveals the group (the check has power)": (
            g.background_cnn - g.label_alone >= 0.5 * (1 - g.label_alone),
            f"{g.group} accuracy from label + background {g.background_cnn:.3f}; label alone "
            f"{g.label_alone:.3f} (must remove half of its errors)"),
        "background predicts the label in distribution": (
            a.background_label[a.id_split].estimate >= a.chance[a.id_split] + ABOVE_CHANCE,
            f"{a.id_split} {a.background_label[a.id_split]}, chance {a.chance[a.id_split]:.3f} "
            f"(+{ABOVE_CHANCE:.2f} needed)"),
    }
    for name in a.shift_splits:
        out[f"background near chance on {name}"] = (
            a.background_label[name].estimate <= a.chance[name] + NEAR_CHANCE,
            f"{name} {a.background_label[name]}, chance {a.chance[name]:.3f} (at most +{NEAR_CHANCE:.2f})")
    fg = a.foreground_label[a.id_split]
    out["foreground predicts the label"] = (
        fg.estimate >= a.chance[a.id_split] + ABOVE_CHANCE,
        f"{a.id_split} {fg}, chance {a.chance[a.id_split]:.3f} (+{ABOVE_CHANCE:.2f} needed)")
    for name, gap in a.foreground_gap.items():  # a hospital / marker leak can only lower the shifted accuracy
        out[f"foreground label accuracy does not drop on {name}"] = (
            gap.low <= 0,
            f"{a.id_split} {fg} vs {name} {a.foreground_label[name]}: the interval of the difference {gap} "
            "must reach 0")
    return out


def audit_experiment(spec: ExperimentSpec, scale: str, cache_dir: Path, **kwargs) -> ShortcutAudit:
    """Build ``spec``'s data at profile ``scale`` (as a run does) and audit it."""
    bundle = spec.build(spec.profile(scale), 0, Path(cache_dir))
    return audit_bundle(bundle, spec.name, spec.id_split, tuple(spec.shift_splits), **kwargs)
