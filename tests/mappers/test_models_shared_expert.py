"""Shared experts (Qwen2-MoE: Qwen1.5-MoE-A2.7B): published parameter counts, and the weights a
step reads (issue 11, Deliver 5)."""

import json
from dataclasses import replace

import pytest

from mappers.ir import Phase, Precision
from mappers.lower import lower
from mappers.models import load_model, parse_model
from sim.errors import ConfigError

QWEN = load_model("qwen1.5-moe-a2.7b").config
H, V = 2048, 151936


def _layer_ops(graph):
    seg = next(s for s in graph.segments if s.name == "layers")
    return {op.name: op for op in seg.ops}


def test_total_and_active_parameters_are_the_published_ones():
    counts = QWEN.parameter_counts()
    # Keras-Hub preset qwen1.5_moe_2.7b_en "params" (and Qwen's own demo banner)
    assert counts["total"] == 14_315_784_192
    # model card: "14.3B parameters in total and 2.7B activated parameters"
    assert 2.65e9 <= counts["active"] < 2.75e9
    assert counts["per_expert"] == 3 * H * 1408
    # inactive: 56 of the 60 routed experts in each of 24 layers; the shared expert is active
    assert counts["total"] - counts["active"] == 24 * 56 * 3 * H * 1408


def test_a_layer_matches_torchinfo_of_a_reduced_model():
    """A published torchinfo summary of Qwen2MoeForCausalLM with this config cut to 4 experts
    lists 86,003,712 parameters per decoder layer (q, k, v with biases, o, router, 4 experts,
    the shared expert of 5632, its 1-column gate, two norms)."""
    assert replace(QWEN, num_experts=4).parameter_counts()["per_layer"] == 86_003_712


def test_decode_at_batch_one_reads_the_active_parameters():
    """One token touches k = 4 routed experts and the shared expert: the step's weight bytes
    are those of the active parameters (fp16), less the embedding table but one row of it."""
    graph = lower(QWEN, phase=Phase.DECODE, precision=Precision(), batch=1, new_tokens=1,
                  context=100)
    read = sum(seg.repeat * op.weight_bytes for seg in graph.segments for op in seg.ops)
    assert read == 2 * (QWEN.parameter_counts()["active"] - V * H + H)
    ops = _layer_ops(graph)
    assert ops["shared_gate_up"].dims == (1, 2 * 5632, H)
    assert ops["shared_down"].dims == (1, H, 5632) and ops["shared_gate"].dims == (1, 1, H)


def test_prefill_reads_the_shared_expert_once():
    ops = _layer_ops(lower(QWEN, phase=Phase.PREFILL, precision=Precision(), batch=1,
                           new_tokens=512, context=0))
    assert ops["shared_gate_up"].weight_bytes == 2 * 2 * 5632 * H
    assert ops["shared_gate_up"].flops == 2 * 512 * 2 * 5632 * H
    assert ops["mlp_residual"].inputs[0] == ops["shared_combine"].id
    assert set(ops["shared_combine"].inputs) == {ops["expert_down"].id, ops["shared_down"].id,
                                                 ops["shared_gate"].id}


def test_tensor_parallel_splits_the_shared_expert():
    ops = _layer_ops(lower(QWEN, phase=Phase.DECODE, precision=Precision(), batch=1,
                           new_tokens=1, context=10, tp=4))
    assert ops["shared_gate_up"].dims == (1, 2 * 1408, H)
    assert ops["shared_gate"].dims == (1, 1, H)  # replicated, as the router


def test_missing_shared_width_is_refused_with_the_field():
    cfg = json.loads(load_model("qwen1.5-moe-a2.7b").text)
    del cfg["shared_expert_intermediate_size"]
    with pytest.raises(ConfigError, match="shared_expert_intermediate_size"):
        parse_model(json.dumps(cfg), "m", "cfg.json")
    with pytest.raises(ConfigError, match="shared_expert_intermediate_size"):
        replace(load_model("llama2-7b").config, shared_expert_intermediate_size=64)


def test_pdsim_run_runs_qwen15_moe(capsys):
    from sim.cli.main import main
    assert main(["run", "--model", "qwen1.5-moe-a2.7b", "--prompt", "256", "--gen", "8",
                 "--no-trace", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["ttft_s"] > 0
