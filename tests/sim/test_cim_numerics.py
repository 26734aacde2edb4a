"""The functional model of the analog CiM path (`sim.units.cim.numerics`).

References: the integer matrix product ``xq @ wq`` (numpy int64), which ideal devices with
enough ADC bits must reproduce exactly; an independent numpy re-implementation of the analog
path (`_reference`, written from the docstring's five steps with whole-array operations) that
must agree exactly, programming noise included, for coarse ADCs; and the closed-form variance
of the read noise.
"""

import dataclasses

import numpy as np
import pytest

from sim.units.cim.numerics import (cim_linear, error_metrics, mvm, program, quantize, with_adc)
from sim.units.cim.crossbar import load_cim
from sim.errors import ConfigError


@pytest.fixture(scope="module")
def xb():
    return load_cim("halo-cim").unit.crossbar


def _ideal(xb, **changes):
    """No noise, a full-range ADC (every possible column sum in range) of exact width."""
    changes = {"adc_range": 1.0, **changes}
    x = dataclasses.replace(xb, programming_noise=0.0, read_noise=0.0, **changes)
    return with_adc(x, x.adc_bits_exact)


def _ints(rng, shape, bits, symmetric=True):
    lo = -(1 << (bits - 1)) + (1 if symmetric else 0)
    return rng.integers(lo, 1 << (bits - 1), size=shape)


@pytest.mark.parametrize("changes", [
    {},                                                     # halo-cim, differential
    {"encoding": "offset"},                                 # ISAAC's biased encoding
    {"encoding": "offset", "cell_bits": 3},                 # 8 bits over 3-bit cells: 3, 3, 2
    {"dac_bits": 2, "cell_bits": 1, "rows": 64},            # multi-bit DAC, 1-bit cells
    {"encoding": "offset", "dac_bits": 3, "adc_range": 1.0, "rows": 32},
])
def test_ideal_devices_give_the_integer_product_exactly(xb, changes):
    """No noise and adc_bits = adc_bits_exact: every column sum is converted exactly, so the
    result is exactly ``xq @ wq`` (K not a multiple of rows; extreme values included)."""
    ideal = _ideal(xb, **changes)
    rng = np.random.default_rng(1)
    k, n, m = 300, 37, 5
    w, x = _ints(rng, (k, n), 8), _ints(rng, (m, k), 8)
    w[0, :], x[:, 0] = 127, -127  # extremes
    if ideal.encoding == "offset":
        w[1, :], x[:, 1] = -128, -128
    y = mvm(program(ideal, w, rng=rng), x, rng=rng)
    np.testing.assert_array_equal(y, x @ w)


def test_narrower_weights_and_inputs_than_the_crossbar_native_are_exact(xb):
    """int4 weights (3 magnitude bits: 2 slices of 2-bit cells) and 6-bit inputs (5 reads)
    on the 8-bit preset crossbar, ideal: exact."""
    ideal = _ideal(xb)
    rng = np.random.default_rng(9)
    w, x = _ints(rng, (130, 9), 4), _ints(rng, (3, 130), 6)
    prog = program(ideal, w, rng=rng, weight_bits=4)
    assert prog.slices == 2
    np.testing.assert_array_equal(mvm(prog, x, rng=rng, input_bits=6), x @ w)


def test_error_is_monotone_in_adc_bits_and_vanishes_at_the_exact_width(xb):
    """Fixed seed, several ADC widths, same programming: the ADC grids are nested (each extra
    bit halves the step and keeps the range), so each column sum's rounding error cannot grow,
    and in practice the output error falls; zero from adc_bits_exact up."""
    for encoding in ("differential", "offset"):
        ideal = _ideal(xb, encoding=encoding, adc_range=1.0)
        rng = np.random.default_rng(7)
        w, x = _ints(rng, (512, 64), 8), _ints(rng, (4, 512), 8)
        prog = program(ideal, w, rng=rng)
        errors = []
        for bits in range(3, ideal.adc_bits_exact + 2):
            y = mvm(prog, x, rng=rng, crossbar=with_adc(ideal, bits))
            errors.append(float(np.sum((y - x @ w).astype(float) ** 2)))
        assert all(a >= b for a, b in zip(errors, errors[1:])), errors
        assert errors[0] > 0 and errors[-1] == errors[-2] == 0


