"""Biased Fashion-MNIST: real garments with one class-correlated shape in the background.

Same recipe as biased MNIST (see ``datasets/biased_fashion_mnist.md``), on the real
Fashion-MNIST images: train and validation images come from the 60,000-image training
file, the test splits from the 10,000-image test file. Garments are shrunk to 22 px of the
32-px canvas (they fill their 28-px frame, digits do not) so that markers have room. The
images are read offline from the Debian package ``dataset-fashion-mnist``; torchvision
downloads them only when ``ISNET_BENCHMARKS_ALLOW_DOWNLOAD=1``.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.api import DataBundle, ExperimentProfile, register_experiment
from benchmarks.data.fashion import FASHION_CLASSES, FashionMNISTNotFound, find_fashion_mnist, load_fashion_mnist
from benchmarks.data.mnist import build_biased_28px, content_fingerprint

_COMMON = {"object_size": 22, "mask_threshold": 10, "fill_holes": True, "marker_size": 9, "marker_min_size": 5}

PROFILES = {
    "smoke": ExperimentProfile(
        backbone="tiny_cnn", image_size=32, epochs=1, batch_size=64, lr=1e-3,
        data={**_COMMON, "n_train": 300, "n_val": 100, "n_test": 100},
    ),
    "cpu": ExperimentProfile(  # the schedule of biased MNIST's cpu profile (see biased_mnist.CPU_SCHEDULE)
        backbone="narrow_cnn", image_size=28, epochs=24, batch_size=32, lr=1e-3,
        data={**_COMMON, "n_train": 3500, "n_val": 500, "n_test": 1000},
    ),
    "paper": ExperimentProfile(
        backbone="densenet121", image_size=224, epochs=30, batch_size=32, lr=1e-3,
        data={**_COMMON, "n_train": 10000, "n_val": 2000, "n_test": 2000},
    ),
}


def _missing(cache_dir: Path) -> str | None:
    try:
        find_fashion_mnist(Path(cache_dir), allow_download=False)
    except FashionMNISTNotFound as err:
        return str(err)
    return None


@register_experiment(
    "biased_fashion_mnist",
    test_splits=("biased", "unbiased", "deceiving"),
    id_split="biased",
    shift_splits=("unbiased", "deceiving"),
    profiles=PROFILES,
    summary="Fashion-MNIST garments with a class-correlated shape in the background",
    tags=("fashion_mnist", "synthetic_bias", "has_masks", "grayscale"),
    unavailable=_missing,
    extended="not in either ISNet paper (biased MNIST is their synthetic-bias benchmark); left out of the default "
             "grid so that the cpu budget buys converged schedules for the paper's experiments",
)
def biased_fashion_mnist(profile: ExperimentProfile, seed: int, cache_dir: Path) -> DataBundle:
    """Build biased Fashion-MNIST for ``profile`` (``seed`` is the run seed; the data ignore it)."""
    paths = find_fashion_mnist(Path(cache_dir))
    return build_biased_28px(
        recipe="biased_fashion_mnist",
        data=profile.data,
        image_size=profile.image_size,
        cache_dir=Path(cache_dir),
        class_names=FASHION_CLASSES,
        sources={key: content_fingerprint(path) for key, path in sorted(paths.items())},
        load=lambda: load_fashion_mnist(paths),
        pools={"train": "train", "val": "train", "test": "test"},
        notes={"source": f"Fashion-MNIST IDX files ({paths['train_images'].parent})"},
    )
