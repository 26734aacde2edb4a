"""The roofline unit model against its closed forms."""

import math
from dataclasses import replace

import pytest

from mappers.ir import Op, OperandFormats, OpKind
from sim.presets import load_hardware
from sim.roofline import roofline_cost

H100 = load_hardware("h100").system
FP16 = OperandFormats(act="fp16", weight="fp16", kv="fp16", acc="fp32")
CHIP = H100.chip
EFF = CHIP.efficiency


def _op(**kw):
    base = dict(name="x", kind=OpKind.GEMM, dims=(1, 1, 1), formats=FP16, flops=0)
    return Op(**(base | kw))


def test_compute_bound_gemm():
    m = n = k = 8192
    op = _op(dims=(m, n, k), flops=2 * m * n * k, weight_bytes=2 * n * k,
             act_bytes=2 * (m * k + m * n), unit="tensor")
    cost = roofline_cost(H100, op)
    peak = 132 * 4 * 16 * 32 * 2 * 1.83e9  # SPAD Table 3 organisation
    assert cost.bound == "compute"
    assert cost.time_s == pytest.approx(op.flops / (peak * EFF.tensor) + EFF.op_overhead_s,
                                        rel=1e-12)


def test_memory_bound_gemv():
    op = _op(dims=(1, 4096, 4096), flops=2 * 4096 * 4096, weight_bytes=2 * 4096 * 4096,
             act_bytes=2 * 8192, unit="tensor")
    cost = roofline_cost(H100, op)
    assert cost.bound == "memory"
    assert cost.time_s == pytest.approx(op.bytes / (3352e9 * EFF.memory) + EFF.op_overhead_s,
                                        rel=1e-12)


def test_fp8_doubles_tensor_rate():
    op = _op(flops=10**15, unit="tensor")
    assert (roofline_cost(H100, replace(op, formats=replace(FP16, act="fp8"))).compute_s
            == pytest.approx(roofline_cost(H100, op).compute_s / 2))


def test_ring_all_reduce():
    p, size = 8, 64 * 2**20
    system = replace(H100, tensor_parallel=p)
    op = _op(kind=OpKind.ALL_REDUCE, dims=(size // 2, p), comm_bytes=size, unit="link")
    cost = roofline_cost(system, op)
    link = system.interconnect
    expect = (2 * (p - 1) / p * size / (link.bandwidth_bytes_per_s * EFF.link)
              + 2 * (p - 1) * link.latency_s)
    assert cost.bound == "link"
    assert cost.comm_s == pytest.approx(expect, rel=1e-12)


def test_energy_is_flops_plus_dram_bits():
    op = _op(flops=10**12, weight_bytes=10**9, unit="tensor")
    e = CHIP.energy
    expect = 1e12 * e.tensor_pj_per_flop * 1e-12 + 8e9 * CHIP.memory.energy_pj_per_bit * 1e-12
    assert roofline_cost(H100, op).energy_j == pytest.approx(expect, rel=1e-12)
    no_energy = replace(H100, chip=replace(CHIP, energy=None))
    assert math.isnan(roofline_cost(no_energy, op).energy_j)


def test_unknown_unit_is_a_bug():
    with pytest.raises(ValueError, match="unknown unit"):
        roofline_cost(H100, _op(unit="warp-drive"))
