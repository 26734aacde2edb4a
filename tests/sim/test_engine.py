"""Whole runs: metric sanity against closed forms, the fast mode's error, determinism."""

import math
from dataclasses import replace

import pytest

from mappers.ir import Precision
from mappers.models import load_model
from sim.engine import Workload, footprint, simulate
from sim.errors import ConfigError
from sim.presets import load_hardware

H100 = load_hardware("h100").system
LLAMA = load_model("llama2-7b").config


def test_ttft_grows_with_prompt_length():
    ttft = [simulate(H100, LLAMA, Workload(prompt_tokens=p, gen_tokens=1)).summary["ttft_s"]
            for p in (128, 512, 2048, 4096)]
    assert all(a < b for a, b in zip(ttft, ttft[1:]))


def test_tbt_grows_with_context():
    steps = simulate(H100, LLAMA, Workload(prompt_tokens=1024, gen_tokens=64)).steps[1:]
    times = [s.time_s for s in steps]
    assert all(a < b for a, b in zip(times, times[1:]))
    assert [s.context for s in steps] == list(range(1024, 1024 + 63))


def test_llama2_7b_decode_on_h100_is_memory_bound():
    """Batch-1 decode time is within 10% of (weight + KV bytes) / achievable bandwidth."""
    result = simulate(H100, LLAMA, Workload())
    achievable = H100.chip.memory.bandwidth_bytes_per_s * H100.chip.efficiency.memory
    for step in result.steps[1:]:
        floor = (step.totals["weight_bytes"] + step.totals["kv_bytes"]) / achievable
        assert floor <= step.time_s <= 1.10 * floor
    assert result.summary["decode_memory_bound_fraction"] > 0.95


def test_prefill_is_compute_bound_and_decode_is_not():
    s = simulate(H100, LLAMA, Workload()).summary
    ridge = H100.chip.peak_tensor_flops("fp16") / H100.chip.memory.bandwidth_bytes_per_s
    assert s["decode_intensity_flop_per_byte"] < 2 < ridge
    assert s["prefill_memory_bound_fraction"] < 0.25


def test_metrics_are_consistent():
    w = Workload(batch=4, prompt_tokens=512, gen_tokens=32)
    result = simulate(H100, LLAMA, w)
    s = result.summary
    decode = [st.time_s for st in result.steps[1:]]
    assert s["e2e_s"] == pytest.approx(s["ttft_s"] + sum(decode), rel=1e-12)
    assert s["output_tokens_per_s"] == pytest.approx(4 * 32 / s["e2e_s"], rel=1e-12)
    assert s["tbt_mean_s"] == pytest.approx(sum(decode) / 31, rel=1e-12)
    assert s["tbt_p50_s"] <= s["tbt_p99_s"] <= max(decode)
    assert s["decode_steps"] == s["decode_steps_simulated"] == 31
    # steps are back to back
    for a, b in zip(result.steps, result.steps[1:]):
        assert b.start_s == pytest.approx(a.start_s + a.time_s, rel=1e-12)


def test_single_token_generation_has_no_decode():
    s = simulate(H100, LLAMA, Workload(gen_tokens=1)).summary
    assert s["decode_steps"] == 0 and math.isnan(s["tbt_mean_s"])
    assert s["e2e_s"] == s["ttft_s"]


@pytest.mark.parametrize("sample", [8, 32])
def test_decode_sampling_error_is_small(sample):
    w = Workload(prompt_tokens=2048, gen_tokens=1024)
    exact = simulate(H100, LLAMA, w).summary
    fast = simulate(H100, LLAMA, w, decode_sample=sample).summary
    assert fast["decode_steps_simulated"] == sample
    for key in ("e2e_s", "tbt_mean_s", "tbt_p99_s", "decode_energy_j", "decode_bytes",
                "decode_flops"):
        assert fast[key] == pytest.approx(exact[key], rel=1e-3), key


def test_same_inputs_same_numbers():
    a = simulate(H100, LLAMA, Workload(batch=2, gen_tokens=16))
    b = simulate(H100, LLAMA, Workload(batch=2, gen_tokens=16))
    assert a.summary == b.summary
    assert [s.time_s for s in a.steps] == [s.time_s for s in b.steps]


def test_capacity_is_checked():
    seventy = load_model("llama2-70b").config
    with pytest.raises(ConfigError, match="does not fit: one chip needs 13[0-9].[0-9] GB"):
        simulate(H100, seventy, Workload())
    tp8 = replace(H100, tensor_parallel=8)
    weights, kv = footprint(seventy, tp8, Workload())
    assert weights + kv < H100.chip.memory.capacity_bytes
    simulate(H100, seventy, Workload(gen_tokens=2), check_capacity=False)


def test_tensor_parallel_splits_decode_time():
    w = Workload(gen_tokens=8)
    one = simulate(H100, LLAMA, w).summary
    four = simulate(replace(H100, tensor_parallel=4), LLAMA, w).summary
    assert four["decode_comm_bytes"] > 0 == one["decode_comm_bytes"]
    assert one["tbt_mean_s"] / 4 < four["tbt_mean_s"] < one["tbt_mean_s"]


def test_unsupported_dtype_is_refused_before_running():
    a100 = load_hardware("a100").system
    with pytest.raises(ConfigError, match="'fp8' is not supported"):
        simulate(a100, LLAMA, Workload(precision=Precision(weight="fp8", activation="fp8",
                                                           kv="fp8")))


def test_int4_weights_halve_decode_weight_traffic():
    w8 = simulate(H100, LLAMA, Workload(gen_tokens=2, precision=Precision(weight="int8")))
    w4 = simulate(H100, LLAMA, Workload(gen_tokens=2, precision=Precision(weight="int4")))
    # the 65 norm gain vectors (4096 each) stay fp16 under both and do not halve
    norms = (2 * 32 + 1) * 4096 * 2
    assert (w8.steps[1].totals["weight_bytes"] - norms
            == 2 * (w4.steps[1].totals["weight_bytes"] - norms))
