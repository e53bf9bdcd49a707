"""Fake run records for the report tests, written through the run store's own writers.

Each fake run predicts a fixed share of its test images right (chosen by a generator seeded
from the run's names), so the accuracies, the paired tests and the claims are known in
advance without training anything.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from benchmarks.store import RunDir, atomic_write_json, run_path

SPLITS = ("biased", "unbiased", "deceiving")
SELECTION_RULE = "lowest mean validation loss among the selectable epochs (test rule)"
N_IMAGES = 300
N_EXPLAINED = 24
#: what the fake methods' records state as their role (any other method: "comparison")
ROLES = {"isnet": "reference", "isnet_fast": "reference_variant", "standard": "plain_baseline"}


def experiment_fields(experiment: str) -> dict:
    """The split roles and tags a fake experiment's records state: ``fake_real*`` has an
    in-distribution and an external split, every other one a synthetic bias."""
    if experiment.startswith("fake_real"):
        return {"test_splits": ["in_distribution", "external"], "id_split": "in_distribution",
                "shift_splits": ["external"], "experiment_tags": ["external_test"]}
    return {"test_splits": list(SPLITS), "id_split": "biased", "shift_splits": ["unbiased", "deceiving"],
            "experiment_tags": ["synthetic_bias"]}


def _rng(*parts: object) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("/".join(map(str, parts)).encode()))


def _predictions(accuracy: float, n: int, k: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    labels = np.arange(n) % k
    right = np.zeros(n, dtype=bool)
    right[rng.permutation(n)[: int(round(accuracy * n))]] = True
    predicted = np.where(right, labels, (labels + 1) % k)
    logits = rng.normal(0.0, 0.3, size=(n, k)).astype(np.float32)
    logits[np.arange(n), predicted] += 2.0
    return {"logits": logits, "labels": labels, "groups": np.zeros(n, dtype=np.int64), "index": np.arange(n)}


def write_run(
    root: Path,
    method: str,
    seed: int,
    accuracy: Mapping[str, float],
    *,
    experiment: str = "fake_bias",
    hparam_index: int = 0,
    val_accuracy: float = 0.9,
    inside: float = 0.6,
    infer_ms: float = 1.0,
    status: str = "ok",
    reason: str | None = None,
    bias_strength: float | None = None,
    n: int = N_IMAGES,
    k: int = 2,
    role: str | None = None,
    own: bool = True,
    black_background: bool = False,
    val_loss: Sequence[float] = (0.5,),
    selectable: Sequence[bool] | None = None,
    starts: list[dict] | None = None,
    image_size: int = 8,
    follows: float | None = None,
    faithful: bool | None = None,
    hparams_from_cli: Mapping[str, object] | None = None,
    explanation_scores: Mapping[str, float] | None = None,
) -> Path:
    """One finished (or failed) fake run record; returns its folder.

    ``val_loss``: the validation loss per epoch (its validation accuracy is ``val_accuracy``
    minus the loss / 10); ``own=False``: the method's own explainer fails (no gallery);
    ``black_background``: gallery images are 0 outside the mask; ``starts``: provenance's list
    of starts (absent when ``None``); ``follows``: the share of images whose prediction follows the
    marker of another class in a ``deceiving`` re-rendering of the biased split (counterfactual
    records; none when ``None``); ``faithful``: whether its heatmaps account for their logits
    (faithfulness fields; absent when ``None``); ``hparams_from_cli``: values set by ``run --hparams``
    (recorded as the harness records them); ``explanation_scores``: more measures, recorded for
    every explainer that did not fail."""
    data = {"n_test": n} if bias_strength is None else {"n_test": n, "bias_strength": bias_strength}
    config = {"experiment": experiment, "method": method, "seed": seed, "profile": "smoke",
              "hparams": {"lr": 0.001 * (hparam_index + 1), **(hparams_from_cli or {})}, "hparam_index": hparam_index}
    if hparams_from_cli:
        config["hparams_from_cli"] = dict(hparams_from_cli)
    run = RunDir(run_path(root, experiment, method, seed, config))
    profile = {"backbone": "tiny_cnn", "image_size": image_size, "epochs": len(val_loss), "data": data}
    run.write_json("config.json", {**config, "experiment_profile": profile, **experiment_fields(experiment),
                                   "role": role or ROLES.get(method, "comparison"), "selection_rule": SELECTION_RULE})
    provenance = {"git_commit": "abc123", "packages": {"torch": "2.x"}, "device": "cpu (test)", "python": "3.11",
                  "platform": "test", "data_checksum": f"sum-{experiment}"}
    run.write_json("provenance.json", provenance if starts is None else {**provenance, "starts": starts})
    epochs = _epochs(val_loss, val_accuracy, selectable)
    run.write_epochs(epochs)
    if status != "ok":
        run.write_json("summary.json", {"status": status, "reason": reason, "epochs": []})
        run.mark_done(status, reason=reason)
        return run.path
    summary = {"status": "ok", "train_seconds": 2.0 + seed, "val_accuracy": val_accuracy, "splits": {},
               "selection": _selection(epochs)}
    record = {"explained_images": N_EXPLAINED, "target": "true class", "class_names": [f"class {c}" for c in range(k)],
              "splits": {}}
    arrays: dict[str, np.ndarray] = {}
    predicted: dict[str, dict[str, np.ndarray]] = {}
    for split, acc in accuracy.items():
        pred = _predictions(acc, n, k, _rng(experiment, method, seed, hparam_index, split))
        run.write_predictions(split, pred)
        predicted[split] = pred
        summary["splits"][split] = {"accuracy": float(np.mean(pred["logits"].argmax(1) == pred["labels"])),
                                    "n": n, "loss": 0.5, "inference_seconds": infer_ms * n / 1000}
        rng = _rng("explain", experiment, method, seed, split)
        per = {}
        for explainer in ("own", "lrp", "input_x_gradient"):
            if explainer == "own" and not own:
                per[explainer] = {"error": "NotImplementedError: no heatmap of its own"}
                continue
            values = np.clip(rng.normal(inside, 0.03, N_EXPLAINED), 0, 1).astype(np.float32)
            arrays[f"{split}/{explainer}/relevance_inside_mask"] = values
            per[explainer] = {"relevance_inside_mask": float(values.mean()), "pointing_game": float(inside)}
            if faithful is not None:
                per[explainer].update({"background_relevance_share": 1 - inside, "sum_over_logit": 0.9 if faithful
                                       else -1.0, "sum_logit_correlation": 0.9 if faithful else -0.2,
                                       "absorbed_share": 0.2 if faithful else 1.5})
            per[explainer].update(explanation_scores or {})
        per["gradcam"] = {"error": "TypeError: no Conv2d for Grad-CAM"}
        record["splits"][split] = per
        if not own:
            continue
        masks = np.zeros((6, 8, 8), dtype=np.uint8)
        masks[:, 2:6, 2:6] = 1
        images = _rng("images", split).random((6, 1, 8, 8))
        arrays[f"{split}/gallery/heatmaps"] = rng.normal(0, 1, (6, 8, 8)).astype(np.float16)
        arrays[f"{split}/gallery/images"] = (images * masks[:, None] if black_background else images).astype(np.float16)
        arrays[f"{split}/gallery/masks"] = masks
        arrays[f"{split}/gallery/labels"] = np.arange(6) % k
    run.write_json("explanations.json", record)
    run.write_arrays("explanations.npz", arrays)
    if follows is not None:
        run.write_arrays("counterfactuals.npz", _deceiving_copy(predicted["biased"], follows, k,
                                                                _rng("follow", method, seed)))
    run.write_json("summary.json", summary)
    run.mark_done("ok")
    return run.path


def _deceiving_copy(pred: dict[str, np.ndarray], follows: float, k: int, rng: np.random.Generator
                    ) -> dict[str, np.ndarray]:
    """A ``deceiving`` re-rendering of the biased split whose marker points to the next class:
    a share ``follows`` of the images is predicted as that class, the rest as on the intact image."""
    intact, labels = pred["logits"].argmax(1), pred["labels"]
    marker = (labels + 1) % k
    chosen = np.zeros(len(labels), dtype=bool)
    chosen[rng.permutation(len(labels))[: int(round(follows * len(labels)))]] = True
    return {"biased/deceiving/pred": np.where(chosen, marker, intact).astype(np.int16),
            "biased/deceiving/background_class": marker.astype(np.int16),
            "biased/deceiving/donor": np.full(len(labels), -1, dtype=np.int32),
            "biased/deceiving/source": np.asarray(-1, dtype=np.int16),
            "biased/deceiving/kind": np.asarray("rerendered")}


def _epochs(val_loss: Sequence[float], val_accuracy: float, selectable: Sequence[bool] | None) -> list[dict]:
    flags = [True] * len(val_loss) if selectable is None else list(selectable)
    return [{"epoch": e, "train_loss": loss + 0.1, "val_loss": loss, "val_accuracy": val_accuracy - loss / 10,
             "val_cross_entropy": loss, "selectable": flag, "seconds": 2.0}
            for e, (loss, flag) in enumerate(zip(val_loss, flags, strict=True))]


def _selection(epochs: list[dict]) -> dict:
    """``summary.json``'s selection, by the harness's rule (lowest selectable validation loss)."""
    last = epochs[-1]
    selection = {"rule": SELECTION_RULE, "epochs": len(epochs), "last_epoch": last["epoch"],
                 "last_val_loss": last["val_loss"], "last_val_accuracy": last["val_accuracy"]}
    candidates = [e for e in epochs if e["selectable"]]
    if not candidates:
        return {**selection, "selected_epoch": last["epoch"], "fallback": "no selectable epoch"}
    best = min(candidates, key=lambda e: (e["val_loss"], e["epoch"]))
    return {**selection, "selected_epoch": best["epoch"], "selected_val_loss": best["val_loss"],
            "selected_val_accuracy": best["val_accuracy"]}


def write_errored(root: Path, method: str, seed: int, error: str, experiment: str = "fake_bias") -> Path:
    """A run that stopped on an exception: config and error.json, no done marker."""
    config = {"experiment": experiment, "method": method, "seed": seed, "profile": "smoke", "hparams": {},
              "hparam_index": 0}
    folder = run_path(root, experiment, method, seed, config)
    atomic_write_json(folder / "config.json", config)
    atomic_write_json(folder / "error.json", {"error": error, "traceback": "Traceback ...\n" + error})
    return folder


def damage(folder: Path) -> None:
    """Hand-edit a number of a finished record (its done marker no longer matches)."""
    summary = json.loads((folder / "summary.json").read_text())
    summary["splits"]["biased"]["accuracy"] = 1.0
    (folder / "summary.json").write_text(json.dumps(summary))


def holding_records(root: Path, seeds=(0, 1, 2)) -> Path:
    """Records where every claim of the paper holds."""
    for seed in seeds:
        write_run(root, "isnet", seed, {"biased": 0.99, "unbiased": 0.99, "deceiving": 0.99}, inside=0.9,
                  follows=0.02, faithful=True)
        write_run(root, "isnet_fast", seed, {"biased": 0.99, "unbiased": 0.98, "deceiving": 0.98}, inside=0.95,
                  follows=0.03, faithful=True)
        write_run(root, "standard", seed, {"biased": 0.99, "unbiased": 0.70, "deceiving": 0.30}, inside=0.4,
                  follows=0.7, faithful=True)
        write_run(root, "rrr", seed, {"biased": 0.97, "unbiased": 0.85, "deceiving": 0.70}, inside=0.6,
                  follows=0.3, faithful=True)
    return root


def failing_records(root: Path, seeds=(0, 1, 2)) -> Path:
    """Records that contradict every claim of the paper."""
    for seed in seeds:
        write_run(root, "isnet", seed, {"biased": 0.99, "unbiased": 0.80, "deceiving": 0.50}, inside=0.3, infer_ms=3.0,
                  follows=0.6, faithful=True)
        write_run(root, "standard", seed, {"biased": 0.99, "unbiased": 0.85, "deceiving": 0.60}, inside=0.5,
                  follows=0.4, faithful=True)
        write_run(root, "rrr", seed, {"biased": 0.97, "unbiased": 0.90, "deceiving": 0.80}, inside=0.6,
                  follows=0.2, faithful=True)
    return root
