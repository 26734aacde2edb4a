"""Training steps in the IR: FLOPs and memory by class against closed forms and hand counts."""

import pytest

from mappers.ir import MATMUL_KINDS, OpKind, Phase, Precision
from mappers.lower import lower
from mappers.models import ModelConfig, load_model
from mappers.train import (TrainSpec, adamw_bytes_per_param, chip_parameters, lower_train,
                           trainable_parameters)
from mappers.train_memory import train_memory
from sim.errors import ConfigError

BF16 = Precision(weight="bf16", activation="bf16", kv="bf16")
GEMMS = frozenset({OpKind.GEMM, OpKind.LM_HEAD})

#: A 2-layer toy: hidden 64, 4 query heads and 2 KV heads of 16, SwiGLU MLP of 128, vocab 256.
TOY = ModelConfig(name="toy", architecture="LlamaForCausalLM", hidden_size=64, num_layers=2,
                  num_heads=4, num_kv_heads=2, head_dim=16, intermediate_size=128,
                  vocab_size=256, gated_mlp=True, activation="silu", norm="rmsnorm",
                  position="rope", causal=True)


def _flops(graph, tag, kinds=None):
    return sum(seg.repeat * op.flops for seg in graph.segments if seg.tag == tag
               for op in seg.ops if kinds is None or op.kind in kinds)


def _named(graph, tag, prefix):
    return sum(seg.repeat * op.flops for seg in graph.segments if seg.tag == tag
               for op in seg.ops if op.name.startswith(prefix))


@pytest.mark.parametrize("name", ["toy", "llama2-7b", "qwen3-8b"])
@pytest.mark.parametrize("tp", [1, 2])
def test_backward_gemm_flops_are_exactly_twice_the_forward(name, tp):
    model = TOY if name == "toy" else load_model(name).config
    g = lower_train(model, TrainSpec(batch=2, seq=96), precision=BF16, tp=tp)
    assert _flops(g, "backward", GEMMS) == 2 * _flops(g, "forward", GEMMS)


def test_toy_forward_backward_and_update_flops_by_hand():
    """T = 2 x 8 = 16 tokens. Per layer, GEMM weights: qkv 64 x 128, o 64 x 64, gate/up
    64 x 256, down 128 x 64: 8192 + 4096 + 16384 + 8192 = 36864; LM head 64 x 256 = 16384.
    Forward GEMM FLOPs = 2 T (2 x 36864 + 16384) = 2 x 16 x 90112 = 2883584."""
    g = lower_train(TOY, TrainSpec(batch=2, seq=8), precision=BF16)
    assert _flops(g, "forward", GEMMS) == 2_883_584
    assert _flops(g, "backward", GEMMS) == 2 * 2_883_584
    # attention: causal pairs per sequence and head 8 x 9 / 2 = 36; x 2 seqs x 4 heads = 288
    # scores per layer; forward 2 products x 2 x 288 x 16 = 18432 per layer, FA2's backward
    # five products = 46080 per layer
    attn = frozenset({OpKind.ATTN_SCORE, OpKind.ATTN_VALUE})
    assert _flops(g, "forward", attn) == 2 * 18_432
    assert _flops(g, "backward", attn) == 2 * 46_080
    # AdamW: 16 FLOPs x (2 x (36864 + 2 x 64 norm gains) + 256 x 64 table + 64 + 16384)
    assert _flops(g, "update") == 16 * 106_816
    assert _flops(g, "recompute") == 0


