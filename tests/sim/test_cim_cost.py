"""The GEMM timing/energy model of the CiM unit (`sim.units.cim.cost`): one GEMM, passes and
replicas, encodings, op costs and weight residency, and ``pdsim cim --json``.

References: closed forms written out here by hand from the model's definition (docs/cim.md),
on small shapes where every term can be counted. Float comparisons use a relative tolerance
of 1e-12 (the same arithmetic in another order), never a loose fit.
"""

import dataclasses
import json
import math
import time

import pytest

from mappers.ir import Phase, Precision
from mappers.lower import lower
from mappers.models import load_model
from sim.units.cim.cost import cim_gemm, cim_op_cost
from sim.units.cim.residency import plan_weights
from sim.cli.main import main
from sim.units.cim.crossbar import CimUnit, Crossbar, load_cim
from sim.errors import ConfigError

REL = 1e-12


@pytest.fixture(scope="module")
def halo():
    return load_cim("halo-cim").unit


def tiny_unit(**xbar) -> CimUnit:
    """An 8x8 crossbar with round numbers, 4 crossbars, every time and energy distinct."""
    xb = dict(rows=8, cols=8, cell_bits=2, weight_bits=4, input_bits=4, dac_bits=1, adc_bits=6,
              adcs=2, adc_time_s=10e-9, adc_energy_j=1e-12, dac_energy_j=2e-12,
              read_time_s=30e-9, read_energy_j=3e-12, write_time_s=100e-9,
              write_energy_j=5e-12, write_cells_parallel=4)
    xb.update(xbar)
    return CimUnit(name="tiny", crossbars=4, crossbar=Crossbar(**xb),
                   periphery=_periphery(), write_parallel_crossbars=2,
                   weight_load_bandwidth_bytes_per_s=1e9, io_energy_pj_per_bit=1.0)


def _periphery():
    from sim.units.cim.crossbar import Periphery
    return Periphery(shift_add_energy_j=0.5e-12, accumulate_energy_j=0.25e-12, clock_hz=1e9)


def test_gemm_closed_form_fits_with_replicas():
    """m=3 tokens, n=6, k=12 on the tiny unit (offset encoding). S = ceil(4/2) = 2 columns
    per weight, 4 weights per crossbar: R = 2 row tiles, C = 2 column tiles, 4 crossbars per
    copy = all 4, so 1 replica. T = 4 reads. Step = max(30 ns read, 4 weights x 2 slices / 2
    ADCs x 10 ns = 40 ns). Latency = 30 + 40 ns + (1 + log2 2) cycles at 1 GHz. Programming:
    4 crossbars, 2 at a time = 2 waves x 8 rows x ceil(8 cols / 4) x 100 ns = 3.2 us; the
    36 weight bytes take 36 ns at 1 GB/s, so writes set the time."""
    u = tiny_unit()
    r = cim_gemm(u, 3, 6, 12)
    assert (r.slices, r.input_cycles, r.row_tiles, r.col_tiles) == (2, 4, 2, 2)
    assert (r.crossbars_per_copy, r.replicas, r.passes, r.fits) == (4, 1, 1, True)
    assert r.step_s == pytest.approx(40e-9, rel=REL)
    compute = 3 * 4 * 40e-9 + 30e-9 + 40e-9 + 2e-9
    program = 2 * 8 * 2 * 100e-9
    act = (3 * 12 * 4 + 3 * 6 * 4) / 8
    assert r.compute_s == pytest.approx(compute, rel=REL)
    assert r.program_s == pytest.approx(program, rel=REL)
    assert r.io_s == pytest.approx(act / 1e9, rel=REL)
    assert r.time_s == pytest.approx(program + max(compute, act / 1e9), rel=REL)
    assert r.cycles == pytest.approx(r.time_s * 1e9, rel=REL)
    e = r.energy
    conversions = 3 * 4 * 2 * 6 * 2  # m T R n S
    assert r.adc_conversions == conversions
    assert e.adc == pytest.approx(conversions * 1e-12, rel=REL)
    assert e.shift_add == pytest.approx(conversions * 0.5e-12, rel=REL)
    assert e.dac == pytest.approx(3 * 4 * 12 * 2 * 2e-12, rel=REL)  # m T k C
    assert e.crossbar_read == pytest.approx(3 * 4 * 4 * 3e-12, rel=REL)  # m T crossbars
    assert e.accumulate == pytest.approx(3 * 6 * 1 * 0.25e-12, rel=REL)  # m n (R - 1)
    assert e.write == pytest.approx(6 * 12 * 2 * 5e-12, rel=REL)  # cells
    assert e.io == pytest.approx((36 + act) * 8 * 1e-12, rel=REL)
    assert r.energy_j == pytest.approx(sum(v for k, v in e.as_dict().items() if k != "total"),
                                       rel=REL)


