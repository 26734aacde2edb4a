"""Whole requests over a multi-system (sim/edge_run.py): the chunk size chosen per prompt never
loses to one chunk, decode's TBT against a hand sum on two devices, and seeded jitter."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mappers.ir import Phase, Precision
from mappers.edge import COMPUTE
from sim.cli.main import main
from sim.edge import load_multi, load_net, simulate_prefill, stage_time_s
from sim.edge_run import choose_chunk, generator, simulate_decode
from tests.sim.test_edge import LLAMA7B

FP16 = Precision()


def _split(ms, k):
    """``ms`` (two devices) with layers 0..k-1 on the first, k..31 on the second."""
    a, b = ms.spec.devices
    devices = (replace(a, layers=(f"0-{k - 1}",)), replace(b, layers=(f"{k}-31",)))
    return replace(ms, spec=replace(ms.spec, devices=devices))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prompt=st.integers(1, 3000), k=st.integers(1, 31), net=st.sampled_from(
    ["ethernet-1g", "wifi", "wan"]), plan=st.booleans())
def test_chunking_never_increases_ttft(prompt, k, net, plan):
    """Property over random prompts, splits and links: the chosen chunk's TTFT is at most the
    unchunked prefill's (one chunk of the whole prompt) on the same split, or on the split the
    planner picks for one chunk; and it is the TTFT of simulating the choice again."""
    base = _split(load_multi("orin-pair-1gbe"), k)
    base = replace(base, links={key: load_net(net) for key in base.links})
    choice = choose_chunk(base, LLAMA7B, prompt_tokens=prompt, precision=FP16, plan=plan)
    one = choose_chunk(base, LLAMA7B, prompt_tokens=prompt, precision=FP16, plan=plan,
                       candidates=(prompt,))
    assert prompt in choice.tried
    assert choice.prefill.ttft_s <= one.prefill.ttft_s
    again = simulate_prefill(choice.system, LLAMA7B, prompt_tokens=prompt,
                             chunk_tokens=choice.chunk_tokens)
    assert again.ttft_s == choice.prefill.ttft_s == min(choice.tried.values())


def _ushape(k: int, m: int, net: str):
    """hat-ushape with the device holding layers 0..k-1 and the last m, on link ``net``."""
    ms = load_multi("hat-ushape")
    dev, cloud = ms.spec.devices
    devices = (replace(dev, layers=(f"0-{k - 1}", f"{32 - m}-31")),
               replace(cloud, layers=(f"{k}-{31 - m}",)))
    return replace(ms, spec=replace(ms.spec, devices=devices),
                   links={key: load_net(net) for key in ms.links})


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prompt=st.integers(1, 3000), k=st.integers(1, 4), m=st.integers(1, 4),
       net=st.sampled_from(["ethernet-1g", "wifi", "wan"]))
def test_chunking_never_increases_ttft_on_a_u(prompt, k, m, net):
    """The same property on U-shaped splits (device: first k and last m layers; cloud: the
    middle), where the device must start chunk c + 1 while chunk c is away for chunking to
    pay; bytes conserved: the prompt's hidden states go up and come back once each."""
    ms = _ushape(k, m, net)
    choice = choose_chunk(ms, LLAMA7B, prompt_tokens=prompt, precision=FP16)
    one = choose_chunk(ms, LLAMA7B, prompt_tokens=prompt, precision=FP16, candidates=(prompt,))
    assert choice.prefill.ttft_s <= one.prefill.ttft_s
    assert choice.prefill.transfer_bytes() == {"device->cloud": prompt * 4096 * 2,
                                               "cloud->device": prompt * 4096 * 2}


def test_chunks_overlap_on_hat_ushape():
    """hat-ushape, 1024 tokens: in chunks of 128 the device runs the next chunk's first layers
    while one is on the WAN or in the cloud, so chunking beats one chunk (it could not when
    the device ran each chunk's return before the next chunk's start: 2.02 s against 1.64 s)."""
    ms = load_multi("hat-ushape")
    chunked = simulate_prefill(ms, LLAMA7B, prompt_tokens=1024, chunk_tokens=128)
    whole = simulate_prefill(ms, LLAMA7B, prompt_tokens=1024, chunk_tokens=1024)
    assert chunked.ttft_s < 0.7 * whole.ttft_s
    first = {t.op.chunk: t for t in chunked.timeline
             if t.op.kind == COMPUTE and t.op.stage.embedding}
    back = {t.op.chunk: t for t in chunked.timeline
            if t.op.kind == COMPUTE and t.op.stage.lm_head}
    assert first[1].end_s <= back[0].start_s


def test_jitter_applies_to_the_latency_not_the_airtime():
    """With --seed each transfer arrives a sampled latency after its bytes are out: its hold
    on the link is bytes / bandwidth, its duration that plus the draw (normal of the WAN's
    20 ms mean and 5 ms deviation, in op order, clipped at zero)."""
    r = simulate_prefill(load_multi("hat-ushape"), LLAMA7B, prompt_tokens=256,
                         chunk_tokens=128, rng=generator(3))
    moves = [t for t in r.timeline if t.op.kind != COMPUTE]
    draws = np.random.default_rng(3).normal(2e-2, 5e-3, size=len(moves))
    assert [t.held_s for t in moves] == pytest.approx([128 * 4096 * 2 / 12.5e6] * 4, rel=1e-12)
    assert [t.end_s - t.free_s for t in moves] == pytest.approx(
        [max(0.0, d) for d in draws], rel=1e-9)


