"""Record what a trained method does when the background changes (explainer-free).

For every test split with masks, the selected model predicts each counterfactual copy of the
split (:mod:`benchmarks.data.counterfactuals`: the data's exact re-renderings, then the
composites by the mask). The record keeps the predicted classes and what each changed
background points to (``counterfactuals.npz``), so the report can score and resample them,
and a summary per copy (``counterfactuals.json``: accuracy, flip rate against the intact
predictions, follows-background rate; :mod:`benchmarks.evaluation.behaviour`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from benchmarks.api import DataBundle, Method, TensorSplit
from benchmarks.data.counterfactuals import PASTE_RULE, as_split, counterfactual_sets
from benchmarks.evaluation.behaviour import per_image, summary
from benchmarks.run.batching import iterate_batches


@torch.no_grad()
def predicted_classes(method: Method, split: TensorSplit, batch_size: int, device: torch.device) -> np.ndarray:
    """The predicted class of every image of ``split``, in split order."""
    method.eval()
    out = [method.predict(b.images.to(device)).argmax(1).cpu() for b in iterate_batches(split, batch_size, None)]
    return torch.cat(out).numpy().astype(np.int16)


def behaviour_record(method: Method, bundle: DataBundle, splits: Sequence[str], intact: Mapping[str, np.ndarray],
                     batch_size: int, device: torch.device) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Per test split and counterfactual copy: a JSON summary and the arrays behind it.
    ``intact``: the predicted classes on each intact split (from its predictions)."""
    train = bundle.train if isinstance(bundle.train, TensorSplit) else None
    record: dict[str, Any] = {"class_names": list(bundle.class_names), "splits": {},
                              "paste_rule": PASTE_RULE}
    arrays: dict[str, np.ndarray] = {}
    for name in splits:
        split = bundle.tests[name]
        if not isinstance(split, TensorSplit) or split.masks is None:
            continue
        labels = split.labels.numpy()
        per_split: dict[str, Any] = {}
        for cf in counterfactual_sets(bundle.counterfactuals, name, split, train):
            pred = predicted_classes(method, as_split(split, cf.images), batch_size, device)
            bg = cf.background_class.numpy()
            values = per_image(pred, intact[name], labels, bg)
            source = split.group_names[cf.source] if 0 <= cf.source < len(split.group_names) else ""
            per_split[cf.name] = {"kind": cf.kind, "source": source, "n": len(labels), **summary(values)}
            arrays[f"{name}/{cf.name}/pred"] = pred
            arrays[f"{name}/{cf.name}/background_class"] = bg.astype(np.int16)
            arrays[f"{name}/{cf.name}/donor"] = cf.donor.numpy().astype(np.int32)
            arrays[f"{name}/{cf.name}/source"] = np.asarray(cf.source, dtype=np.int16)
            arrays[f"{name}/{cf.name}/kind"] = np.asarray(cf.kind)
        record["splits"][name] = per_split
    return record, arrays
