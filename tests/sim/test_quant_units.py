"""Quantized weights charged where the work is done (issue 14, Deliver 2): scale bytes, the CiD
near-bank unit's dequantization, CiM bit-slicing and extra reads, fp16 norm gains and GEMM
outputs. Every expected figure is a hand count from the hardware's organisation."""

from dataclasses import replace

import pytest

from mappers.ir import OpKind, Phase, Precision
from mappers.lower import lower
from mappers.mapping import apply_mapping
from mappers.models import load_model
from mappers.pipeline import compile_graph
from mappers.schemes import load_scheme
from sim.presets import load_hardware
from sim.step import step_cost
from sim.units.cid import ops as cid_ops
from sim.units.cid.quant import GemvFormat, scales_per_burst
from sim.units.cim.cost import cim_op_result
from sim.units.cim.residency import slot_unit

LLAMA = load_model("llama2-7b").config
ATTACC = load_hardware("attacc").system
CENT = load_hardware("cent").system
HALO_CIM = apply_mapping(load_hardware("halo-package").system, "all-cim")
N = K = 4096


def _ops(graph):
    return [op for seg in graph.segments for op in seg.ops]


def _layer(scheme: str, system, phase=Phase.DECODE, batch=4):
    new, ctx = (1, 64) if phase is Phase.DECODE else (64, 0)
    g = compile_graph(LLAMA, system, phase=phase, batch=batch, new_tokens=new, context=ctx,
                      precision=load_scheme(scheme))
    return g, next(seg for seg in g.segments if seg.name == "layers").ops


# ---------------------------------------------------------------- scale bytes in the IR