def test_chunking_wins_on_a_long_prompt():
    """2048 tokens over two Orins and 1 GbE: one chunk leaves a device idle while the other
    works; some chunk size below the prompt must be chosen (it is: TTFT drops > 30%)."""
    choice = choose_chunk(load_multi("orin-pair-1gbe"), LLAMA7B, prompt_tokens=2048,
                          precision=FP16)
    assert choice.chunk_tokens < 2048
    assert choice.prefill.ttft_s < 0.7 * choice.tried[2048]


def test_decode_tbt_two_devices_by_hand():
    """orin-pair-1gbe, 100-token prompt, 3 tokens (2 decode steps). Step i = orin0's stage
    (embedding + layers 0-15) + orin1's (layers 16-31 + LM head) at context 100 + i, + one
    token's hidden state over 1 GbE (1e-4 s + 8192 B / 117.5e6 B/s) + the token id back
    (1e-4 s + 4 B / 117.5e6 B/s)."""
    ms = load_multi("orin-pair-1gbe")
    r = simulate_decode(ms, LLAMA7B, prompt_tokens=100, gen=3, precision=FP16)
    a, b = simulate_prefill(ms, LLAMA7B, prompt_tokens=100, chunk_tokens=100).stages
    hops = 1e-4 + 8192 / 117.5e6 + 1e-4 + 4 / 117.5e6
    want = [stage_time_s(ms.systems["orin0"], LLAMA7B, a, 1, 100 + i, FP16, "roofline",
                         Phase.DECODE)
            + stage_time_s(ms.systems["orin1"], LLAMA7B, b, 1, 100 + i, FP16, "roofline",
                           Phase.DECODE) + hops for i in range(2)]
    assert r.step_s == pytest.approx(want, rel=1e-12)
    assert r.tbt_s == pytest.approx(sum(want) / 2)
    assert r.transfer_s == pytest.approx(2 * hops)
    # a decode stage reads its weights once per token: 16 layers of llama2-7b at fp16 (16 x
    # 202 383 360 B) over 204.8 GB/s is >= 31.6 ms, far above the 0.27 ms of links
    assert r.compute_s / 2 > 2 * 16 * 202_383_360 * 2 / 204.8e9 * 0.99


def test_wan_latency_dominates_u_shape_decode():
    """hat-ushape: each token goes device -> cloud -> device over the WAN: two hops of
    20 ms + 8192 B / 12.5e6 B/s each per step."""
    r = simulate_decode(load_multi("hat-ushape"), LLAMA7B, prompt_tokens=64, gen=5,
                        precision=FP16)
    assert r.transfer_s == pytest.approx(4 * 2 * (2e-2 + 8192 / 12.5e6))


def test_jitter_is_seeded_normal_clipped_at_zero():
    wifi = load_net("wifi")
    draws = np.random.default_rng(7).normal(3e-3, 2e-3, size=50)
    rng = generator(7)
    got = [wifi.transfer_s(0, rng) for _ in range(50)]
    assert got == pytest.approx([max(0.0, d) for d in draws], rel=1e-12)
    # 3 mean / 2 deviation: some draws fall below zero and are clipped (this seed: 5)
    assert got.count(0.0) == sum(d < 0 for d in draws) > 0
    assert wifi.transfer_s(0) == 3e-3 and generator(None) is None


def _json(capsys, *extra):
    assert main(["edge", "--system-file", "hat-ushape", "--prompt", "256", "--gen", "4",
                 "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_seed_is_deterministic(capsys):
    plain, s1, s1b, s2 = (_json(capsys), _json(capsys, "--seed", "1"),
                          _json(capsys, "--seed", "1"), _json(capsys, "--seed", "2"))
    assert s1 == s1b
    assert s1["ttft_s"] != s2["ttft_s"] and s1["tbt_s"] != s2["tbt_s"]
    assert s1["ttft_s"] != plain["ttft_s"] and plain["seed"] is None and s1["seed"] == 1
    assert plain["e2e_s"] == pytest.approx(plain["ttft_s"] + 3 * plain["tbt_s"])
    assert plain["gen_tokens"] == 4 and plain["chunks_tried"] == {"128": plain["ttft_s"]}


def test_cli_plan_reports_the_chunk_choice(capsys):
    assert main(["edge", "--system-file", "orin-pair-1gbe", "--prompt", "1024", "--plan",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["chunks_tried"]) == {"32", "64", "128", "256", "512", "1024"}
    assert out["ttft_s"] == min(out["chunks_tried"].values())
    assert out["chunks_tried"][str(out["chunk_tokens"])] == out["ttft_s"]


@pytest.mark.parametrize("flag, value", [("--seed", "-1"), ("--gen", "0")])
def test_bad_seed_or_gen_exits_2(capsys, flag, value):
    with pytest.raises(SystemExit) as exc:
        main(["edge", "--system-file", "hat-ushape", flag, value])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and flag in err[0]