def test_resident_weights_cost_no_programming_and_replicas_speed_up_prefill():
    """Resident: no write energy or time. Programmed with room for copies: the replica count
    minimises time (two copies halve the token stream: ceil(8/2) x T steps)."""
    u = tiny_unit()
    resident = cim_gemm(u, 8, 4, 8, resident_weights_bytes=10**9)
    assert resident.program_s == 0 and resident.energy.write == 0 and resident.replicas == 1
    # one copy = 1 crossbar (k=8 rows, 4 weights); 4 crossbars; 8 tokens
    prog = cim_gemm(u, 8, 4, 8)
    assert prog.crossbars_per_copy == 1 and prog.replicas > 1
    assert prog.compute_s == pytest.approx(
        -(-8 // prog.replicas) * 4 * prog.step_s + 30e-9 + 40e-9 + 1e-9, rel=REL)
    one = dataclasses.replace(u, crossbars=1, write_parallel_crossbars=1)
    assert cim_gemm(one, 8, 4, 8).time_s > prog.time_s


def test_weights_that_do_not_fit_run_in_passes_and_pay_each_programming():
    """k=8, n=40 needs 10 crossbars of 4 weights; 4 available: 3 passes (4, 4, 2), each
    programmed (2, 2, 1 waves of 2 crossbars x 1.6 us) and each streaming all m tokens."""
    u = tiny_unit()
    r = cim_gemm(u, 5, 40, 8)
    assert (r.crossbars_per_copy, r.passes, r.fits, r.crossbars_used) == (10, 3, False, 4)
    wave = 8 * 2 * 100e-9
    assert r.program_s == pytest.approx((2 + 2 + 1) * wave, rel=REL)
    assert r.compute_s == pytest.approx(3 * (5 * 4 * 40e-9 + 30e-9 + 40e-9 + 1e-9), rel=REL)
    with pytest.raises(ConfigError, match="cannot stay resident"):
        cim_gemm(u, 5, 40, 8, resident_weights_bytes=1)


def test_more_crossbars_or_resident_weights_never_slower(halo):
    for m, n, k in ((1, 4096, 4096), (512, 11008, 4096), (2048, 4096, 11008)):
        full = cim_gemm(halo, m, n, k)
        half = cim_gemm(halo, m, n, k, crossbars_available=halo.crossbars // 2)
        assert full.time_s <= half.time_s
        if full.fits:
            res = cim_gemm(halo, m, n, k, resident_weights_bytes=full.weight_bytes)
            assert res.time_s <= full.time_s and res.program_s == 0


def test_differential_encoding_doubles_columns_and_drops_sign_bits(halo):
    """int8 on the differential preset: 7 magnitude bits -> 4 slices x 2 columns, 7 reads;
    the offset encoding: 4 slices x 1 column, 8 reads."""
    r = cim_gemm(halo, 1, 4096, 4096, weight_dtype="int8", act_dtype="int8")
    assert (r.slices, r.input_cycles, r.col_tiles) == (4, 7, 4096 // 16)
    off = dataclasses.replace(halo, crossbar=dataclasses.replace(halo.crossbar,
                                                                  encoding="offset"))
    r = cim_gemm(off, 1, 4096, 4096, weight_dtype="int8", act_dtype="int8")
    assert (r.slices, r.input_cycles, r.col_tiles) == (4, 8, 4096 // 32)


def test_op_cost_and_residency_for_llama2_7b_prefill(halo):
    """Every GEMM of a llama2-7b prefill costs through `cim_op_cost`; the model does not fit
    in ISAAC-sized CiM (6.5e9 int8 weights need ~3e6 crossbars of 16 weights x 128 rows), so
    each op's weights are programmed before use; a made-up chip with enough crossbars keeps
    them resident and charges no programming."""
    cfg = load_model("llama2-7b").config
    g = lower(cfg, phase=Phase.PREFILL, batch=1, new_tokens=2048, context=0,
              precision=Precision(weight="int8", activation="int8", kv="int8"))
    plan = plan_weights(g, halo)
    weights = g.total_where("weight_bytes", frozenset({"gemm", "lm_head"}))
    assert plan.weight_bytes == weights
    assert plan.crossbars_needed >= math.ceil(weights / (128 * 16)) and not plan.resident
    ops = [(seg.repeat, op) for seg in g.segments for op in seg.ops
           if op.kind in ("gemm", "lm_head")]
    total = 0.0
    for repeat, op in ops:
        c = cim_op_cost(op, halo, resident_weights_bytes=plan.resident_bytes(op))
        assert c.time_s > 0 and c.energy_j > 0 and c.memory_s > 0
        total += repeat * c.time_s
    assert total > plan.crossbars_needed / halo.write_parallel_crossbars * 128 * 720e-9 * 0.99
    big = dataclasses.replace(halo, crossbars=plan.crossbars_needed,
                              write_parallel_crossbars=halo.write_parallel_crossbars)
    big_plan = plan_weights(g, big)
    assert big_plan.resident
    for _, op in ops:
        c = cim_op_cost(op, big, resident_weights_bytes=big_plan.resident_bytes(op))
        assert c.memory_s == pytest.approx(  # activations only: int8 in and out
            op.act_bytes / big.weight_load_bandwidth_bytes_per_s, rel=REL)
        r = cim_gemm(big, *op.dims, weight_dtype="int8", act_dtype="int8",
                     resident_weights_bytes=op.weight_bytes)
        assert r.program_s == 0
    softmax = next(op for seg in g.segments for op in seg.ops if op.kind == "softmax")
    with pytest.raises(ConfigError, match="CiM runs gemm, lm_head ops"):
        cim_op_cost(softmax, halo)


def test_cli_json_matches_the_model(capsys, halo):
    assert main(["cim", "--m", "64", "--n", "4096", "--k", "4096", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    r = cim_gemm(halo, 64, 4096, 4096)
    assert out["cycles"] == r.cycles and out["crossbars_used"] == r.crossbars_used
    assert out["energy_j"]["total"] == pytest.approx(r.energy_j, rel=REL)
    assert out["program_s"] > 0
    assert main(["cim", "--m", "64", "--n", "4096", "--k", "4096", "--resident"]) == 0
    text = capsys.readouterr().out
    assert "reprogramming        0 s, 0 J" in text


def test_timing_model_is_cheap(halo):
    """Not a speed claim (benchmarks/bench_cim.py measures it): a sanity bound so a regression
    to something quadratic shows up."""
    t = time.perf_counter()
    for _ in range(100):
        cim_gemm(halo, 2048, 11008, 4096)
    assert time.perf_counter() - t < 10
