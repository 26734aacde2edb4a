"""Integer group quantization, FireQ scaling, RoPE-aware K scaling and quantized GEMM/attention
against hand-computed values, error bounds and invariants."""

from __future__ import annotations

import numpy as np
import pytest

from sim.quant import fp8
from sim.quant.fireq import (GEMM_SCHEMES, attention_error, gemm_error, rope, rope_pair_scales,
                             w4fp8_gemm, w4fp8_operands)
from sim.quant.intq import error, llama_weights, outlier_activations, quantize_int


def test_symmetric_int8_hand_values():
    x = np.array([[1.27], [-0.5], [0.0], [0.01]], dtype=np.float32)
    q = quantize_int(x, 8, axis=0)
    assert q.scale[0] == pytest.approx(0.01)            # 1.27 / 127
    assert q.codes.ravel().tolist() == [127, -50, 0, 1]


def test_asymmetric_int2_is_exact_on_its_grid():
    x = np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float32)
    q = quantize_int(x, 2, axis=1, symmetric=False)
    assert q.scale[0] == 1.0 and q.zero[0] == -1.0       # min 1 -> zero point rint(-1/1)
    assert q.codes.ravel().tolist() == [0, 1, 2, 3]
    assert np.array_equal(q.dequantize(), x)


@pytest.mark.parametrize("bits,symmetric", [(4, True), (4, False), (8, True), (8, False)])
@pytest.mark.parametrize("group", [32, 128, None])
def test_group_error_is_at_most_half_a_step(bits, symmetric, group):
    rng = np.random.default_rng(3)
    w = llama_weights(rng, 256, 64)
    q = quantize_int(w, bits, group=group, axis=0, symmetric=symmetric)
    g = 256 if group is None else group
    step = np.repeat(q.scale, g, axis=0)
    assert np.all(np.abs(q.dequantize() - w) <= step / 2 * (1 + 1e-6))
    # smaller groups can only tighten the per-group range, never widen it
    assert q.scale.shape == (256 // g, 64)


def test_bad_group_and_bits_are_refused():
    with pytest.raises(ValueError, match="^group"):
        quantize_int(np.ones((10, 2)), 4, group=3)
    with pytest.raises(ValueError, match="^bits"):
        quantize_int(np.ones((10, 2)), 5)


def test_error_metrics_hand_values():
    e = error(np.array([3.0, 4.0]), np.array([3.0, 0.0]))
    assert e.rel_fro == pytest.approx(4 / 3) and e.max_abs == 4.0
    assert e.cosine == pytest.approx(3 / 5)


def test_fireq_guard_keeps_tiny_scales_from_underflowing():
    """Channel scales ~1e-6 are below FP8's smallest subnormal (2^-9); without the per-tensor
    guard they would encode as 0. With it the relative error is that of unit-scale weights."""
    rng = np.random.default_rng(1)
    x = outlier_activations(rng, 16, 128)
    w = llama_weights(rng, 128, 32)
    assert np.all(fp8.round_trip(quantize_int(w * 1e-5, 4, axis=0).scale) == 0)
    big = error(w4fp8_gemm(x, w), x.astype(np.float64) @ w).rel_fro
    tiny = error(w4fp8_gemm(x, w * 1e-5), x.astype(np.float64) @ (w * 1e-5)).rel_fro
    assert tiny == pytest.approx(big, rel=0.05)
    ops = w4fp8_operands(x, w * 1e-5)
    assert fp8.decode(ops.s_codes).max() == 448.0        # the largest scale lands on FP8 max


def test_w4fp8_error_matches_uniform_rounding_noise():
    """Per-channel INT4 of N(0, s^2/k) weights: step = max/7, noise step^2/12 per weight; with
    nearly exact FP8 activations the relative error is about step / (sqrt(12) s)."""
    rng = np.random.default_rng(2)
    k, n = 1024, 256
    x = rng.standard_normal((64, k)).astype(np.float32)
    w = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)
    step = np.abs(w).max(axis=0) / 7
    predicted = np.sqrt(np.mean(step**2) / 12) / (1 / np.sqrt(k))
    got = error(w4fp8_gemm(x, w), x.astype(np.float64) @ w).rel_fro
    assert got == pytest.approx(predicted, rel=0.15)


def test_rope_pair_scaling_commutes_with_rope():
    rng = np.random.default_rng(4)
    q, k = rng.standard_normal((32, 16)), rng.standard_normal((32, 16))
    k[:, 3] *= 25
    s = rope_pair_scales(q, k)
    assert np.array_equal(s[:8], s[8:])
    ref = rope(q) @ rope(k).T
    assert np.allclose(rope(q * s) @ rope(k / s).T, ref, rtol=1e-12, atol=1e-9)
    untied = s.copy()
    untied[3] *= 2                                       # break the pair: no longer invariant
    assert not np.allclose(rope(q * untied) @ rope(k / untied).T, ref, rtol=1e-6)


def test_quantized_gemm_errors_rank_by_precision():
    """fp16 error is fp16 rounding (~1e-4); 8-bit schemes ~1e-2; INT4 schemes ~1e-1; all
    cosines high on outlier activations (seeded generator)."""
    rng = np.random.default_rng(0)
    x = outlier_activations(rng, 64, 512)
    w = llama_weights(rng, 512, 256)
    e = {s: gemm_error(s, x, w) for s in GEMM_SCHEMES}
    assert e["fp16"].rel_fro < 1e-3
    assert 1e-3 < e["w8a8"].rel_fro < 3e-2 and 1e-3 < e["fp8"].rel_fro < 6e-2
    for s in ("w4a16", "w4a8-qserve", "w4fp8-fireq"):
        assert 3e-2 < e[s].rel_fro < 0.25 and e[s].cosine > 0.98


def test_quantized_attention_error_is_bounded():
    rng = np.random.default_rng(5)
    q, k, v = (rng.standard_normal((64, 32)) for _ in range(3))
    k[:, [2, 2 + 16]] *= 20
    with_s = attention_error(q, k, v)
    without = attention_error(q, k, v, rope_scaling=False)
    for e in (with_s, without):
        assert 0 < e.rel_fro < 0.5 and e.cosine > 0.9
