# amaranth: UnusedElaboratable=no
"""Amaranth-simulator tests of the PE, a small array and the whole datapath against the model.

Bit for bit and cycle for cycle (zero tolerance): the PE's accumulator must equal the model's
product (`DatapathModel.operands`) on every FP8 x INT4 pair (all 4096) and on random and extreme
int8 pairs; an array's row ``i`` must hold ``A @ B`` exactly ``K + i + cols - 1`` cycles after
the first beat and not one cycle earlier (the skew of the fold model); the datapath's commands
must take `DatapathModel.command_cycles` cycles and drain numpy's result.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from amaranth.sim import Simulator

from rtl import ProcessingElement, SystolicArray, SystolicDatapath
from sim.units.systolic.datapath import OPS, DatapathConfig, DatapathModel
from testbenches.operands import EXTREME_INT8, numpy_reference, operands


def _run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("mode", ["int8", "w4fp8"])
def test_pe_products_and_accumulation(mode):
    model = DatapathModel(DatapathConfig(rows=1, cols=1, mode=mode))
    if mode == "w4fp8":   # every FP8 code with every INT4 weight
        pairs = list(itertools.product(range(256), range(-8, 8)))
    else:
        rng = np.random.default_rng(3)
        pairs = list(itertools.product(EXTREME_INT8, EXTREME_INT8))
        pairs += [tuple(p) for p in rng.integers(-128, 128, (1500, 2))]
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    av, bv = model.operands(a, b)
    expect = av * bv
    dut = ProcessingElement(mode=mode)
    bmask = (1 << model.config.b_bits) - 1

    async def bench(ctx):
        # each product alone (first = 1), then a 64-beat accumulation with a bubble in it
        for x, y, want in zip(a, b, expect):
            ctx.set(dut.a_in, int(x) & 0xFF)
            ctx.set(dut.b_in, int(y) & bmask)
            ctx.set(dut.valid_in, 1)
            ctx.set(dut.first_in, 1)
            await ctx.tick()
            assert ctx.get(dut.acc) == want, (x, y)
            assert ctx.get(dut.a_out) == int(x) & 0xFF and ctx.get(dut.valid_out) == 1
        total = 0
        for i in range(64):
            ctx.set(dut.first_in, int(i == 0))
            ctx.set(dut.valid_in, int(i != 10))     # beat 10 is a bubble: no accumulation
            ctx.set(dut.a_in, int(a[i]) & 0xFF)
            ctx.set(dut.b_in, int(b[i]) & bmask)
            total += int(expect[i]) if i != 10 else 0
            await ctx.tick()
        assert ctx.get(dut.acc) == total

    _run(dut, bench)


@pytest.mark.parametrize("rows,cols,mode", [(3, 2, "int8"), (2, 4, "w4fp8"), (1, 1, "int8")])
def test_small_array_timing_and_result(rows, cols, mode):
    k = 5
    a, b = operands(mode, rows, cols, k, np.random.default_rng(11), "random")
    ref = numpy_reference(mode, a, b)
    dut = SystolicArray(rows=rows, cols=cols, mode=mode)
    bmask = (1 << (4 if mode == "w4fp8" else 8)) - 1

    async def bench(ctx):
        for t in range(k + rows + cols + 2):
            if t < k:
                for i in range(rows):
                    ctx.set(dut.a[i], int(a[i, t]) & 0xFF)
                for j in range(cols):
                    ctx.set(dut.b[j], int(b[t, j]) & bmask)
            ctx.set(dut.valid, int(t < k))
            ctx.set(dut.first, int(t == 0))
            # after t ticks: row i is complete exactly when t >= k + i + cols - 1
            for i in range(rows):
                ctx.set(dut.row_sel, i)
                row = [ctx.get(dut.row[j]) for j in range(cols)]
                if t >= k + i + cols - 1:
                    assert row == list(ref[i]), (t, i, row)
                elif t == k + i + cols - 2:     # PE (i, cols-1) does its last MAC now
                    assert row[-1] != ref[i, -1] or ref[i, -1] == 0, (t, i, row)
            await ctx.tick()

    _run(dut, bench)


@pytest.mark.parametrize("dataflow", ["os", "ws"])
@pytest.mark.parametrize("rows,cols,mode,shape", [
    (2, 3, "int8", (5, 7, 4)), (3, 5, "w4fp8", (7, 6, 3)), (1, 1, "int8", (2, 3, 1)),
    (4, 2, "int8", (1, 5, 6)), (3, 2, "w4fp8", (4, 3, 8)),
])
def test_datapath_commands(rows, cols, mode, shape, dataflow):
    m, n, k = shape
    cfg = DatapathConfig(rows=rows, cols=cols, mode=mode, max_m=m + 1, max_n=n, max_k=k + 2,
                         dataflow=dataflow)
    model = DatapathModel(cfg)
    a, b = operands(mode, m, n, k, np.random.default_rng(5), "random")
    dut = SystolicDatapath(cfg)
    got, cycles = [], []

    async def bench(ctx):
        ctx.set(dut.c_out.ready, 1)
        for cmd in model.program(m, n, k):
            ctx.set(dut.cmd.payload, {"op": OPS[cmd.op], "m": m, "n": n, "k": k})
            ctx.set(dut.cmd.valid, 1)
            await ctx.tick().until(dut.cmd.ready)
            ctx.set(dut.cmd.valid, 0)
            beats = []
            if cmd.op == "LOAD_A":
                beats = [int(v) & 0xFF for v in a.reshape(-1)]
            elif cmd.op == "LOAD_B":
                beats = [int(v) & 0xFF for v in b.reshape(-1)]
            busy = 0
            while True:
                ctx.set(dut.data_in.valid, int(bool(beats)))
                if beats:
                    ctx.set(dut.data_in.payload, beats[0])
                if ctx.get(dut.cmd.ready):
                    break
                busy += 1
                if beats and ctx.get(dut.data_in.ready):
                    beats.pop(0)
                if ctx.get(dut.c_out.valid):
                    got.append(ctx.get(dut.c_out.payload))
                await ctx.tick()
            cycles.append((busy, model.command_cycles(cmd)))

    _run(dut, bench)
    assert all(rtl == pred for rtl, pred in cycles), cycles
    assert np.array_equal(np.array(got).reshape(m, n), numpy_reference(mode, a, b))


def test_components_refuse_bad_parameters():
    with pytest.raises(ValueError, match="^mode"):
        ProcessingElement(mode="fp16")
    with pytest.raises(ValueError, match="^rows"):
        SystolicArray(rows=0, cols=2, mode="int8")
    with pytest.raises(TypeError, match="^config"):
        SystolicDatapath({"rows": 2})


@pytest.mark.parametrize("mode", ["int8", "w4fp8"])
def test_ws_pe_holds_its_weight_and_adds_the_partial_sum(mode):
    model = DatapathModel(DatapathConfig(rows=1, cols=1, mode=mode))
    rng = np.random.default_rng(8)
    weights = range(-8, 8) if mode == "w4fp8" else [-128, 127, 0, -1, 5, 99]
    codes = np.arange(256) if mode == "w4fp8" else np.array(list(EXTREME_INT8) + [77, -90])
    bmask = (1 << model.config.b_bits) - 1
    dut = ProcessingElement(mode=mode, dataflow="ws")

    async def bench(ctx):
        for w in weights:
            ctx.set(dut.w_in, w & bmask)
            ctx.set(dut.w_load, 1)
            await ctx.tick()
            ctx.set(dut.w_load, 0)
            ctx.set(dut.w_in, (w + 3) & bmask)         # ignored while w_load is low
            for code in codes:
                psum = int(rng.integers(-2**20, 2**20))
                av, wv = model.operands(np.array([code]), np.array([w]))
                ctx.set(dut.a_in, int(code) & 0xFF)
                ctx.set(dut.psum_in, psum)
                await ctx.tick()
                assert ctx.get(dut.psum_out) == psum + int(av[0]) * int(wv[0]), (code, w)
                assert ctx.get(dut.w_out) == w & bmask

    _run(dut, bench)


@pytest.mark.parametrize("rows,cols,mode", [(3, 2, "int8"), (2, 4, "w4fp8")])
def test_ws_array_timing_and_result(rows, cols, mode):
    """After ``rows`` cycles of weight load, row m of A entered at cycle c shows up in psum[j]
    exactly at cycle c + rows + j."""
    m_rows = 6
    a, b = operands(mode, m_rows, cols, rows, np.random.default_rng(12), "random")
    ref = numpy_reference(mode, a, b)
    dut = SystolicArray(rows=rows, cols=cols, mode=mode, dataflow="ws")
    bmask = (1 << (4 if mode == "w4fp8" else 8)) - 1

    async def bench(ctx):
        for s in range(rows):                          # the row shifted in last ends in row 0
            for j in range(cols):
                ctx.set(dut.b[j], int(b[rows - 1 - s, j]) & bmask)
            ctx.set(dut.w_load, 1)
            await ctx.tick()
        ctx.set(dut.w_load, 0)
        seen = {}
        for c in range(m_rows + rows + cols + 1):
            if c < m_rows:
                for i in range(rows):
                    ctx.set(dut.a[i], int(a[c, i]) & 0xFF)
            for j in range(cols):
                seen[(c, j)] = ctx.get(dut.psum[j])
            await ctx.tick()
        for m in range(m_rows):
            for j in range(cols):
                assert seen[(m + rows + j, j)] == ref[m, j], (m, j)

    _run(dut, bench)
