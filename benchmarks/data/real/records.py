"""What a collection adapter produces: :class:`Record` lists, and the small rules every
adapter shares (required folders, image listing, canonical class names, predicted masks).

Image and mask references are file paths, or ``"<archive>.zip::<member>"`` for a file inside
a zip archive (the V7 lung masks ship zipped in the torchxrayvision wheel).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

DATA_ENV = "ISNET_BENCHMARKS_DATA"
ZIP_SEP = "::"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".gif")


class LayoutError(FileNotFoundError):
    """A collection's root (or a file its layout requires) is missing; the message prints the
    expected layout."""


class UnknownClassError(ValueError):
    """A class name that the loader or experiment does not know."""


@dataclass(frozen=True)
class Record:
    """One image of a collection.

    ``label`` is a canonical class name (``normal``, ``pneumonia``, ``covid19``,
    ``tuberculosis``, ``sick``); ``mask`` holds one or more mask files whose foregrounds are
    OR-ed (Montgomery stores the left and right lungs apart), or ``None``; ``patient`` is
    the patient id when the collection has one (else each image is its own patient);
    ``split`` is the collection's official split (``train`` / ``val`` / ``test``) if any.
    """

    image: str
    label: str
    mask: tuple[str, ...] | None
    source: str
    patient: str | None = None
    split: str | None = None

    @property
    def stem(self) -> str:
        """The image's file name without its extension (the name predicted masks take)."""
        name = self.image.split(ZIP_SEP)[-1]
        return PurePosixPath(name.replace("\\", "/")).stem

    @property
    def group_key(self) -> tuple[str, str]:
        """What must never be split apart: the patient, or the image when no id is known."""
        return (self.source, self.patient if self.patient is not None else "img:" + self.image)

    def with_mask(self, mask: Sequence[str] | None) -> Record:
        return Record(
            self.image, self.label, None if mask is None else tuple(mask), self.source, self.patient, self.split
        )


def require_dir(path: Path | str | None, collection: str, layout: str) -> Path:
    """Return ``path`` if it is a folder, else raise :class:`LayoutError` printing ``layout``."""
    if path is None or not Path(path).is_dir():
        where = "no path given" if path is None else f"{str(path)!r} is not a folder"
        raise LayoutError(f"{collection}: {where}. Expected layout:\n{layout.rstrip()}")
    return Path(path)


def require_file(path: Path, collection: str, layout: str) -> Path:
    if not path.is_file():
        raise LayoutError(f"{collection}: {str(path)!r} is missing. Expected layout:\n{layout.rstrip()}")
    return path


def list_images(folder: Path, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> list[Path]:
    """Image files directly inside ``folder`` (sorted; hidden files skipped)."""
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith(".")
    )


CLASS_ALIASES: dict[str, str] = {
    "normal": "normal",
    "healthy": "normal",
    "health": "normal",
    "no finding": "normal",
    "no_finding": "normal",
    "pneumonia": "pneumonia",
    "non-covid": "pneumonia",
    "non_covid": "pneumonia",
    "noncovid": "pneumonia",
    "covid19": "covid19",
    "covid-19": "covid19",
    "covid_19": "covid19",
    "covid": "covid19",
    "tuberculosis": "tuberculosis",
    "tb": "tuberculosis",
    "sick": "sick",
}


def canonical_class(name: str, allowed: Sequence[str] | None = None, where: str = "") -> str:
    """Map a folder / column class name to its canonical name; :class:`UnknownClassError` if
    unknown or not in ``allowed``."""
    key = name.strip().lower()
    canon = CLASS_ALIASES.get(key, key)
    if canon not in (allowed if allowed is not None else CLASS_ALIASES.values()):
        known = sorted(allowed) if allowed is not None else sorted(set(CLASS_ALIASES.values()))
        raise UnknownClassError(f"{where + ': ' if where else ''}unknown class {name!r}; expected one of {known}")
    return canon


def mask_lookup(
    records: Sequence[Record], folder: Path | None, fn: Callable[[Record], Path] | None = None
) -> list[Record]:
    """Give records without a mask the predicted mask ``<folder>/<stem>_mask.png`` when
    that file exists (the ``masks predict`` command writes them)."""
    if folder is None or not Path(folder).is_dir():
        return list(records)
    out = []
    for rec in records:
        if rec.mask is None:
            cand = fn(rec) if fn is not None else Path(folder) / f"{rec.stem}_mask.png"
            if cand.is_file():
                rec = rec.with_mask((str(cand),))
        out.append(rec)
    return out
