# amaranth: UnusedElaboratable=no
"""The RTL ``w4fp8`` datapath runs FireQ's kernel: bit for bit against `sim.quant.fireq`.

Operands come from the numerics model (FP8 E4M3 activation codes with their per-tensor scale,
INT4 per-channel weight codes, FP8-coded channel scales under a per-tensor guard) built from
outlier activations; the drained accumulator must equal `w4fp8_accumulate` exactly, and scaling
it by the same scales must give `w4fp8_gemm`'s result, so RTL, numerics and timing model describe
one kernel. Random tiles of all codes too (through the model's decode, not ml_dtypes).
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from rtl import SystolicDatapath
from sim.quant import fp8
from sim.quant.fireq import W4Fp8Operands, w4fp8_accumulate, w4fp8_gemm, w4fp8_operands
from sim.quant.intq import llama_weights, outlier_activations
from sim.units.systolic.datapath import OPS, DatapathConfig, DatapathModel


def _drain(cfg: DatapathConfig, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Run LOAD_A, LOAD_B, COMPUTE, DRAIN_C on the Amaranth datapath; the drained m x n."""
    m, k = a.shape
    n = b.shape[1]
    dut = SystolicDatapath(cfg)
    got = []

    async def bench(ctx):
        ctx.set(dut.c_out.ready, 1)
        for cmd in DatapathModel(cfg).program(m, n, k):
            ctx.set(dut.cmd.payload, {"op": OPS[cmd.op], "m": m, "n": n, "k": k})
            ctx.set(dut.cmd.valid, 1)
            await ctx.tick().until(dut.cmd.ready)
            ctx.set(dut.cmd.valid, 0)
            src = {"LOAD_A": a, "LOAD_B": b}.get(cmd.op)
            beats = [] if src is None else [int(v) & 0xFF for v in src.reshape(-1)]
            while True:
                ctx.set(dut.data_in.valid, int(bool(beats)))
                if beats:
                    ctx.set(dut.data_in.payload, beats[0])
                if ctx.get(dut.cmd.ready):
                    break
                if beats and ctx.get(dut.data_in.ready):
                    beats.pop(0)
                if ctx.get(dut.c_out.valid):
                    got.append(ctx.get(dut.c_out.payload))
                await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return np.array(got, dtype=np.int64).reshape(m, n)


@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_rtl_w4fp8_runs_fireq_bit_exact(dataflow):
    rng = np.random.default_rng(14)
    m, n, k = 5, 4, 12
    x = outlier_activations(rng, m, k, n_outliers=2)
    w = llama_weights(rng, k, n)
    ops = w4fp8_operands(x, w)
    cfg = DatapathConfig(rows=3, cols=2, mode="w4fp8", max_m=m, max_n=n, max_k=k,
                         dataflow=dataflow)
    got = _drain(cfg, ops.a_codes, ops.w_codes)
    assert np.array_equal(got, w4fp8_accumulate(ops))
    assert np.array_equal(DatapathModel(cfg).gemm(ops.a_codes, ops.w_codes), got)
    col = ops.guard * fp8.decode(ops.s_codes).astype(np.float64)
    assert np.array_equal(got * 2.0**-9 * ops.a_scale * col, w4fp8_gemm(x, w))


def test_rtl_w4fp8_random_codes_match_numerics_decode():
    """Uniform random FP8 codes (NaN codes excluded: the numerics model keeps NaN, the datapath
    reads it as 0) and INT4 codes."""
    rng = np.random.default_rng(15)
    m, n, k = 4, 3, 9
    a = rng.integers(0, 256, (m, k))
    a = np.where((a & 0x7F) == 0x7F, 0x7E, a).astype(np.uint8)
    b = rng.integers(-8, 8, (k, n))
    ops = W4Fp8Operands(a, 1.0, b, np.zeros(n, np.uint8), 1.0)
    cfg = DatapathConfig(rows=2, cols=3, mode="w4fp8", max_m=m, max_n=n, max_k=k)
    assert np.array_equal(_drain(cfg, a, b), w4fp8_accumulate(ops))
