"""BrixIA COVID-19 (Signoroni et al., brixia.github.io): 4,695 chest X-rays (DICOM) of
COVID-19 patients of one Italian hospital, with the Brixia severity score.

Every image is COVID-19 positive, so the collection serves as an external COVID-19 test
source. ``Subject`` is the patient id. The DICOM images are read with pydicom (modality and
VOI LUTs applied; ``MONOCHROME1`` images inverted so that bones are bright).
"""

from __future__ import annotations

import csv
from pathlib import Path

from benchmarks.data.real.records import LayoutError, Record, require_dir

SOURCE = "brixia"
FOLDER = "brixia"
METADATA = ("metadata_global_v2.csv", "metadata_global_v1.csv", "metadata_global.csv")
REQUIRED_COLUMNS = ("Filename", "Subject")
LAYOUT = """\
<root>/
  metadata_global_v2.csv    (';'-separated; columns include Filename, Subject, BrixiaScore,
                             BrixiaScoreGlobal, ConsensusTestset, PhotometricInterpretation)
  dicom_clean/<Filename>    (*.dcm; needs pydicom)
All images are labelled covid19."""


def load(root: Path | str, *, image_folder: str = "dicom_clean", stats: dict | None = None) -> list[Record]:
    """Records of every image the metadata lists (label ``covid19``, patient ``Subject``);
    listed files absent from ``dicom_clean/`` are left out and counted as ``missing_image``."""
    root = require_dir(root, SOURCE, LAYOUT)
    meta = next((root / m for m in METADATA if (root / m).is_file()), None)
    if meta is None:
        raise LayoutError(f"{SOURCE}: none of {list(METADATA)} in {str(root)!r}. Expected layout:\n{LAYOUT}")
    folder = root / image_folder
    if not folder.is_dir():
        raise LayoutError(f"{SOURCE}: {str(folder)!r} is missing. Expected layout:\n{LAYOUT}")
    stats = {} if stats is None else stats
    with open(meta, newline="", encoding="utf-8-sig") as fh:
        header = fh.readline()
        fh.seek(0)
        # The real file is ';'-separated (its BrixiaScore strings such as "012300" must stay text).
        delimiter = ";" if header.count(";") >= header.count(",") else ","
        reader = csv.DictReader(fh, delimiter=delimiter)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise LayoutError(
                f"{SOURCE}: {meta} lacks columns {missing} (read with delimiter {delimiter!r}; "
                f"header {header.strip()[:120]!r}). Expected layout:\n{LAYOUT}"
            )
        records = []
        for row in reader:
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            image = folder / row["Filename"]
            if not image.is_file():
                stats["missing_image"] = stats.get("missing_image", 0) + 1
                continue
            records.append(Record(str(image), "covid19", None, SOURCE, row["Subject"] or None))
    if not records:
        raise LayoutError(
            f"{SOURCE}: none of the images listed in {meta} is in {str(folder)!r}. Expected layout:\n{LAYOUT}"
        )
    return records
