"""Decoy MNIST, the benchmark of the RRR paper (Ross, Hughes & Doshi-Velez, IJCAI 2017).

Real digits, each with a 4x4 swatch in a random corner whose grey level gives the label away in
training (``255 - 25 y``) and not at test (the shade of a random digit). Built as the authors'
code builds it (:mod:`benchmarks.data.decoy_swatches`, ``datasets/decoy_mnist.md``). The mask every
mask-using method receives is everything but the swatch: RRR's annotation is the swatch, and
ISNet's foreground is its complement, so both are told the same thing.

Sizes: the authors used all of MNIST (60,000 training, 10,000 test digits); the 5,000 bundled
digits are split as biased MNIST splits them, 3,500 / 500 / 1,000 (train / validation / test,
class-balanced), so that the two MNIST experiments train on the same amount of data with the same
schedule and their numbers sit side by side; the three test splits put different swatches on the
same 1,000 digits. The cpu schedule is biased MNIST's (``biased_mnist.CPU_SCHEDULE``); nothing
here was chosen by looking at a test split.

The RRR paper compared its MLP with and without the swatch annotation; the suite's comparison is
the standard classifier, RRR, ISNet with its Faster variants, and GAIN::

    python -m benchmarks run --experiments decoy_mnist --methods standard rrr isnet isnet_dual \\
        isnet_selective isnet_stochastic gain --seeds 0 1 2
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.api import DataBundle, ExperimentProfile, register_experiment
from benchmarks.data.decoy_swatches import TEST_SPLITS, build_decoy_mnist
from benchmarks.data.mnist import content_fingerprint, load_mnist_5k, mnist_csv_path

PROFILES = {
    "smoke": ExperimentProfile(
        backbone="tiny_cnn", image_size=28, epochs=1, batch_size=64, lr=1e-3,
        data={"n_train": 300, "n_val": 100, "n_test": 100},
    ),
    "cpu": ExperimentProfile(  # biased MNIST's schedule: see the module docstring
        backbone="narrow_cnn", image_size=28, epochs=24, batch_size=32, lr=1e-3,
        data={"n_train": 3500, "n_val": 500, "n_test": 1000},
    ),
    "paper": ExperimentProfile(
        backbone="densenet121", image_size=224, epochs=30, batch_size=32, lr=1e-3,
        data={"n_train": 3500, "n_val": 500, "n_test": 1000},
    ),
}


@register_experiment(
    "decoy_mnist",
    test_splits=TEST_SPLITS,
    id_split="biased",
    shift_splits=("decoy", "deceiving"),
    profiles=PROFILES,
    summary="Decoy MNIST (RRR paper): a corner swatch whose shade gives the label away in training only",
    tags=("mnist", "synthetic_bias", "has_masks", "grayscale", "decoy_swatch"),
    extended="the RRR paper's benchmark (Ross et al., IJCAI 2017), not one of the ISNet papers' experiments; left "
             "out of the default grid so that the grid keeps its cpu budget",
)
def decoy_mnist(profile: ExperimentProfile, seed: int, cache_dir: Path) -> DataBundle:
    """Build Decoy MNIST for ``profile`` (``seed`` is the run seed; the data ignore it)."""
    path = mnist_csv_path()
    return build_decoy_mnist(profile.data, profile.image_size, Path(cache_dir),
                             sources={"mnist_5k": content_fingerprint(path)}, load=lambda: load_mnist_5k(path))