def _reference(xb, w, x, cells):
    """The analog path in whole-array numpy, from the module docstring: slices of the input
    (sign-magnitude or offset), per row tile the column sums ``v @ cells``, ADC rounding and
    clipping, shift-and-add, offset removal. ``cells``: programmed conductances (K, S*N)."""
    k, n = w.shape
    s, t = xb.slices(), xb.input_cycles()
    if xb.signed:
        mag, sign = np.abs(x), np.where(x < 0, -1, 1)
    else:
        mag, sign = x + (1 << (xb.input_bits - 1)), np.ones_like(x)
    lo, hi = xb.adc_codes
    out = np.zeros((x.shape[0], n), dtype=np.int64)
    for ti in range(t):
        v = (((mag >> (ti * xb.dac_bits)) & ((1 << xb.dac_bits) - 1)) * sign).astype(np.float64)
        for r0 in range(0, k, xb.rows):
            sums = v[:, r0:r0 + xb.rows] @ cells[r0:r0 + xb.rows].astype(np.float64)
            codes = np.clip(np.rint(sums / xb.adc_step), lo, hi).astype(np.int64)
            for sl in range(s):
                out += (codes[:, sl * n:(sl + 1) * n] * xb.adc_step
                        << (sl * xb.cell_bits + ti * xb.dac_bits))
    if not xb.signed:
        ox, ow = 1 << (xb.input_bits - 1), 1 << (xb.weight_bits - 1)
        out += -ow * mag.sum(1)[:, None] - ox * (w + ow).sum(0)[None, :] + k * ox * ow
    return out


@pytest.mark.parametrize("encoding", ["differential", "offset"])
@pytest.mark.parametrize("adc_bits", [4, 6, 8])
def test_matches_an_independent_numpy_reference_with_programming_noise(xb, encoding, adc_bits):
    """Same programmed (noisy) conductances, no read noise, coarse ADCs: the Numba kernel
    and the numpy reference agree exactly. Sums are of at most 128 small integers times
    float32 conductances; float32 (kernel) and float64 (reference) sums can differ in the
    last bits, which flips a rounding only on an exact tie: the test asserts equality on a
    fixed seed where no tie occurs, and allows none."""
    noisy = with_adc(dataclasses.replace(xb, encoding=encoding, programming_noise=0.05,
                                         read_noise=0.0), adc_bits)
    rng = np.random.default_rng(3)
    w, x = _ints(rng, (200, 24), 8), _ints(rng, (3, 200), 8)
    prog = program(noisy, w, rng=rng)
    y = mvm(prog, x, rng=rng)
    np.testing.assert_array_equal(y, _reference(noisy, w, x, prog.cells))


def _program_reference(xb, w, weight_bits, sigma, seed):
    """Programming in whole-array numpy, from the module docstring's step 1: ``u`` (``|w|``
    on G+ or G- by sign, or ``w + 2^(b-1)``), its ``cell_bits`` slices as levels, one
    conductance ``(level + g_off)(1 + sigma z)`` clipped at 0 per cell, float32, with ``z``
    drawn from ``default_rng(seed)`` as (K, S*N) float32 arrays, the G+ (or only) cells'
    first, then G-'s. Returns (cells, squares, column_sums)."""
    rng = np.random.default_rng(seed)
    s = xb.slices(weight_bits)
    u = np.abs(w) if xb.signed else w + (1 << (weight_bits - 1))
    levels = np.concatenate([(u >> (sl * xb.cell_bits)) & ((1 << xb.cell_bits) - 1)
                             for sl in range(s)], axis=1).astype(np.float32)
    g0, f32 = np.float32(xb.off_conductance_levels), np.float32

    def conductance(level):
        if sigma == 0:
            return level + g0
        z = rng.standard_normal(level.shape, dtype=np.float32)
        return np.maximum((level + g0) * (z * f32(sigma) + f32(1)), f32(0))

    if xb.signed:
        negative = np.tile(w < 0, (1, s))
        pos = np.where(negative, f32(0), levels)
        neg = np.where(negative, levels, f32(0))
        g_pos, g_neg = conductance(pos), conductance(neg)
        cells = pos - neg if sigma == 0 else g_pos - g_neg
        squares = g_pos * g_pos + g_neg * g_neg
    else:
        g = conductance(levels)
        cells = levels if sigma == 0 else g - g0
        squares = g * g
    return cells, squares, u.sum(axis=0)


