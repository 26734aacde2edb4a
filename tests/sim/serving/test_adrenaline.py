"""Adrenaline's attention offload (sim/serving/policies/adrenaline.py): conservation of the
offloaded attention's FLOPs and bytes against hand counts, the scheduled decode step, the
shared home chip, and whole serving runs."""

import numpy as np
import pytest

from mappers.ir import Batch, OpKind, Phase, Precision
from sim.api import load_model, load_system
from sim.cli.main import main
from sim.serving.cluster import build_instances, kv_bytes_per_token, parse_cluster
from sim.serving.policies.adrenaline import ATTENTION, offload_step
from sim.serving.request import Request
from sim.serving.simulator import Link, simulate_serving
from sim.step import compile_step

P = Precision()
LINK = Link(bandwidth_bytes_per_s=240e9, latency_s=8.92e-6)
LOCAL = [(1, c) for c in (5, 100, 100, 733, 2047)]
AWAY = [(1, c) for c in (0, 64, 1500, 1500, 1500, 4000)]


@pytest.fixture(scope="module")
def setup():
    return load_model("llama2-7b"), load_system("a100")


def hand_count(model, seqs):
    """Per step, by hand: attention matmul FLOPs (scores and values: 2 x heads x head_dim
    per key each) and KV-cache bytes (K and V of the new token written, of every key read),
    fp16, every layer. A decode token attends to its ``context`` cached keys and itself."""
    keys = sum(c + 1 for _, c in seqs)
    flops = model.num_layers * 2 * (2 * model.num_heads * model.head_dim * keys)
    kv = 2 * model.num_kv_heads * model.head_dim * 2  # K and V of one token, bytes
    return flops, model.num_layers * kv * (len(seqs) + keys)


def attention_totals(step, where):
    flops = kv = 0
    for r in step.schedule.ops:
        on_home = r.op.unit.startswith("remote")
        if r.op.kind in ATTENTION and on_home == (where == "home"):
            if r.op.kind in (OpKind.ATTN_SCORE, OpKind.ATTN_VALUE):
                flops += r.segment.repeat * r.op.flops
            kv += r.segment.repeat * r.op.kv_bytes
    return flops, kv


def test_offloaded_plus_local_attention_is_total_hand_count(setup):
    model, a100 = setup
    step = offload_step(model, a100, Batch.of(LOCAL), [(a100, Batch.of(AWAY))], link=LINK,
                        precision=P)
    local, home = attention_totals(step, "local"), attention_totals(step, "home")
    assert local == hand_count(model, LOCAL)
    assert home == hand_count(model, AWAY)
    total = hand_count(model, LOCAL + AWAY)
    assert (local[0] + home[0], local[1] + home[1]) == total


def test_step_flops_and_bytes_conserved_against_plain_step(setup):
    # Offloading moves work between chips, never adds or drops any: the decode chip's and the
    # home's FLOPs and DRAM bytes add up to those of the same step run whole on one chip.
    model, a100 = setup
    plain = compile_step(model, a100, phase=Phase.DECODE, precision=P,
                         seqs=Batch.of(LOCAL + AWAY), detail="roofline")
    step = offload_step(model, a100, Batch.of(LOCAL), [(a100, Batch.of(AWAY))], link=LINK,
                        precision=P)
    plain_flops = sum(r.segment.repeat * r.op.flops for r in plain.ops)
    (home,) = step.remote
    assert step.flops + home.flops == pytest.approx(plain_flops, rel=1e-12)
    assert step.dram_bytes + home.dram_bytes == pytest.approx(plain.dram_bytes, rel=1e-12)
    # q, k, v out and the attention output back, fp16, every layer, by hand.
    per_seq = (2 * model.num_heads + 2 * model.num_kv_heads) * model.head_dim * 2
    assert step.link_bytes == model.num_layers * len(AWAY) * per_seq


def test_no_offload_is_the_plain_step(setup):
    model, a100 = setup
    batch = Batch.uniform(64, 1, 1000)
    plain = compile_step(model, a100, phase=Phase.DECODE, precision=P, seqs=batch,
                         detail="roofline")
    step = offload_step(model, a100, batch, [], link=LINK, precision=P)
    assert step.time_s == plain.time_s and step.remote == ()


def test_offloaded_branch_overlaps_local_attention(setup):
    # Half of 128 equal sequences away: the two attention halves run at once on two chips,
    # so the step is shorter than the plain one by about half its attention time, less
    # two link hops a layer (each at least the link latency).
    model, a100 = setup
    plain = compile_step(model, a100, phase=Phase.DECODE, precision=P,
                         seqs=Batch.uniform(128, 1, 2000), detail="roofline")
    step = offload_step(model, a100, Batch.uniform(64, 1, 2000),
                        [(a100, Batch.uniform(64, 1, 2000))], link=LINK, precision=P)
    attn = sum(r.segment.repeat * r.cost.time_s for r in plain.ops if r.op.kind in ATTENTION)
    hops = 2 * model.num_layers * LINK.latency_s
    assert plain.time_s - attn / 2 - 1e-12 <= step.time_s <= plain.time_s - attn / 2 + 2 * hops


