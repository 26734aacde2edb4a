"""The near-bank unit's reference model against independent references: numpy's fp16
decoding, exact rational sums (`fractions.Fraction`), and the CiD functional GEMV
(`sim.units.cid.layout.gemv_functional`, bank by bank on integers)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from sim.units.cid.dram import load_dram
from sim.units.cid.engine import run_channel
from sim.units.cid.nearbank_model import (SCALE_ONE, NearBankConfig, UnitModel,
                                          bf16_fixed, burst_contribution, expected_gemv,
                                          fp16_fixed,
                                          reduce_results, signed_code, unit_banks,
                                          unit_config, unit_program)
from sim.units.cid.layout import gemv_functional, gemv_layout

AIM = load_dram("gddr6-aim")


def _f16(code: int) -> Fraction:
    v = np.array([code], dtype=np.uint16).view(np.float16)[0]
    return Fraction(float(v)) if np.isfinite(v) else Fraction(0)


def test_fp16_fixed_is_numpy_value_for_every_code():
    codes = np.arange(1 << 16, dtype=np.uint16)
    values = codes.view(np.float16).astype(np.float64)
    finite = np.isfinite(values)
    fixed = np.array([fp16_fixed(c) for c in range(1 << 16)], dtype=np.float64)
    assert np.array_equal(fixed[finite], values[finite] * 2.0**24)     # exact in float64
    assert not fixed[~finite].any()                                   # inf / NaN read as 0
    assert fp16_fixed(0x0001) == 1 and fp16_fixed(0x7BFF) == 65504 << 24


def test_bf16_fixed_is_ml_dtypes_value_in_the_window_and_clamped_outside():
    """Every bf16 code: exact (ml_dtypes' value x 2^39) for 2^-32 <= |v| < 2^16, zero below
    (subnormals too) and for inf/NaN, the window's largest magnitude above."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    codes = np.arange(1 << 16, dtype=np.uint16)
    with np.errstate(invalid="ignore"):  # the NaN codes convert to NaN, as intended
        values = codes.view(ml_dtypes.bfloat16).astype(np.float64)
    fixed = np.array([bf16_fixed(c) for c in range(1 << 16)], dtype=np.float64)
    mag = np.abs(values)
    inside = (mag >= 2.0**-32) & (mag < 2.0**16)
    assert np.array_equal(fixed[inside], values[inside] * 2.0**39)     # exact in float64
    assert not fixed[(mag < 2.0**-32) | ~np.isfinite(values)].any()
    above = np.isfinite(values) & (mag >= 2.0**16)
    assert np.array_equal(fixed[above], np.sign(values[above]) * 65280 * 2.0**39)
    assert inside.sum() == 2 * 48 * 128          # 48 binades of 128 codes, both signs
    assert bf16_fixed(0x3F80) == 1 << 39                                   # 1.0
    assert bf16_fixed(0x477F) == bf16_fixed(0x4780) == 65280 << 39         # 65280; 2^16
    assert bf16_fixed(0x2F80) == 128 and bf16_fixed(0x2F7F) == 0           # 2^-32; below


@pytest.mark.parametrize("seed", range(4))
def test_fp16_burst_is_the_exact_rational_dot_product(seed):
    rng = np.random.default_rng(seed)
    cfg = NearBankConfig(lanes=16, wdtype="fp16", acc_rows=4, gb_entries=4, max_macs=64)
    w, x = rng.integers(0, 1 << 16, 16), rng.integers(0, 1 << 16, 16)
    exact = sum(_f16(a) * _f16(b) for a, b in zip(w, x))
    assert burst_contribution(cfg, w, x, 0) == exact * 2**48


@pytest.mark.parametrize("wdtype,bits,lanes", [("int8", 8, 32), ("int4", 4, 64)])
def test_integer_burst_is_scale_times_integer_dot(wdtype, bits, lanes):
    rng = np.random.default_rng(bits)
    cfg = NearBankConfig(lanes=lanes, wdtype=wdtype, acc_rows=4, gb_entries=4, max_macs=64)
    w, x = rng.integers(0, 1 << bits, lanes), rng.integers(0, 1 << bits, lanes)
    ws = np.where(w >= 1 << (bits - 1), w - (1 << bits), w)
    xs = np.where(x >= 1 << (bits - 1), x - (1 << bits), x)
    for scale in (SCALE_ONE, 0xB555, 0x0003):
        assert burst_contribution(cfg, w, x, scale) == \
            int(ws @ xs) * _f16(scale) * 2**24


@pytest.mark.parametrize("seed", range(2))
def test_bf16_burst_is_the_exact_rational_dot_product(seed):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(seed)
    cfg = NearBankConfig(lanes=16, wdtype="bf16", acc_rows=4, gb_entries=4, max_macs=64)
    # exponent fields inside the window (95..142), random sign and fraction
    w, x = ((rng.integers(0, 2, 16) << 15) | (rng.integers(95, 143, 16) << 7)
            | rng.integers(0, 128, 16) for _ in range(2))
    dec = [np.array(c, dtype=np.uint16).view(ml_dtypes.bfloat16).astype(np.float64)
           for c in (w, x)]
    exact = sum(Fraction(float(a)) * Fraction(float(b)) for a, b in zip(*dec))
    assert burst_contribution(cfg, w, x, 0) == exact * 2**78


@pytest.mark.parametrize("wdtype", ["fp16", "bf16", "int8", "int4"])
def test_accumulator_holds_the_largest_sum(wdtype):
    """max_macs bursts of the largest-magnitude products fit the signed accumulator."""
    cfg = NearBankConfig(lanes=16, wdtype=wdtype, acc_rows=4, gb_entries=4, max_macs=64)
    big = {"fp16": (0x7BFF, 0xFBFF, 0), "bf16": (0x7F7F, 0xFF7F, 0),
           "int8": (0x80, 0x80, 0x7BFF),
           "int4": (0x8, 0x8, 0x7BFF)}[wdtype]
    one = burst_contribution(cfg, [big[0]] * 16, [big[1]] * 16, big[2])
    assert abs(one) * cfg.max_macs < 1 << (cfg.acc_bits - 1)
    assert signed_code(0x8, 4) == -8 and signed_code(0x7, 4) == 7


def _replay(lay, w, x, scales, cfg):
    run = run_channel(AIM, "aim", steps=lay.steps, cols=lay.cols, cols_last=lay.cols_last,
                      chunks=lay.chunks_local, gb_writes=lay.gb_writes, reads=lay.reads,
                      record=True)
    banks = unit_banks(lay, AIM.org.rows, w, scales)
    return [UnitModel(cfg).run(unit_program(lay, run.stream, u, x), banks[u])
            for u in range(lay.units)], run


@pytest.mark.parametrize("wdtype,n,k", [("int8", 37, 70), ("int4", 5, 300),
                                        ("int8", 40, 3000), ("fp16", 20, 33),
                                        ("fp16", 3, 2500), ("bf16", 9, 1500)])
def test_unit_replay_equals_the_cid_functional_gemv(wdtype, n, k):
    """Replaying the engine's commands unit by unit gives the functional model's y (integer
    formats: scales of one; fp16: values small enough for its int64 sums)."""
    rng = np.random.default_rng(n * k)
    lay = gemv_layout(AIM, "aim", n, k, wdtype, pcs=1)
    cfg = unit_config(AIM, wdtype)
    if wdtype in ("fp16", "bf16"):
        vals = rng.choice([-2.0, -0.75, 0.0, 0.5, 1.25, 3.0, 2.0**-14, -(2.0**-20)], (n, k + 1))
        # bf16 codes are the top half of float32 codes (these values are exact in both)
        codes = (vals.astype(np.float16).view(np.uint16).astype(np.int64) if wdtype == "fp16"
                 else vals.astype(np.float32).view(np.uint32).astype(np.int64) >> 16)
        w, x = codes[:, :k], codes[0, :k] ^ 0x8000 * (rng.random(k) < 0.5)
        # 2^48 w x (fp16) or 2^78 w x (bf16) in units of 2^-40 x 2^-40: these values are
        # multiples of 2^-20, so the functional model's int64 sums of 2^20 w x 2^20 x fit
        wi = np.round(vals[:, :k] * 2.0**20).astype(np.int64)
        xi = np.where(x & 0x8000, -1, 1) * np.abs(np.round(vals[0, :k] * 2.0**20)).astype(
            np.int64)
        scale = {"fp16": 48, "bf16": 78}[wdtype] - 40
    else:
        bits = 8 if wdtype == "int8" else 4
        w, x = rng.integers(0, 1 << bits, (n, k)), rng.integers(0, 1 << bits, k)
        wi, xi = np.vectorize(lambda c: signed_code(c, bits))(w), \
            np.vectorize(lambda c: signed_code(c, bits))(x)
        scale = 24
    results, _ = _replay(lay, w, x, None, cfg)
    y = reduce_results(lay, results)
    assert y == [int(v) << scale for v in gemv_functional(lay, wi, xi)]
    assert y == expected_gemv(cfg, w, x, None)


def test_unit_program_matches_the_engine_stream():
    """Every unit takes every all-bank command at its engine cycle; the RDRES counts of a
    step add up to the unit's accumulators."""
    lay = gemv_layout(AIM, "aim", 40, 100, "int8", pcs=1)
    run = run_channel(AIM, "aim", steps=lay.steps, cols=lay.cols, cols_last=lay.cols_last,
                      chunks=lay.chunks_local, gb_writes=lay.gb_writes, reads=lay.reads,
                      record=True)
    for u in range(lay.units):
        prog = unit_program(lay, run.stream, u, np.zeros(100, dtype=np.int64))
        assert [c.cycle for c in prog] == run.stream[:, 0].tolist()
        reads = [c.n for c in prog if c.op == "RDRES"]
        assert sum(reads) == lay.steps * min(lay.pack, lay.local_rows)
        assert [c.acc for c in prog if c.op == "MAC"] == \
            [j // lay.cols_per_row for _ in range(lay.steps) for j in range(lay.cols)]


def test_config_refuses_bad_parameters():
    with pytest.raises(ValueError, match="wdtype"):
        NearBankConfig(lanes=16, wdtype="fp8", acc_rows=4, gb_entries=4, max_macs=4)
    with pytest.raises(ValueError, match="lanes"):
        NearBankConfig(lanes=0, wdtype="int8", acc_rows=4, gb_entries=4, max_macs=4)
    cfg = unit_config(AIM, "fp16")
    assert (cfg.lanes, cfg.acc_rows, cfg.rd_max) == (16, 64, 8)   # 32-byte bursts, 2 KB GB
