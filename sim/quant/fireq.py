"""FireQ numerics (arXiv 2505.20839): INT4 weights x FP8 E4M3 activations, RoPE-aware K scaling,
and quantized GEMM / attention error against fp32; also the other schemes' GEMM numerics.

FireQ linear layer, as modelled here:

* weights ``W (k x n)``: INT4, symmetric, one scale per output channel ``s_n = max_k |W| / 7``;
  the channel scales are stored in FP8 E4M3 and, since they can be far below E4M3's smallest
  normal (2^-6) and underflow, divided first by a per-tensor fp32 guard ``t = max_n s_n / 448``
  so that the largest lands on 448 (``s_n ~= t x fp8(s_n / t)``);
* activations ``X (m x k)``: FP8 E4M3 with one per-tensor fp32 scale ``a = max|X| / 448``
  (after channel-wise smoothing, which FireQ applies to linear layers);
* the product ``fp8(X / a) @ int4(W)`` is accumulated exactly, as the RTL's ``w4fp8`` datapath
  does (`sim.units.systolic.datapath`), then scaled by ``a t fp8(s_n / t)`` per column.

RoPE-aware K scaling: K's outlier channels are smoothed before RoPE by per-channel factors that
are equal within each rotated pair ``(i, i + d/2)``, so that ``RoPE(K / s) = RoPE(K) / s`` and
``Q s`` keeps ``q . k`` unchanged; after RoPE K is quantized per channel to INT4.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.quant import fp8
from sim.quant.intq import QuantError, error, quantize_int


@dataclass(frozen=True, slots=True)
class W4Fp8Operands:
    """What the FireQ kernel holds: FP8 activation codes with their per-tensor scale, INT4 weight
    codes, FP8 codes of the guarded channel scales and the per-tensor guard."""

    a_codes: np.ndarray      # uint8, m x k
    a_scale: float
    w_codes: np.ndarray      # int, k x n, in -8..7
    s_codes: np.ndarray      # uint8, n
    guard: float


def w4fp8_operands(x, w, smooth: np.ndarray | None = None) -> W4Fp8Operands:
    """Quantize ``x (m x k)`` and ``w (k x n)`` as FireQ does; ``smooth`` (k) divides x's
    channels and multiplies w's rows first (SmoothQuant-style migration)."""
    x = np.asarray(x, np.float32)
    w = np.asarray(w, np.float32)
    if smooth is not None:
        x, w = x / smooth, w * smooth[:, None]
    a_scale = float(np.float32(max(np.abs(x).max(), 1e-30) / fp8.fp8_max()))
    a_codes = fp8.encode(x / np.float32(a_scale))
    q = quantize_int(w, 4, axis=0)                      # per output channel
    s = q.scale.reshape(-1)
    guard = float(np.float32(s.max() / fp8.fp8_max()))
    s_codes = fp8.encode(s / np.float32(guard))
    return W4Fp8Operands(a_codes, a_scale, q.codes.astype(np.int64), s_codes, guard)


def w4fp8_accumulate(ops: W4Fp8Operands) -> np.ndarray:
    """The exact integer accumulation ``2^9 fp8(A) @ int4(W)`` (int64), the quantity the RTL
    ``w4fp8`` datapath drains."""
    a = np.rint(fp8.decode(ops.a_codes).astype(np.float64) * 2**9).astype(np.int64)
    return a @ ops.w_codes


def w4fp8_gemm(x, w, smooth: np.ndarray | None = None) -> np.ndarray:
    """FireQ's W4 x FP8 GEMM (float64 result) of ``x @ w``."""
    ops = w4fp8_operands(x, w, smooth)
    col = ops.guard * fp8.decode(ops.s_codes).astype(np.float64)
    return w4fp8_accumulate(ops) * 2.0**-9 * ops.a_scale * col[None, :]


def smoothing(x, w, alpha: float = 0.5) -> np.ndarray:
    """SmoothQuant factors ``s_k = max|X_k|^alpha / max|W_k|^(1-alpha)`` (k)."""
    ax = np.maximum(np.abs(x).max(axis=0), 1e-5)
    aw = np.maximum(np.abs(w).max(axis=1), 1e-5)
    return (ax**alpha / aw ** (1 - alpha)).astype(np.float32)


