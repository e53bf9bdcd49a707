"""The sample gallery renders every split of a bundle to a PNG."""

from __future__ import annotations

from benchmarks.commands import data_gallery
from benchmarks.commands.data_gallery import _pick, render_gallery
from benchmarks.experiments import biased_mnist


def test_gallery_writes_a_png(tmp_path) -> None:
    spec = biased_mnist.biased_mnist.__experiment_spec__
    bundle = spec.build(spec.profile("smoke"), 0, tmp_path / "cache")
    path = render_gallery(bundle, tmp_path / "figures" / "samples.png", per_split=4, title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pick_cycles_through_classes() -> None:
    import numpy as np

    assert _pick(np.array([2, 2, 0, 1, 0]), 4) == [2, 3, 0, 4]


def test_title_states_the_size_the_profile_trains_at(tmp_path, monkeypatch) -> None:
    spec = biased_mnist.biased_mnist.__experiment_spec__
    titles = []
    monkeypatch.setattr(data_gallery, "render_gallery", lambda bundle, path, per_split, title: titles.append(title))
    data_gallery.gallery_for(spec, "smoke", tmp_path / "cache", tmp_path)
    assert f"trained at {spec.profile('smoke').image_size} px" in titles[0]
