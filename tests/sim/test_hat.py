"""HAT on many devices (sim/hat.py, sim/hat_events.py) against hand-computed timelines.

Most tests swap the step simulator for fakes linear in the tokens, so every latency is a
hand sum; the last ones use the real chip models for properties (chunking, the middle-layer
table against a direct simulation)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mappers.hat import UShape
from mappers.models import load_model
from sim.edge import NetLink
from sim.errors import ConfigError
from sim.hat import HatSetup, Job, Runner
from sim.presets import load_hardware

MODEL = load_model("llama2-7b").config  # hidden 4096: 8192 fp16 bytes a token
NX = load_hardware("jetson-orin-nx-16gb").system
A6000 = load_hardware("a6000").system
TOK = 8192
FIRST, LAST, HEAD, DRAFT, CLOUD = 1e-4, 1e-4, 5e-3, 2e-3, 2e-4  # s per token / row / step


class FakePieces:
    """Device pieces linear in the tokens (s)."""

    def first(self, tokens, context):
        return FIRST * tokens

    def last(self, tokens, context, head_rows):
        return LAST * tokens + HEAD * head_rows

    def draft_prefill(self, tokens, context):
        return 0.0

    def draft_step(self, context):
        return DRAFT


class FakeTable:
    """A cloud step of CLOUD s a token, no gain from batching."""

    def step(self, shapes):
        return CLOUD * sum(n for n, _ in shapes)


def setup(n=1, gpus=1, gamma=4, accept=1.0, bw=TOK / 1e-3, lat=0.0, **kw):
    return HatSetup(model=MODEL, devices=(NX,) * n, cloud=A6000, cloud_gpus=gpus,
                    link=NetLink(name="t", bandwidth_bytes_per_s=bw, latency_s=lat),
                    split=UShape(num_layers=32, first=2, last=2), gamma=gamma, accept=accept,
                    **kw)


def runner(s, mode):
    r = Runner(s, mode)
    r.pieces = [FakePieces()] * len(s.devices)
    r._tables["middle"] = r._tables["full"] = FakeTable()
    return r


def test_chunked_prefill_ttft_by_hand():
    # 200 tokens, 1 ms a token on the link, no latency. Two chunks of 100:
    # F0 [0, .01], up0 [.01, .11], F1 [.01, .02], up1 [.11, .21], cloud0 [.11, .13],
    # down0 [.13, .23], cloud1 [.21, .23], down1 [.23, .33], L0 [.23, .24],
    # L1 + head [.33, .34 + .005]
    r = runner(setup(), "ushape")
    assert r.alone_ttft(0, 200, 100) == pytest.approx(0.345)
    # one chunk: F .02 + up .2 + cloud .04 + down .2 + L .02 + head .005
    assert r.alone_ttft(0, 200, 200) == pytest.approx(0.485)
    assert r.choose_chunk(0, 200)[0] < 200


def test_speculative_round_by_hand():
    # acceptance 1: every round yields gamma + 1 = 5 tokens; 16 tokens = the prefill's + 3
    # rounds. A round: 4 drafts + the first layers of the last draft, 5 hidden states up
    # and down (5 x 8192 B at 8.192 MB/s + 10 ms latency each way), 5 tokens on the cloud,
    # the last layers and the head on 5 positions.
    s = setup(lat=0.01)
    rnd = 4 * DRAFT + FIRST + 2 * (0.005 + 0.01) + 5 * CLOUD + 5 * LAST + 5 * HEAD
    out = runner(s, "hat-nochunk").run([Job(0, 0.0, 100, 16)])[0]
    ttft = 100 * FIRST + 2 * (0.1 + 0.01) + 100 * CLOUD + 100 * LAST + HEAD
    assert out.ttft_s == pytest.approx(ttft)
    assert out.tbt_s == pytest.approx(3 * rnd / 15)
    assert sum(out.tbt_split.values()) == pytest.approx(out.tbt_s)
    assert out.tbt_split["transfer"] == pytest.approx(3 * 2 * 0.015 / 15)
    # acceptance 0: one token a round
    out = runner(setup(lat=0.01, accept=0.0), "hat-nochunk").run([Job(0, 0.0, 100, 4)])[0]
    assert out.tbt_s == pytest.approx(rnd)


def test_hidden_state_bytes_are_conserved():
    # every position crosses up and down once in prefill (whatever the chunks), then each
    # round's gamma + 1 positions; without speculation one position a token
    s = setup()
    for mode, rounds, rows in (("hat", 3, 5), ("hat-nochunk", 3, 5), ("ushape", 15, 1)):
        out = runner(s, mode).run([Job(0, 0.0, 300, 16)])[0]
        want = (300 + rounds * rows) * TOK
        assert (out.uplink_bytes, out.downlink_bytes) == (want, want), mode
    out = runner(s, "cloud").run([Job(0, 0.0, 300, 16)])[0]
    assert (out.uplink_bytes, out.downlink_bytes) == (300 * 4, 16 * 4)


def test_cloud_only_by_hand():
    s = setup(lat=0.01)
    out = runner(s, "cloud").run([Job(0, 0.0, 100, 11)])[0]
    up, down = 400 / s.link.bandwidth_bytes_per_s + 0.01, 4 / s.link.bandwidth_bytes_per_s
    assert out.ttft_s == pytest.approx(up + 100 * CLOUD + down + 0.01)
    # tokens stream: one a cloud step, the link's latency paid once
    assert out.tbt_s == pytest.approx(CLOUD)


def test_waiting_for_a_shared_cloud_gpu():
    # two devices, one GPU; the second starts 1 ms later, so its prompt reaches the cloud
    # during the first's 40 ms step and waits until it ends
    jobs = [Job(0, 0.0, 200, 1), Job(1, 0.001, 200, 1)]
    a, b = runner(setup(n=2), "ushape").run(jobs)
    assert a.ttft_s == pytest.approx(0.485)
    assert b.ttft_split["waiting"] == pytest.approx(0.039)
    assert b.ttft_s == pytest.approx(0.485 + 0.039)
    assert sum(b.ttft_split.values()) == pytest.approx(b.ttft_s)
    # two GPUs: nobody waits
    a, b = runner(setup(n=2, gpus=2), "ushape").run(jobs)
    assert a.ttft_s == pytest.approx(0.485) and b.ttft_s == pytest.approx(0.485)


@pytest.mark.parametrize("kw, field", [({"gamma": 0}, "--gamma"), ({"accept": 1.5}, "--accept"),
                                       ({"gpus": 0}, "--cloud-gpus"),
                                       ({"max_tokens": 0}, "--max-tokens")])
def test_bad_setups_are_refused(kw, field):
    with pytest.raises(ConfigError, match=field):
        setup(**kw)


def test_a_device_too_small_is_refused():
    big = replace(MODEL, num_layers=80)  # 80 layers: k = m = 30 leave 60 on a 16 GB device
    s = HatSetup(model=big, devices=(NX,), cloud=A6000, cloud_gpus=1,
                 link=NetLink(name="t", bandwidth_bytes_per_s=1e6, latency_s=0.0),
                 split=UShape(num_layers=80, first=30, last=30))
    with pytest.raises(ConfigError, match=r"devices\[0\]: needs"):
        Runner(s, "hat").run([Job(0, 0.0, 100, 2)])
    with pytest.raises(ConfigError, match="--mode"):
        Runner(s, "nope")


@settings(max_examples=12, deadline=None)
@given(prompt=st.integers(1, 3000), mbps=st.sampled_from([20, 100, 1000]))
def test_chunking_never_increases_ttft(prompt, mbps):
    # the real chip models; one chunk (the whole prompt) is always a candidate
    s = replace(setup(), link=NetLink(name="t", bandwidth_bytes_per_s=mbps * 1.25e5,
                                      latency_s=0.02))
    r = Runner(s, "hat")
    chunk, tried = r.choose_chunk(0, prompt)
    assert prompt in tried and tried[chunk] <= r.alone_ttft(0, prompt, prompt) + 1e-12


def test_middle_table_matches_a_direct_simulation():
    from mappers.ir import Phase, Precision
    from sim.hat_cost import MiddleTable
    from sim.step import compile_step

    table = MiddleTable(MODEL, A6000, 28, precision=Precision())
    for tokens, ctx in ((1, 1000), (5, 700), (128, 256)):
        sched = compile_step(replace(MODEL, num_layers=28), A6000,
                             phase=Phase.DECODE if tokens == 1 else Phase.PREFILL, batch=1,
                             new_tokens=tokens, context=ctx, precision=Precision(),
                             detail="roofline")
        direct = sum(s.segment.repeat * s.cost.time_s for s in sched.ops
                     if s.segment.layer >= 0)
        assert table.step([(tokens, ctx)]) == pytest.approx(direct, rel=0.02)


def test_split_planner_fits_memory_and_takes_the_fastest():
    from mappers.hat import device_bytes, layer_bytes
    from sim.hat import plan_split

    sizes = layer_bytes(MODEL, setup().precision)
    tokens = 200 + 8 + 4
    cap = device_bytes(UShape(num_layers=32, first=2, last=1), sizes, tokens)  # 4 layers
    small = replace(NX, chip=replace(NX.chip, memory=replace(NX.chip.memory,
                                                              capacity_bytes=cap)))
    s = replace(setup(), devices=(small,), link=NetLink(name="t", bandwidth_bytes_per_s=1e7,
                                                        latency_s=0.01))
    split, best = plan_split(s, 0, 200, 8, max_layers=2)

    def e2e(k, m):
        one = replace(s, split=UShape(num_layers=32, first=k, last=m))
        out = Runner(one, "hat").run([Job(0, 0.0, 200, 8)])[0]
        return out.ttft_s + 7 * out.tbt_s
    fits = [(k, m) for k in (1, 2) for m in (1, 2)
            if device_bytes(UShape(num_layers=32, first=k, last=m), sizes, tokens) <= cap]
    assert (2, 2) not in fits and (split.first, split.last) in fits
    assert best == pytest.approx(min(e2e(k, m) for k, m in fits))


def test_device_only_small_model_is_faster_per_token():
    # the real chip models. A short-context decode token on the Jetson reads every weight
    # once, so the small model's TBT sits above its weights over the LPDDR5 peak (2 x
    # 1,100,048,384 B / 102.4 GB/s = 21.5 ms) and scales with the weights against llama2-7b's
    small = load_model("tinyllama-1.1b").config
    tbt = {}
    for m in (MODEL, small):
        s = setup(device_model=m)
        tbt[m.name] = Runner(s, "device").run([Job(0, 0.0, 128, 33)])[0].tbt_s
    peak = NX.chip.memory.bus_width_bits / 8 * NX.chip.memory.pin_rate_bps  # 102.4e9 B/s
    assert tbt["tinyllama-1.1b"] >= 2 * 1_100_048_384 / peak
    assert tbt["tinyllama-1.1b"] < tbt["llama2-7b"]
    weights = 1_100_048_384 / 6_738_415_616  # published totals (tests/mappers/test_models.py)
    assert tbt["tinyllama-1.1b"] / tbt["llama2-7b"] == pytest.approx(weights, rel=0.15)
