"""Per-operand precision: weights stream at their own width on every unit model.

References are independent of the models under test: the weight bytes of a llama2-7b decode
step in closed form from its published dimensions (hidden 4096, MLP 11008, 32 layers, vocab
32000; Touvron et al. 2023, Table 1 and the released config), and a DRAM-bound GEMV's time as
its bytes over the preset's achievable bandwidth (3352 GB/s x the memory efficiency).
"""

from dataclasses import replace

import pytest

from mappers.ir import Op, OperandFormats, OpKind, Phase, Precision
from mappers.models import load_model
from sim.engine import Workload, stage_footprints
from sim.presets import load_hardware
from sim.step import compile_step
from sim.units.cid import ops as cid_ops
from sim.units.cid.quant import GemvFormat
from sim.units.cim.cost import cim_op_result
from sim.units.cim.residency import slot_unit
from sim.units.systolic.tile import tile_cost

LLAMA = load_model("llama2-7b").config
H100 = load_hardware("h100").system
BITS = {"fp16": 16, "int8": 8, "int4": 4}

#: Weights one batch-1 decode step reads: every layer's projections and the LM head (the
#: norms' 65 x 4096 weights and the one embedding row, 0.004% of it, are left out).
LLAMA_DECODE_WEIGHTS = 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008) + 32000 * 4096

#: Bytes besides the weights: the KV cache of 17 tokens x 32 layers (8.9 MB) and the
#: activations (under 2 MB) are at most 0.33% of the int4 weights; 1% bounds them.
TOLERANCE = 0.01


def _decode(weight: str, detail: str, scale_group: int = 0):
    return compile_step(LLAMA, H100, phase=Phase.DECODE, batch=1, new_tokens=1, context=16,
                        precision=Precision(weight=weight, scale_group=scale_group),
                        detail=detail)


@pytest.mark.parametrize("detail", ["tile", "roofline"])
def test_narrower_weights_decode_faster(detail):
    """fp16 > int8 > int4 in decode step time: weights stream at their own width."""
    t = [_decode(w, detail).time_s for w in ("fp16", "int8", "int4")]
    assert t[0] > t[1] > t[2]
    # memory bound: each halving of the weights saves well over a third of the step
    assert t[1] < 0.6 * t[0] and t[2] < 0.65 * t[1]


@pytest.mark.parametrize("detail", ["tile", "roofline"])
@pytest.mark.parametrize("weight", ["fp16", "int8", "int4"])
def test_decode_dram_bytes_are_the_weight_bytes(detail, weight):
    charged = _decode(weight, detail).dram_bytes
    closed = LLAMA_DECODE_WEIGHTS * BITS[weight] / 8
    assert closed <= charged <= (1 + TOLERANCE) * closed


@pytest.mark.parametrize("detail", ["tile", "roofline"])
def test_group_scales_are_read_with_the_weights(detail):
    """int4 with one fp16 scale per 128 weights (GPTQ/AWQ's usual group): 4 + 16/128 bits per
    weight, every GEMM's K (4096, 11008) a multiple of 128."""
    charged = _decode("int4", detail, scale_group=128).dram_bytes
    closed = LLAMA_DECODE_WEIGHTS * (4 + 16 / 128) / 8
    assert closed <= charged <= (1 + TOLERANCE) * closed
    assert _decode("int4", detail).time_s < _decode("int4", detail, 128).time_s \
        < _decode("int8", detail).time_s


@pytest.mark.parametrize("pp", [1, 2])
def test_group_scales_count_in_the_weight_footprint(pp):
    """Every K of llama2-7b's GEMMs is a multiple of 128, so the scales held are exactly one
    fp16 per 128 matrix weights, however the layers are split over pipeline stages."""
    system = replace(H100, pipeline_parallel=pp)
    plain, scaled = (stage_footprints(LLAMA, system, Workload(
        precision=Precision(weight="int4", scale_group=g))) for g in (0, 128))
    extra = [s[0] - p[0] for s, p in zip(scaled, plain)]
    assert sum(extra) == LLAMA_DECODE_WEIGHTS // 128 * 2
    assert all(e > 0 for e in extra) and [s[1] for s in scaled] == [p[1] for p in plain]


