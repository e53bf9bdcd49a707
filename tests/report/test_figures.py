"""Figures a reader can read without the code, and warnings where tables mix numerics."""

from __future__ import annotations

import itertools

import matplotlib.colors as mc
import matplotlib.pyplot as plt
import numpy as np
import pytest

from benchmarks.report import curves, figures, palette
from benchmarks.report.build import analysed, generate
from benchmarks.report.heatmap_gallery import GalleryData, Row, _heatmap_row, gallery, gallery_data, normalised, uniform

from .conftest import write_run

KEY = ("fake_bias", "smoke")


def _lab(color) -> np.ndarray:
    """CIELAB (D65) of an sRGB colour."""
    rgb = np.array(mc.to_rgb(color))
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ lin
    xyz /= [0.95047, 1.0, 1.08883]
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_every_method_gets_its_own_colour_not_a_shade_of_another():
    names = [f"method_{i}" for i in range(len(palette.DISTINCT))]
    colours = palette.method_colors(names)
    closest = min(np.linalg.norm(_lab(colours[a]) - _lab(colours[b])) for a, b in itertools.combinations(names, 2))
    assert closest >= 25  # tab20's light / dark pairs of one hue are 10-20 apart
    assert len(set(palette.method_colors([*names, "one_more"]).values())) == len(names) + 1
    every = palette.method_colors([*palette.BUILT_IN, "plugin_a", "plugin_b", "plugin_c", "plugin_d"])
    assert len(set(every.values())) == len(every)  # plugins that hash alike still differ


def test_a_method_has_one_colour_whatever_else_a_figure_shows():
    isnet = mc.to_rgb(palette.BUILT_IN["isnet"])
    assert palette.method_colors(["isnet", "standard"])["isnet"] == isnet
    assert palette.method_colors(["aaa", "gain", "isnet", "rrr"])["isnet"] == isnet
    alone, beside = palette.method_colors(["my_plugin"]), palette.method_colors(["isnet", "my_plugin"])
    assert alone["my_plugin"] == beside["my_plugin"] in [mc.to_rgb(c) for c in palette.SPARE]


def _bar_colours(fig) -> dict[str, set]:
    """Method -> the face colours of its bars, in a split-bar figure (bars sit at their method's tick)."""
    out: dict[str, set] = {}
    for ax in fig.axes:
        labels = [t.get_text() for t in fig.axes[-1].get_xticklabels()]
        for bar in ax.patches:
            method = labels[round(bar.get_x() + bar.get_width() / 2)]
            out.setdefault(method, set()).add(tuple(round(v, 4) for v in bar.get_facecolor()[:3]))
    return out


def test_accuracy_bars_keep_each_method_colour_and_stay_readable(tmp_path, monkeypatch):
    root = tmp_path / "records"
    methods = sorted(palette.BUILT_IN)  # the suite's 13 methods, all three splits: the widest chart
    for seed in (0, 1):
        for method in methods:
            write_run(root, method, seed, {"biased": 0.9, "unbiased": 0.7, "deceiving": 0.5}, n=60)
        write_run(root, "isnet", seed, {"biased": 0.9, "deceiving": 0.5}, n=60, experiment="fake_small")
    _, _, _, _, analysis = analysed(root)
    drawn = []
    monkeypatch.setattr(figures, "render", lambda fig: drawn.append(fig) or b"png")
    figures.split_bars(analysis, KEY)
    figures.split_bars(analysis, ("fake_small", "smoke"))
    wide, small = (_bar_colours(f) for f in drawn)
    isnet = {tuple(round(v, 4) for v in mc.to_rgb(palette.BUILT_IN["isnet"]))}
    assert wide["isnet"] == small["isnet"] == isnet  # was the first colour in one chart and another in the next
    assert all(len(c) == 1 for c in wide.values()) and len(wide) == len(methods)
    width, height = drawn[0].get_size_inches() * figures.DPI
    assert width <= 1000 and height >= 0.5 * width  # was 1939 x 397 px: shown at half size, fonts unreadable


def test_a_one_epoch_curve_has_whole_epoch_ticks(tmp_path, monkeypatch):
    root = tmp_path / "records"
    for seed in (0, 1):
        write_run(root, "isnet", seed, {"biased": 0.9}, val_loss=(0.5,))
    _, _, _, selected, analysis = analysed(root)
    drawn = []
    monkeypatch.setattr(curves, "render", lambda fig: drawn.append(fig) or b"png")
    curves.learning_curves(analysis.curves, analysis.convergence, selected, KEY)
    for ax in drawn[0].axes:
        assert [t for t in ax.get_xticks() if -0.5 <= t <= 0.5] == [0]  # was -0.4, -0.2, ..., 0.4
    assert curves.epoch_ticks(1) == [0] and curves.epoch_ticks(30) == [0, 5, 10, 15, 20, 25]
    assert curves.epoch_ticks(6) == [0, 1, 2, 3, 4, 5]