@pytest.mark.parametrize("lora", [None, 4])
@pytest.mark.parametrize("recompute", ["none", "full"])
def test_step_flops_are_forward_plus_backward_plus_update(lora, recompute):
    spec = TrainSpec(batch=2, seq=64, lora_rank=lora, recompute=recompute)
    model = load_model("llama3-8b").config
    g = lower_train(model, spec, precision=BF16)
    tags = {seg.tag for seg in g.segments}
    assert tags <= {"forward", "recompute", "backward", "update"}
    assert g.total("flops") == sum(_flops(g, t) for t in ("forward", "recompute",
                                                           "backward", "update"))
    # the forward is the inference prefill plus logits for every position (not only the
    # last) and the loss's softmax (5 FLOPs per logit), plus adapters under LoRA
    pre = lower(model, phase=Phase.PREFILL, precision=BF16, batch=2, new_tokens=64, context=0)
    tokens, vocab, d = 128, model.vocab_size, model.hidden_size
    adapters = _named(g, "forward", "lora_")
    assert _flops(g, "forward") == (pre.total("flops") + 2 * (tokens - 2) * vocab * d
                                    + 5 * tokens * vocab + adapters)
    if recompute == "full":  # every layer's forward again, not the embedding or the head
        layers = next(s for s in g.segments if s.name == "layers")
        assert _flops(g, "recompute") == layers.repeat * sum(op.flops for op in layers.ops)
    else:
        assert _flops(g, "recompute") == 0


def test_lora_backward_is_dx_through_frozen_weights_plus_adapter_grads():
    """r = 4 on q and v of the toy: adapters per layer q: A 64 x 4, B 4 x 64; v: A 64 x 4,
    B 4 x 32; forward FLOPs 2 T r (K + N) = 2 x 16 x 4 x (128 + 96) = 28672 per layer.
    Backward: dX through every frozen GEMM (once the forward's GEMM FLOPs) plus dB, dh, dA,
    dX of each adapter (twice its forward)."""
    spec = TrainSpec(batch=2, seq=8, lora_rank=4, lora_targets=("q", "v"))
    g = lower_train(TOY, spec, precision=BF16)
    assert _named(g, "forward", "lora_") - _named(g, "forward", "lora_q_add") \
        - _named(g, "forward", "lora_v_add") == 2 * 28_672
    assert _flops(g, "backward", GEMMS) == 2_883_584 + 2 * 2 * 28_672
    assert trainable_parameters(TOY, spec, 1) == 2 * (4 * 128 + 4 * 96)
    assert _flops(g, "update") == 16 * 1792
    assert not any(op.name.endswith(".dw") and not op.name.startswith("lora_")
                   for seg in g.segments for op in seg.ops)


def test_toy_memory_by_class_matches_a_hand_count():
    """Full fine-tuning, bf16 weights, fp32 AdamW state, B = 2, S = 8 (T = 16).

    Parameters: 2 layers x 36992 (GEMMs 36864 + 2 norm gains of 64) + 16384 embedding + 64
    final norm + 16384 LM head = 106816. Weights and gradients 2 bytes each: 213632; m, v
    and fp32 master weights 12 bytes each: 1281792.

    Activations kept per layer (bf16 2 B, fp32 4 B): attn_norm input 16 x 64 x 2 = 2048 and
    1/rms 16 x 4 = 64; qkv_proj input 2048; Q, K, V 16 x (64 + 32 + 32) x 2 = 4096; O 2048;
    L 16 x 4 x 4 = 256; mlp_norm 2048 + 64; gate_up input 2048; SwiGLU inputs
    16 x 256 x 2 = 8192; down input 16 x 128 x 2 = 4096: 27008. Head: final norm 2048 + 64;
    LM head input 2048; logits 16 x 256 x 2 = 8192: 12352. None: 2 x 27008 + 12352 = 66368.
    Full recompute: 2 layer inputs of 2048 + one layer's 27008 + the head's 12352 = 43456."""
    for recompute, activations in (("none", 66_368), ("full", 43_456)):
        spec = TrainSpec(batch=2, seq=8, recompute=recompute)
        g = lower_train(TOY, spec, precision=BF16)
        m = train_memory(TOY, spec, g, precision=BF16)
        assert (m.weights, m.gradients, m.optimizer, m.activations) == \
            (213_632, 213_632, 1_281_792, activations)


