"""The lung segmenter trains on mask-bearing collections and the masks command writes files."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.commands import lung_masks
from benchmarks.data.real import Record, load_collection, montgomery, shenzhen
from benchmarks.data.real.segmenter import load_segmenter, predict_masks, train_segmenter

from .trees import cxr, make_folder, make_montgomery, make_shenzhen, make_tbx11k, save


@pytest.fixture
def masked_records(tmp_path: Path) -> list[Record]:
    mc = make_montgomery(tmp_path / "montgomery", n_per_class=3, one_sided=0)
    sz = make_shenzhen(tmp_path / "shenzhen", tmp_path / "shenzhen-masks", n_per_class=3, unmasked=(1,))
    return montgomery.load(mc) + shenzhen.load(sz, masks_root=tmp_path / "shenzhen-masks")


def test_segmenter_learns_on_tiny_data_and_predicts(masked_records: list[Record], tmp_path: Path) -> None:
    model_path = tmp_path / "seg.pt"
    summary = train_segmenter(
        masked_records,
        model_path,
        image_size=32,
        widths=(4, 8),
        epochs=40,
        batch_size=4,
        lr=1e-2,
        max_steps=60,
        device="cpu",
        log=lambda _: None,
    )
    assert model_path.is_file() and summary["steps"] == 60
    assert set(summary["sources"]) == {"montgomery", "shenzhen"}
    assert summary["n_train"] + summary["n_val"] >= 11  # the unmasked Shenzhen image is not used
    assert summary["val_dice"] > 0.6  # the lungs sit at the same place in every toy image
    model, meta = load_segmenter(model_path)
    assert meta["image_size"] == 32 and meta["widths"] == [4, 8]
    unmasked = [r for r in masked_records if r.mask is None]
    out = tmp_path / "pred"
    counts = predict_masks(model_path, masked_records, out, device="cpu", log=lambda _: None)
    assert counts["has_mask"] == len(masked_records) - 1 and counts["written"] == 1
    written = out / f"{unmasked[0].stem}_mask.png"
    mask = np.asarray(Image.open(written))
    assert mask.shape == (30, 30) and set(np.unique(mask).tolist()) <= {0, 255}  # the image's own size
    # existing files are kept unless asked; an empty prediction writes nothing
    again = predict_masks(model_path, masked_records, out, device="cpu", log=lambda _: None)
    assert again["kept_existing"] == 1 and again["written"] == 0
    empty = predict_masks(model_path, unmasked, tmp_path / "none", threshold=1.01, device="cpu", log=lambda _: None)
    assert empty["empty_prediction"] == 1 and not list((tmp_path / "none").glob("*.png"))


def test_predict_refuses_two_images_with_one_stem(masked_records: list[Record], tmp_path: Path) -> None:
    a = Record(str(save(tmp_path / "a" / "x.png", cxr())), "normal", None, "s")
    b = Record(str(save(tmp_path / "b" / "x.png", cxr())), "normal", None, "s")
    with pytest.raises(ValueError, match="share the stem 'x'"):
        predict_masks(tmp_path / "whatever.pt", [a, b], tmp_path / "out")


def test_train_needs_masks_and_sizes(tmp_path: Path) -> None:
    recs = [Record(str(save(tmp_path / f"{i}.png", cxr())), "normal", None, "s") for i in range(3)]
    with pytest.raises(ValueError, match="lung masks"):
        train_segmenter(recs, tmp_path / "s.pt")
    with pytest.raises(ValueError, match="divisible"):
        train_segmenter(recs, tmp_path / "s.pt", image_size=30, widths=(4, 8, 16))


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    lung_masks.add_arguments(parser)
    return parser.parse_args(argv)


def test_masks_command_train_then_predict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # noqa: ANN001
    root = tmp_path / "data"
    make_montgomery(root / "montgomery", n_per_class=2, one_sided=0)
    make_shenzhen(root / "shenzhen", root / "shenzhen-masks", n_per_class=2, unmasked=())
    make_tbx11k(root / "tbx11k", n_per_class=1)
    model = tmp_path / "seg.pt"
    monkeypatch.setenv("ISNET_BENCHMARKS_DATA", str(root))
    args = _parse(
        [
            "train",
            "--out",
            str(model),
            "--size",
            "32",
            "--widths",
            "4",
            "8",
            "--epochs",
            "1",
            "--max-steps",
            "2",
            "--batch-size",
            "4",
            "--device",
            "cpu",
        ]
    )
    assert lung_masks.main(args) == 0 and model.is_file()
    assert "montgomery: 4 images with lung masks" in capsys.readouterr().out
    # threshold 0 keeps every pixel, so that the barely trained model writes a mask per image
    args = _parse(["predict", "--model", str(model), "--collection", "tbx11k", "--threshold", "0", "--device", "cpu"])
    assert lung_masks.main(args) == 0
    written = sorted(p.name for p in (root / "predicted-masks" / "tbx11k").glob("*.png"))
    assert written == ["h0000_mask.png", "s0000_mask.png", "tb0000_mask.png"]
    # the loaders pick the predicted masks up
    from benchmarks.data.real.records import mask_lookup

    recs = mask_lookup(load_collection("tbx11k", data_root=root), root / "predicted-masks" / "tbx11k")
    assert all(r.mask is not None for r in recs)
    # generic folder with an explicit output folder
    hosp = make_folder(tmp_path / "hosp", {"normal": 2}, masks=None)
    out = tmp_path / "hosp-pred"
    args = _parse(
        [
            "predict",
            "--model",
            str(model),
            "--collection",
            "folder",
            "--root",
            str(hosp),
            "--out",
            str(out),
            "--threshold",
            "0",
            "--device",
            "cpu",
        ]
    )
    assert lung_masks.main(args) == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["normal_0_mask.png", "normal_1_mask.png"]


def test_masks_command_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ISNET_BENCHMARKS_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="data root"):
        lung_masks.main(_parse(["train", "--out", str(tmp_path / "s.pt")]))
    monkeypatch.setenv("ISNET_BENCHMARKS_DATA", str(tmp_path))
    with pytest.raises(ValueError, match="unknown collection"):
        lung_masks.main(_parse(["predict", "--model", "m.pt", "--collection", "chexpert"]))
    make_tbx11k(tmp_path / "tbx11k", n_per_class=1)
    with pytest.raises(FileNotFoundError, match="masks train"):
        lung_masks.main(_parse(["predict", "--model", str(tmp_path / "absent.pt"), "--collection", "tbx11k"]))
    with pytest.raises(SystemExit):
        _parse(["predict"])  # --model and --collection are required
