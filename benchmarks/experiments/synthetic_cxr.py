"""Synthetic chest X-ray benchmarks: COVID-19 (3 classes) and tuberculosis (2 classes).

Radiograph-like images whose lungs are real lung masks (torchxrayvision's V7 masks; see
``datasets/synthetic_cxr.md``), with the class signal inside the lungs only, pooled from
simulated hospitals whose class shares differ, so the hospital (background style and
burned-in markers) is a shortcut. ``in_distribution`` tests on the training hospitals,
``external`` on hospitals never seen in training. The data depend on the profile only
(``data_seed``), never on the run seed.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from benchmarks.api import DataBundle, ExperimentProfile, register_experiment
from benchmarks.data.cxr_hospitals import COVID_CLASSES, TB_CLASSES, build_cxr_bundle

THIRD = 1.0 / 3.0
COVID_HOSPITALS = {
    "train_hospitals": {"A": (0.70, 0.20, 0.10), "B": (0.15, 0.70, 0.15), "C": (0.10, 0.10, 0.80)},
    "external_hospitals": {"D": (THIRD, THIRD, THIRD), "E": (THIRD, THIRD, THIRD)},
}
TB_HOSPITALS = {
    "train_hospitals": {"A": (0.85, 0.15), "B": (0.15, 0.85)},
    "external_hospitals": {"D": (0.5, 0.5), "F": (0.5, 0.5)},
}
SIZES = {
    "smoke": {"n_train": 240, "n_val": 60, "n_in_distribution": 90, "n_external": 90, "max_templates": 48},
    "cpu": {"n_train": 1500, "n_val": 300, "n_in_distribution": 500, "n_external": 500},
    "paper": {"n_train": 8000, "n_val": 1000, "n_in_distribution": 2000, "n_external": 2000},
}


def _profiles(hospitals: dict) -> dict[str, ExperimentProfile]:
    """cpu: 1,500 training images (generated, so more images rather than more epochs), 300 to
    validate (selection needs a steady validation loss), 30 epochs with the lowest-validation-loss
    epoch kept and no early stopping (the authors' protocol; an early-stopping rule ends runs whose
    initial weights differ by 1e-6 up to 22 epochs apart here, see ``python -m
    benchmarks.studies.stopping``), the narrow CNN (half the step time of the 16 / 32 / 64 one).
    No test split was looked at."""
    return {
        "smoke": ExperimentProfile(backbone="tiny_cnn", image_size=32, epochs=1, batch_size=64, lr=1e-3,
                                   data={**hospitals, **SIZES["smoke"]}),
        "cpu": ExperimentProfile(backbone="narrow_cnn", image_size=40, epochs=30, batch_size=32,
                                 lr=1e-3, data={**hospitals, **SIZES["cpu"]}),
        "paper": ExperimentProfile(backbone="densenet121", image_size=224, epochs=30, batch_size=32, lr=1e-3,
                                   data={**hospitals, **SIZES["paper"]}),
    }


@register_experiment(
    "synthetic_covid",
    test_splits=("in_distribution", "external"),
    id_split="in_distribution",
    shift_splits=("external",),
    profiles=_profiles(COVID_HOSPITALS),
    summary="Synthetic CXR, normal / pneumonia / COVID-19, real lung shapes, hospital shortcut",
    tags=("cxr", "synthetic", "has_normal_class", "has_masks", "grayscale", "external_test", "covid"),
)
def synthetic_covid(profile: ExperimentProfile, seed: int, cache_dir: Path) -> DataBundle:
    """Build the synthetic COVID-19 task (``seed`` is the run seed; the data ignore it)."""
    return build_cxr_bundle(recipe="synthetic_covid", task="covid", classes=COVID_CLASSES, data=profile.data,
                            image_size=profile.image_size, cache_dir=Path(cache_dir))


@register_experiment(
    "synthetic_tb",
    test_splits=("in_distribution", "external"),
    id_split="in_distribution",
    shift_splits=("external",),
    profiles=_profiles(TB_HOSPITALS),
    summary="Synthetic CXR, normal / tuberculosis, real lung shapes, hospital shortcut",
    tags=("cxr", "synthetic", "has_normal_class", "has_masks", "grayscale", "external_test", "tb"),
)
def synthetic_tb(profile: ExperimentProfile, seed: int, cache_dir: Path) -> DataBundle:
    """Build the synthetic tuberculosis task (``seed`` is the run seed; the data ignore it)."""
    return build_cxr_bundle(recipe="synthetic_tb", task="tb", classes=TB_CLASSES, data=profile.data,
                            image_size=profile.image_size, cache_dir=Path(cache_dir))


#: the style every hospital of the no-shortcut controls shares (hospital A's look and markers)
CONTROL_STYLE = "A"
CONTROL_WHY = ("a no-shortcut control: the same patients, class shares and splits as its experiment, every hospital "
               "in one shared style, so the hospital cannot be read from the image; it separates what ISNet's heatmap "
               "loss costs in learning from what the shortcut does")


def _control(hospitals: dict) -> dict[str, ExperimentProfile]:
    """The experiment's profiles with every hospital rendered in :data:`CONTROL_STYLE`."""
    return {scale: replace(p, data={**p.data, "shared_style": CONTROL_STYLE})
            for scale, p in _profiles(hospitals).items()}


@register_experiment(
    "synthetic_covid_control",
    test_splits=("in_distribution", "external"),
    id_split="in_distribution",
    shift_splits=("external",),
    profiles=_control(COVID_HOSPITALS),
    summary="No-shortcut control of synthetic_covid: every hospital in one style",
    tags=("cxr", "synthetic", "has_normal_class", "has_masks", "grayscale", "external_test", "covid",
          "no_shortcut_control"),
    extended=CONTROL_WHY,
)
def synthetic_covid_control(profile: ExperimentProfile, seed: int, cache_dir: Path) -> DataBundle:
    """``synthetic_covid`` with one shared hospital style (``seed`` is the run seed; the data ignore it)."""
    return build_cxr_bundle(recipe="synthetic_covid_control", task="covid", classes=COVID_CLASSES,
                            data=profile.data, image_size=profile.image_size, cache_dir=Path(cache_dir))


@register_experiment(
    "synthetic_tb_control",
    test_splits=("in_distribution", "external"),
    id_split="in_distribution",
    shift_splits=("external",),
    profiles=_control(TB_HOSPITALS),
    summary="No-shortcut control of synthetic_tb: every hospital in one style",
    tags=("cxr", "synthetic", "has_normal_class", "has_masks", "grayscale", "external_test", "tb",
          "no_shortcut_control"),
    extended=CONTROL_WHY,
)
def synthetic_tb_control(profile: ExperimentProfile, seed: int, cache_dir: Path) -> DataBundle:
    """``synthetic_tb`` with one shared hospital style (``seed`` is the run seed; the data ignore it)."""
    return build_cxr_bundle(recipe="synthetic_tb_control", task="tb", classes=TB_CLASSES, data=profile.data,
                            image_size=profile.image_size, cache_dir=Path(cache_dir))