def test_toy_lora_memory_by_class_matches_a_hand_count():
    """LoRA r = 4 on q, v: 1792 adapter parameters (above). Weights (106816 + 1792) x 2 =
    217216; gradients 1792 x 2 = 3584; optimizer 1792 x 12 = 21504. Activations per layer:
    attn_norm 2112; qkv input 2048 (adapted); X A of q and v 16 x 4 x 2 = 128 each; Q, K, V
    4096; O 2048; L 256; mlp_norm 2112; the frozen gate_up and down keep no input; SwiGLU
    inputs 8192: 21120. Head: final norm 2112, logits 8192 (frozen LM head: no input): 10304.
    Total 2 x 21120 + 10304 = 52544."""
    spec = TrainSpec(batch=2, seq=8, lora_rank=4)
    g = lower_train(TOY, spec, precision=BF16)
    m = train_memory(TOY, spec, g, precision=BF16)
    assert (m.weights, m.gradients, m.optimizer, m.activations) == \
        (217_216, 3_584, 21_504, 52_544)


def test_chip_parameters_agree_with_the_parameter_counts():
    for name in ("llama2-7b", "qwen3-8b", "bloom-176b"):
        cfg = load_model(name).config
        assert chip_parameters(cfg, 1) == cfg.parameter_counts()["total"]


def test_adamw_bytes_per_parameter():
    # bf16 weights, fp32 state: g 2 + m, v read and written 16 + master read/written 8 +
    # the bf16 copy written 2
    assert adamw_bytes_per_param("bf16", "fp32") == 28
    # fp32 weights and state: no separate master copy: g 4 + 16 + w read/written 8
    assert adamw_bytes_per_param("fp32", "fp32") == 28
    assert adamw_bytes_per_param("bf16", "bf16") == 2 + 8 + 4


@pytest.mark.parametrize("kwargs, flag", [
    ({"batch": 0, "seq": 8}, "--batch"), ({"batch": -3, "seq": 8}, "--batch"),
    ({"batch": 1, "seq": 0}, "--seq"), ({"batch": 1, "seq": 8, "lora_rank": 0}, "--lora-rank"),
    ({"batch": 1, "seq": 8, "lora_rank": 4, "lora_targets": ("q", "x")}, "--lora-targets"),
    ({"batch": 1, "seq": 8, "recompute": "some"}, "--recompute"),
    ({"batch": 1, "seq": 8, "optimizer_dtype": "int8"}, "--optimizer-dtype")])
def test_bad_specs_name_their_flag(kwargs, flag):
    with pytest.raises(ConfigError, match=flag):
        TrainSpec(**kwargs)


def test_moe_and_gate_on_a_plain_mlp_are_refused():
    with pytest.raises(ConfigError, match="mixture-of-experts"):
        lower_train(load_model("mixtral-8x7b").config, TrainSpec(batch=1, seq=8),
                    precision=BF16)
    with pytest.raises(ConfigError, match="gate"):
        lower_train(load_model("bloom-176b").config,
                    TrainSpec(batch=1, seq=8, lora_rank=2, lora_targets=("gate",)),
                    precision=BF16)


def test_matmul_kinds_cover_every_backward_product():
    g = lower_train(TOY, TrainSpec(batch=1, seq=4), precision=BF16)
    names = {op.name for seg in g.segments if seg.tag == "backward" for op in seg.ops
             if op.kind in MATMUL_KINDS}
    assert {"attn_bwd_s", "attn_bwd_dv", "attn_bwd_dp", "attn_bwd_dq", "attn_bwd_dk",
            "qkv_proj.dx", "qkv_proj.dw", "lm_head.dw"} <= names


def test_gemm_flops_follow_the_six_n_t_rule():
    """Forward + backward GEMM FLOPs of full fine-tuning = 6 N T (Kaplan et al. 2020, Sec.
    2.1), N the matrix parameters: Llama-2-7B's 6738415616 less its 32000 x 4096 embedding
    table and 65 RMSNorm gains of 4096 (2 per layer and the final one)."""
    cfg = load_model("llama2-7b").config
    g = lower_train(cfg, TrainSpec(batch=3, seq=100), precision=BF16)
    n = 6_738_415_616 - 32_000 * 4096 - 65 * 4096
    assert _flops(g, "forward", GEMMS) + _flops(g, "backward", GEMMS) == 6 * n * 300
