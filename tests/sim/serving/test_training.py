"""Training beside serving: conservation, priority, the reduced KV budget, throughput, and
one-line refusals of bad ``training:`` blocks."""

import json

import pytest

from sim.cli.main import main
from sim.serving.instance import Instance
from sim.serving.policies import policy
from sim.serving.request import Request
from sim.serving.simulator import simulate_serving
from sim.serving.training import Trainer, TrainPlan
from tests.sim.serving.test_simulator import affine_step, random_requests


def plan(chunk_s=0.004, chunks=4, tokens=100):
    return TrainPlan(chunk_s=chunk_s, chunks=chunks, tokens=tokens, step_s=chunk_s * chunks,
                     extra_bytes=0, memory={})


def instances(name, share, n=2, kv_blocks=64):
    out = [Instance(name=f"i{k}", role="collocated", step_time=affine_step, kv_blocks=kv_blocks,
                    policy=policy(name), max_tokens=512) for k in range(n)]
    for inst in out:
        inst.trainer = Trainer(plan=plan(), share=share)
    return out


@pytest.mark.parametrize("name, share", [("vllm", 0.0), ("sarathi", 0.0), ("sarathi", 0.3)])
def test_every_request_once_kv_bounded_with_training(name, share):
    reqs = random_requests(400, 40.0)
    insts = instances(name, share)
    res = simulate_serving(reqs, insts)
    assert sorted(s.request.id for s in res.sequences) == list(range(400))
    for s in res.sequences:
        assert s.generated == s.request.output_tokens
        assert len(s.tbts) == s.request.output_tokens - 1
    for inst in insts:
        assert inst.peak_blocks <= inst.kv_blocks
        assert inst.used_blocks == 0 and not inst.running and not inst.waiting
        assert inst.trainer.chunks_done > 0
        # Training and serving never overlap on one instance.
        spans = sorted([(it.start_s, it.end_s) for it in inst.timeline]
                       + [(a, b) for a, b, _ in inst.trainer.log])
        assert all(b0 <= a1 + 1e-12 for (_, b0), (a1, _) in zip(spans, spans[1:]))


def test_priority_at_most_one_chunk_ahead_of_serving():
    for share in (0.0, 0.3):
        insts = instances("sarathi", share)
        simulate_serving(random_requests(400, 40.0), insts)
        for inst in insts:
            if share == 0:  # idle time only: no chunk starts while serving could run
                assert all(p == 0 for _, _, p in inst.trainer.log)
            events = sorted([(it.start_s, "serve", 0) for it in inst.timeline]
                            + [(a, "train", p) for a, _, p in inst.trainer.log])
            # A chunk that starts with serving work waiting is followed by a serving
            # iteration (or by an idle chunk: serving found nothing it could run), never by
            # a second chunk ahead of it: serving waits one chunk at most.
            ahead = 0
            for (_, kind, pending), (_, nxt, nxt_pending) in zip(events, events[1:]):
                if kind == "train" and pending:
                    ahead += 1
                    assert nxt == "serve" or nxt_pending == 0
            assert (ahead > 0) == (share > 0)
            if share:
                # Under this load training gets about its share of the time.
                assert inst.trainer.busy_s / inst.timeline[-1].end_s > 0.25


def test_closed_form_single_request():
    # Chunks of 0.1 s from t = 0; one request arrives at 0.25 mid-chunk, waits for the chunk
    # to end (0.3), runs one 0.01 s step, and training stops with the last request.
    inst = Instance(name="i", role="collocated", step_time=lambda shapes: 0.01,
                    kv_blocks=100, policy=policy("fcfs"))
    inst.trainer = Trainer(plan=plan(chunk_s=0.1, chunks=2, tokens=100), share=0.0)
    res = simulate_serving([Request(id=0, arrival_s=0.25, prompt_tokens=1,
                                    output_tokens=1)], [inst])
    s = res.sequences[0]
    assert s.first_token_s == pytest.approx(0.31)
    assert inst.trainer.chunks_done == 3 and inst.trainer.steps == 1
    assert res.end_s == pytest.approx(0.31)


CLUSTER = """model: llama2-7b
instances: [{hardware: h100, role: collocated}]
"""


