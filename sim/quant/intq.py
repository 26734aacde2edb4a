"""Integer group quantization (INT4 / INT8, symmetric and asymmetric) and error metrics.

A tensor ``x`` of shape ``(rows, cols)`` is quantized in groups of ``group`` consecutive
elements along ``axis`` (the reduction axis of the GEMM it feeds: rows of a ``k x n`` weight);
``group=None`` means one group over the whole axis (per-channel). Symmetric: ``scale =
max|x| / qmax`` with ``qmax = 2^(bits-1) - 1`` and codes in ``[-qmax - 1, qmax]``; asymmetric:
``scale = (max - min) / (2^bits - 1)``, ``zero = rint(-min / scale)``, codes in
``[0, 2^bits - 1]``. Rounding is half to even (`numpy.rint`). Scales are float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Quantized:
    """Codes (int8 storage), one scale (and zero point) per group, and how they were made."""

    codes: np.ndarray
    scale: np.ndarray
    zero: np.ndarray | None
    bits: int
    group: int
    axis: int

    def dequantize(self) -> np.ndarray:
        """The float32 values the codes stand for."""
        c = np.moveaxis(self.codes, self.axis, 0).astype(np.float32)
        k = c.shape[0]
        g = c.reshape(k // self.group, self.group, *c.shape[1:])
        z = 0.0 if self.zero is None else self.zero[:, None]
        out = (g - z) * self.scale[:, None]
        return np.moveaxis(out.reshape(c.shape), 0, self.axis)


def quantize_int(x, bits: int, *, group: int | None = None, axis: int = 0,
                 symmetric: bool = True) -> Quantized:
    """Quantize a 2-D ``x`` to ``bits``-bit integers in groups along ``axis`` (see module)."""
    if bits not in (2, 3, 4, 8):
        raise ValueError(f"bits: must be 2, 3, 4 or 8, got {bits}")
    x = np.moveaxis(np.asarray(x, dtype=np.float32), axis, 0)
    k = x.shape[0]
    group = k if group is None else group
    if group < 1 or k % group:
        raise ValueError(f"group: {group} must divide the quantized axis ({k})")
    g = x.reshape(k // group, group, *x.shape[1:])
    tiny = np.float32(np.finfo(np.float32).tiny)
    if symmetric:
        qmax = 2 ** (bits - 1) - 1
        scale = np.maximum(np.abs(g).max(axis=1) / qmax, tiny).astype(np.float32)
        codes = np.clip(np.rint(g / scale[:, None]), -qmax - 1, qmax)
        zero = None
    else:
        lo, hi = g.min(axis=1), g.max(axis=1)
        scale = np.maximum((hi - lo) / (2**bits - 1), tiny).astype(np.float32)
        zero = np.rint(-lo / scale).astype(np.float32)
        codes = np.clip(np.rint(g / scale[:, None]) + zero[:, None], 0, 2**bits - 1)
    codes = np.moveaxis(codes.reshape(x.shape).astype(np.int16), 0, axis)
    return Quantized(codes=codes, scale=scale, zero=zero, bits=bits, group=group, axis=axis)


@dataclass(frozen=True, slots=True)
class QuantError:
    """Error of an approximation ``y`` of a reference ``ref``: ``rel_fro = ||y - ref||_F /
    ||ref||_F``, ``max_abs = max |y - ref|``, ``cosine`` between the two flattened."""

    rel_fro: float
    max_abs: float
    cosine: float


def error(y, ref) -> QuantError:
    """`QuantError` of ``y`` against ``ref`` (computed in float64)."""
    y = np.asarray(y, dtype=np.float64).ravel()
    r = np.asarray(ref, dtype=np.float64).ravel()
    d = y - r
    return QuantError(rel_fro=float(np.linalg.norm(d) / np.linalg.norm(r)),
                      max_abs=float(np.abs(d).max()),
                      cosine=float(y @ r / (np.linalg.norm(y) * np.linalg.norm(r))))


def outlier_activations(rng: np.random.Generator, tokens: int, channels: int, *,
                        n_outliers: int = 4, magnitude: float = 30.0) -> np.ndarray:
    """Activations with LLM-like outlier structure (SmoothQuant/LLM.int8() observations): most
    channels ~N(0, 1); ``n_outliers`` channels, picked by ``rng``, are heavy-tailed (Student-t,
    3 degrees of freedom) and ``magnitude`` times larger. float32, ``tokens x channels``."""
    x = rng.standard_normal((tokens, channels))
    idx = rng.choice(channels, size=n_outliers, replace=False)
    x[:, idx] = rng.standard_t(3, size=(tokens, n_outliers)) * magnitude
    return x.astype(np.float32)


def llama_weights(rng: np.random.Generator, k: int, n: int) -> np.ndarray:
    """A ``k x n`` weight with per-output-channel spread (scales log-normal, sigma 0.3) and
    N(0, 1/k) entries: the std-0.02-like init that trained LLM weights stay close to."""
    col = np.exp(rng.normal(0.0, 0.3, size=n))
    return (rng.standard_normal((k, n)) / np.sqrt(k) * col).astype(np.float32)
