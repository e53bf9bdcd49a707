r"""The isnet engine's speed ratios as pytest-benchmark benchmarks, on the CPU.

Left out of every ordinary run (``--benchmark-skip`` in the pytest options, and ``slow``); the
committed table comes from::

    python -m pytest tests/perf/test_speed_ratios.py --benchmark-only \
        --benchmark-json=reports/performance/isnet_speed.json
    python perf/render_speed.py reports/performance/isnet_speed.json   # writes reports/performance/isnet_speed.md

One benchmark per candidate, all in one process, one torch thread, the harness's allocator
setting (``benchmarks/run/allocator.py``), the cases of ``perf/isnet_cases.py`` (those
``perf/isnet_speed.py`` measures): batch 32 at 64 px, 3 channels,

* a training step (forward, loss, backward, clipping at norm 1, SGD step) of plain
  cross-entropy and of every ISNet variant, K = 2, 3 and 10, on the cpu profile's SmallCNN and
  on torchvision's ResNet18;
* a plain input-gradient pass, ``isnet.explain`` (LRP-epsilon, z^B input layer) and zennit's
  heatmap with the same rules (where zennit has a canonizer), on SmallCNN, ResNet18 and VGG11;
* inference of ``ISNet.export()`` and of the backbone.

Side by side: before every round of a candidate, its baseline (the plain step, the input-gradient
pass, the backbone's inference) runs once, timed apart from the round, so both see the same load
from the rest of the machine; ``extra_info`` holds those baseline times and says what each
benchmark is. The renderer divides the fastest round of each candidate by the fastest of its
baseline's runs. Nothing here asserts a time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest
import torch

import isnet
from benchmarks.resources import cpu_model
from benchmarks.run.allocator import keep_freed_buffers
from perf.isnet_cases import Scale, heatmap_candidates, make_step

pytestmark = pytest.mark.slow

SCALE = Scale(torch.device("cpu"), batch=32, size=64)
TRAIN_BACKBONES, KS = ("small", "resnet18"), (2, 3, 10)
HEAT_MODELS = ("small", "resnet18", "vgg11")
EXPORT_BACKBONE, EXPORT_K = "small", 10
#: rounds per candidate, after one untimed warm-up round
TRAIN_ROUNDS, HEAT_ROUNDS, EXPORT_ROUNDS = 7, 9, 41


@pytest.fixture(scope="module", autouse=True)
def one_thread_and_the_harness_allocator():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    keep_freed_buffers()
    yield
    torch.set_num_threads(threads)


def describe(benchmark, section: str, group: str, **what) -> None:
    benchmark.group = group
    benchmark.extra_info.update(section=section, batch=SCALE.batch, size=SCALE.size, threads=torch.get_num_threads(),
                                torch=torch.__version__, cpu=cpu_model(), load=os.getloadavg()[0], **what)


def side_by_side(benchmark, candidate: Callable[[], object], baseline: Callable[[], object] | None, rounds: int):
    """Benchmark ``candidate`` for ``rounds`` rounds after one warm-up round; with a ``baseline``,
    run and time it just before each round (outside the timed call) and keep its times, after
    its own warm-up, in ``extra_info["baseline_seconds"]``."""
    times: list[float] = []

    def run_baseline() -> None:
        start = time.perf_counter()
        baseline()
        times.append(time.perf_counter() - start)

    result = benchmark.pedantic(candidate, setup=None if baseline is None else run_baseline, rounds=rounds,
                                warmup_rounds=1, iterations=1)
    if baseline is not None:
        benchmark.extra_info["baseline_seconds"] = times[1:]
    return result


@pytest.mark.parametrize("backbone,k,candidate",
                         [(b, k, c) for b in TRAIN_BACKBONES for k in KS for c in ("plain", *isnet.VARIANTS)])
def test_training_step(benchmark, backbone: str, k: int, candidate: str) -> None:
    step = make_step(None if candidate == "plain" else candidate, k, backbone, SCALE)
    plain = None if candidate == "plain" else make_step(None, k, backbone, SCALE).run
    describe(benchmark, "train", f"train {backbone} K={k}", backbone=backbone, K=k, candidate=candidate,
             baseline="plain")
    side_by_side(benchmark, step.run, plain, TRAIN_ROUNDS)
    assert all(bool(torch.isfinite(p).all()) for p in step.backbone.parameters())


@pytest.mark.parametrize("model,candidate", [(m, c) for m in HEAT_MODELS for c in ("gradient", "ours", "zennit")])
def test_heatmap(benchmark, model: str, candidate: str) -> None:
    fns, missing = heatmap_candidates(model, SCALE)
    if candidate not in fns:
        pytest.skip(f"zennit on {model}: {missing}")
    describe(benchmark, "heatmap", f"heatmap {model}", model=model, candidate=candidate, baseline="gradient")
    gradient = None if candidate == "gradient" else fns["gradient"]
    heat = side_by_side(benchmark, fns[candidate], gradient, HEAT_ROUNDS)
    assert heat.shape == (SCALE.batch, 3, SCALE.size, SCALE.size)


@pytest.mark.parametrize("candidate", ["backbone", "exported"])
def test_inference(benchmark, candidate: str) -> None:
    step = make_step("selective", EXPORT_K, EXPORT_BACKBONE, SCALE)
    step.backbone.eval()
    describe(benchmark, "export", f"inference {EXPORT_BACKBONE}", backbone=EXPORT_BACKBONE, candidate=candidate,
             baseline="backbone")

    def inference(module: torch.nn.Module) -> Callable[[], torch.Tensor]:
        def infer() -> torch.Tensor:
            with torch.no_grad():
                return module(step.x)
        return infer

    backbone = inference(step.backbone)
    if candidate == "backbone":
        logits = side_by_side(benchmark, backbone, None, EXPORT_ROUNDS)
    else:
        logits = side_by_side(benchmark, inference(step.model.export()), backbone, EXPORT_ROUNDS)
    assert logits.shape == (SCALE.batch, EXPORT_K)
