"""``python -m benchmarks masks {train,predict}``: lung masks for collections without them.

    # train a lung U-Net on every mask-bearing collection found under the data root
    python -m benchmarks masks train --data-root $ISNET_BENCHMARKS_DATA --out segmenter.pt

    # write <stem>_mask.png for TBX11K's images into <data root>/predicted-masks/tbx11k/
    python -m benchmarks masks predict --model segmenter.pt --collection tbx11k

``predict`` writes into ``<data root>/predicted-masks/<collection>/`` unless ``--out`` is
given; the real-data experiments read that folder for images without a mask.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

MASKED_COLLECTIONS = ("covid-qu-ex", "covid-chestxray-dataset", "montgomery", "shenzhen")
DATA_ENV = "ISNET_BENCHMARKS_DATA"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``train`` and ``predict`` sub-commands to ``parser``."""
    sub = parser.add_subparsers(dest="masks_command", required=True, metavar="{train,predict}")

    train = sub.add_parser("train", help="train a lung U-Net on the mask-bearing collections")
    train.add_argument("--data-root", type=Path, help=f"folder of the collections (default: ${DATA_ENV})")
    train.add_argument(
        "--collections",
        nargs="+",
        metavar="NAME",
        help=f"collections under the data root to train on (default: those of {', '.join(MASKED_COLLECTIONS)} present)",
    )
    train.add_argument(
        "--folder",
        nargs="+",
        type=Path,
        default=[],
        metavar="PATH",
        help="extra generic folders (<root>/<class>/ + masks) to train on",
    )
    train.add_argument("--out", type=Path, required=True, help="where to save the segmenter (.pt)")
    train.add_argument("--size", type=int, default=256, help="training image size (default 256)")
    train.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64, 128], help="U-Net widths per level")
    train.add_argument("--epochs", type=int, default=20)
    train.add_argument("--batch-size", type=int, default=8)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--max-steps", type=int, help="stop after this many optimisation steps")
    train.add_argument("--max-per-collection", type=int, help="use at most this many masked images per collection")
    train.add_argument("--cache-dir", type=Path, help="preprocessing cache (default: none)")
    train.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--skip-bad", action="store_true", help="skip unreadable images / empty masks (counted)")

    predict = sub.add_parser("predict", help="write <stem>_mask.png for a collection's images")
    predict.add_argument("--model", type=Path, required=True, help="segmenter saved by `masks train`")
    predict.add_argument(
        "--collection",
        required=True,
        help="collection name (covid-qu-ex, covid-chestxray-dataset, brixia, montgomery, shenzhen, "
        "tbx11k) or 'folder' for the generic layout",
    )
    predict.add_argument("--root", type=Path, help="the collection's folder (default: <data root>/<collection folder>)")
    predict.add_argument("--data-root", type=Path, help=f"folder of the collections (default: ${DATA_ENV})")
    predict.add_argument("--out", type=Path, help="output folder (default: <data root>/predicted-masks/<collection>/)")
    predict.add_argument("--all", action="store_true", help="also predict images that already have a mask")
    predict.add_argument("--overwrite", action="store_true", help="replace masks already written")
    predict.add_argument("--batch-size", type=int, default=8)
    predict.add_argument("--threshold", type=float, default=0.5)
    predict.add_argument("--device", default="auto")
    predict.add_argument("--skip-bad", action="store_true", help="skip unreadable images (counted)")


def _data_root(value: Path | None, required: bool) -> Path | None:
    root = value if value is not None else (Path(os.environ[DATA_ENV]) if os.environ.get(DATA_ENV) else None)
    if root is None:
        if required:
            raise FileNotFoundError(f"no data root: pass --data-root or set {DATA_ENV}")
        return None
    if not root.is_dir():
        raise FileNotFoundError(f"data root {str(root)!r} is not a folder")
    return root


def cmd_train(args: argparse.Namespace) -> int:
    from benchmarks.data.real import COLLECTIONS, load_collection
    from benchmarks.data.real.segmenter import train_segmenter
    from benchmarks.data.real.splitting import subsample

    root = _data_root(args.data_root, required=not args.folder)
    names = args.collections
    if names is None:
        names = [n for n in MASKED_COLLECTIONS if root is not None and (root / COLLECTIONS[n].folder).is_dir()]
    records = []
    for name in names:
        recs = [r for r in load_collection(name, data_root=root) if r.mask is not None]
        records += subsample(recs, args.max_per_collection) if args.max_per_collection else recs
        print(f"{name}: {len(recs)} images with lung masks")
    for path in args.folder:
        recs = [r for r in load_collection("folder", path) if r.mask is not None]
        records += subsample(recs, args.max_per_collection) if args.max_per_collection else recs
        print(f"{path}: {len(recs)} images with lung masks")
    if not records:
        raise ValueError("no image with a lung mask found: name --collections under --data-root, or --folder")
    summary = train_segmenter(
        records,
        args.out,
        image_size=args.size,
        widths=tuple(args.widths),
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        max_steps=args.max_steps,
        device=args.device,
        seed=args.seed,
        cache_dir=args.cache_dir,
        on_bad="skip" if args.skip_bad else "error",
    )
    print(json.dumps(summary, indent=2))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from benchmarks.data.real import COLLECTIONS, load_collection
    from benchmarks.data.real.bundle import PREDICTED_MASKS
    from benchmarks.data.real.segmenter import predict_masks

    root = _data_root(args.data_root, required=args.root is None or args.out is None)
    if args.collection != "folder" and args.collection not in COLLECTIONS:
        raise ValueError(f"unknown collection {args.collection!r}; known: {sorted(COLLECTIONS) + ['folder']}")
    if args.collection == "folder" and args.root is None:
        raise ValueError("--collection folder needs --root")
    records = load_collection(args.collection, args.root, data_root=root)
    if args.out is not None:
        out = args.out
    else:
        source = args.root.name if args.collection == "folder" else args.collection
        out = root / PREDICTED_MASKS / source  # type: ignore[operator]
    counts = predict_masks(
        args.model,
        records,
        out,
        only_missing=not args.all,
        overwrite=args.overwrite,
        batch_size=args.batch_size,
        threshold=args.threshold,
        device=args.device,
        skip_bad=args.skip_bad,
    )
    print(json.dumps({"out": str(out), **counts}, indent=2))
    return 0


def main(args: argparse.Namespace) -> int:
    """Run ``masks train`` or ``masks predict``; returns the exit status."""
    if getattr(args, "masks_unavailable", False):
        print("error: the masks command is unavailable", file=sys.stderr)
        return 2
    if args.masks_command == "train":
        return cmd_train(args)
    if args.masks_command == "predict":
        return cmd_predict(args)
    raise ValueError(f"unknown masks command {args.masks_command!r}")
