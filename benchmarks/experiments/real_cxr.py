"""Real chest X-ray experiments: ``covid_real`` and ``tb_real``.

Both follow the ISNet paper's design: the training database mixes several collections
(hospitals), each with its own background, markers and class shares, which is where the
background shortcut comes from; the **external** test holds collections from hospitals that
training never saw. (The paper's exact database lists could not be verified; the choice
below uses the public collections whose layouts this suite reads, see
``datasets/covid_real.md`` and ``datasets/tb_real.md``.)

The data root is ``$ISNET_BENCHMARKS_DATA``, one sub-folder per collection:

covid_real (normal / pneumonia / COVID-19)
    train:    ``covid-qu-ex/`` (required), ``covid-chestxray-dataset/`` (optional)
    external: ``brixia/`` (COVID-19 only), ``covid-external/`` (generic class folders, e.g.
              normal and pneumonia images of another hospital); at least one of them
tb_real (normal / tuberculosis)
    train:    ``shenzhen/`` (+ ``shenzhen-masks/``) (required), ``tbx11k/`` (optional, minus
              its copies of Montgomery / Shenzhen images)
    external: ``montgomery/``, ``tb-external/`` (generic); at least one of them

Training sources are split 70 / 10 / 20 into train / val / in-distribution test at patient
level (COVID-QU-Ex keeps its official Train / Val / Test split); external sources are used
whole as the external test. Training images without a lung mask are dropped unless masks
were predicted into ``predicted-masks/<source>/`` with ``python -m benchmarks masks predict``;
masks that do not look like lung masks are refused (:mod:`benchmarks.data.real.mask_check`)
unless ``ISNET_BENCHMARKS_ACCEPT_ODD_MASKS=1``. When the data root cannot serve an
experiment, its ``unavailable`` check says why in one line, before any run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from benchmarks.api import DataBundle, ExperimentProfile, register_experiment
from benchmarks.data.real import COLLECTIONS, folder
from benchmarks.data.real.bundle import build_real_bundle
from benchmarks.data.real.sources import Source, data_problem

COVID_CLASSES = ("normal", "pneumonia", "covid19")
TB_CLASSES = ("normal", "tuberculosis")
TAGS = ("user-data", "cxr", "has_normal_class", "has_masks", "grayscale", "real", "external-test")


def _collection(name: str, role: str, required: bool, dedup_against: tuple[str, ...] = ()) -> Source:
    col = COLLECTIONS[name]
    return Source(col.name, col.folder, role, required, col.open, col.layout, dedup_against)


def _generic(name: str, classes: tuple[str, ...]) -> Source:
    def load(path: Path, data_root: Path, active: frozenset[str], stats: dict) -> list:
        return folder.load(path, classes=classes, source=name, stats=stats)

    return Source(name, name, "external", False, load, folder.LAYOUT)


COVID_SOURCES = (
    _collection("covid-qu-ex", "train", True),
    _collection("covid-chestxray-dataset", "train", False),
    _collection("brixia", "external", False),
    _generic("covid-external", COVID_CLASSES),
)
TB_SOURCES = (
    _collection("shenzhen", "train", True),
    _collection("tbx11k", "train", False, dedup_against=("montgomery", "shenzhen")),
    _collection("montgomery", "external", False),
    _generic("tb-external", TB_CLASSES),
)


def _missing(sources: tuple[Source, ...], card: str) -> Callable[[Path], str | None]:
    """The experiments' ``unavailable`` check: one line saying why the data root cannot
    serve ``sources`` (the full layout is in ``card`` and in the builder's error)."""

    def missing(cache_dir: Path) -> str | None:
        problem = data_problem(sources)
        return None if problem is None else f"{problem}; expected layout: {card}"

    return missing


def _profiles(cpu_cap: int) -> dict[str, ExperimentProfile]:
    return {
        "smoke": ExperimentProfile("tiny_cnn", 32, epochs=1, batch_size=8, data={"max_per_class": 12}),
        "cpu": ExperimentProfile("small_cnn", 64, epochs=10, batch_size=32, data={"max_per_class": cpu_cap}),
        "paper": ExperimentProfile("densenet121", 224, epochs=48, batch_size=16, data={"max_per_class": None}),
    }


@register_experiment(
    "covid_real",
    test_splits=("in_distribution", "external"),
    id_split="in_distribution",
    shift_splits=("external",),
    profiles=_profiles(cpu_cap=400),
    summary="COVID-19 / normal / pneumonia on real CXRs: train COVID-QU-Ex (+ Cohen), external BrixIA (+ your own)",
    tags=(*TAGS, "covid"),
    unavailable=_missing(COVID_SOURCES, "datasets/covid_real.md"),
)
def covid_real(profile: ExperimentProfile, seed: int, cache_dir: Path) -> DataBundle:
    return build_real_bundle("covid_real", COVID_SOURCES, COVID_CLASSES, profile, seed, cache_dir)


@register_experiment(
    "tb_real",
    test_splits=("in_distribution", "external"),
    id_split="in_distribution",
    shift_splits=("external",),
    profiles=_profiles(cpu_cap=300),
    summary="Tuberculosis / normal on real CXRs: train Shenzhen (+ TBX11K minus overlaps), external Montgomery",
    tags=(*TAGS, "tb"),
    unavailable=_missing(TB_SOURCES, "datasets/tb_real.md"),
)
def tb_real(profile: ExperimentProfile, seed: int, cache_dir: Path) -> DataBundle:
    return build_real_bundle("tb_real", TB_SOURCES, TB_CLASSES, profile, seed, cache_dir)
