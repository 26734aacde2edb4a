"""Multi-token GEMMs on CiD (`sim.units.cid.layout`, `unit_gemm`): hand-counted commands and
cycles for a small shape, the functional model and the stream checker on random shapes, the
GEMV (M = 1) pinned to the engine's pre-multi-token numbers, and a verify / prefill step on
CiD cheaper than M GEMVs."""

import numpy as np
import pytest

from mappers.ir import Phase, Precision
from mappers.models import load_model
from sim.errors import ConfigError
from sim.presets import load_hardware
from sim.step import compile_step
from sim.units.cid import ops as cid_ops
from sim.units.cid.check import check_stream
from sim.units.cid.dram import load_dram
from sim.units.cid.engine import run_channel
from sim.units.cid.layout import gemv_functional, gemv_layout, max_tokens
from sim.units.cid.quant import PLAIN, GemvFormat

AIM = load_dram("gddr6-aim")
HBM3 = load_dram("hbm3")


def _one_step(t, writes: int, macs: int, reads: int) -> int:
    """End cycle of one lockstep step issued in program order with refresh idle: ``writes``
    WRGB bursts tCCD_S apart, the ACT_AB (row bus) with the last of them, MACs tRCD after it
    and tCCD_AB apart, PRE_AB after tRAS and the last MAC's tRTP, RDRES tCCD_L after the last
    MAC and tCCD_S apart; the op ends when the last read's (or MAC's) data is out."""
    act = (writes - 1) * t.tCCD_S
    last_mac = act + t.tRCD + (macs - 1) * t.tCCD_AB
    pre = max(act + t.tRAS, last_mac + t.tRTP)
    last_rd = max(pre, last_mac + t.tCCD_L) + (reads - 1) * t.tCCD_S
    return max(last_mac, last_rd) + t.tCL + t.tBL


def test_four_tokens_cost_one_activate_and_four_times_the_macs():
    """AiM, one channel, 16 rows x 256 fp16 (a row per bank, 16 bursts each). The 2 KB global
    buffer (1024 fp16) holds 4 vectors of 256: one pass of 4 x 16 MACs over one activated
    row, 4 x 16 buffer writes, 4 x 16 banks x 4 B = 8 result reads. Four GEMVs activate the
    row four times and take 4 x (16 WRGB, 16 MACs, 2 RDRES)."""
    t = AIM.timing
    assert AIM.global_buffer_bytes == 2048 and max_tokens(AIM, "aim", "fp16") == 64
    lay = gemv_layout(AIM, "aim", 16, 256, "fp16", pcs=1, tokens=4)
    assert (lay.chunks, lay.steps, lay.cols, lay.gb_writes, lay.reads) == (1, 1, 16, 64, 8)
    four = cid_ops.gemv(AIM, "aim", 16, 256, "fp16", pcs=1, tokens=4)
    assert four.counts == {"ACT_AB": 1, "PRE_AB": 1, "MAC_AB": 64, "WRGB": 64, "RDRES": 8}
    assert four.cycles == _one_step(t, 64, 64, 8) == 333
    one = cid_ops.gemv(AIM, "aim", 16, 256, "fp16", pcs=1)
    assert one.counts == {"ACT_AB": 1, "PRE_AB": 1, "MAC_AB": 16, "WRGB": 16, "RDRES": 2}
    assert one.cycles == _one_step(t, 16, 16, 2) == 129
    assert four.cycles < 4 * one.cycles
    # Energy: the same MACs and buffer traffic, three row activations fewer.
    act = 16 * AIM.org.row_bytes * 8 * AIM.energy.act_pj_per_bit * 1e-12
    assert 4 * one.energy_j - four.energy_j == pytest.approx(3 * act, rel=1e-9)