@pytest.mark.parametrize("encoding", ["differential", "offset"])
@pytest.mark.parametrize("sigma", [0.0, 0.05, 1.5])
@pytest.mark.parametrize("weight_bits,cell_bits,g_off", [(8, 2, 0.0), (4, 2, 0.3),
                                                         (8, 3, 0.5)])
def test_programming_matches_an_independent_numpy_reference(xb, encoding, sigma, weight_bits,
                                                            cell_bits, g_off):
    """The fused Numba programming kernel against `_program_reference` on small random
    weights (extremes included), same seed: equal bit for bit, tolerance zero. Each value is
    a short fixed chain of float32 operations (no sums), so IEEE arithmetic gives the same
    bits in both; the draws are the same Generator calls in the same order. ``sigma = 1.5``
    clips some conductances at 0; ``(8, 3)`` gives uneven slices (3, 3, 2 or 3, 3, 1 bits)."""
    crossbar = dataclasses.replace(xb, encoding=encoding, cell_bits=cell_bits,
                                   off_conductance_levels=g_off)
    rng = np.random.default_rng(weight_bits * 10 + cell_bits)
    w = _ints(rng, (37, 23), weight_bits, symmetric=encoding == "differential")
    w[0, 0], w[-1, -1], w[1, 1] = w.min(), (1 << (weight_bits - 1)) - 1, 0
    prog = program(crossbar, w, rng=np.random.default_rng(8), weight_bits=weight_bits,
                   programming_noise=sigma)
    cells, squares, column_sums = _program_reference(crossbar, w, weight_bits, sigma, seed=8)
    assert prog.cells.dtype == prog.squares.dtype == np.float32
    np.testing.assert_array_equal(prog.cells, cells)
    np.testing.assert_array_equal(prog.squares, squares)
    np.testing.assert_array_equal(prog.column_sums, column_sums)
    if sigma == 1.5 and g_off > 0:  # every nominal conductance > 0: zeros are clipped ones
        assert (squares == 0).any()


def test_same_seed_same_numbers_and_another_seed_differs(xb):
    rng = np.random.default_rng(11)
    w, x = rng.standard_normal((256, 32)), rng.standard_normal((4, 256))
    a = cim_linear(xb, w, x, rng=np.random.default_rng(5))
    b = cim_linear(xb, w, x, rng=np.random.default_rng(5))
    c = cim_linear(xb, w, x, rng=np.random.default_rng(6))
    np.testing.assert_array_equal(a.y_int, b.y_int)
    assert not np.array_equal(a.y_int, c.y_int)


def test_read_noise_variance_matches_the_closed_form(xb):
    """One row tile, all inputs 1 (1-bit DAC, one read carries the input), one weight slice
    level per column: the column sum is ``sum g (1 + s e)``, variance ``s^2 sum g^2``. With
    the ADC step of 1 the rounding adds about 1/12. Over 200 columns x 400 draws, the sample
    variance is within 5% of ``s^2 sum g^2 + 1/12`` (standard error of a variance over 8e4
    samples is ~0.5%; rounding is not exactly uniform, hence 5%)."""
    ideal = _ideal(xb, encoding="offset", rows=128, adc_range=1.0, off_conductance_levels=0.0)
    rng = np.random.default_rng(2)
    k, n = 128, 200
    # offset weights u = w + 128 with low slice 3, higher slices 0: w = 3 - 128
    w = np.full((k, n), 3 - 128)
    prog = program(ideal, w, rng=rng)
    x = np.full((400, k), -127)  # offset input u = 1: only the first read carries a 1
    sigma = 0.2
    y = mvm(prog, x, rng=rng, read_noise=sigma)
    err = (y - x @ w).astype(float)
    expected = sigma ** 2 * k * 3 ** 2 + 1 / 12
    assert err.var() == pytest.approx(expected, rel=0.05)
    assert abs(err.mean()) < 0.05 * np.sqrt(expected)
    # an off-state conductance puts noise on the level-0 cells too: more error
    with_off = dataclasses.replace(ideal, off_conductance_levels=0.5)
    y_off = mvm(program(with_off, w, rng=rng), x, rng=rng, read_noise=sigma)
    assert (y_off - x @ w).astype(float).var() > 1.5 * err.var()


