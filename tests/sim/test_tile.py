"""The chip-level tile model: bounds, mapping constraints, memoisation, engine use."""

import math

import pytest

from mappers.ir import Op, OperandFormats, OpKind
from sim.presets import load_hardware
from sim.units.systolic.tile import map_gemm, tile_cost, vector_cycles

SPAD_P = load_hardware("spad-prefill").system
H100 = load_hardware("h100").system
FP16 = OperandFormats(act="fp16", weight="fp16", kv="fp16", acc="fp32")


@pytest.mark.parametrize("system", [SPAD_P, H100], ids=["spad-prefill", "h100"])
@pytest.mark.parametrize("shape", [(1, 2048, 4096, 4096), (1, 1, 4096, 4096),
                                   (1, 64, 14336, 1792), (448, 1, 1024, 128), (1, 37, 53, 19)])
def test_mapping_respects_bounds(system, shape):
    chip = system.chip
    sa = chip.core.systolic_array
    batch, m, n, k = shape
    g = map_gemm(chip, "fp16", batch, m, n, k)
    ideal = batch * m * n * k / (chip.arrays * sa.rows * sa.cols)
    assert g.cycles >= g.compute_cycles >= ideal * (1 - 1e-12)
    assert 0 < g.utilization <= 1
    m1, n1, k1 = g.tile
    assert 2 * 2 * (m1 * k1 + k1 * n1) + 4 * m1 * n1 <= chip.core.l1.capacity_bytes
    assert g.dram_bytes >= batch * 2 * (m * k + k * n + m * n)  # each operand at least once
    dram_floor = g.dram_bytes / (chip.memory.bandwidth_bytes_per_s * chip.efficiency.memory)
    assert g.cycles / chip.tensor_freq_hz >= dram_floor


def test_gemv_is_memory_bound_and_poorly_utilised():
    op = Op(name="down", kind=OpKind.GEMM, dims=(1, 4096, 11008), formats=FP16,
            flops=2 * 4096 * 11008, weight_bytes=2 * 4096 * 11008,
            act_bytes=2 * (11008 + 4096), unit="tensor")
    c = tile_cost(H100, op)
    chip = H100.chip
    floor = op.bytes / (chip.memory.bandwidth_bytes_per_s * chip.efficiency.memory)
    assert c.bound == "memory"
    assert floor <= c.time_s - chip.efficiency.op_overhead_s <= 1.05 * floor
    assert c.utilization < 1 / chip.core.systolic_array.rows


def test_large_gemm_is_compute_bound_and_well_utilised():
    m, n, k = 8192, 8192, 8192
    op = Op(name="g", kind=OpKind.GEMM, dims=(m, n, k), formats=FP16, flops=2 * m * n * k,
            weight_bytes=2 * n * k, act_bytes=2 * (m * k + m * n), unit="tensor")
    c = tile_cost(H100, op)
    assert c.bound == "compute" and c.utilization > 0.5
    assert c.stall_cycles == pytest.approx(c.cycles - c.compute_s * H100.chip.tensor_freq_hz)


def test_mapping_is_memoised():
    map_gemm(SPAD_P.chip, "fp16", 1, 1000, 1000, 1000)
    hits = map_gemm.cache_info().hits
    map_gemm(SPAD_P.chip, "fp16", 1, 1000, 1000, 1000)
    assert map_gemm.cache_info().hits == hits + 1


def test_causal_attention_skips_masked_work():
    dims = (1, 32, 32, 2048, 2048, 128)
    full = 2 * 32 * 2048 * 2048 * 128
    base = dict(name="s", kind=OpKind.ATTN_SCORE, dims=dims, formats=FP16, act_bytes=0,
                kv_bytes=0, unit="tensor")
    causal = tile_cost(H100, Op(**base, flops=full // 2))
    bidirectional = tile_cost(H100, Op(**base, flops=full))
    assert causal.compute_s == pytest.approx(bidirectional.compute_s / 2)


def test_vector_cycles_closed_form():
    chip = SPAD_P.chip  # 512 vector units of 16 lanes, FMA
    assert vector_cycles(chip, 512 * 16 * 2 * 1000) == 1000
    assert vector_cycles(chip, 1) == 1
    assert math.isclose(vector_cycles(chip, 10**9) / chip.vector_freq_hz,
                        10**9 / chip.peak_vector_flops, rel_tol=1e-4)


@pytest.mark.parametrize("shape", [(2048, 4096, 4096), (8192, 11008, 4096), (256, 4096, 4096)])
def test_register_file_accumulators_free_l1_for_operands(shape):
    """With ``accumulator_bytes`` the C tile lives in registers: L1 holds only the two operand
    stages, the accumulators fit the register file, and the search (a superset of tiles) is
    never slower than with accumulators in L1."""
    sxm = load_hardware("h100-sxm").system.chip
    assert sxm.core.accumulator_bytes == 65536 * 4  # 64K 32-bit registers per SM
    m, n, k = shape
    g = map_gemm(sxm, "fp16", 1, m, n, k)
    m1, n1, k1 = g.tile
    assert 2 * 2 * (m1 * k1 + k1 * n1) <= sxm.core.l1.capacity_bytes
    assert 4 * m1 * n1 <= sxm.core.accumulator_bytes
    assert g.cycles <= map_gemm(H100.chip, "fp16", 1, m, n, k).cycles
