"""Lowering: exact accounting against closed forms, in integers."""

import pytest

from mappers.ir import MATMUL_KINDS, OpKind, Phase, Precision
from mappers.lower import causal_pairs, lower
from mappers.models import load_model, model_names
from sim.engine import Workload, footprint
from sim.errors import ConfigError
from sim.presets import load_hardware

FP16 = Precision()


def _closed_form_matmul_flops(cfg, batch, new_tokens, context):
    """2 x (non-embedding matrix parameters) x tokens + bias adds + logits + attention,
    from the parameter counts alone (which tests/mappers/test_models.py ties to the
    published totals)."""
    counts = cfg.parameter_counts()
    tokens = batch * new_tokens
    norm = cfg.hidden_size * (2 if cfg.norm == "layernorm" else 1)
    qk_norm = 2 * cfg.head_dim if cfg.qk_norm else 0
    biases = 0
    if cfg.linear_bias:
        up = (2 if cfg.gated_mlp else 1) * cfg.intermediate_size
        biases = cfg.q_dim + 2 * cfg.kv_dim + cfg.hidden_size + up + cfg.hidden_size
    per_layer_matrix = counts["per_layer"] - 2 * norm - qk_norm - biases
    logit_rows = batch if cfg.causal else tokens
    if cfg.causal:
        pairs = new_tokens * context + new_tokens * (new_tokens + 1) // 2
    else:
        pairs = new_tokens * (context + new_tokens)
    attention = 4 * batch * cfg.num_heads * cfg.head_dim * pairs
    return cfg.num_layers * (2 * per_layer_matrix * tokens + biases * tokens + attention) \
        + 2 * cfg.vocab_size * cfg.hidden_size * logit_rows


@pytest.mark.parametrize("name", ["llama2-7b", "llama3-8b", "qwen3-8b", "bloom-176b",
                                  "llada-8b"])
@pytest.mark.parametrize("batch, new_tokens, context", [(1, 2048, 0), (3, 517, 0),
                                                        (2, 64, 1000), (4, 1, 4095)])
def test_matmul_flops_equal_closed_form(name, batch, new_tokens, context):
    cfg = load_model(name).config
    phase = Phase.DECODE if new_tokens == 1 else Phase.PREFILL
    g = lower(cfg, phase=phase, batch=batch, new_tokens=new_tokens, context=context,
              precision=FP16)
    assert g.total_where("flops", MATMUL_KINDS) == _closed_form_matmul_flops(
        cfg, batch, new_tokens, context)


def test_non_embedding_parameters_times_tokens():
    """The textbook form: with no biases and untied heads, matmul FLOPs = 2 N T + attention
    + the (norm-weight) correction, where N counts non-embedding parameters."""
    cfg = load_model("llama2-7b").config
    tokens = 2048
    g = lower(cfg, phase=Phase.PREFILL, batch=tokens, new_tokens=1, context=0,
              precision=FP16)  # every token its own sequence: logits for all of them
    n = cfg.parameter_counts()["non_embedding"]
    norms = (2 * cfg.num_layers + 1) * cfg.hidden_size
    attention = 4 * tokens * cfg.num_heads * cfg.head_dim * cfg.num_layers  # one pair each
    assert g.total_where("flops", MATMUL_KINDS) == 2 * (n - norms) * tokens + attention


@pytest.mark.parametrize("name", model_names())
@pytest.mark.parametrize("weight", ["fp16", "int8", "int4"])
def test_decode_reads_every_weight_once(name, weight):
    cfg = load_model(name).config
    counts = cfg.parameter_counts()
    bits = {"fp16": 16, "int8": 8, "int4": 4}[weight]
    g = lower(cfg, phase=Phase.DECODE, batch=1, new_tokens=1, context=100,
              precision=Precision(weight=weight))
    tied_head = cfg.vocab_size * cfg.hidden_size if cfg.tie_word_embeddings else 0
    # the norms' gain vectors stay in the activation format (fp16) whatever the weights';
    # a MoE decode step of one token reads only its experts_per_token experts (``active``)
    embedding = cfg.vocab_size * cfg.hidden_size
    norms = cfg.num_layers * counts["per_layer_norms"] + counts["final_norm"] * (
        1 + cfg.embedding_norm)  # BLOOM's embedding norm has the final norm's size
    expected_elems = counts["active"] - embedding + cfg.hidden_size + tied_head - norms
    expected = expected_elems * bits // 8 + 2 * norms
    total = g.total("weight_bytes")
    if bits == 4:  # each op rounds its own bytes up: at most one half byte per op instance
        n_ops = sum(seg.repeat * len(seg.ops) for seg in g.segments)
        assert expected <= total <= expected + n_ops
    else:
        assert total == expected