def cluster(ratio, *, max_tokens=2048):
    return parse_cluster({"model": "llama2-7b", "link": {"bandwidth_bytes_per_s": 240e9,
                                                          "latency_s": 8.92e-6},
                          "instances": [
                              {"hardware": "a100", "role": "prefill", "batching": "vllm",
                               "max_tokens": max_tokens},
                              {"hardware": "a100", "role": "decode", "batching": "adrenaline",
                               "max_batch": 1024, "offload_ratio": ratio}]}, "test")


def requests(n=300, rate=12.0, seed=3):
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(1 / rate, n))
    return [Request(id=i, arrival_s=float(t[i]), prompt_tokens=int(rng.integers(50, 3000)),
                    output_tokens=int(rng.integers(1, 400))) for i in range(n)]


@pytest.mark.parametrize("ratio", [0.0, 0.5, 1.0, "auto"])
def test_serving_completes_once_and_within_capacity(ratio):
    reqs = requests()
    c = cluster(ratio)
    model, insts, _, _ = build_instances(c, reqs)
    kvb = kv_bytes_per_token(model)
    res = simulate_serving(reqs, insts, kv_bytes_per_token=kvb, link=c.link)
    ctl = insts[0].offload
    assert all(s.done and s.generated == s.request.output_tokens for s in res.sequences)
    assert len(res.sequences) == len(reqs)
    assert ctl.handed == sum(r.output_tokens > 1 for r in reqs)  # one token: done at prefill
    for inst in insts:
        assert inst.peak_blocks <= inst.kv_blocks and inst.used_blocks == 0
    # Offloaded caches stay home: their hand-over moves no bytes; the others move all.
    moved = [t for t in res.transfers if t.nbytes]
    assert len(res.transfers) - len(moved) == ctl.offloaded
    assert (ctl.offloaded == 0) == (ratio == 0.0)
    by_id = {s.request.id: s for s in res.sequences}
    assert all(t.nbytes == kvb * by_id[t.request].request.prompt_tokens for t in moved)


def test_home_chip_shared_stretches_memory_bound_work(setup):
    # A home whose bandwidth is half taken by offloaded attention: a memory-bound decode step
    # there takes about twice as long, a compute-bound prefill hardly longer.
    reqs = requests(5)
    c = cluster(0.5)
    _, insts, _, _ = build_instances(c, reqs)
    home, decode = insts
    ctl = home.offload
    seqs = [type("S", (), {"computed": 1000})() for _ in range(32)]
    prompt = [type("S", (), {"computed": 0})()]
    alone = [ctl._plain(home, [(s, 1) for s in seqs], 0.0)[0],
             ctl._plain(home, [(prompt[0], 2048)], 0.0)[0]]
    ctl._share[home.name][decode.name] = (0.0, 0.5, 1.0)
    shared = [ctl._plain(home, [(s, 1) for s in seqs], 0.0)[0],
              ctl._plain(home, [(prompt[0], 2048)], 0.0)[0]]
    assert shared[0] / alone[0] == pytest.approx(2.0, rel=0.05)
    assert 1.0 <= shared[1] / alone[1] < 1.1


@pytest.mark.parametrize("value", ["-0.1", "1.5", "lots", "true"])
def test_bad_offload_ratio_exits_2_one_line(capsys, tmp_path, value):
    yaml_text = ("instances:\n  - {hardware: a100, role: prefill}\n"
                 f"  - {{hardware: a100, role: decode, batching: adrenaline, "
                 f"offload_ratio: {value}}}\n")
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text)
    out_file = tmp_path / "o.h5"
    code = main(["serve", "--duration", "5", "--cluster", str(path), "-o", str(out_file)])
    err = capsys.readouterr().err
    assert code == 2
    assert "offload_ratio" in err and "[0, 1]" in err and len(err.strip().splitlines()) == 1
    assert not out_file.exists()


def test_adrenaline_only_on_decode_groups(capsys, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("instances:\n  - {hardware: a100, role: prefill, batching: adrenaline}\n"
                    "  - {hardware: a100, role: decode}\n")
    assert main(["serve", "--duration", "5", "--cluster", str(path)]) == 2
    assert "adrenaline is for decode groups" in capsys.readouterr().err


def test_two_homes_two_decodes():
    # Sequences of one decode step may live on different homes: one remote branch each.
    c = parse_cluster({"model": "llama2-7b", "router": "least_loaded", "instances": [
        {"hardware": "a100", "role": "prefill", "batching": "vllm", "count": 2},
        {"hardware": "a100", "role": "decode", "batching": "adrenaline", "count": 2,
         "offload_ratio": 0.6}]}, "test")
    reqs = requests(400, rate=25.0)
    model, insts, _, _ = build_instances(c, reqs)
    res = simulate_serving(reqs, insts, router=c.router,
                           kv_bytes_per_token=kv_bytes_per_token(model), link=c.link)
    ctl = insts[0].offload
    assert all(s.done for s in res.sequences) and ctl.offloaded > 0
    assert all(i.used_blocks == 0 and i.peak_blocks <= i.kv_blocks for i in insts)
    assert any(len(key[1]) == 2 for key in ctl._decode_memo)  # a step with both homes
