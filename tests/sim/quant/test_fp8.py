"""FP8 codecs against ml_dtypes (an independent implementation): all 256 codes and random fp32."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from sim.quant.fp8 import decode, encode, fp8_max

ML = {"e4m3": ml_dtypes.float8_e4m3fn, "e5m2": ml_dtypes.float8_e5m2}


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal as values, NaN equal to NaN, and the sign of zeros kept."""
    both_nan = np.isnan(a) & np.isnan(b)
    eq = (a == b) & (np.signbit(a) == np.signbit(b))
    return bool(np.all(both_nan | eq))


@pytest.mark.parametrize("fmt", list(ML))
def test_decode_all_codes_matches_ml_dtypes(fmt):
    codes = np.arange(256, dtype=np.uint8)
    assert _same(decode(codes, fmt), codes.view(ML[fmt]).astype(np.float32))


@pytest.mark.parametrize("fmt", list(ML))
def test_encode_round_trips_every_non_nan_code(fmt):
    codes = np.arange(256, dtype=np.uint8)
    vals = codes.view(ML[fmt]).astype(np.float32)
    finite = np.isfinite(vals)
    assert np.array_equal(encode(vals[finite], fmt, saturate=False), codes[finite])


@pytest.mark.parametrize("fmt", list(ML))
@pytest.mark.parametrize("scale", [1e-4, 1.0, 30.0, 1e3, 1e5])
def test_encode_random_fp32_matches_ml_dtypes(fmt, scale):
    """Saturating encode == ml_dtypes' cast of the input clipped to +-max (bit for bit)."""
    rng = np.random.default_rng(11)
    x = (rng.standard_normal(20000) * scale).astype(np.float32)
    # also exact ties: midpoints between neighbouring codes must round to even
    vals = np.arange(256, dtype=np.uint8).view(ML[fmt]).astype(np.float64)
    vals = np.unique(vals[np.isfinite(vals) & (vals >= 0)])
    mids = ((vals[1:] + vals[:-1]) / 2).astype(np.float32)
    x = np.concatenate([x, mids, -mids])
    m = fp8_max(fmt)
    ref = np.clip(x, -m, m).astype(ML[fmt]).view(np.uint8)
    assert np.array_equal(encode(x, fmt), ref)
    # and without saturation, in range, it is ml_dtypes' cast as is
    inr = np.abs(x) <= m
    assert np.array_equal(encode(x[inr], fmt, saturate=False),
                          x[inr].astype(ML[fmt]).view(np.uint8))


@pytest.mark.parametrize("fmt", list(ML))
def test_saturation_and_specials(fmt):
    m = fp8_max(fmt)
    x = np.array([1e30, -1e30, np.inf, -np.inf, np.nan, 0.0, -0.0], dtype=np.float32)
    got = decode(encode(x, fmt), fmt)
    assert list(got[:4]) == [m, -m, m, -m]
    assert np.isnan(got[4]) and got[5] == 0 and np.signbit(got[6])
    # without saturation ml_dtypes gives inf (E5M2) or NaN (E4M3) beyond the range
    big = np.array([1e30], dtype=np.float32)
    assert _same(decode(encode(big, fmt, saturate=False), fmt),
                 big.astype(ML[fmt]).astype(np.float32))