def test_resident_weight_bytes_equal_parameters_times_bytes():
    system = load_hardware("h100").system
    for name in model_names():
        cfg = load_model(name).config
        weights, _ = footprint(cfg, system, Workload(precision=FP16))
        assert weights == 2 * cfg.parameter_counts()["total"]


@pytest.mark.parametrize("name", ["llama2-7b", "llama3-8b", "bloom-176b"])
def test_decode_kv_bytes_grow_linearly_with_context(name):
    cfg = load_model(name).config
    kv = [lower(cfg, phase=Phase.DECODE, batch=2, new_tokens=1, context=c,
                precision=FP16).total("kv_bytes") for c in (0, 1000, 2000, 3000)]
    step = kv[1] - kv[0]
    assert kv[2] - kv[1] == kv[3] - kv[2] == step
    # per token of context: read K and V once per layer, per KV head
    assert step == 2 * 2 * 1000 * cfg.num_layers * cfg.num_kv_heads * cfg.head_dim * 2


def test_tensor_parallel_shards_exactly():
    for name, tp in (("llama2-70b", 8), ("bloom-176b", 8), ("llama3-8b", 4)):
        cfg = load_model(name).config
        one = lower(cfg, phase=Phase.PREFILL, batch=2, new_tokens=128, context=0,
                    precision=FP16)
        many = lower(cfg, phase=Phase.PREFILL, batch=2, new_tokens=128, context=0,
                     precision=FP16, tp=tp)
        kinds = frozenset({OpKind.GEMM, OpKind.ATTN_SCORE, OpKind.ATTN_VALUE})
        # row-parallel biases (o_proj, down_proj) are added on every chip after the reduce
        replicated = 2 * 256 * cfg.hidden_size * cfg.num_layers if cfg.linear_bias else 0
        assert (tp * many.total_where("flops", kinds)
                == one.total_where("flops", kinds) + (tp - 1) * replicated)
        reduces = [op for seg in many.segments for op in seg.ops
                   if op.kind == OpKind.ALL_REDUCE]
        assert len(reduces) == 2 and all(op.comm_bytes == 2 * 256 * cfg.hidden_size
                                         for op in reduces)


def test_gqa_replicates_kv_heads_beyond_their_count():
    cfg = load_model("llama3-8b").config  # 8 KV heads
    g = lower(cfg, phase=Phase.DECODE, batch=1, new_tokens=1, context=10, precision=FP16,
              tp=8)
    score = next(op for seg in g.segments for op in seg.ops if op.kind == OpKind.ATTN_SCORE)
    assert score.dims[:3] == (1, 4, 1)
    with pytest.raises(ConfigError, match="--tp: must divide llama3-8b's 32 attention heads"):
        lower(cfg, phase=Phase.DECODE, batch=1, new_tokens=1, context=10, precision=FP16,
              tp=3)


def test_causal_and_bidirectional_pairs():
    assert causal_pairs(4, 0, True) == 1 + 2 + 3 + 4
    assert causal_pairs(1, 99, True) == 100
    assert causal_pairs(3, 5, True) == 6 + 7 + 8
    assert causal_pairs(4, 0, False) == 16
    assert causal_pairs(3, 5, False) == 24


def test_ops_are_well_formed():
    for name in model_names():
        cfg = load_model(name).config
        g = lower(cfg, phase=Phase.PREFILL, batch=1, new_tokens=16, context=0,
                  precision=FP16, tp=1)
        assert [s.name for s in g.segments] == ["embed", "layers", "head"]
        assert g.segments[1].repeat == cfg.num_layers
        for seg in g.segments:
            for op in seg.ops:
                assert op.flops >= 0 and op.bytes >= 0 and all(d > 0 for d in op.dims)
                assert op.unit == ""
