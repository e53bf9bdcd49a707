"""perf/timing.py and perf/isnet_breakdown.py: interleaving, out-of-memory handling, the
profiler split and the floors (known answers; no test looks at a wall-clock time)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from perf.isnet_breakdown import breakdown_row, conv_units, floor, split_events
from perf.timing import fastest_times, is_out_of_memory


def test_fastest_times_warms_up_then_alternates_the_order():
    calls: list[str] = []
    fns = {k: (lambda k=k: calls.append(k)) for k in "abc"}
    times, failed = fastest_times(fns, reps=3)
    assert calls == list("abc") + list("abc") + list("cba") + list("abc")
    assert set(times) == set("abc") and not failed
    assert all(t >= 0 for t in times.values())


def test_a_candidate_out_of_memory_is_dropped_not_fatal():
    calls: list[str] = []

    def oom() -> None:
        calls.append("big")
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 80 GiB")

    times, failed = fastest_times({"small": lambda: calls.append("small"), "big": oom}, reps=2)
    assert set(times) == {"small"}
    assert "out of memory" in failed["big"]
    assert calls.count("big") == 1  # not retried after the warm-up failed


def test_other_errors_propagate():
    def broken() -> None:
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        fastest_times({"broken": broken}, reps=1)
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_conv_units_and_floor():
    assert [conv_units(v, 10) for v in ("selective", "stochastic", "dual", "original", "grad_input")] == [2, 2, 4, 11,
                                                                                                           11]
    # plain step: 0.6 in convolutions; one map adds one more plain step's convolutions
    assert floor("selective", 3, 0.6) == pytest.approx(1.6)
    assert floor("original", 3, 0.6) == pytest.approx(1 + 3 * 0.6)
    assert floor("dual", 3, 0.5) == pytest.approx(2.5)


def _event(key: str, cpu_us: float, device_us: float, device_type: str) -> SimpleNamespace:
    return SimpleNamespace(key=key, self_cpu_time_total=cpu_us, self_device_time_total=device_us,
                           device_type=f"DeviceType.{device_type}")


def test_split_events_cpu_counts_operator_self_time():
    events = [_event("aten::mkldnn_convolution", 300, 0, "CPU"), _event("aten::convolution_backward", 200, 0, "CPU"),
              _event("aten::add", 100, 0, "CPU"), _event("aten::relu", 400, 0, "CPU")]
    assert split_events(events, cuda=False) == pytest.approx((500e-6, 500e-6))


def test_split_events_cuda_counts_kernels_once_through_their_operators():
    events = [_event("aten::cudnn_convolution", 50, 3000, "CPU"), _event("aten::convolution_backward", 40, 1000, "CPU"),
              _event("aten::mul", 10, 500, "CPU"),
              _event("sm90_xmma_fprop_implicit_gemm", 0, 3000, "CUDA"),  # the kernel's own entry: not counted again
              _event("elementwise_kernel", 0, 500, "CUDA")]
    assert split_events(events, cuda=True) == pytest.approx((4000e-6, 500e-6))


def test_breakdown_row_is_in_units_of_the_plain_step():
    split = {"plain": (0.6, 0.3, 1.0), "selective": (1.2, 0.9, 2.5)}
    row = breakdown_row(split, "resnet50", 3)
    assert row["plain_s"] == 1.0
    assert row["plain"] == pytest.approx({"conv": 0.6, "other": 0.3, "gap": 0.1, "total": 1.0})
    assert row["selective"] == pytest.approx({"conv": 1.2, "other": 0.9, "gap": 0.4, "total": 2.5})