def test_a_uniform_heatmap_is_drawn_grey_with_a_readable_note():
    flat = np.full((8, 8), 0.5) + np.linspace(0, 0.01, 64).reshape(8, 8)  # an untrained attention map
    varied = np.linspace(-1, 1, 64).reshape(8, 8)
    data = GalleryData(np.zeros((2, 1, 8, 8)), np.ones((2, 8, 8)), np.array([0, 1]), ("a", "b"), (), True)
    fig, ax = plt.subplots()
    _heatmap_row(ax, Row("vit", 0, np.stack([flat, varied]), np.array([0, 1])), data)
    shown = np.ma.filled(np.ma.asarray(ax.images[0].get_array(), dtype=float), np.nan)
    assert np.isnan(shown[:, :8]).all()  # was solid dark red under a black note nobody could read
    assert np.isfinite(shown[:, 9:]).all()
    assert [t.get_text() for t in ax.texts] == ["uniform\nmap"]
    plt.close(fig)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    root = tmp_path_factory.mktemp("figures") / "records"
    for seed in (0, 1):
        write_run(root, "isnet", seed, {"biased": 0.9, "deceiving": 0.85}, n=60, black_background=True,
                  starts=[{"started": "t0", "threads": 1, "device": "cpu", "host": "a", "torch": "2.x",
                           "resumed_from_epoch": None}])
        write_run(root, "standard", seed, {"biased": 0.9, "deceiving": 0.5}, n=60, black_background=True,
                  starts=[{"started": "t0", "threads": 1, "device": "cpu", "host": "a", "torch": "2.x",
                           "resumed_from_epoch": None},
                          {"started": "t1", "threads": 2, "device": "cpu", "host": "a", "torch": "2.x",
                           "resumed_from_epoch": 0}][: 1 + seed])
        write_run(root, "no_explainer", seed, {"biased": 0.9, "deceiving": 0.5}, n=60, own=False, image_size=28)
    return root


def test_the_gallery_names_classes_and_shows_predictions_and_missing_heatmaps(records):
    collection, frame, _, selected, analysis = analysed(records)
    data = gallery_data(collection, selected, KEY, "deceiving", analysis.explanation_errors)
    assert data.class_names == ("class 0", "class 1")
    rows = {r.method: r for r in data.rows}
    assert rows["no_explainer"].heatmaps is None
    assert rows["no_explainer"].missing == "no heatmap (NotImplementedError)"
    path = frame[(frame["method"] == "standard") & (frame["seed"] == 0) & (frame["split"] == "deceiving")]["path"]
    logits = collection.arrays(path.iloc[0], "predictions/deceiving.npz")["logits"]
    np.testing.assert_array_equal(rows["standard"].predicted, logits[:6].argmax(1))
    png, text = gallery(collection, selected, KEY, "deceiving", analysis.explanation_errors)
    assert png.startswith(b"\x89PNG") and "seed 0 of every method" in text


def test_a_heatmap_that_is_zero_everywhere_is_no_heatmap_and_a_flat_one_is_uniform():
    assert uniform(normalised(np.stack([np.full((4, 4), 1.0), np.linspace(0.97, 1.0, 16).reshape(4, 4),
                                        np.linspace(0.5, 1.0, 16).reshape(4, 4)]))[0]).tolist() == [True, True, False]
    heat, empty = normalised(np.stack([np.zeros((4, 4)), np.full((4, 4), -2.0), np.full((4, 4), np.nan)]))
    assert empty.tolist() == [True, False, True]
    assert np.isnan(heat[0]).all() and (heat[1] == -1).all()


def test_figure_titles_state_the_trained_size_and_times_stay_positive(records):
    _, _, _, selected, _ = analysed(records)
    assert figures.trained_size(selected, KEY) == "8–28 px"
    lower, upper = figures.time_arms(np.array([1.0, 5.0]), np.array([3.0, 1.0]))
    assert lower.tolist() == [1.0, 1.0] and upper.tolist() == [3.0, 1.0]


def test_the_report_notes_trivial_scores_and_mixed_numerics(records):
    files, _ = generate(records, figures=False)
    text = files["README.md"].decode()
    assert "*Trivial by construction:* input × gradient" in text
    assert "**Mixed numerics.** The runs of these tables were trained under 3 settings" in text
    assert "cpu, 1 thread + cpu, 2 threads (resumed under another setting): 1 run" in text
    assert "cpu (test): 2 runs" in text  # records without a list of starts: their recorded device
