"""The software stack's GEMM library and its per-layer kernels (issue 11, Deliver 3): cuBLAS's
split-K on decode GEMVs, fused projections launched as their own GEMMs, and the kernels one
Llama decoder layer launches under transformers with a static cache, counted by hand."""

import dataclasses

import pytest

from mappers.ir import Op, OperandFormats, OpKind, Phase
from mappers.models import load_model
from sim.engine import Workload
from sim.errors import ConfigError
from sim.presets import load_hardware
from sim.runtime import Runtime, load_runtime
from sim.step import compile_step
from sim.units.systolic.tile import map_gemm

H100 = load_hardware("h100-sxm").system
FP16 = OperandFormats(act="fp16", weight="fp16", kv="fp16", acc="fp32")
CUBLAS = {"decompositions": ("tiles", "split-k"), "kernel_s": 1.17e-6, "min_tile_n": 64}


@pytest.mark.parametrize("n, k, decomposition, parts", [
    # 4096 / 64 = 64 tiles for 132 SMs: K split in 132 // 64 = 2 parts, reduced by a 2nd kernel
    (4096, 4096, "split-k", 2), (4096, 11008, "split-k", 2),
    # 11008 / 64 = 172 tiles and 32000 / 64 = 500 fill the 132 SMs: no split
    (11008, 4096, "tiles", 1), (32000, 4096, "tiles", 1)])
def test_cublas_splits_k_of_gemvs_with_fewer_tiles_than_sms(n, k, decomposition, parts):
    assert H100.chip.cores == 132
    g = map_gemm(H100.chip, "fp16", 1, 1, n, k, **CUBLAS)
    assert (g.decomposition, g.k_parts, g.kernels) == (decomposition, parts, 1 + (parts > 1))
    assert g.tile[1] >= 64


def test_without_the_library_limits_a_gemv_needs_no_second_kernel():
    """Free tile widths (32 outputs: 128 tiles) or stream-K fill the SMs in one kernel."""
    assert map_gemm(H100.chip, "fp16", 1, 1, 4096, 4096).kernels == 1
    assert map_gemm(H100.chip, "fp16", 1, 1, 4096, 4096, decompositions=("tiles", "split-k"),
                    kernel_s=1.17e-6).kernels == 1


def test_a_fused_projection_is_costed_as_its_parts():
    qkv = Op(name="qkv_proj", kind=OpKind.GEMM, dims=(16, 12288, 4096), formats=FP16,
             flops=2 * 16 * 12288 * 4096, weight_bytes=2 * 12288 * 4096,
             act_bytes=2 * (16 * 4096 + 16 * 12288), unit="tensor")
    part, p = load_runtime("cuda-graph").part(qkv)
    assert p == 3
    assert part.dims == (16, 4096, 4096) and part.flops == 2 * 16 * 4096 * 4096
    assert part.weight_bytes == 2 * 4096 * 4096
    assert part.act_bytes == 2 * (16 * 4096 + 16 * 4096)
    assert load_runtime("fused").part(qkv) == (qkv, 1)


def test_cuda_graph_llama_layer_launches_the_hand_counted_kernels():
    """One LlamaDecoderLayer in decode under transformers 5 with StaticCache (sdpa, fp16),
    counted in modeling_llama.py, sdpa_attention.py and cache_utils.py:
    2 LlamaRMSNorm x 8 (to fp32, pow, mean, + eps, rsqrt, *, to fp16, * weight) = 16;
    q, k, v, o, gate, up, down nn.Linear = 7; apply_rotary_pos_emb on q and k, 5 each (* cos,
    neg, cat, * sin, +) = 10; StaticLayer.update = 5 (arange, + cumulative_length,
    cumulative_length.add_, index_copy_ of K and of V); scaled_dot_product_attention = 1
    (attn_output.transpose(1, 2).contiguous() copies nothing for one query token); residual
    adds = 2; silu, * up = 2. That is 43, plus cuBLAS's split-K reduction for each of the five
    4096-wide GEMVs (q, k, v, o, down) = 48."""
    rt = load_runtime("cuda-graph")
    step = compile_step(load_model("llama2-7b").config, dataclasses.replace(
        H100, runtime="cuda-graph"), phase=Phase.DECODE, precision=Workload().precision,
        batch=1, new_tokens=1, context=2048, detail="tile")
    layer = [s for s in step.ops if s.segment.name == "layers"]
    assert layer[0].segment.repeat == 32
    assert sum(rt.kernels_of(s.op) * s.cost.kernels for s in layer) == 48


@pytest.mark.parametrize("fields, message", [
    ({"decompositions": ("tiles", "warp-k")}, "decompositions: unknown decomposition"),
    ({"decompositions": ("split-k",)}, "decompositions: must include 'tiles'"),
    ({"gemm_min_tile_n": 0}, "gemm_min_tile_n: must be >= 1"),
])
def test_bad_library_fields_are_refused(fields, message):
    with pytest.raises(ConfigError, match=message):
        Runtime(name="t", **fields)
