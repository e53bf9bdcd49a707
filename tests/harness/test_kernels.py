"""The CPU kernels are capped at AVX2 when the harness is imported first, and worker processes
compute as their parent does."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from benchmarks.run import kernels

needs_avx2 = pytest.mark.skipif("avx2" not in kernels.cpu_flags(), reason="this CPU has no AVX2")


def _probe(code: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in (*kernels.PINNED, kernels.OPT_OUT)}
    report = ("\nimport json, os, torch\nprint(json.dumps({'aten': torch.backends.cpu.get_cpu_capability(), "
              "'env': {k: os.environ.get(k) for k in ('ATEN_CPU_CAPABILITY', 'ISNET_BENCHMARKS_KERNELS')}}))")
    out = subprocess.run([sys.executable, "-c", code + report], env={**clean, **env}, capture_output=True, text=True,
                         check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


@needs_avx2
@pytest.mark.slow
def test_importing_the_harness_first_caps_the_kernels_at_avx2():
    got = _probe("import benchmarks")
    assert got["aten"] == "AVX2" and got["env"]["ATEN_CPU_CAPABILITY"] == "avx2"


@needs_avx2
@pytest.mark.slow
def test_torch_first_leaves_native_kernels_and_tells_the_workers():
    got = _probe("import torch, benchmarks")
    assert got["env"]["ATEN_CPU_CAPABILITY"] is None and got["env"]["ISNET_BENCHMARKS_KERNELS"] == "native"


@needs_avx2
@pytest.mark.slow
def test_the_opt_out_is_respected():
    got = _probe("import benchmarks", ISNET_BENCHMARKS_KERNELS="native")
    assert got["env"]["ATEN_CPU_CAPABILITY"] is None


def test_pinning_a_given_environment_and_describing_the_kernels():
    env: dict[str, str] = {"MKL_CBWR": "COMPATIBLE"}
    added = kernels.pin_cpu_kernels(env)
    if "avx2" in kernels.cpu_flags():
        assert env["MKL_CBWR"] == "COMPATIBLE" and "MKL_CBWR" not in added  # a user's setting stays
        assert added == {k: v for k, v in kernels.PINNED.items() if k != "MKL_CBWR"}
    else:
        assert added == {}
    described = kernels.describe()
    assert {"cpu", "cpu_id", "kernel_flags", "aten_capability", "caps", "torch", "onednn", "mkl", "threads"} \
        <= set(described)
