"""OCP FP8 encode/decode (E4M3 "E4M3FN" and E5M2), round-to-nearest-even, with saturation.

Codes are ``uint8``: ``S EEEE MMM`` (E4M3, bias 7, no infinities, ``S.1111.111`` is NaN, largest
finite 448) and ``S EEEEE MM`` (E5M2, bias 15, IEEE-like: infinities ``S.11111.00``, NaNs
``S.11111.xx``, largest finite 57344).

Encoding rounds each fp32 value once (fp32 -> float64 is exact, and the quantum of the target
format is a power of two, so ``x / quantum`` is exact and `numpy.rint` rounds half to even).
With ``saturate=True`` (the default, as NVIDIA's ``cvt.satfinite``) a finite value or an infinity
beyond the largest finite value encodes as +-max; NaN stays NaN. The hot loops are Numba kernels.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

#: format -> (exponent bits, mantissa bits, bias, largest finite value, has infinities)
FORMATS: dict[str, tuple[int, int, int, float, bool]] = {
    "e4m3": (4, 3, 7, 448.0, False),
    "e5m2": (5, 2, 15, 57344.0, True),
}


@njit(cache=True)
def _encode(x, ebits, mbits, bias, fmax, has_inf, saturate, out):
    emax_field = (1 << ebits) - 1
    nan_code = (emax_field << mbits) | ((1 << mbits) - 1) if not has_inf else \
        (emax_field << mbits) | (1 << (mbits - 1))
    inf_code = emax_field << mbits
    min_exp = 1 - bias  # exponent of the smallest normal
    for i in range(x.size):
        v = np.float64(x[i])
        sign = 0x80 if (v < 0.0 or (v == 0.0 and math.copysign(1.0, v) < 0.0)) else 0
        if math.isnan(v):
            out[i] = nan_code | 0x80 if math.copysign(1.0, v) < 0.0 else nan_code
            continue
        a = abs(v)
        if a > fmax:
            if saturate:
                a = fmax
            elif has_inf:
                out[i] = sign | inf_code
                continue
            else:
                # non-saturating E4M3: values that round to <= max keep it, others are NaN
                half = 2.0 ** (math.floor(math.log2(fmax)) - mbits - 1)
                if a >= fmax + half or math.isinf(a):
                    out[i] = sign | nan_code
                    continue
                a = fmax
        if a == 0.0:
            out[i] = sign
            continue
        m, e2 = math.frexp(a)  # a = m 2^e2, m in [0.5, 1)
        exp = max(e2 - 1, min_exp)
        quantum = 2.0 ** (exp - mbits)
        q = np.rint(a / quantum) * quantum
        if q == 0.0:
            out[i] = sign
            continue
        m, e2 = math.frexp(q)
        exp = e2 - 1
        if exp < min_exp:  # subnormal
            man = int(q / 2.0 ** (min_exp - mbits))
            out[i] = sign | man
        else:
            man = int(q / 2.0 ** (exp - mbits)) - (1 << mbits)
            out[i] = sign | ((exp + bias) << mbits) | man


@njit(cache=True)
def _decode(codes, ebits, mbits, bias, has_inf, out):
    emax_field = (1 << ebits) - 1
    for i in range(codes.size):
        c = np.int64(codes[i])
        s = -1.0 if c & 0x80 else 1.0
        e = (c >> mbits) & emax_field
        man = c & ((1 << mbits) - 1)
        if has_inf and e == emax_field:
            out[i] = s * np.inf if man == 0 else np.nan
        elif not has_inf and e == emax_field and man == (1 << mbits) - 1:
            out[i] = np.nan
        elif e == 0:
            out[i] = s * man * 2.0 ** (1 - bias - mbits)
        else:
            out[i] = s * (man + (1 << mbits)) * 2.0 ** (e - bias - mbits)


def _format(fmt: str) -> tuple[int, int, int, float, bool]:
    if fmt not in FORMATS:
        raise ValueError(f"fp8 format: unknown {fmt!r} (allowed: {', '.join(FORMATS)})")
    return FORMATS[fmt]


def encode(x, fmt: str = "e4m3", *, saturate: bool = True) -> np.ndarray:
    """fp32 values (any shape; cast to float32 first) -> FP8 codes (uint8, same shape)."""
    ebits, mbits, bias, fmax, has_inf = _format(fmt)
    arr = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty(arr.size, dtype=np.uint8)
    _encode(arr.ravel(), ebits, mbits, bias, fmax, has_inf, saturate, out)
    return out.reshape(arr.shape)


def decode(codes, fmt: str = "e4m3") -> np.ndarray:
    """FP8 codes (uint8, any shape) -> their values as float32 (exact)."""
    ebits, mbits, bias, _, has_inf = _format(fmt)
    arr = np.ascontiguousarray(codes, dtype=np.uint8)
    out = np.empty(arr.size, dtype=np.float64)
    _decode(arr.ravel(), ebits, mbits, bias, has_inf, out)
    return out.astype(np.float32).reshape(arr.shape)


def fp8_max(fmt: str = "e4m3") -> float:
    """Largest finite value of ``fmt``."""
    return _format(fmt)[3]


def round_trip(x, fmt: str = "e4m3") -> np.ndarray:
    """``decode(encode(x))``: the value each input becomes in ``fmt`` (saturating)."""
    return decode(encode(x, fmt), fmt)