@pytest.mark.parametrize("device, mode", [(HBM3, "bank"), (HBM3, "bankgroup"), (AIM, "aim")])
def test_multitoken_layout_is_exact_and_its_streams_legal(device, mode):
    """Random shapes and token counts, K-sliced and reloading buffers: the layout executed
    bank by bank equals numpy (``X @ W^T``, int8, integer accumulation), and every stream
    passes the checker."""
    rng = np.random.default_rng(7)
    done = 0
    while done < 10:
        n, k = int(rng.integers(1, 300)), int(rng.integers(1, 3000))
        pcs, tokens = 1 << int(rng.integers(0, 3)), int(rng.integers(2, 6))
        reload = bool(done % 2)
        fmt = GemvFormat(act="fp16") if done % 3 == 0 else PLAIN  # inputs twice as wide
        try:
            lay = gemv_layout(device, mode, n, k, "int8", pcs, fmt, tokens=tokens,
                              reload=reload)
        except ConfigError:  # too many accumulators for this K: a pass of fewer vectors
            continue
        w = rng.integers(-128, 128, (n, k))
        x = rng.integers(-128, 128, (tokens, k))
        np.testing.assert_array_equal(gemv_functional(lay, w, x), x @ w.T)
        run = run_channel(device, mode, steps=lay.steps, cols=lay.cols,
                          cols_last=lay.cols_last, chunks=lay.chunks_local,
                          gb_writes=lay.gb_writes, reads=lay.reads, passes=tokens,
                          sub_cols=lay.sub_cols, record=True)
        assert check_stream(run.stream, device, end_cycle=run.cycles) == []
        assert (lay.sub_cols > 0) == reload
        assert run.counts.get("MAC_AB", 0) + run.counts.get("MAC_SB", 0) == \
            tokens * lay.steps * ((lay.chunks_local - 1) * lay.cols + lay.cols_last)
        done += 1


def test_gemv_is_unchanged():
    """M = 1: the numbers the engine gave before multi-token GEMMs existed (pinned from the
    previous commit; the near-bank RTL cosimulation replays these streams)."""
    for (dev, mode, n, k, dtype), (cycles, counts) in {
        (HBM3, "bank", 4096, 4096, "fp16"): (8412, {"ACT_AB": 32, "MAC_AB": 1024,
                                                    "PRE_AB": 32, "RDRES": 128, "REF": 1,
                                                    "WRGB": 256}),
        (AIM, "aim", 4096, 11008, "fp16"): (18892, {"ACT_AB": 88, "MAC_AB": 5504,
                                                    "PRE_AB": 88, "RDRES": 176, "REF": 4,
                                                    "WRGB": 704}),
        (HBM3, "bankgroup", 1000, 300, "int8"): (426, {"ACT_SB": 2, "MAC_SB": 60,
                                                       "PRE_AB": 1, "RDRES": 6, "WRGB": 10}),
    }.items():
        run = cid_ops.gemv(dev, mode, n, k, dtype)
        assert (run.cycles, run.counts) == (cycles, counts)


def test_too_many_vectors_is_refused():
    with pytest.raises(ConfigError, match="tokens must be in 1..64"):
        gemv_layout(AIM, "aim", 16, 256, "fp16", tokens=65)
    with pytest.raises(ConfigError, match="accumulators per unit"):
        gemv_layout(AIM, "aim", 16, 64, "fp16", tokens=8)  # 16 rows a step x 8 > 64
    assert max_tokens(HBM3, "buffer", "fp16") == 1  # buffer-die units hold one vector
    # fp16 inputs to int4 weights: a burst of 64 weights needs 128 B of inputs a vector
    assert max_tokens(AIM, "aim", "int4", GemvFormat(act="fp16")) == 2048 // 128
    assert max_tokens(AIM, "aim", "int4", GemvFormat(scale_group=64)) == 1  # group scales


LLAMA = load_model("llama2-7b").config


def _qkv(system, phase, tokens):
    s = compile_step(LLAMA, system, phase=phase, batch=1, new_tokens=tokens, context=256,
                     precision=Precision())
    return next(o for o in s.ops if o.op.name == "qkv_proj")


@pytest.mark.parametrize("hw, phase, op_name", [("cent", Phase.DECODE, "qkv_proj"),
                                                 ("cent", Phase.PREFILL, "qkv_proj"),
                                                 ("cent", Phase.DECODE, "down_proj"),
                                                 ("halo-package", Phase.DECODE, "o_proj"),
                                                 ("halo-package", Phase.DECODE, "down_proj")])
