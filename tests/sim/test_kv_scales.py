"""KV-cache scales of quantized-KV schemes (issue 14): bytes in the IR, the KV capacity, and
the KV dequantization charged on the unit that runs attention.

Hand counts for llama2-7b (32 layers, 32 heads = 32 KV heads of 128, hidden 4096; Touvron
et al. 2023). A decode step at context 1023 reads C = 1024 keys. Under ``w4a8-qserve`` (INT4
KV, one fp16 scale and one fp16 zero point per token and KV head) a layer reads
2 x 1024 x 4096 x 0.5 + 2 x 1024 x 32 x (2 + 2) = 4,194,304 + 262,144 = 4,456,448 KV bytes,
half in ``attn_score`` (K) and half in ``attn_value`` (V), and the new token writes
2 x 4096 x 0.5 + 2 x 32 x 4 = 4,352 bytes (139,264 per token over 32 layers). Under
``w4fp8-fireq`` (static per-channel fp16 scales, no zero points) K's read is
1024 x 4096 x 0.5 + 32 x 128 x 2 = 2,097,152 + 8,192 = 2,105,344 bytes, and the cache holds
2 x 32 x 32 x 128 x 2 = 524,288 bytes of scales for the whole model whatever its length.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from mappers.ir import Phase
from mappers.models import load_model
from mappers.pipeline import compile_graph
from mappers.schemes import load_scheme, parse_scheme
from sim.engine import Workload, stage_footprints
from sim.errors import ConfigError
from sim.presets import load_hardware
from sim.serving.cluster import kv_bytes_per_token
from sim.step import compile_step, step_cost

LLAMA = load_model("llama2-7b").config
H100 = load_hardware("h100").system
ATTACC = load_hardware("attacc").system


def _layer(scheme, system=H100, batch=1, context=1023, precision=None):
    g = compile_graph(LLAMA, system, phase=Phase.DECODE, batch=batch, new_tokens=1,
                      context=context, precision=precision or load_scheme(scheme))
    return g, next(seg for seg in g.segments if seg.name == "layers").ops


def _op(ops, name):
    return next(op for op in ops if op.name == name)


def test_qserve_decode_reads_kv_plus_per_token_scales_and_zeros():
    _, ops = _layer("w4a8-qserve")
    score, value, write = (_op(ops, n) for n in ("attn_score", "attn_value", "kv_write"))
    assert score.kv_bytes + value.kv_bytes == 4_456_448
    assert score.formats.kv_scale_bytes == value.formats.kv_scale_bytes == 131_072
    assert write.kv_bytes == 4_352 and write.formats.kv_scale_bytes == 256


def test_fireq_per_channel_scales_do_not_grow_with_batch_or_context():
    for batch, context, kv in ((1, 1023, 2_105_344), (4, 1023, 4 * 2_097_152 + 8_192),
                               (1, 2047, 4_194_304 + 8_192)):
        _, ops = _layer("w4fp8-fireq", batch=batch, context=context)
        assert _op(ops, "attn_score").kv_bytes == _op(ops, "attn_value").kv_bytes == kv
        assert _op(ops, "kv_write").kv_bytes == batch * 4_096   # no per-token scales written


def test_unquantized_kv_has_no_scale_bytes():
    _, ops = _layer("w8a8")
    assert _op(ops, "attn_score").kv_bytes == 1024 * 4096 * 2
    assert all(op.formats.kv_scale_bytes == 0 for op in ops)


def test_kv_capacity_counts_the_scales():
    qserve, fireq = load_scheme("w4a8-qserve"), load_scheme("w4fp8-fireq")
    assert kv_bytes_per_token(LLAMA, qserve) == 139_264
    assert kv_bytes_per_token(LLAMA, fireq) == 131_072          # static scales: not per token
    work = Workload(batch=2, prompt_tokens=100, gen_tokens=1, precision=qserve)
    (_, kv), = stage_footprints(LLAMA, H100, work)
    assert kv == 200 * 139_264                                  # 2 x 100 tokens held
    bare = replace(fireq, kv_scale_group=0)
    (w, kv), = stage_footprints(LLAMA, H100, replace(work, precision=fireq))
    (w0, kv0), = stage_footprints(LLAMA, H100, replace(work, precision=bare))
    assert (w - w0, kv, kv0) == (524_288, 200 * 131_072, 200 * 131_072)


def test_kv_dequant_runs_on_the_vector_lanes_before_attention_on_h100():
    _, ops = _layer("w4a8-qserve")
    for name in ("attn_score", "attn_value"):
        dq, attn = _op(ops, f"{name}.kv_dequant"), _op(ops, name)
        # 2 ops per element of one K (or V) tile: 2 x 1024 keys x 32 heads x 128
        assert dq.flops == 8_388_608 and dq.unit == "vector" and dq.bytes == 0
        # beside the attention (nothing waits for it), right before it
        assert attn.inputs == dq.inputs and ops.index(dq) == ops.index(attn) - 1
    _, fq = _layer("w4fp8-fireq")
    assert _op(fq, "attn_score.kv_dequant").flops == 4_194_304   # one LUT op per element
    _, plain = _layer("w8a8")
    assert not any(op.name.endswith(".kv_dequant") for op in plain)


def test_kv_scale_bytes_cost_time_on_h100():
    q = load_scheme("w4a8-qserve")
    bare = replace(q, kv_scale_group=0, kv_dequant_ops=0)
    g, ops = _layer(None, precision=q, batch=16)
    g0, ops0 = _layer(None, precision=bare, batch=16)
    cost, cost0 = step_cost(H100, "tile", g), step_cost(H100, "tile", g0)
    score, score0 = _op(ops, "attn_score"), _op(ops0, "attn_score")
    assert cost(score).dram_bytes - cost0(score0).dram_bytes == 16 * 131_072
    assert cost(score).time_s > cost0(score0).time_s
    assert cost(_op(ops, "attn_score.kv_dequant")).time_s > 0
    # the step pays the scale bytes; the dequant overlaps where the lanes are not the busier
    t = [compile_step(LLAMA, H100, phase=Phase.DECODE, batch=16, new_tokens=1, context=1023,
                      precision=p).time_s for p in (q, replace(q, kv_dequant_ops=0), bare)]
    assert t[0] >= t[1] > t[2]


def test_kv_dequant_goes_with_attention_onto_the_cid_unit():
    g, ops = _layer("w4a8-qserve", system=ATTACC, batch=4)
    cost = step_cost(ATTACC, "tile", g)
    for name in ("attn_score", "attn_value"):
        dq, attn = _op(ops, f"{name}.kv_dequant"), _op(ops, name)
        assert attn.unit == dq.unit == "cid" and attn.inputs == (dq.id,)
        assert cost(dq).time_s == 0.0                # folded into the MAC stream
    _, ops0 = _layer(None, system=ATTACC, batch=4,
                     precision=replace(load_scheme("w4a8-qserve"), kv_scale_group=0))
    score, score0 = _op(ops, "attn_score"), _op(ops0, "attn_score")
    assert cost(score).dram_bytes - cost(score0).dram_bytes == 4 * 131_072
    write = _op(ops, "kv_write")
    assert write.unit == "cid" and cost(write).dram_bytes == 4 * 4_352


@pytest.mark.parametrize("text,message", [
    ("kv_scale_group: row\n", "kv_scale_group"),
    ("kv_scale_group: -1\n", "kv_scale_group"),
    ("kv_zero_points: 2\n", "kv_zero_points"),
    ("kv_scale_dtype: int3\n", "unknown dtype 'int3'"),
    ("kv_dequant_ops: -1\n", "kv_dequant_ops"),
])
def test_malformed_kv_scale_fields_are_refused(text, message):
    with pytest.raises(ConfigError, match=f"^--quant: .*{message}"):
        parse_scheme("weight: int4\nactivation: int8\nkv: int4\n" + text)


def test_kv_scale_group_counts_groups_along_head_dim():
    p = parse_scheme("weight: int4\nactivation: int8\nkv: int4\nkv_scale_group: 32\n"
                     "kv_scale_dtype: fp8\n")
    assert p.kv_token_scale_bytes(10, 8, 128) == 10 * 8 * 4      # 4 fp8 scales per vector


def test_prefill_kv_dequant_counts_query_tiles_and_the_causal_share():
    # 2 prompts of 300 tokens: 2 ops x 2 seqs x 32 heads x 300 keys x 128 = 4,915,200 per
    # query tile, ceil(300 / 128) = 3 tiles, the mask keeping 300 x 301 / 2 of 300 x 300
    # pairs: 14,745,600 x 45,150 / 90,000 = 7,397,376
    g = compile_graph(LLAMA, H100, phase=Phase.PREFILL, batch=2, new_tokens=300, context=0,
                      precision=load_scheme("w4a8-qserve"))
    ops = next(seg for seg in g.segments if seg.name == "layers").ops
    assert _op(ops, "attn_value.kv_dequant").flops == 7_397_376
