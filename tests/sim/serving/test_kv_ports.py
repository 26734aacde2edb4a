"""KV hand-over ports (`sim.serving.simulator.Link`): a prefill instance's egress and a
decode instance's ingress each carry one transfer at a time; disjoint pairs overlap.

Hand-timed toy: every step takes 1 s, prompts of 10 tokens at 1000 B a token (10,000 B), a
port of 5000 B/s with 0.5 s latency, so a transfer takes 0.5 + 2 = 2.5 s; two requests arrive
at t = 0 and both prompts are prefilled by t = 1 s."""

import pytest

from sim.serving.instance import Instance
from sim.serving.metrics import summarise
from sim.serving.policies import policy
from sim.serving.request import Request
from sim.serving.simulator import Link, simulate_serving

LINK = Link(bandwidth_bytes_per_s=5000.0, latency_s=0.5)


def one_second(shapes):
    return 1.0


def cluster(n_prefill, n_decode):
    make = [Instance(name=f"p{k}", role="prefill", step_time=one_second, kv_blocks=1000,
                     policy=policy("vllm")) for k in range(n_prefill)]
    return make + [Instance(name=f"d{k}", role="decode", step_time=one_second, kv_blocks=1000,
                            policy=policy("vllm")) for k in range(n_decode)]


def run(n_prefill, n_decode):
    reqs = [Request(id=i, arrival_s=0.0, prompt_tokens=10, output_tokens=2) for i in range(2)]
    res = simulate_serving(reqs, cluster(n_prefill, n_decode), kv_bytes_per_token=1000,
                           link=LINK)
    got = sorted((t.request, t.source, t.target, t.start_s, t.end_s) for t in res.transfers)
    return res, got


def test_disjoint_pairs_overlap():
    # p0 -> d0 and p1 -> d1 both run 1 s .. 3.5 s (one shared link: the second 3.5 .. 6 s);
    # each second token one decode step later, at 4.5 s.
    res, got = run(2, 2)
    assert got == [(0, "p0", "d0", 1.0, 3.5), (1, "p1", "d1", 1.0, 3.5)]
    assert [s.finish_s for s in res.sequences] == [4.5, 4.5]


def test_transfers_into_one_decode_instance_queue():
    # p0 and p1 both send to d0: its ingress carries 1 .. 3.5 s, then 3.5 .. 6 s.
    res, got = run(2, 1)
    assert got == [(0, "p0", "d0", 1.0, 3.5), (1, "p1", "d0", 3.5, 6.0)]
    assert sorted(s.transfer_s for s in res.sequences) == [2.5, 5.0]


def test_transfers_out_of_one_prefill_instance_queue():
    # p0 prefills both prompts in one 1 s step and sends to d0 and d1: its egress carries one
    # at a time, 1 .. 3.5 s then 3.5 .. 6 s, though the receivers differ.
    res, got = run(1, 2)
    assert got == [(0, "p0", "d0", 1.0, 3.5), (1, "p0", "d1", 3.5, 6.0)]


def test_ports_never_overlap_and_bytes_are_conserved():
    # A busier run (2 prefill, 3 decode, least_loaded): per port the transfers are disjoint
    # in time, some transfers on disjoint pairs overlap, and every prompt's KV (1000 B a
    # token) crosses exactly once.
    reqs = [Request(id=i, arrival_s=0.05 * i, prompt_tokens=10 + i % 7, output_tokens=3)
            for i in range(60)]
    insts = cluster(2, 3)
    res = simulate_serving(reqs, insts, kv_bytes_per_token=1000, router="least_loaded",
                           link=LINK)
    assert summarise(res, {})["kv_transfer_bytes"] == 1000 * sum(r.prompt_tokens
                                                               for r in reqs)
    for port in ("source", "target"):
        for name in {getattr(t, port) for t in res.transfers}:
            mine = sorted((t.start_s, t.end_s) for t in res.transfers
                          if getattr(t, port) == name)
            assert all(b[0] >= a[1] for a, b in zip(mine, mine[1:]))
    spans = sorted((t.start_s, t.end_s) for t in res.transfers)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:]))
    for t in res.transfers:
        assert t.end_s - t.start_s == pytest.approx(0.5 + t.nbytes / 5000.0)
    assert all(s.generated == 3 for s in res.sequences)