def serve_json(capsys, tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    code = main(["serve", "--cluster", str(path), "--duration", "20", "--json"])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_serve_summary_with_and_without_training(capsys, tmp_path):
    code, out, _ = serve_json(capsys, tmp_path, CLUSTER)
    base = json.loads(out)
    assert code == 0 and "training" not in base
    code, out, _ = serve_json(capsys, tmp_path, CLUSTER + "training: {batch: 2, seq: 256, "
                              "lora_rank: 8, lora_targets: [q, v], chunks: 16}\n")
    s = json.loads(out)
    assert code == 0 and s["completed"] == s["requests"] == base["requests"]
    t = s["training"]
    assert t["steps"] == t["chunks"] // 16 > 0
    assert t["tokens"] == t["steps"] * 2 * 256
    assert t["tokens_per_s"] == pytest.approx(t["steps"] * 512 / s["makespan_s"])
    # Serving only loses latency to training, by at most about one chunk per iteration.
    assert s["ttft_p50_s"] >= base["ttft_p50_s"] - 1e-9
    # KV budget: llama2-7b fp16 holds 2 x 32 layers x 32 heads x 128 x 2 B = 524288 B a token;
    # the training state beyond the served weights takes that many bytes' worth of tokens.
    mem = t["memory_bytes"]["collocated0.0"]
    served = 6_738_415_616 * 2  # llama2-7b's parameters, fp16
    extra = mem["total"] - served
    assert extra > mem["activations"]


def test_trace_has_training_chunks_and_plan_is_memoised(capsys, tmp_path):
    import h5py

    from sim.serving.cluster import build_instances, parse_cluster

    path = tmp_path / "c.yaml"
    path.write_text(CLUSTER.replace("collocated}", "collocated, count: 2}")
                    + "training: {batch: 1, seq: 128, lora_rank: 4, chunks: 8}\n")
    out = tmp_path / "t.h5"
    assert main(["serve", "--cluster", str(path), "--duration", "10", "-o", str(out)]) == 0
    with h5py.File(out) as f:
        log = f["training"]["collocated0.1"][:]
        assert len(log) > 0 and (log["end_s"] > log["start_s"]).all()
    reqs = [Request(id=0, arrival_s=0.0, prompt_tokens=10, output_tokens=2)]
    data = {"model": "llama2-7b", "instances": [{"hardware": "h100", "count": 2}],
            "training": {"batch": 1, "seq": 128, "lora_rank": 4}}
    tables: dict = {}
    _, (a, b), _, _ = build_instances(parse_cluster(data, "t"), reqs, tables=tables)
    _, (c, _), _, _ = build_instances(parse_cluster(data, "t"), reqs, tables=tables)
    assert a.trainer.plan is b.trainer.plan is c.trainer.plan  # one step simulated
    assert a.trainer is not b.trainer


def test_kv_budget_falls_by_training_memory():
    from mappers.models import load_model
    from sim.api import load_system
    from sim.serving.cluster import build_instances, parse_cluster

    reqs = [Request(id=0, arrival_s=0.0, prompt_tokens=10, output_tokens=2)]
    data = {"model": "llama2-7b", "instances": [{"hardware": "h100"}]}
    _, (plain,), _, _ = build_instances(parse_cluster(data, "t"), reqs)
    data["training"] = {"batch": 4, "seq": 1024}  # full fine-tuning does not fit: LoRA
    data["training"]["lora_rank"] = 16
    _, (trained,), _, _ = build_instances(parse_cluster(data, "t"), reqs)
    extra = trained.trainer.plan.extra_bytes
    assert extra > 0
    lost_tokens = (plain.kv_blocks - trained.kv_blocks) * 16
    assert lost_tokens == pytest.approx(extra / 524288, abs=16 + 1)
    assert load_model("llama2-7b").config.num_layers == 32 and load_system("h100")


@pytest.mark.parametrize("block, words", [
    ("training: {batch: -1, seq: 8}", "training.batch: must be an integer >= 1"),
    ("training: {batch: 1, seq: 8, lora_rank: 0}", "training.lora_rank"),
    ("training: {batch: 1}", "training: seq is required"),
    ("training: {batch: 1, seq: 8, share: 1.5}", "training.share"),
    ("training: {batch: 1, seq: 8, recompute: some}", "training.recompute"),
    ("training: {batch: 1, seq: 8, lora_rank: 4, lora_targets: [x]}",
     "training.lora_targets"),
    ("training: {batch: 1, seq: 8, lora_targets: [q]}", "needs lora_rank"),
    ("training: {batch: 1, seq: 8, colour: red}", "unknown field 'colour'"),
    ("training: 3", "must be a mapping"),
    ("training: {batch: 64, seq: 4096}", "no room for a KV cache"),
])
def test_bad_training_block_exits_2_one_line(capsys, tmp_path, block, words):
    code, out, err = serve_json(capsys, tmp_path, CLUSTER + block + "\n")
    assert code == 2 and out == ""
    assert words in err and len(err.strip().splitlines()) == 1
