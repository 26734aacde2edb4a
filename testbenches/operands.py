"""Operand generators and the numpy reference of the datapath's GEMM (independent of the model).

The numpy reference decodes FP8 E4M3 with ``ml_dtypes`` (not
`sim.units.systolic.datapath`'s decoder) and
multiplies in float64, which is exact here: every product is a multiple of ``2^-9`` below
``2^12`` in magnitude and every partial sum of ``K < 2^30`` of them has at most 52 significant
bits, so no rounding happens in any summation order.
"""

from __future__ import annotations

import numpy as np

#: Extreme codes: int8 range ends and small values; FP8 E4M3 max (+-448), min normal (2^-6),
#: the smallest and largest subnormals, +0, -0 and both NaN codes; INT4 range ends.
EXTREME_INT8 = np.array([-128, 127, -127, 0, 1, -1], dtype=np.int64)
EXTREME_FP8 = np.array([0x7E, 0xFE, 0x08, 0x88, 0x01, 0x81, 0x07, 0x00, 0x80, 0x7F, 0xFF],
                       dtype=np.int64)
EXTREME_INT4 = np.array([-8, 7, 0, 1, -1], dtype=np.int64)


def operands(mode: str, m: int, n: int, k: int, rng: np.random.Generator,
             kind: str = "random") -> tuple[np.ndarray, np.ndarray]:
    """Raw A (``m x k``) and B (``k x n``) codes: int8 values, or FP8 codes 0..255 and INT4
    values. ``kind`` is ``random`` (uniform over all codes), ``extreme`` (drawn from the
    extreme sets) or ``max`` (every product the largest possible, to test the accumulator)."""
    if kind == "max":
        if mode == "int8":
            return np.full((m, k), -128), np.full((k, n), -128)
        return np.full((m, k), 0xFE), np.full((k, n), -8)   # -448 x -8, the largest product
    if kind == "extreme":
        if mode == "int8":
            return rng.choice(EXTREME_INT8, (m, k)), rng.choice(EXTREME_INT8, (k, n))
        return rng.choice(EXTREME_FP8, (m, k)), rng.choice(EXTREME_INT4, (k, n))
    if kind != "random":
        raise ValueError(f"kind: unknown operand kind {kind!r} (allowed: random, extreme, max)")
    if mode == "int8":
        return rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n))
    return rng.integers(0, 256, (m, k)), rng.integers(-8, 8, (k, n))


def numpy_reference(mode: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``A @ B`` in the datapath's output units (int64): exact integers for int8, ``2^9 C`` for
    w4fp8 with FP8 NaN read as 0 (the datapath's NaN policy)."""
    if mode == "int8":
        return np.asarray(a, dtype=np.int64) @ np.asarray(b, dtype=np.int64)
    import ml_dtypes

    af = np.asarray(a, dtype=np.uint8).view(ml_dtypes.float8_e4m3fn).astype(np.float64)
    af = np.where(np.isnan(af), 0.0, af)
    c = af @ np.asarray(b, dtype=np.float64) * 2.0**9
    out = c.astype(np.int64)
    if not np.array_equal(out, c):   # cannot happen: every value is a multiple of 2^-9
        raise AssertionError("numpy reference is not an integer multiple of 2^-9")
    return out
