"""One contract test over every experiment the harness can discover.

Experiments are found the way the harness finds them (``benchmarks.registry.discover_experiments``,
through the ``isnet_benchmarks.experiments`` entry points), so the extended ones and a plugin's
are covered as soon as they are installed. The real-data experiments read a data root holding a
tiny copy of every real collection (``tests/data_real/trees.py``); an experiment whose data
cannot be had even so is skipped with its own reason. Each must:

* declare its split roles: the in-distribution split and the shift splits among its test
  splits, no split both;
* build at the smoke profile: a bundle with exactly those test splits, two classes or more,
  and samples of the data contract (float32 images ``(C, H, W)`` in [0, 1] at the profile's
  size, labels among the classes);
* give binary ``(1, H, W)`` foreground masks on the training and validation splits, which a
  method that needs masks reads, whenever it says it has masks (its ``has_masks`` tag).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from data_real.trees import make_covid_root, make_tb_root

from benchmarks.api import ExperimentSpec
from benchmarks.data.real.records import DATA_ENV
from benchmarks.registry import discover_experiments
from benchmarks.run.batching import iterate_batches

EXPERIMENTS = discover_experiments()
BATCH = 8


@pytest.fixture(scope="module")
def real_collections(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with a tiny copy of every real collection the suite reads."""
    root = tmp_path_factory.mktemp("real_collections")
    return make_tb_root(make_covid_root(root))


def check_split_roles(spec: ExperimentSpec) -> None:
    assert spec.id_split in spec.test_splits, f"id_split {spec.id_split!r} is not a test split"
    assert set(spec.shift_splits) <= set(spec.test_splits), f"shift splits {spec.shift_splits} not all test splits"
    assert spec.id_split not in spec.shift_splits, "the in-distribution split cannot be a shift split too"
    assert len(set(spec.test_splits)) == len(spec.test_splits), f"a test split named twice: {spec.test_splits}"


def check_samples(split, channels: int, size: int, classes: int, masks: bool) -> None:
    batch = next(iterate_batches(split, BATCH, shuffle_seed=None))
    images = batch.images
    assert images.dtype == torch.float32 and images.shape[1:] == (channels, size, size), tuple(images.shape)
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    assert batch.labels.dtype == torch.int64 and bool(((batch.labels >= 0) & (batch.labels < classes)).all())
    assert batch.groups.shape == batch.labels.shape
    if masks:
        assert batch.masks is not None, "a split a method trains or selects on has no masks"
        assert batch.masks.shape == (len(images), 1, size, size), tuple(batch.masks.shape)
        assert bool(((batch.masks == 0) | (batch.masks == 1)).all()), "masks must be 0/1"


@pytest.mark.filterwarnings("ignore:tb_real. dropped .* without a lung mask")  # the tiny TBX11K copy has none
@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_experiment_contract(name: str, real_collections: Path, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    spec = EXPERIMENTS[name]
    check_split_roles(spec)
    monkeypatch.setenv(DATA_ENV, str(real_collections))
    cache = tmp_path / "cache"
    missing = spec.missing_data(cache)
    if missing:
        pytest.skip(f"{name}: {missing}")
    profile = spec.profile("smoke")
    bundle = spec.build(profile, 0, cache)

    assert set(bundle.tests) == set(spec.test_splits), f"built test splits {sorted(bundle.tests)}"
    assert len(bundle.class_names) >= 2 and bundle.image_size == profile.image_size
    says_masks = "has_masks" in spec.tags
    assert bundle.has_masks == says_masks, f"has_masks tag {says_masks}, but the training split has masks: " \
                                           f"{bundle.has_masks}"
    for split_name, split in (("train", bundle.train), ("val", bundle.val), *bundle.tests.items()):
        assert len(split) > 0, f"{split_name} is empty"
        check_samples(split, bundle.in_channels, bundle.image_size, bundle.num_classes,
                      masks=says_masks and split_name in ("train", "val"))
