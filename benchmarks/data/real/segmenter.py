"""Lung segmenter for collections without lung masks (TBX11K, BrixIA, Cohen images without
V7 / lungVAE masks, Shenzhen's unmasked images, ...).

A U-Net (:class:`benchmarks.architectures.UNet`) is trained on the images of the
mask-bearing collections (COVID-QU-Ex, Montgomery, Shenzhen, Cohen's V7 masks, generic
folders with masks) with a BCE + soft-Dice loss, a patient-level validation split and the
best validation Dice kept; :func:`predict_masks` then writes one ``<stem>_mask.png``
(0 / 255, at the image's own size) per image into an output folder, which the experiments
read from ``$ISNET_BENCHMARKS_DATA/predicted-masks/<source>/``.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from benchmarks.architectures import UNet
from benchmarks.data.real.images import BadImageError, read_image
from benchmarks.data.real.mask_check import mask_problems, measure_mask, odd_masks, refuse_odd_masks
from benchmarks.data.real.preprocess import build_tensors
from benchmarks.data.real.records import Record
from benchmarks.data.real.splitting import patient_split
from benchmarks.store import atomic_write_bytes

FORMAT = "isnet-benchmarks-lung-unet/1"
DEFAULT_WIDTHS = (16, 32, 64, 128)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def dice_score(logits: Tensor, target: Tensor, eps: float = 1.0) -> Tensor:
    """Soft Dice per image of ``sigmoid(logits)`` against 0/1 ``target``."""
    prob = torch.sigmoid(logits).flatten(1)
    target = target.flatten(1)
    inter = (prob * target).sum(1)
    return (2 * inter + eps) / (prob.sum(1) + target.sum(1) + eps)


def _augment(x: Tensor, gen: torch.Generator) -> Tensor:
    """Random gamma and contrast (radiographs differ most in exposure between hospitals)."""
    b = x.shape[0]
    gamma = torch.exp((torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 0.8).to(x.device)
    scale = (0.8 + 0.4 * torch.rand(b, 1, 1, 1, generator=gen)).to(x.device)
    shift = ((torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 0.2).to(x.device)
    return (x.clamp_min(0).pow(gamma) * scale + shift).clamp(0, 1)


def _save(payload: dict[str, Any], path: Path) -> None:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


@dataclass(frozen=True)
class SegmentationData:
    """The usable mask-bearing images (``uint8 [N, 1, S, S]``), their 0/1 masks, the
    patient-level train / val indices, their records and the preprocessing cache key."""

    records: list[Record]
    images: Tensor
    masks: Tensor
    train: Tensor
    val: Tensor
    key: str


def segmentation_data(
    records: Sequence[Record],
    image_size: int,
    cache_dir: Path | str | None,
    on_bad: str,
    val_fraction: float,
    seed: int,
) -> SegmentationData:
    """The records with a mask read into tensors (odd masks refused, see
    :func:`~.mask_check.refuse_odd_masks`) and split by patient; without a validation share
    the training images validate."""
    masked = [r for r in records if r.mask is not None]
    if len(masked) < 2:
        raise ValueError(f"need at least 2 images with lung masks to train the segmenter, got {len(masked)}")
    tensors, key = build_tensors(masked, image_size, cache_dir, "segmenter", on_bad=on_bad)
    refuse_odd_masks("masks train", odd_masks(masked, tensors["mask_stats"]))
    usable = torch.nonzero(tensors["has_mask"] & (tensors["status"] == 0)).flatten().tolist()
    masked = [masked[i] for i in usable]
    fractions = {"train": 1.0 - val_fraction, "val": val_fraction} if val_fraction > 0 else {"train": 1.0}
    split = patient_split([r.with_mask(None) for r in masked], fractions, seed)
    tr = torch.tensor([i for i, s in enumerate(split) if s == "train"], dtype=torch.long)
    va = torch.tensor([i for i, s in enumerate(split) if s == "val"], dtype=torch.long)
    return SegmentationData(masked, tensors["images"][usable], tensors["masks"][usable], tr, va if len(va) else tr, key)


def _train_epoch(
    model: UNet,
    opt: torch.optim.Optimizer,
    data: SegmentationData,
    batch_size: int,
    gen: torch.Generator,
    device: torch.device,
    steps_left: int | None,
) -> list[float]:
    """One pass over the training images in a ``gen``-drawn order (BCE + soft-Dice loss,
    augmented exposure), stopping after ``steps_left`` steps; returns the step losses."""
    model.train()
    order = data.train[torch.randperm(len(data.train), generator=gen)]
    losses: list[float] = []
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        if len(idx) < 2 and len(order) >= 2:
            continue  # BatchNorm needs more than one image
        x = _augment(data.images[idx].float().div(255), gen).to(device)
        y = data.masks[idx].float().to(device)
        logits = model(x)
        loss = F.binary_cross_entropy_with_logits(logits, y) + (1 - dice_score(logits, y)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if steps_left is not None and len(losses) >= steps_left:
            break
    return losses


def train_segmenter(
    records: Sequence[Record],
    out_path: Path | str,
    *,
    image_size: int = 256,
    widths: Sequence[int] = DEFAULT_WIDTHS,
    epochs: int = 20,
    batch_size: int = 8,
    lr: float = 1e-3,
    val_fraction: float = 0.1,
    max_steps: int | None = None,
    device: str = "auto",
    seed: int = 0,
    cache_dir: Path | str | None = None,
    on_bad: str = "error",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train a lung U-Net on the records that have a mask and save it to ``out_path``, the
    epoch of best validation Dice kept.

    Returns a summary (images used, best validation Dice, steps, path). ``max_steps`` caps
    the optimisation steps (for tests and quick runs). Masks that do not look like lung
    masks are refused (:func:`~.mask_check.refuse_odd_masks`).
    """
    factor = 2 ** (len(widths) - 1)
    if image_size % factor:
        raise ValueError(f"image_size {image_size} must be divisible by {factor} for a {len(widths)}-level U-Net")
    data = segmentation_data(records, image_size, cache_dir, on_bad, val_fraction, seed)
    dev = _device(device)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = UNet(1, 1, tuple(widths)).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    best: dict[str, Any] = {"dice": -1.0, "state": None, "epoch": -1}
    step = 0
    for epoch in range(epochs):
        losses = _train_epoch(model, opt, data, batch_size, gen, dev, None if max_steps is None else max_steps - step)
        step += len(losses)
        dice = evaluate(model, data.images[data.val], data.masks[data.val], batch_size, dev)
        log(f"epoch {epoch + 1}/{epochs}: loss {np.mean(losses) if losses else float('nan'):.4f}, val Dice {dice:.4f}")
        if dice > best["dice"]:
            state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            best = {"dice": dice, "state": state, "epoch": epoch}
        if max_steps is not None and step >= max_steps:
            break
    payload = {
        "format": FORMAT,
        "state_dict": best["state"],
        "widths": list(widths),
        "image_size": image_size,
        "val_dice": float(best["dice"]),
        "epoch": int(best["epoch"]),
        "sources": sorted({r.source for r in data.records}),
        "n_train": len(data.train),
        "n_val": len(data.val),
        "data_checksum": data.key,
    }
    out_path = Path(out_path)
    _save(payload, out_path)
    summary = {k: payload[k] for k in ("val_dice", "epoch", "sources", "n_train", "n_val", "image_size")}
    return {**summary, "steps": step, "path": str(out_path)}


