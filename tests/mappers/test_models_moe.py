"""Mistral, Qwen2 and mixture-of-experts models: hand-computed parameter, pair and byte counts."""

import json
from dataclasses import replace

import pytest

from mappers.ir import Phase, Precision
from mappers.lower import causal_pairs, lower, window_keys
from mappers.models import load_model, parse_model, with_routing
from mappers.place import place
from sim.api import load_system
from sim.engine import Workload, stage_footprints
from sim.errors import ConfigError

FP16 = Precision()


def _layer_ops(graph):
    seg = next(s for s in graph.segments if s.name == "layers")
    return {op.name: op for op in seg.ops}


def test_active_parameters_match_the_model_cards():
    # Mixtral card: 46.7B total, 12.9B active; Qwen3-30B-A3B card: 30.5B total, 3.3B active
    mixtral = load_model("mixtral-8x7b").config.parameter_counts()
    qwen = load_model("qwen3-30b-a3b").config.parameter_counts()
    assert 12.85e9 <= mixtral["active"] < 12.95e9
    assert 3.3e9 <= qwen["active"] < 3.4e9
    # one expert of Mixtral: gate, up and down of 4096 x 14336
    assert mixtral["per_expert"] == 3 * 4096 * 14336
    assert mixtral["total"] - mixtral["active"] == 32 * 6 * 3 * 4096 * 14336


def test_expected_distinct_experts():
    mixtral = load_model("mixtral-8x7b").config
    assert mixtral.expected_experts(1) == pytest.approx(2.0)
    assert mixtral.expected_experts(2) == pytest.approx(8 * (1 - 0.75 ** 2))  # 3.5
    assert mixtral.expected_experts(512) == pytest.approx(8.0)
    # measured routing that always picks experts 0 and 1 touches only those two
    skewed = replace(mixtral, expert_load=(1.0, 1.0) + (0.0,) * 6)
    assert skewed.expected_experts(512) == pytest.approx(2.0)
    with pytest.raises(ConfigError, match="expert_load"):
        replace(mixtral, expert_load=(0.5,) * 8)  # sums to 4, not k = 2


def test_decode_at_batch_one_reads_only_the_active_experts():
    model = load_model("mixtral-8x7b").config
    expert_bytes = 2 * 3 * 4096 * 14336  # fp16 gate, up, down of one expert
    ops = _layer_ops(lower(model, phase=Phase.DECODE, precision=FP16, batch=1, new_tokens=1,
                           context=100))
    read = ops["expert_gate_up"].weight_bytes + ops["expert_down"].weight_bytes
    assert read == 2 * expert_bytes
    assert ops["router"].dims == (1, 8, 4096) and ops["expert_gate_up"].dims[0] == 1


def test_prefill_reads_nearly_all_experts():
    model = load_model("qwen3-30b-a3b").config
    expert_bytes = 2 * 3 * 2048 * 768
    ops = _layer_ops(lower(model, phase=Phase.PREFILL, precision=FP16, batch=1,
                           new_tokens=512, context=0))
    read = ops["expert_gate_up"].weight_bytes + ops["expert_down"].weight_bytes
    assert 127.9 * expert_bytes <= read <= 128 * expert_bytes
    # FLOPs count all 512 x 8 token-expert rows: 2 x rows x (2 x 768 + 768) x 2048
    flops = ops["expert_gate_up"].flops + ops["expert_down"].flops
    assert flops == 2 * 512 * 8 * 3 * 768 * 2048
    assert ops["expert_gate_up"].dims[0] == 32  # 4096 rows over 128 experts


def test_moe_ops_are_placed_and_wired():
    model = load_model("mixtral-8x7b").config
    graph = place(lower(model, phase=Phase.DECODE, precision=FP16, batch=4, new_tokens=1,
                        context=64, tp=2), load_system("h100", tp=2))
    ops = _layer_ops(graph)
    assert ops["router"].unit == ops["expert_gate_up"].unit == "tensor"
    assert ops["router_topk"].unit == "vector"
    assert ops["expert_gate_up"].inputs == (ops["mlp_norm"].id, ops["router_topk"].id)
    assert ops["act"].inputs == (ops["expert_gate_up"].id,)
    assert ops["mlp_allreduce"].inputs == (ops["expert_down"].id,)
    assert "gate_up_proj" not in ops and "down_proj" not in ops


@pytest.mark.parametrize("new_tokens, context, window, pairs", [
    (1, 5000, 4096, 4096),          # decode past the window: W keys
    (1, 100, 4096, 101),            # decode inside it: all keys
    (6, 0, 4, 1 + 2 + 3 + 4 + 4 + 4),
    (3, 2, 4, 3 + 4 + 4),
    (5, 0, None, 15),
])
def test_sliding_window_pairs(new_tokens, context, window, pairs):
    assert causal_pairs(new_tokens, context, True, window) == pairs


