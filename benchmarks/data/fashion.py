"""Real Fashion-MNIST images, found offline or downloaded only when the user opts in.

Where the IDX files are looked for, in order:

1. ``$ISNET_FASHION_MNIST_DIR`` (a folder holding the four ``*-ubyte[.gz]`` files);
2. the Debian package ``dataset-fashion-mnist``: ``/usr/share/datasets/fashion-mnist/``;
3. ``<cache_dir>/FashionMNIST/raw/`` (where an earlier opted-in download put them).

When none has them and ``ISNET_BENCHMARKS_ALLOW_DOWNLOAD=1`` is set, torchvision downloads
them into ``<cache_dir>``; otherwise :class:`FashionMNISTNotFound` names both ways.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

FASHION_CLASSES = ("t-shirt/top", "trouser", "pullover", "dress", "coat",
                   "sandal", "shirt", "sneaker", "bag", "ankle boot")
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DIR_ENV = "ISNET_FASHION_MNIST_DIR"
DOWNLOAD_ENV = "ISNET_BENCHMARKS_ALLOW_DOWNLOAD"
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


class FashionMNISTNotFound(FileNotFoundError):
    """The Fashion-MNIST IDX files are nowhere to be found and downloading is not allowed."""


def _file(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _complete(folder: Path) -> dict[str, Path] | None:
    found = {key: _file(folder, stem) for key, stem in FILES.items()}
    return found if all(found.values()) else None  # type: ignore[return-value]


def candidate_dirs(cache_dir: Path | None) -> list[Path]:
    """The folders searched, in order."""
    dirs = []
    if os.environ.get(DIR_ENV):
        dirs.append(Path(os.environ[DIR_ENV]))
    dirs.append(DEBIAN_DIR)
    if cache_dir is not None:
        dirs.append(Path(cache_dir) / "FashionMNIST" / "raw")
    return dirs


def find_fashion_mnist(cache_dir: Path | None = None, allow_download: bool | None = None) -> dict[str, Path]:
    """Paths of the four IDX files; downloads through torchvision only when allowed
    (``allow_download``, default: ``$ISNET_BENCHMARKS_ALLOW_DOWNLOAD == "1"``)."""
    dirs = candidate_dirs(cache_dir)
    for folder in dirs:
        found = _complete(folder)
        if found:
            return found
    if allow_download is None:
        allow_download = os.environ.get(DOWNLOAD_ENV, "") == "1"
    if allow_download and cache_dir is not None:
        _download(Path(cache_dir))
        found = _complete(Path(cache_dir) / "FashionMNIST" / "raw")
        if found:
            return found
    looked = "\n".join(f"  - {d}" for d in dirs)
    raise FashionMNISTNotFound(
        "Fashion-MNIST images not found. Looked in:\n"
        f"{looked}\n"
        "Get them one of two ways:\n"
        "  1. offline, from the Debian package: `sudo apt-get install dataset-fashion-mnist` "
        f"(installs the IDX files under {DEBIAN_DIR}/), or point ${DIR_ENV} at a folder "
        "holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
        "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz;\n"
        f"  2. let torchvision download them into the data cache: set {DOWNLOAD_ENV}=1."
    )


def _download(cache_dir: Path) -> None:
    """torchvision's download into ``<cache_dir>/FashionMNIST/raw`` (only when opted in)."""
    import torchvision

    torchvision.datasets.FashionMNIST(str(cache_dir), train=True, download=True)
    torchvision.datasets.FashionMNIST(str(cache_dir), train=False, download=True)


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally gzipped) as a uint8 array: images ``[N, rows, cols]``
    (magic 2051) or labels ``[N]`` (magic 2049)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: not an IDX file (too short)")
    magic = int.from_bytes(raw[:4], "big")
    if magic == 2051:
        n, rows, cols = (int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(3))
        data = np.frombuffer(raw, dtype=np.uint8, offset=16)
        if data.size != n * rows * cols:
            raise ValueError(f"{path}: header says {n}x{rows}x{cols} images, file holds {data.size} bytes")
        return data.reshape(n, rows, cols)
    if magic == 2049:
        n = int.from_bytes(raw[4:8], "big")
        data = np.frombuffer(raw, dtype=np.uint8, offset=8)
        if data.size != n:
            raise ValueError(f"{path}: header says {n} labels, file holds {data.size}")
        return data
    raise ValueError(f"{path}: unknown IDX magic number {magic} (expected 2051 or 2049)")


def load_fashion_mnist(paths: dict[str, Path]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (images [60000, 28, 28], labels), "test": (images [10000, 28, 28], labels)}``."""
    out = {}
    for part in ("train", "test"):
        images = read_idx(paths[f"{part}_images"])
        labels = read_idx(paths[f"{part}_labels"]).astype(np.int64)
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"Fashion-MNIST {part}: {images.shape[0]} images but {labels.shape[0]} labels")
        out[part] = (images, labels)
    return out
