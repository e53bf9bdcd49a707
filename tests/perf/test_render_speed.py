"""perf/render_speed.py on a hand-made pytest-benchmark JSON: known ratios, and --check."""

from __future__ import annotations

import json

from perf import render_speed

INFO = {"batch": 4, "size": 32, "threads": 1, "torch": "2.x", "cpu": "test CPU", "load": 1.5}


def _bench(section: str, group: str, candidate: str, seconds: float, beside: list[float] | None = None,
           rounds: int = 3, **info) -> dict:
    extra = {"section": section, "candidate": candidate, **INFO, **info}
    if beside is not None:
        extra["baseline_seconds"] = beside
    return {"group": group, "stats": {"min": seconds, "rounds": rounds}, "extra_info": extra}


def sample() -> dict:
    benches = [_bench("heatmap", "heatmap small", "gradient", 0.5, model="small"),
               _bench("heatmap", "heatmap small", "ours", 0.6, [0.55, 0.5], model="small"),
               _bench("heatmap", "heatmap resnet18", "gradient", 1.0, model="resnet18"),
               _bench("heatmap", "heatmap resnet18", "ours", 1.1, [1.0, 1.3], model="resnet18"),
               _bench("heatmap", "heatmap resnet18", "zennit", 2.4, [1.2, 1.5], model="resnet18")]
    for k, plain in ((2, 0.2), (3, 0.25)):
        benches.append(_bench("train", f"train small K={k}", "plain", plain, backbone="small", K=k))
        for i, variant in enumerate(render_speed.VARIANTS):  # ratios 2, 3, ... to a baseline run of 0.1 s
            benches.append(_bench("train", f"train small K={k}", variant, 0.1 * (2 + i), [0.3, 0.1, 0.2],
                                  backbone="small", K=k))
    benches += [_bench("export", "inference small", "backbone", 0.04, rounds=41, backbone="small"),
                _bench("export", "inference small", "exported", 0.042, [0.05, 0.042], rounds=41, backbone="small")]
    return {"benchmarks": benches}


def test_a_ratio_is_the_fastest_round_over_the_fastest_baseline_run_beside_it():
    page = render_speed.markdown(sample())
    assert "| SmallCNN | 0.500 | 0.600 | - | 1.20 | - |" in page  # zennit not measured: a dash
    assert "| ResNet18 | 1.000 | 1.100 | 2.400 | 1.10 | 0.55 |" in page  # 1.1 / 1.0 over 2.4 / 1.2
    assert "| 2 | 0.200 | 2.00 | 3.00 | 4.00 | 5.00 | 6.00 |" in page
    assert "| 3 | 0.250 | 2.00 | 3.00 | 4.00 | 5.00 | 6.00 |" in page
    assert "| SmallCNN | 0.0400 | 0.0420 | 1.00 |" in page
    assert "Batch 4, 32x32 px" in page and "3 (training steps), 3 (heatmaps) and 41 (inference) rounds" in page
    assert "as the benchmarks started: 1.5 to 1.5;" in page


def test_check_compares_with_the_written_page(tmp_path, capsys):
    source, out = tmp_path / "speed.json", tmp_path / "speed.md"
    source.write_text(json.dumps(sample()))
    assert render_speed.main([str(source), "--output", str(out), "--check"]) == 1  # nothing written yet
    assert render_speed.main([str(source), "--output", str(out)]) == 0
    assert render_speed.main([str(source), "--output", str(out), "--check"]) == 0
    out.write_text(out.read_text().replace("1.10", "1.00"))
    assert render_speed.main([str(source), "--output", str(out), "--check"]) == 1
    assert "differs from" in capsys.readouterr().out


def test_the_committed_page_is_the_render_of_the_committed_json():
    committed = render_speed.ROOT / "reports" / "performance" / "isnet_speed.json"
    assert render_speed.main([str(committed), "--check"]) == 0