def test_sliding_window_bounds_attention_and_kv_cache():
    model = load_model("mistral-7b").config
    assert model.sliding_window == 4096 and window_keys(1, 8000, 4096) == 4096

    def score(context):
        return _layer_ops(lower(model, phase=Phase.DECODE, precision=FP16, batch=1,
                                new_tokens=1, context=context))["attn_score"]
    assert score(8000).kv_bytes == score(5000).kv_bytes == 2 * 8 * 4096 * 128
    assert score(8000).flops == 2 * 32 * 4096 * 128
    assert score(1000).kv_bytes == 2 * 8 * 1001 * 128
    system = load_system("h100")
    _, kv = stage_footprints(model, system, Workload(batch=1, prompt_tokens=8192,
                                                     gen_tokens=128))[0]
    assert kv == 2 * 2 * 32 * 4096 * 8 * 128  # K and V, fp16, 32 layers, W tokens


def test_qwen2_qkv_bias():
    model = load_model("qwen2.5-7b").config
    qkv = _layer_ops(lower(model, phase=Phase.DECODE, precision=FP16, batch=1, new_tokens=1,
                           context=0))["qkv_proj"]
    n = 3584 + 2 * 512
    assert qkv.weight_bytes == 2 * (3584 * n + n)
    assert qkv.flops == 2 * 3584 * n + n


def _edit(name, **fields):
    cfg = json.loads(load_model(name).text)
    cfg.update(fields)
    return json.dumps(cfg)


@pytest.mark.parametrize("text, field", [
    (_edit("mistral-7b", architectures=["LlamaForCausalLM"]), "sliding_window"),
    (_edit("qwen2.5-7b", use_sliding_window=True), "use_sliding_window"),
    (_edit("qwen3-30b-a3b", mlp_only_layers=[3]), "mlp_only_layers"),
    (_edit("qwen3-30b-a3b", decoder_sparse_step=2), "decoder_sparse_step"),
    (_edit("mixtral-8x7b", num_experts_per_tok=9), "num_experts_per_tok"),
    (_edit("qwen2.5-7b", attention_bias=True), "attention_bias"),
])
def test_unsupported_variants_name_the_field(text, field):
    with pytest.raises(ConfigError) as err:
        parse_model(text, "m", "cfg.json")
    assert field in str(err.value)


def test_measured_routing_from_counts():
    model = load_model("mixtral-8x7b").config
    two = with_routing(model, json.dumps({"expert_counts": [5, 5, 0, 0, 0, 0, 0, 0]}))
    assert two.expert_load == (1.0, 1.0) + (0.0,) * 6
    assert two.expected_experts(4096) == pytest.approx(2.0)
    # four experts at 1/2 each: 4 x (1 - 0.5^2) = 3 distinct for two tokens
    four = with_routing(model, json.dumps({"expert_counts": [1, 1, 1, 1, 0, 0, 0, 0]}))
    assert four.expected_experts(2) == pytest.approx(3.0)
    for text, message in ((json.dumps({"expert_counts": [3, 1] + [0] * 6}), "share above 1/2"),
                          (json.dumps({"expert_counts": [1] * 7}), "list of 8"),
                          ("{", "malformed JSON")):
        with pytest.raises(ConfigError, match=message):
            with_routing(model, text)
    with pytest.raises(ConfigError, match="has no experts"):
        with_routing(load_model("llama2-7b").config, json.dumps({"expert_counts": [1]}))


@pytest.mark.parametrize("argv", [
    ["--model", "mistral-7b"], ["--model", "qwen2.5-7b"], ["--model", "qwen3-30b-a3b"],
    ["--model", "mixtral-8x7b", "--tp", "2"]])
def test_pdsim_run_runs_the_new_models(argv, capsys):
    from sim.cli.main import main
    assert main(["run", *argv, "--prompt", "256", "--gen", "8", "--no-trace", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["ttft_s"] > 0


def test_moe_on_an_analog_cim_unit_is_refused(capsys):
    from sim.cli.main import main
    assert main(["run", "--hw", "halo-package", "--mapping", "all-cim", "--model", "mixtral-8x7b",
                 "--no-trace"]) == 2
    assert "mixture-of-experts" in capsys.readouterr().err


def test_decode_sampling_keeps_the_window_kink():
    """Attention stops growing at the window: the sampled decode steps include the kink, so
    interpolation matches simulating every step."""
    from sim.engine import simulate
    model = load_model("mistral-7b").config
    system = load_system("h100")
    work = Workload(batch=1, prompt_tokens=4000, gen_tokens=200)
    full = simulate(system, model, work, detail="roofline")
    sampled = simulate(system, model, work, detail="roofline", decode_sample=3)
    assert sampled.summary["e2e_s"] == pytest.approx(full.summary["e2e_s"], rel=1e-9)