def scheme_gemm(name: str, x, w) -> np.ndarray:
    """``x @ w`` as scheme ``name`` computes it (float64): ``fp16``; ``w8a8`` (smoothed, INT8
    per-token activations, INT8 per-channel weights); ``w4a16`` (INT4 asymmetric, group 128,
    fp16 activations); ``w4a8-qserve`` (INT8 per-token activations, INT4 weights in groups of
    128 under an INT8 per-channel level: progressive quantization); ``w4fp8-fireq``;
    ``fp8`` (E4M3 weights per tensor, E4M3 activations per tensor)."""
    x = np.asarray(x, np.float32)
    w = np.asarray(w, np.float32)
    if name == "fp16":
        return x.astype(np.float16).astype(np.float64) @ w.astype(np.float16).astype(np.float64)
    if name == "w8a8":
        s = smoothing(x, w)
        xs, ws = x / s, w * s[:, None]
        return (quantize_int(xs, 8, axis=1).dequantize().astype(np.float64)
                @ quantize_int(ws, 8, axis=0).dequantize())
    if name == "w4a16":
        wq = quantize_int(w, 4, group=min(128, w.shape[0]), axis=0, symmetric=False)
        return x.astype(np.float16).astype(np.float64) @ wq.dequantize()
    if name == "w4a8-qserve":
        s = smoothing(x, w)
        xs, ws = x / s, w * s[:, None]
        w8 = quantize_int(ws, 8, axis=0).dequantize()      # level 1: INT8 per channel
        w4 = quantize_int(w8, 4, group=min(128, w.shape[0]), axis=0, symmetric=False)
        return quantize_int(xs, 8, axis=1).dequantize().astype(np.float64) @ w4.dequantize()
    if name == "w4fp8-fireq":
        return w4fp8_gemm(x, w, smoothing(x, w))
    if name == "fp8":
        def q(v):
            sc = np.float32(np.abs(v).max() / fp8.fp8_max())
            return fp8.round_trip(v / sc).astype(np.float64) * sc
        return q(x) @ q(w)
    raise ValueError(f"scheme: unknown {name!r}")


GEMM_SCHEMES = ("fp16", "w8a8", "w4a16", "w4a8-qserve", "w4fp8-fireq", "fp8")


def gemm_error(name: str, x, w) -> QuantError:
    """Error of scheme ``name``'s ``x @ w`` against the fp64 product of the fp32 inputs."""
    ref = np.asarray(x, np.float64) @ np.asarray(w, np.float64)
    return error(scheme_gemm(name, x, w), ref)


def rope(x, base: float = 10000.0) -> np.ndarray:
    """Rotary embedding (GPT-NeoX half-split pairs ``(i, i + d/2)``) of ``x (tokens x d)`` at
    positions ``0..tokens-1`` (float64)."""
    x = np.asarray(x, np.float64)
    t, d = x.shape
    half = d // 2
    ang = np.arange(t)[:, None] * base ** (-np.arange(half) / half)[None, :]
    c, s = np.cos(ang), np.sin(ang)
    a, b = x[:, :half], x[:, half:]
    return np.concatenate([a * c - b * s, a * s + b * c], axis=1)


def rope_pair_scales(q, k) -> np.ndarray:
    """Pre-RoPE smoothing factors (d): ``sqrt(max|K_c| / max|Q_c|)`` maximised over each rotated
    pair so both members share one factor (which makes the scaling commute with RoPE)."""
    mq = np.maximum(np.abs(q).max(axis=0), 1e-5)
    mk = np.maximum(np.abs(k).max(axis=0), 1e-5)
    s = np.sqrt(mk / mq)
    half = s.size // 2
    p = np.maximum(s[:half], s[half:])
    return np.concatenate([p, p])


def attention(q, k, v) -> np.ndarray:
    """Causal single-head attention of post-RoPE q, k and v (float64)."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    sc = q @ k.T / np.sqrt(q.shape[1])
    sc = np.where(np.tril(np.ones(sc.shape, bool)), sc, -np.inf)
    p = np.exp(sc - sc.max(axis=1, keepdims=True))
    return (p / p.sum(axis=1, keepdims=True)) @ v


def fireq_attention(q_pre, k_pre, v, *, rope_scaling: bool = True) -> np.ndarray:
    """FireQ attention: optional pre-RoPE pair scaling, RoPE, Q in FP8 E4M3 (per-tensor scale),
    K and V in INT4 with per-channel scales (post-RoPE for K), softmax in fp32."""
    q_pre = np.asarray(q_pre, np.float64)
    k_pre = np.asarray(k_pre, np.float64)
    if rope_scaling:
        s = rope_pair_scales(q_pre, k_pre)
        q_pre, k_pre = q_pre * s, k_pre / s
    q, k = rope(q_pre), rope(k_pre)
    qs = np.abs(q).max() / fp8.fp8_max()
    qq = fp8.round_trip((q / qs).astype(np.float32)).astype(np.float64) * qs
    kq = quantize_int(k, 4, axis=0).dequantize()        # one scale per channel
    vq = quantize_int(v, 4, axis=0).dequantize()
    return attention(qq, kq, vq)


def attention_error(q_pre, k_pre, v, *, rope_scaling: bool = True) -> QuantError:
    """Error of `fireq_attention` against fp64 attention of the same inputs."""
    ref = attention(rope(q_pre), rope(k_pre), v)
    return error(fireq_attention(q_pre, k_pre, v, rope_scaling=rope_scaling), ref)
