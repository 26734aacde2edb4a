"""Functional model of a matrix product through an analog CiM crossbar (Numba kernel).

The same ``Y[M,N] = X[M,K] @ W[K,N]`` that `sim.units.cim.cost` times, computed the way the
hardware computes it, on integers:

1. **Weights to conductance levels** (`program`): with the ``offset`` encoding a signed
   ``b``-bit weight is stored as ``u = w + 2^(b-1)`` in ``[0, 2^b - 1]`` (ISAAC's biased
   encoding); with ``differential`` its magnitude ``|w|`` (``b - 1`` bits) sits on the G+ or
   the G- column of a pair, by its sign. ``u`` is cut into ``S`` slices of ``cell_bits``
   bits, one cell (or cell pair) each. A cell's
   conductance, in units of one level step, is ``(level + off_conductance_levels) x
   (1 + programming_noise x N(0, 1))``, drawn once per programming and clipped at 0; the
   nominal off-state conductance is subtracted by a reference column (offset) or cancels in
   the pair (differential), its noise does not.
2. **Bit-serial inputs** (`mvm`): a signed ``i``-bit input is offset the same way (or, when
   differential, split into sign, the DAC polarity, and ``i - 1`` magnitude bits) and fed
   ``dac_bits`` at a time, ``T`` reads, least significant slice first.
3. **Analog sums with read noise**: each read of each crossbar (``rows`` rows of a row tile)
   gives per column ``I = sum_r v_r g_r (1 + read_noise x e_r)`` over every cell ``g_r`` on
   it (both of a differential pair), with ``e_r`` fresh N(0, 1) per cell and read. The sum
   of those Gaussians is drawn exactly as one Gaussian per column and read:
   ``I = sum v g + read_noise x sqrt(sum v^2 g^2) x N(0, 1)``.
4. **ADC**: ``code = clip(rint(I / step), lo, hi)`` with ``step`` a power of two
   (`sim.units.cim.crossbar.Crossbar.adc_step`): 1 when the ADC resolves every sum up to its
   full scale,
   coarser otherwise; ``[lo, hi]`` is ``[0, 2^adc_bits - 1]`` (offset) or
   ``+-(2^(adc_bits-1) - 1)`` (differential, signed); sums beyond ``hi x step`` clip.
5. **Shift-and-add**: ``sum code x step x 2^(cell_bits s + dac_bits t)`` over slices, input
   slices and row tiles, in int64; with the offset encoding the offsets are then removed
   digitally:
   ``sum (x_u - o_x)(w_u - o_w) = sum x_u w_u - o_w sum x_u - o_x sum w_u + K o_x o_w``
   with the nominal column sums ``sum w_u`` known from programming.

With no noise and ``adc_bits >= adc_bits_exact`` every step is exact, so `mvm` returns the
integer product ``X @ W`` exactly (tested). Randomness comes only from the
`numpy.random.Generator` passed in; the same seed gives the same numbers.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from sim.units.cim.crossbar import Crossbar
from sim.errors import ConfigError

#: Read-noise draws held in memory at once (float32); tokens are processed in chunks so
#: that one chunk's draws fit. The chunking depends on the shapes only (determinism).
_NOISE_BUDGET = 1 << 23
_TOKEN_BLOCK = 8  # tokens sharing one pass over the cells (cache reuse)


@dataclass(frozen=True, slots=True, eq=False)
class Programmed:
    """A ``K x N`` integer weight matrix programmed onto crossbars of ``crossbar``'s geometry.

    ``cells[i, s * N + j]`` is the conductance (in level steps) of slice ``s`` of weight
    ``(i, j)`` as the ADC sees it, programming noise included: the cell's minus the nominal
    off-state conductance a reference column subtracts (offset), or G+ - G- (differential).
    ``squares`` is the sum of the squared conductances of the cell(s), which sets the read
    noise. ``column_sums[j]`` is the nominal ``sum_i u_ij`` of the offset weights, used by the
    digital offset correction.
    """

    crossbar: Crossbar
    weight_bits: int
    cells: np.ndarray
    squares: np.ndarray
    column_sums: np.ndarray

    @property
    def k(self) -> int:
        return self.cells.shape[0]

    @property
    def n(self) -> int:
        return self.column_sums.shape[0]

    @property
    def slices(self) -> int:
        return self.crossbar.slices(self.weight_bits)


def _check_ints(a: np.ndarray, bits: int, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2:
        raise ConfigError(f"{name}: expected a 2-D array, got {a.ndim}-D")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise ConfigError(f"{name}: expected integers (quantise first), got {a.dtype}")
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if a.size and (a.min() < lo or a.max() > hi):
        raise ConfigError(f"{name}: values must be signed {bits}-bit, in [{lo}, {hi}]")
    return a.astype(np.int64, copy=False)


def program(crossbar: Crossbar, wq: np.ndarray, *, rng: np.random.Generator,
            weight_bits: int | None = None, programming_noise: float | None = None
            ) -> Programmed:
    """Program the signed integer weights ``wq`` (``K x N``, ``weight_bits`` bits, default
    the crossbar's) with ``programming_noise`` (default the crossbar's)."""
    wb = weight_bits or crossbar.weight_bits
    if wb < crossbar.cell_bits:
        raise ConfigError(f"weight_bits: must be >= cell_bits ({crossbar.cell_bits}), got {wb}")
    sigma = crossbar.programming_noise if programming_noise is None else programming_noise
    if not sigma >= 0:
        raise ConfigError(f"programming_noise: must be >= 0, got {sigma!r}")
    w = _check_ints(wq, wb, "weights")
    if crossbar.signed and w.size and w.min() == -(1 << (wb - 1)):
        raise ConfigError(f"weights: the differential encoding holds magnitudes of "
                          f"{wb - 1} bits; -{1 << (wb - 1)} does not fit (quantise "
                          f"symmetrically)")
    k, n = w.shape
    s = crossbar.slices(wb)
    cells = np.empty((k, s * n), dtype=np.float32)
    squares = np.empty((k, s * n), dtype=np.float32)
    if sigma > 0:  # the standard-normal draws, in place: G+ (or the cell) first, then G-
        rng.standard_normal(out=cells, dtype=np.float32)
        if crossbar.signed:
            rng.standard_normal(out=squares, dtype=np.float32)
    column_sums = np.zeros(n, dtype=np.int64)
    _program(w, crossbar.signed, 0 if crossbar.signed else 1 << (wb - 1), crossbar.cell_bits,
             s, np.float32(crossbar.off_conductance_levels), np.float32(sigma), cells, squares,
             column_sums)
    return Programmed(crossbar=crossbar, weight_bits=wb, cells=cells, squares=squares,
                      column_sums=column_sums)


@njit(cache=True)
def _noisy(level, g0, sigma, z):
    """A programmed conductance, in level steps: ``(level + g_off) (1 + sigma z)`` clipped at
    0, in float32 with the rounding of the numpy expression it replaces (``+0.0`` for a
    clipped or zero conductance, as ``np.maximum(g, 0)`` gives)."""
    g = (level + g0) * (z * sigma + np.float32(1.0))
    return g if g > np.float32(0.0) else np.float32(0.0)


@njit(cache=True)
def _program(w, signed, offset, cell_bits, slices, g0, sigma, cells, squares, column_sums):
    """Slice, encode and program the weights ``w`` (K x N ints) in one pass; fills ``cells``
    and ``squares`` (K x S*N float32) and ``column_sums`` (N, int64, zeroed by the caller).

    ``u = |w|`` (``signed``, differential) or ``w + offset``; slice ``s`` of ``u`` is the
    level ``(u >> s cell_bits) & mask``. With ``sigma > 0`` ``cells`` holds on entry the
    standard-normal draws of the cell (offset) or of G+ (differential) and ``squares`` those
    of G- (differential); each element is read before it is overwritten. Every value is
    the same short chain of float32 operations as the whole-array numpy it replaced (no
    fastmath, no sums), so the results are bit for bit those of that code."""
    k, n = w.shape
    mask = (1 << cell_bits) - 1
    noisy = sigma > 0
    zero = np.float32(0.0)
    for i in range(k):
        for j in range(n):
            x = np.int64(w[i, j])
            column_sums[j] += -x if signed and x < 0 else x + offset
    for i in range(k):  # serial on purpose: the Generator draws (outside) dominate the time
        for sl in range(slices):
            shift = sl * cell_bits
            c = cells[i, sl * n:(sl + 1) * n]
            q = squares[i, sl * n:(sl + 1) * n]
            if signed:  # |w| sits on the G+ column of the pair for w >= 0, on G- for w < 0
                for j in range(n):
                    x = np.int64(w[i, j])
                    level = np.float32(((-x if x < 0 else x) >> shift) & mask)
                    neg = level if x < 0 else zero
                    pos = level - neg
                    if noisy:
                        gp = _noisy(pos, g0, sigma, c[j])
                        gn = _noisy(neg, g0, sigma, q[j])
                        c[j] = gp - gn
                    else:
                        gp = pos + g0
                        gn = neg + g0
                        c[j] = pos - neg
                    q[j] = gp * gp + gn * gn
            else:
                for j in range(n):
                    level = np.float32(((np.int64(w[i, j]) + offset) >> shift) & mask)
                    if noisy:  # a reference column subtracts the nominal off-state current
                        g = _noisy(level, g0, sigma, c[j])
                        c[j] = g - g0
                    else:
                        g = level + g0
                        c[j] = level  # exact without noise
                    q[j] = g * g


def mvm(prog: Programmed, xq: np.ndarray, *, rng: np.random.Generator,
        crossbar: Crossbar | None = None, input_bits: int | None = None,
        read_noise: float | None = None) -> np.ndarray:
    """``xq @ W`` (int64, ``M x N``) through the analog path, for signed integer inputs
    ``xq`` (``M x K``, ``input_bits`` bits, default the crossbar's).

    ``crossbar`` (default the one ``prog`` was programmed for) sets the DACs, the ADC and the
    read noise, so one programming can be read with several ADCs; its ``rows`` and
    ``cell_bits`` must match the programming. ``read_noise`` overrides the crossbar's.
    """
    xb = crossbar or prog.crossbar
    if (xb.rows, xb.cell_bits, xb.encoding) != (prog.crossbar.rows, prog.crossbar.cell_bits,
                                                prog.crossbar.encoding):
        raise ConfigError("crossbar: rows, cell_bits and encoding must match the programmed "
                          "crossbar")
    ib = input_bits or xb.input_bits
    if ib < xb.dac_bits:
        raise ConfigError(f"input_bits: must be >= dac_bits ({xb.dac_bits}), got {ib}")
    sigma = xb.read_noise if read_noise is None else read_noise
    if not sigma >= 0:
        raise ConfigError(f"read_noise: must be >= 0, got {sigma!r}")
    x = _check_ints(xq, ib, "inputs")
    if x.shape[1] != prog.k:
        raise ConfigError(f"inputs: expected {prog.k} columns (K), got {x.shape[1]}")
    if xb.signed:
        if x.size and x.min() == -(1 << (ib - 1)):
            raise ConfigError(f"inputs: sign-magnitude inputs hold {ib - 1} magnitude bits; "
                              f"-{1 << (ib - 1)} does not fit (quantise symmetrically)")
        xu, xsign = np.abs(x), np.where(x < 0, -1, 1).astype(np.int8)
    else:
        ox, ow = 1 << (ib - 1), 1 << (prog.weight_bits - 1)
        xu, xsign = x + ox, np.ones(x.shape, np.int8)
    m = xu.shape[0]
    t = xb.input_cycles(ib)
    s, n, k = prog.slices, prog.n, prog.k
    r = -(-k // xb.rows)
    out = np.zeros((m, n), dtype=np.int64)
    cells2 = prog.squares if sigma > 0 else np.zeros((0, 0), np.float32)
    per_token = t * r * s * n
    chunk = max(1, _NOISE_BUDGET // per_token) if sigma > 0 else max(1, m)
    for m0 in range(0, m, chunk):
        m1 = min(m, m0 + chunk)
        z = (rng.standard_normal((m1 - m0, t, r, s * n), dtype=np.float32) if sigma > 0
             else np.zeros((0, 0, 0, 0), np.float32))
        lo, hi = xb.adc_codes
        _analog(xu[m0:m1], xsign[m0:m1], prog.cells, cells2, z, np.float32(sigma), xb.rows,
                xb.dac_bits, t, s, n, xb.cell_bits, xb.adc_step, lo, hi, out[m0:m1])
    if not xb.signed:  # remove the offsets digitally
        out -= ow * xu.sum(axis=1)[:, None]
        out -= ox * prog.column_sums[None, :]
        out += k * ox * ow
    return out


@njit(cache=True)
def _analog(xu, xsign, cells, cells2, z, sigma, rows, dac_bits, t_cycles, slices, n,
            cell_bits, step, min_code, max_code, out):
    """Accumulate ``sum x w`` into ``out`` (int64, tokens x N) through DACs, noisy crossbar
    sums, the ADC and shift-and-add. ``xu`` are the input magnitudes (offset inputs for the
    offset encoding) and ``xsign`` their signs (the DAC polarity); ``cells`` are signed
    conductances (a differential pair as G+ - G-). ``z``: read-noise draws
    (tokens, T, R, S*N), used when ``sigma > 0``."""
    m, k = xu.shape
    sn = slices * n
    r_tiles = (k + rows - 1) // rows
    dmask = (1 << dac_bits) - 1
    noisy = sigma > 0
    acc = np.zeros((_TOKEN_BLOCK, t_cycles, sn), np.float32)
    acc2 = np.zeros((_TOKEN_BLOCK, t_cycles, sn) if noisy else (1, 1, 1), np.float32)
    fstep = np.float32(step)
    for m0 in range(0, m, _TOKEN_BLOCK):
        mb = min(_TOKEN_BLOCK, m - m0)
        for r in range(r_tiles):
            acc[:] = 0
            if noisy:
                acc2[:] = 0
            for i in range(r * rows, min(k, (r + 1) * rows)):
                row = cells[i]
                for mm in range(mb):
                    x = xu[m0 + mm, i]
                    if x == 0:
                        continue
                    for t in range(t_cycles):
                        v = (x >> (t * dac_bits)) & dmask
                        if v == 0:
                            continue
                        fv = np.float32(v * xsign[m0 + mm, i])
                        a = acc[mm, t]
                        for q in range(sn):
                            a[q] += fv * row[q]
                        if noisy:
                            a2 = acc2[mm, t]
                            row2 = cells2[i]
                            fv2 = fv * fv
                            for q in range(sn):
                                a2[q] += fv2 * row2[q]
            for mm in range(mb):
                for t in range(t_cycles):
                    for sl in range(slices):
                        scale = step << (sl * cell_bits + t * dac_bits)
                        base = sl * n
                        for j in range(n):
                            cur = acc[mm, t, base + j]
                            if noisy:
                                cur += (sigma * np.sqrt(acc2[mm, t, base + j])
                                        * z[m0 + mm, t, r, base + j])
                            code = np.rint(cur / fstep)
                            if code < min_code:
                                code = min_code
                            elif code > max_code:
                                code = max_code
                            out[m0 + mm, j] += np.int64(code) * scale
    return out


# ---------------------------------------------------------------- float layers and metrics

def quantize(a: np.ndarray, bits: int, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric round-to-nearest quantisation to signed ``bits``-bit integers, one scale per
    slice along ``axis`` (None: one scale for the whole array). Returns (int64 values,
    scales broadcastable against ``a``); ``a ~= q * scale``."""
    qmax = (1 << (bits - 1)) - 1
    amax = np.max(np.abs(a), axis=axis, keepdims=axis is not None)
    scale = np.where(amax > 0, amax / qmax, 1.0)
    q = np.clip(np.rint(a / scale), -qmax, qmax).astype(np.int64)
    return q, np.asarray(scale, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class LinearResult:
    """A float layer through CiM: the analog output, the digital integer reference and the
    float reference (``y_float = x @ w`` in float64)."""

    y_cim: np.ndarray
    y_digital: np.ndarray
    y_float: np.ndarray
    y_int: np.ndarray
    y_int_ref: np.ndarray


def cim_linear(crossbar: Crossbar, w: np.ndarray, x: np.ndarray, *,
               rng: np.random.Generator, programming_noise: float | None = None,
               read_noise: float | None = None, read_crossbar: Crossbar | None = None
               ) -> LinearResult:
    """``x @ w`` for float ``x`` (``M x K``) and ``w`` (``K x N``): weights quantised per
    output channel and activations per token (symmetric, the crossbar's ``weight_bits`` and
    ``input_bits``), the integer product through `mvm`, rescaled to float."""
    wq, ws = quantize(w, crossbar.weight_bits, axis=0)
    xq, xs = quantize(x, crossbar.input_bits, axis=1)
    prog = program(crossbar, wq, rng=rng, programming_noise=programming_noise)
    y_int = mvm(prog, xq, rng=rng, crossbar=read_crossbar, read_noise=read_noise)
    y_ref = xq @ wq
    scale = xs * ws
    return LinearResult(y_cim=y_int * scale, y_digital=y_ref * scale,
                        y_float=x.astype(np.float64) @ w.astype(np.float64),
                        y_int=y_int, y_int_ref=y_ref)


def error_metrics(reference: np.ndarray, approx: np.ndarray) -> dict[str, float]:
    """SQNR in dB (``10 log10(sum ref^2 / sum err^2)``, inf when exact), the relative error
    ``||err|| / ||ref||`` (Frobenius) and the largest absolute error."""
    ref = np.asarray(reference, dtype=np.float64)
    err = np.asarray(approx, dtype=np.float64) - ref
    p_ref, p_err = float(np.sum(ref * ref)), float(np.sum(err * err))
    sqnr = math.inf if p_err == 0 else 10 * math.log10(p_ref / p_err)
    return {"sqnr_db": sqnr, "relative_error": math.sqrt(p_err / p_ref) if p_ref else math.nan,
            "max_abs_error": float(np.max(np.abs(err))) if err.size else 0.0}


def with_adc(crossbar: Crossbar, adc_bits: int, adc_range: float | None = None) -> Crossbar:
    """``crossbar`` with another ADC (validated like a preset)."""
    changes = {"adc_bits": adc_bits}
    if adc_range is not None:
        changes["adc_range"] = adc_range
    return dataclasses.replace(crossbar, **changes)
