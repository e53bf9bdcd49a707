"""Loaders for real chest X-ray collections, read from paths the user gives, in each
collection's own on-disk layout.

One small adapter module per collection turns its layout into :class:`Record` lists
(image path, class, lung-mask path(s) or ``None``, source id, patient id when known):

========================  =====================================  ==================
collection (source id)    module                                 classes
========================  =====================================  ==================
covid-qu-ex               :mod:`.covid_qu_ex`                    normal, pneumonia, covid19
covid-chestxray-dataset   :mod:`.covid_chestxray` (Cohen)        normal, pneumonia, covid19
brixia                    :mod:`.brixia` (DICOM)                 covid19
montgomery                :mod:`.montgomery`                     normal, tuberculosis
shenzhen                  :mod:`.shenzhen` (+ shenzhen-masks)    normal, tuberculosis
tbx11k                    :mod:`.tbx11k` (COCO JSON)             normal, sick, tuberculosis
folder                    :mod:`.folder` (generic)               any canonical class
========================  =====================================  ==================

Shared code, one purpose per module: :mod:`.records` (the record type and the rules every
adapter shares), :mod:`.images` (reading and resizing images), :mod:`.masks` (reading lung
masks), :mod:`.mask_check` (what a lung mask must look like), :mod:`.preprocess` (records to
cached tensors), :mod:`.splitting` (patient-level splits), :mod:`.duplicates` (the same
radiograph in two collections). Experiment assembly: :mod:`.sources` (the data root and each
collection's role) and :mod:`.bundle` (the build steps: train / external protocol,
patient-level splits, overlap removal); the lung segmenter for collections without masks in
:mod:`.segmenter`.

The data root of the experiments is the folder named by ``$ISNET_BENCHMARKS_DATA``, holding
one sub-folder per collection, named as in :data:`COLLECTIONS` (``Collection.folder``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.data.real import brixia, covid_chestxray, covid_qu_ex, folder, montgomery, shenzhen, tbx11k
from benchmarks.data.real.duplicates import near_duplicates
from benchmarks.data.real.images import BadImageError, read_image
from benchmarks.data.real.mask_check import OddMaskError
from benchmarks.data.real.masks import EmptyMaskError, read_mask
from benchmarks.data.real.preprocess import build_tensors
from benchmarks.data.real.records import DATA_ENV, LayoutError, Record, UnknownClassError
from benchmarks.data.real.splitting import check_patient_disjoint, patient_split

__all__ = [
    "COLLECTIONS",
    "DATA_ENV",
    "BadImageError",
    "Collection",
    "EmptyMaskError",
    "LayoutError",
    "OddMaskError",
    "Record",
    "UnknownClassError",
    "build_tensors",
    "check_patient_disjoint",
    "load_collection",
    "near_duplicates",
    "patient_split",
    "read_image",
    "read_mask",
]

Loader = Callable[..., list[Record]]


@dataclass(frozen=True)
class Collection:
    """A supported collection: its source id, default sub-folder of the data root, expected
    layout, classes, and ``open(path, data_root, active, stats)`` that loads its records
    (``active`` names the other collections used alongside, for overlap removal)."""

    name: str
    folder: str
    layout: str
    classes: tuple[str, ...]
    open: Callable[[Path, Path | None, frozenset[str], dict], list[Record]]


def _shenzhen(path: Path, data_root: Path | None, active: frozenset[str], stats: dict) -> list[Record]:
    masks = data_root / shenzhen.MASK_FOLDER if data_root is not None else None
    return shenzhen.load(path, masks_root=masks if masks is not None and masks.is_dir() else None, stats=stats)


def _tbx11k(path: Path, data_root: Path | None, active: frozenset[str], stats: dict) -> list[Record]:
    return tbx11k.load(path, exclude=tuple(c for c in ("montgomery", "shenzhen") if c in active), stats=stats)


def _simple(module) -> Callable[[Path, Path | None, frozenset[str], dict], list[Record]]:  # noqa: ANN001
    return lambda path, data_root, active, stats: module.load(path, stats=stats)


COLLECTIONS: dict[str, Collection] = {
    c.name: c
    for c in (
        Collection(
            covid_qu_ex.SOURCE,
            covid_qu_ex.FOLDER,
            covid_qu_ex.LAYOUT,
            ("normal", "pneumonia", "covid19"),
            _simple(covid_qu_ex),
        ),
        Collection(
            covid_chestxray.SOURCE,
            covid_chestxray.FOLDER,
            covid_chestxray.LAYOUT,
            ("normal", "pneumonia", "covid19"),
            _simple(covid_chestxray),
        ),
        Collection(brixia.SOURCE, brixia.FOLDER, brixia.LAYOUT, ("covid19",), _simple(brixia)),
        Collection(
            montgomery.SOURCE, montgomery.FOLDER, montgomery.LAYOUT, ("normal", "tuberculosis"), _simple(montgomery)
        ),
        Collection(shenzhen.SOURCE, shenzhen.FOLDER, shenzhen.LAYOUT, ("normal", "tuberculosis"), _shenzhen),
        Collection(tbx11k.SOURCE, tbx11k.FOLDER, tbx11k.LAYOUT, ("normal", "sick", "tuberculosis"), _tbx11k),
    )
}


def load_collection(
    name: str,
    root: Path | str | None = None,
    *,
    data_root: Path | str | None = None,
    classes: tuple[str, ...] | None = None,
    stats: dict | None = None,
) -> list[Record]:
    """Records of collection ``name`` (a key of :data:`COLLECTIONS`, or ``folder`` for the
    generic layout) read from ``root``, or from ``<data_root>/<Collection.folder>``."""
    stats = {} if stats is None else stats
    droot = Path(data_root) if data_root is not None else None
    if name == "folder":
        if root is None:
            raise ValueError("the generic 'folder' layout needs an explicit root")
        return folder.load(root, classes=classes, stats=stats)
    if name not in COLLECTIONS:
        raise KeyError(f"unknown collection {name!r}; known: {sorted(COLLECTIONS) + ['folder']}")
    col = COLLECTIONS[name]
    path = Path(root) if root is not None else (droot / col.folder if droot is not None else None)
    if path is None:
        raise ValueError(f"{name}: give its root or the data root")
    return col.open(path, droot, frozenset({name}), stats)