@pytest.mark.parametrize("scheme, per_column", [
    ("w4a16", K // 128 * 2),   # group 128 along K, fp16 scales
    ("w8a8", 2),               # per output channel, fp16
    ("w4fp8-fireq", 1),        # per output channel, FP8 E4M3
    ("fp16", 0), ("fp8", 0),   # none / per tensor
])
def test_scale_bytes_per_gemm(scheme, per_column):
    _, ops = _layer(scheme, load_hardware("h100").system)
    q = next(op for op in ops if op.name == "o_proj")
    assert q.formats.scale_bytes == N * per_column
    assert q.weight_bytes == N * K * {"int4": 4, "int8": 8, "fp16": 16, "fp8": 8}[
        q.formats.weight] // 8 + N * per_column


def test_norm_gains_stay_fp16_under_int4_weights():
    g = lower(LLAMA, phase=Phase.DECODE, batch=1, new_tokens=1, context=8,
              precision=Precision(weight="int4"))
    norms = [op for op in _ops(g) if op.kind is OpKind.NORM]
    assert norms and all(op.weight_bytes == 4096 * 2 for op in norms)
    _, ops = _layer("w4fp8-fireq", load_hardware("h100").system)
    norm = next(op for op in ops if op.name == "attn_norm")
    assert (norm.formats.weight, norm.weight_bytes) == ("fp16", 4096 * 2)


def test_quantized_gemm_writes_fp16_outputs():
    """W4A8: 8-bit inputs, fp16 outputs from the epilogue (QServe, FireQ)."""
    m = 4
    _, ops = _layer("w4a8-qserve", load_hardware("h100").system, batch=m)
    q = next(op for op in ops if op.name == "o_proj")
    assert (q.formats.act, q.formats.output) == ("int8", "fp16")
    assert q.act_bytes == m * K * 1 + m * N * 2


def test_tile_charges_scale_bytes_with_the_weights():
    h100 = load_hardware("h100").system
    g, ops = _layer("w4a16", h100, batch=1)
    cost = step_cost(h100, "tile", g)
    q = next(op for op in ops if op.name == "o_proj")
    assert cost(q).dram_bytes >= N * K // 2 + N * K // 128 * 2 + 2 * (K + N)


# ---------------------------------------------------------------- CiD near-bank unit

def test_cid_int4_gemv_reads_group_scales_from_the_bank():
    """int4 GEMV on AttAcc's HBM3 (32-column 1 KB rows, 32 B bursts, 1 KB global buffer) with
    int8 inputs and fp16 scales per 128 weights: the buffer holds 1024 inputs, so a step is 16
    weight columns of 64 int4 lanes plus one column for its 8 scales (16 B of a 32 B burst)."""
    device = cid_ops.unit_device(ATTACC.chip.cid)
    fmt = GemvFormat(act="int8", scale_group=128)
    lay = cid_ops.gemv_layout(device, "bank", N, K, "int4", None, fmt)
    assert (lay.lanes, lay.step_elems, lay.chunks, lay.cols, lay.gb_writes) == \
        (64, 1024, 4, 16 + 1, 1024 // 32)
    run = cid_ops.gemv(device, "bank", N, K, "int4", fmt=fmt)
    scale_bytes = N * K // 128 * 2
    assert run.useful_bytes == N * K // 2 + scale_bytes
    # every 1024-weight chunk of a row brings one whole 32 B burst of scales
    assert run.internal_bytes == N * K // 2 + N * K // 1024 * 32
    plain = cid_ops.gemv(device, "bank", N, K, "int4", fmt=GemvFormat(act="int8"))
    assert plain.internal_bytes == N * K // 2 and plain.time_s < run.time_s


def test_cid_global_buffer_holds_inputs_in_the_activation_format():
    """fp16 inputs to int4 weights: the 1 KB buffer covers 512 weights a step, not 2048."""
    device = cid_ops.unit_device(ATTACC.chip.cid)
    narrow = cid_ops.gemv_layout(device, "bank", N, K, "int4")
    wide = cid_ops.gemv_layout(device, "bank", N, K, "int4", None, GemvFormat(act="fp16"))
    assert (narrow.step_elems, wide.step_elems) == (2048, 512)
    assert (narrow.gb_writes, wide.gb_writes) == (2048 // 2 // 32, 512 * 2 // 32)


@pytest.mark.parametrize("lanes, group, scales", [
    (64, 128, 1), (32, 128, 1), (64, 64, 1), (64, 32, 2), (64, 16, 4), (64, 96, 2)])
def test_scales_per_burst(lanes, group, scales):
    assert scales_per_burst(lanes, GemvFormat(scale_group=group)) == scales


def test_cid_groups_smaller_than_a_burst_slow_the_mac_stream():
    """int4 with 32-weight groups: two scale multiplies per 64-lane burst, so the all-bank MACs
    go every 2 x tCCD_AB; the MAC count is unchanged."""
    unit = CENT.chip.cid
    one = cid_ops.unit_gemv(unit, N, K, "int4", fmt=GemvFormat(scale_group=64))
    two = cid_ops.unit_gemv(unit, N, K, "int4", fmt=GemvFormat(scale_group=32))
    assert two.time_s > 1.3 * one.time_s


@pytest.mark.parametrize("scheme", ["w4a16", "w4a8-qserve", "w4fp8-fireq"])
def test_cid_decode_dequantizes_on_the_near_bank_unit(scheme):
    g, ops = _layer(scheme, CENT)
    cost = step_cost(CENT, "tile", g)
    deq = [op for op in ops if op.name.endswith(".w_dequant")]
    assert deq and all(op.unit == "cid" for op in deq)     # never on the host's vector lanes
    for op in deq:
        gemm = next(o for o in ops if o.name == op.name.removesuffix(".w_dequant"))
        assert gemm.unit == "cid" and gemm.inputs == (op.id,)
        assert cost(op).time_s == 0.0                       # folded into the GEMM's stream
    q = next(op for op in ops if op.name == "o_proj")
    f = q.formats
    fmt = GemvFormat(act=f.act, scale_group=f.scale_group, scale=f.scale)
    run = cid_ops.unit_gemv(CENT.chip.cid, N, K, "int4", fmt=fmt)
    assert cost(q).time_s == pytest.approx(4 * run.time_s)  # 4 tokens re-stream the weights


# ---------------------------------------------------------------- CiM crossbars

def test_cim_slices_and_input_reads_follow_the_scheme():
    """The HALO package's crossbars (halo-cim's): 2-bit cells and 1-bit DACs, differential
    encoding (the sign rides the column pair and the DAC's polarity): an int4 weight's 3
    magnitude bits are 2 slices, an int8's 7 are 4; fp16 inputs take 15 reads, int8 and fp8
    ones 7."""
    unit = slot_unit(HALO_CIM.chip.cim)
    assert unit.crossbar.signed
    for scheme, slices, reads in (("w4a16", 2, 15), ("w4a8-qserve", 2, 7),
                                  ("w4fp8-fireq", 2, 7), ("w8a8", 4, 7)):
        _, ops = _layer(scheme, HALO_CIM, phase=Phase.PREFILL, batch=1)
        q = next(op for op in ops if op.name == "o_proj")
        r = cim_op_result(q, unit, act_io=False)
        assert (r.slices, r.input_cycles) == (slices, reads), scheme
        # one conversion per token, input read, row tile, output and slice
        assert r.adc_conversions == 64 * reads * (K // 128) * N * slices


def test_cim_groups_smaller_than_a_crossbar_add_reads():
    """Groups of 64 on 128-row crossbars: each input slice reads the two groups' rows one at a
    time (their scales differ), doubling read steps and conversions."""
    unit = slot_unit(HALO_CIM.chip.cim)
    _, ops = _layer("w4a16", HALO_CIM, phase=Phase.PREFILL, batch=1)
    q = next(op for op in ops if op.name == "o_proj")
    resident = q.weight_bytes  # programmed: one copy, no replicas

    def run(group):
        op = replace(q, formats=replace(q.formats, scale_group=group))
        return cim_op_result(op, unit, resident_weights_bytes=resident, act_io=False)

    g128, g64 = run(128), run(64)
    assert g64.adc_conversions == 2 * g128.adc_conversions
    assert g64.compute_s - g128.compute_s == pytest.approx(64 * 15 * g128.step_s)


def test_cim_dequant_op_moves_off_the_host():
    g, ops = _layer("w4a16", HALO_CIM, phase=Phase.PREFILL, batch=1)
    cost = step_cost(HALO_CIM, "tile", g)
    deq = [op for op in ops if op.name.endswith(".w_dequant")]
    assert deq and all(op.unit == "cim" and cost(op).time_s == 0.0 for op in deq)