def test_verify_and_prefill_on_cid_beat_m_gemvs(hw, phase, op_name):
    """A verify step of 5 tokens and a 64-token prefill chunk on CENT's AiM devices, and a
    5-token verify on halo-package's HBM3 stacks, cost what `unit_gemm` finds: less than M GEMVs
    (the old cost), with fewer activates, and no less than the MAC commands alone (M x the
    GEMV's MACs, tCCD_AB apart)."""
    system = load_hardware(hw).system
    m = 5 if phase is Phase.DECODE else 64
    s = compile_step(LLAMA, system, phase=phase, batch=1, new_tokens=m, context=256,
                     precision=Precision())
    op = next(o for o in s.ops if o.op.name == op_name)
    assert op.op.unit == "cid"
    _, n, k = op.op.dims
    gemv = cid_ops.unit_gemv(system.chip.cid, n, k, "fp16")
    run = cid_ops.unit_gemm(system.chip.cid, m, n, k, "fp16")
    assert op.cost.time_s == run.time_s < m * gemv.time_s
    device = cid_ops.unit_device(system.chip.cid)
    floor = m * gemv.counts["MAC_AB"] * device.timing.tCCD_AB * device.timing.tck_s
    assert run.time_s > floor
    assert run.counts["MAC_AB"] >= m * gemv.counts["MAC_AB"]
    assert run.counts["ACT_AB"] < m * gemv.counts["ACT_AB"]


def test_reload_writes_the_inputs_inside_the_open_row():
    """HBM3 bank mode, one PC, 32 rows x 512 fp16 (a full 1 KB row per bank, 32 bursts), 2
    vectors re-filled inside the row: the 1 KB buffer holds 2 x 16 bursts, so the step is
    (32 WRGB, 2 x 16 MACs) twice under one activate, then 2 x 32 banks x 4 B = 8 RDRES.
    Hand count of the cycles: WRGB tCCD_S apart, the first MAC of a sub-slice tRCD after
    the ACT (first) or tCCD_L after the last WRGB, MACs tCCD_AB apart, the next WRGB tCCD_L
    after the last MAC, PRE after tRTP, RDRES tCCD_L after the last MAC."""
    t = HBM3.timing
    lay = gemv_layout(HBM3, "bank", 32, 512, "fp16", pcs=1, tokens=2, reload=True)
    assert (lay.sub_cols, lay.gb_writes, lay.cols, lay.reads) == (16, 0, 32, 8)
    run = cid_ops.gemv(HBM3, "bank", 32, 512, "fp16", pcs=1, tokens=2, reload=True)
    assert run.counts == {"ACT_AB": 1, "PRE_AB": 1, "MAC_AB": 64, "WRGB": 64, "RDRES": 8}
    act = 0  # with the first WRGB: the row bus is free
    w1 = 31 * t.tCCD_S
    m1 = max(act + t.tRCD, w1 + t.tCCD_L) + 31 * t.tCCD_AB
    w2 = m1 + t.tCCD_L + 31 * t.tCCD_S
    m2 = w2 + t.tCCD_L + 31 * t.tCCD_AB
    pre = max(act + t.tRAS, m2 + t.tRTP)
    rd = max(pre, m2 + t.tCCD_L) + 7 * t.tCCD_S
    assert run.cycles == max(m2, rd) + t.tCL + t.tBL


def test_never_worse_than_m_gemvs():
    """HALO's qkv (12288 x 4096 over 5 HBM3 stacks, 3 rows per bank): passes of several
    vectors cut K into more, narrower chunks and pad the last step of each (2 rows a step),
    which costs more activates and MACs than it saves, so `unit_gemm` keeps M GEMVs."""
    unit = load_hardware("halo-package").system.chip.cid
    gemv = cid_ops.unit_gemv(unit, 12288, 4096, "fp16")
    assert cid_ops.unit_gemm(unit, 5, 12288, 4096, "fp16").time_s == 5 * gemv.time_s


def test_decode_gemm_is_the_engine_gemv():
    """One token: the op's cost is the GEMV's, exactly (no rounding from the GEMM path)."""
    cent = load_hardware("cent").system
    op = _qkv(cent, Phase.DECODE, 1)
    _, n, k = op.op.dims
    gemv = cid_ops.unit_gemv(cent.chip.cid, n, k, "fp16")
    assert (op.cost.time_s, op.cost.energy_j) == (gemv.time_s, gemv.energy_j)