def test_noise_degrades_sqnr_and_metrics_are_correct(xb):
    rng = np.random.default_rng(4)
    w, x = rng.standard_normal((512, 64)) * 0.02, rng.standard_normal((8, 512))
    clean = cim_linear(_ideal(xb), w, x, rng=np.random.default_rng(0))
    noisy = cim_linear(_ideal(xb), w, x, rng=np.random.default_rng(0), programming_noise=0.1,
                       read_noise=0.1)
    np.testing.assert_array_equal(clean.y_int, clean.y_int_ref)
    s_clean = error_metrics(clean.y_float, clean.y_cim)["sqnr_db"]
    s_noisy = error_metrics(noisy.y_float, noisy.y_cim)["sqnr_db"]
    assert s_noisy < s_clean
    m = error_metrics(np.array([[3.0, 4.0]]), np.array([[3.0, 5.0]]))
    assert m["sqnr_db"] == pytest.approx(10 * np.log10(25.0))
    assert m["relative_error"] == pytest.approx(0.2) and m["max_abs_error"] == 1.0
    assert error_metrics(np.ones((2, 2)), np.ones((2, 2)))["sqnr_db"] == float("inf")
    q, s = quantize(np.array([[1.0, -2.0], [0.5, 0.25]]), 8, axis=0)
    np.testing.assert_allclose(q * s, [[1.0, -2.0], [0.5, 0.25]], atol=2 / 127)


def test_bad_inputs_are_refused(xb):
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match="signed 8-bit"):
        program(xb, np.array([[200]]), rng=rng)
    with pytest.raises(ConfigError, match="expected integers"):
        program(xb, np.array([[0.5]]), rng=rng)
    with pytest.raises(ConfigError, match="-128 does not fit"):
        program(xb, np.array([[-128]]), rng=rng)
    with pytest.raises(ConfigError, match="programming_noise: must be >= 0"):
        program(xb, np.array([[1]]), rng=rng, programming_noise=-0.1)
    prog = program(xb, np.ones((4, 2), dtype=int), rng=rng)
    with pytest.raises(ConfigError, match="read_noise: must be >= 0"):
        mvm(prog, np.ones((1, 4), dtype=int), rng=rng, read_noise=-1.0)
    with pytest.raises(ConfigError, match="expected 4 columns"):
        mvm(prog, np.ones((1, 5), dtype=int), rng=rng)
    with pytest.raises(ConfigError, match="adc_bits: must be in"):
        with_adc(xb, 0)


def test_accuracy_study_writes_its_folder_small(tmp_path):
    """The study's writer on a reduced problem (2 tokens, 16 columns, 3 ADC widths, 2 noise
    levels): the three files appear, the JSON parses, the exact width is exact, and the
    study's own monotonicity check holds. The full study runs in `pdsim reproduce`."""
    import json

    from sim.cli.main import main
    from sim.studies.cim_accuracy import write_cim_accuracy

    paths = write_cim_accuracy(tmp_path, tokens=2, columns=16, adc_bits=(4, 8, 10),
                               noise=(0.0, 0.05), layers=("q_proj",))
    assert sorted(p.name for p in paths) == ["README.md", "cim_accuracy.json",
                                             "cim_accuracy.png"]
    data = json.loads((tmp_path / "cim_accuracy.json").read_text())
    layer = data["layers"]["q_proj"]
    assert layer["error_monotone_in_adc_bits"]
    assert layer["adc_sweep_ideal_devices"][-1]["exact"]
    assert layer["programming_noise_sweep"][0]["exact"]
    assert "pdsim reproduce cim-accuracy" in (tmp_path / "README.md").read_text()
    again = tmp_path / "again"
    write_cim_accuracy(again, tokens=2, columns=16, adc_bits=(4, 8, 10), noise=(0.0, 0.05),
                       layers=("q_proj",))
    for name in ("cim_accuracy.json", "README.md"):  # same seed, same bytes
        assert (again / name).read_bytes() == (tmp_path / name).read_bytes()
    assert (tmp_path / "cim_accuracy.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SystemExit):  # the study is registered with `pdsim reproduce`
        main(["reproduce", "no-such-study"])
    from sim.cli.main import _studies
    assert _studies()["cim-accuracy"][0] == "results/cim"
