"""The h100-sxm preset against measurements on a real H100 SXM (benchmarks/calibration/).

Bands (issue 11, stated before looking at the numbers and listed in the calibration README):
at tile detail, each GEMM shape group's predicted/measured ratio has a median within 15% of 1
and no shape beyond 30%; whole Llama-2-7B steps, under the runtime preset matching how each was
measured (eager transformers for prefill, a CUDA graph for decode), within 20%. Groups the
model cannot meet are marked ``xfail(strict=True)`` with the modelling reason, so that they
fail loudly once the mechanism is fixed. The roofline keeps its own optimistic-bound band.
``h100-sxm`` is SPAD's ``h100`` plus register-file accumulators (the card has them; SPAD's
LLMCompass organisation does not): with accumulators in L1, SPAD's preset is L2-bound on large
GEMMs (1.03-1.37x of measured) and would miss the M >= 1024 band.
"""

import statistics

import pytest

from benchmarks.calibration.compare_h100 import (GROUPS, gemm_comparison, load_measured,
                                                 step_comparison)

DATA = load_measured()
GEMMS = gemm_comparison(DATA)
STEPS = {r["step"]: r for r in step_comparison(DATA)}

SMALL_KERNELS = pytest.mark.xfail(strict=True, reason=(
    "decode under cuda-graph is 0.73x (batch 1) and 0.799x (batch 16) of measured with 48 "
    "kernels per layer (the hand count of tests/sim/test_runtime_library.py, cuBLAS's split-K "
    "reductions and StaticCache's update included), each kernel's 1.17 us fixed time on top "
    "of its work. Against the profile of the same kernels (eager, static cache): in the step "
    "the GEMVs stream 2.4 TB/s, pdsim's 2.85; strided TensorIterator kernels take 2-3 us, not "
    "a 1-element kernel's 1.17 us, RMSNorm's mean 9 us at batch 16; cuDNN's SDPA is two "
    "kernels, 0.62 vs 0.42 ms at batch 1; per-step rotary/mask set-up is no op; graph replay "
    "takes 1.05-1.16 ms beyond the profiler's kernel sum. Only the step being compared "
    "measures these, so no parameter is taken from them"))


def test_measured_on_an_h100():
    assert DATA["env"]["gpu_name"].startswith("NVIDIA H100")


@pytest.mark.parametrize("group", [
    "M=1", "M=16", "M=64", "M=256", "M>=1024"])
def test_tile_gemms_within_band(group):
    ratios = [r["tile_ratio"] for r in GEMMS if GROUPS[group](r["m"])]
    assert len(ratios) >= 10
    worst = max(abs(x - 1) for x in ratios)
    assert abs(statistics.median(ratios) - 1) <= 0.15, ratios
    assert worst <= 0.30, ratios


@pytest.mark.parametrize("label, select", [
    ("gemv", lambda r: r["m"] == 1), ("large gemm", lambda r: r["m"] >= 1024)])
def test_roofline_is_an_optimistic_bound(label, select):
    """AttAcc's caps (80% tensor, 85% memory): up to 30% faster than the card, never more
    than 10% slower."""
    ratios = [r["ratio"] for r in GEMMS if select(r)]
    assert all(0.70 <= x <= 1.10 for x in ratios), ratios
    assert 0.80 <= statistics.median(ratios) <= 1.0


@pytest.mark.parametrize("step", [
    "prefill b1 L=512", "prefill b1 L=2048", "prefill b1 L=8192",
    pytest.param("decode b1 ctx=2048", marks=SMALL_KERNELS),
    pytest.param("decode b16 ctx=2048", marks=SMALL_KERNELS)])
def test_steps_within_band_under_matching_stack(step):
    r = STEPS[step]
    assert r["stack"] == ("eager" if step.startswith("prefill") else "cuda-graph")
    assert 0.80 <= r["stack_ratio"] <= 1.20, r


def test_without_a_runtime_steps_are_lower_bounds_of_the_unfused_implementation():
    """With no runtime, pdsim's op list is a fused stack's, so it must predict less than the
    measured GPU kernel time of eager transformers, but not absurdly less."""
    for r in STEPS.values():
        for key in ("predicted_s", "tile_s"):
            assert 0.45 * r["measured_gpu_s"] <= r[key] <= r["measured_gpu_s"], r