@pytest.mark.parametrize("weight", ["fp16", "int8", "int4"])
def test_dram_bound_gemv_time_is_weight_bytes_over_bandwidth(weight):
    """A 4096 x 11008 GEMV at tile detail takes its weight bytes over the achievable DRAM
    bandwidth (plus the op overhead and a first-tile fetch, under 3% here)."""
    n, k = 4096, 11008
    fmt = OperandFormats(act="fp16", weight=weight, acc="fp32")
    wbytes = n * k * BITS[weight] // 8
    op = Op(name="down", kind=OpKind.GEMM, dims=(1, n, k), formats=fmt, flops=2 * n * k,
            weight_bytes=wbytes, act_bytes=2 * (n + k), unit="tensor")
    cost = tile_cost(H100, op)
    eff = H100.chip.efficiency
    reference = wbytes / (3352e9 * eff.memory)
    assert cost.bound == "memory"
    assert reference <= cost.time_s - eff.op_overhead_s <= 1.03 * reference


def test_compute_bound_gemm_keeps_the_activation_mac_rate():
    """Compute-bound cycles are those of the activation format: int8 weights dequantised into
    fp16 MACs never beat the arrays' fp16 MAC rate (int8 MACs would run twice as fast).
    Reference: one MAC per PE per cycle in fp16 over H100's 132 x 4 x 16 x 32 PEs (SPAD
    Table 3 organisation) at 1.83 GHz."""
    m = n = k = 8192
    floor = m * n * k / (132 * 4 * 16 * 32 * 1.83e9)
    costs = []
    for weight in ("fp16", "int8"):
        op = Op(name="g", kind=OpKind.GEMM, dims=(m, n, k),
                formats=OperandFormats(act="fp16", weight=weight, acc="fp32"),
                flops=2 * m * n * k, weight_bytes=n * k * BITS[weight] // 8,
                act_bytes=2 * (m * k + m * n), unit="tensor")
        costs.append(tile_cost(H100, op))
    assert all(c.bound == "compute" for c in costs)
    # narrower B tiles let the search pick longer k-steps (fewer pipeline refills), so the
    # two differ a little, both above the fp16 floor
    assert all(floor <= c.compute_s <= 1.5 * floor for c in costs)


def test_operand_formats_checked():
    with pytest.raises(Exception, match="weight dtype"):
        OperandFormats(act="fp16", weight="int3")
    with pytest.raises(ValueError, match="no kv operand"):
        OperandFormats(act="fp16").bits("kv")
    assert OperandFormats(act="fp16", weight="int4").bits("weight") == 4


def _scaled_gemv(weight: str, unit: str, n: int = 4096, k: int = 4096) -> tuple[Op, Op]:
    """A decode GEMV of ``weight`` weights, without and with group-16 fp16 scales (one extra
    bit per weight: byte counts alone would now say 9 or 5 bits)."""
    scales = n * k // 16 * 2
    plain = Op(name="g", kind=OpKind.GEMM, dims=(1, n, k),
               formats=OperandFormats(act="fp16", weight=weight, acc="fp32"),
               flops=2 * n * k, weight_bytes=n * k * BITS[weight] // 8, act_bytes=2 * (n + k),
               unit=unit)
    scaled = replace(plain, formats=replace(plain.formats, scale_bytes=scales),
                     weight_bytes=plain.weight_bytes + scales)
    return plain, scaled


def test_cim_reads_weight_bits_from_formats_not_bytes():
    unit = slot_unit(load_hardware("halo-package").system.chip.cim)
    plain, scaled = _scaled_gemv("int8", "cim")
    r, p = cim_op_result(scaled, unit), cim_op_result(plain, unit)
    assert r.weight_bits == 8 and r.input_bits == 16
    # widths and timing come from the formats; the scales (held in the digital periphery)
    # are only loaded with the weights: 4096 x 4096 / 16 fp16 scales
    assert (r.slices, r.input_cycles, r.compute_s) == (p.slices, p.input_cycles, p.compute_s)
    assert r.program_bytes - p.program_bytes == 4096 * 4096 // 16 * 2


def test_cid_reads_weight_width_from_formats_not_bytes():
    cent = load_hardware("cent").system
    plain, scaled = _scaled_gemv("int8", "cid")
    # fp16 inputs in the global buffer beside int8 weights (sim.units.cid.quant)
    reference = cid_ops.unit_gemv(cent.chip.cid, 4096, 4096, "int8",
                                  fmt=GemvFormat(act="fp16"))
    assert cid_ops.cid_cost(cent, scaled).time_s == reference.time_s
    assert cid_ops.cid_cost(cent, plain).time_s == reference.time_s