@torch.no_grad()
def evaluate(model: UNet, images: Tensor, masks: Tensor, batch_size: int, device: torch.device) -> float:
    """Mean Dice of thresholded predictions (hard Dice) over ``images``."""
    model.eval()
    scores = []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].float().div(255).to(device)
        y = masks[start : start + batch_size].float().to(device)
        pred = (model(x) > 0).float()
        inter = (pred * y).flatten(1).sum(1)
        denom = pred.flatten(1).sum(1) + y.flatten(1).sum(1)
        scores.append(torch.where(denom > 0, 2 * inter / denom.clamp_min(1), torch.ones_like(denom)).cpu())
    return float(torch.cat(scores).mean()) if scores else 0.0


def load_segmenter(path: Path | str, device: str = "cpu") -> tuple[UNet, dict[str, Any]]:
    """The U-Net saved by :func:`train_segmenter` and its metadata."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"segmenter {str(path)!r} not found; train one with `python -m benchmarks masks train`")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a lung segmenter saved by `masks train` (format {FORMAT})")
    model = UNet(1, 1, tuple(payload["widths"]))
    model.load_state_dict(payload["state_dict"])
    model.to(_device(device)).eval()
    return model, {k: v for k, v in payload.items() if k != "state_dict"}


def postprocess(mask: np.ndarray, keep: int = 2) -> np.ndarray:
    """Keep the ``keep`` largest connected components (two lungs) and fill their holes
    (uses scipy.ndimage; the mask is returned unchanged when scipy is absent)."""
    try:
        from scipy import ndimage
    except ImportError:  # pragma: no cover
        return mask
    labels, n = ndimage.label(mask)
    if n > keep:
        sizes = ndimage.sum(mask, labels, index=range(1, n + 1))
        kept = np.argsort(sizes)[::-1][:keep] + 1
        mask = np.isin(labels, kept)
    return ndimage.binary_fill_holes(mask)


def mask_path(out_dir: Path | str, record: Record) -> Path:
    """Where :func:`predict_masks` writes a record's mask: ``<out_dir>/<stem>_mask.png``."""
    return Path(out_dir) / f"{record.stem}_mask.png"


def _check_stems(records: Sequence[Record]) -> None:
    """``ValueError`` when two images share a stem (their masks would share a file name)."""
    stems: dict[str, str] = {}
    for r in records:
        if r.stem in stems and stems[r.stem] != r.image:
            raise ValueError(
                f"two images share the stem {r.stem!r}: {stems[r.stem]} and {r.image}; "
                "predict them into separate folders"
            )
        stems[r.stem] = r.image


def _read_images(records: Sequence[Record], skip_bad: bool, counts: dict[str, int]) -> list[tuple[Record, np.ndarray]]:
    """The readable records with their images; unreadable ones raise, or are counted as
    ``bad_image`` when ``skip_bad``."""
    out = []
    for rec in records:
        try:
            out.append((rec, read_image(rec.image)))
        except BadImageError:
            if not skip_bad:
                raise
            counts["bad_image"] += 1
    return out


@torch.no_grad()
def _predict(model: UNet, arrays: Sequence[np.ndarray], size: int, threshold: float) -> list[np.ndarray]:
    """Post-processed boolean lung masks at each image's own size."""
    dev = next(model.parameters()).device
    x = torch.stack(
        [torch.from_numpy(np.array(Image.fromarray(a).resize((size, size), Image.Resampling.BILINEAR))) for a in arrays]
    )
    prob = torch.sigmoid(model(x[:, None].float().div(255).to(dev))).cpu()
    out = []
    for arr, p in zip(arrays, prob, strict=True):
        full = F.interpolate(p[None], size=arr.shape, mode="bilinear", align_corners=False)[0, 0].numpy()
        out.append(postprocess(full >= threshold))
    return out


def _write_mask(mask: np.ndarray, path: Path, counts: dict[str, int], log: Callable[[str], None]) -> None:
    """Write a non-empty mask as 0 / 255 (an empty one is only counted), and count and log
    one that does not look like a lung mask."""
    if not mask.any():
        counts["empty_prediction"] += 1
        return
    Image.fromarray(mask.astype(np.uint8) * 255).save(path)
    counts["written"] += 1
    problems = mask_problems(measure_mask([mask], mask))
    if problems:
        counts["implausible"] += 1
        log(f"{path}: does not look like a lung mask ({'; '.join(problems)})")


def predict_masks(
    model_path: Path | str,
    records: Sequence[Record],
    out_dir: Path | str,
    *,
    only_missing: bool = True,
    overwrite: bool = False,
    batch_size: int = 8,
    threshold: float = 0.5,
    device: str = "auto",
    skip_bad: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, int]:
    """Predict lung masks and write ``<out_dir>/<stem>_mask.png`` (0 / 255, image size).

    ``only_missing`` skips records that already have a mask; existing files are kept unless
    ``overwrite``. An empty prediction writes no file (an empty mask would be refused by the
    loaders) and is counted. A written mask that does not look like a lung mask
    (:func:`~.mask_check.mask_problems`; the experiments refuse it unless accepted) is
    counted as ``implausible`` and named in the log. Two images with one stem raise
    ``ValueError`` before any work. Returns counts: ``written``, ``kept_existing``,
    ``has_mask``, ``empty_prediction``, ``implausible``, ``bad_image``.
    """
    todo = [r for r in records if not (only_missing and r.mask is not None)]
    counts = dict.fromkeys(("written", "kept_existing", "has_mask", "empty_prediction", "implausible", "bad_image"), 0)
    counts["has_mask"] = len(records) - len(todo)
    _check_stems(todo)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not overwrite:
        counts["kept_existing"] = sum(mask_path(out_dir, r).is_file() for r in todo)
        todo = [r for r in todo if not mask_path(out_dir, r).is_file()]
    if not todo:
        return counts
    model, meta = load_segmenter(model_path, device)
    for start in range(0, len(todo), batch_size):
        readable = _read_images(todo[start : start + batch_size], skip_bad, counts)
        if not readable:
            continue
        masks = _predict(model, [arr for _, arr in readable], int(meta["image_size"]), threshold)
        for (rec, _), mask in zip(readable, masks, strict=True):
            _write_mask(mask, mask_path(out_dir, rec), counts, log)
        log(f"predicted {min(start + batch_size, len(todo))}/{len(todo)}")
    return counts
