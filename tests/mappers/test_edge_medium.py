"""Links on a shared medium (one Wi-Fi channel) in the list scheduler of `mappers.edge`:
timelines laid out by hand, the ring all-reduce's closed forms, and invariants (bytes, one
transfer's airtime at a time, each channel FIFO by readiness)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mappers.edge import TRANSFER, Holding, PipeOp, pipeline_ops, route, schedule_pipeline
from mappers.edge_decode import DecodeGroup, decode_ops, ring_allreduce_ops


def _chain(devices: int, layers: int = 6):
    per = layers // devices
    return route(layers, [Holding(device=f"d{k}", layers=((k * per, k * per + per - 1),),
                                  embedding=k == 0, lm_head=k == devices - 1)
                          for k in range(devices)])


def _air(devices: int) -> dict[str, str]:
    return {f"d{a}->d{b}": "air" for a in range(devices) for b in range(devices) if a != b}


def _spans(timed):
    return [(t.op.chunk, t.op.resource, t.start_s, t.end_s) for t in timed]


def test_prefill_on_one_medium_by_hand():
    # 3 devices, 2 chunks; d0 and d2 compute 1 s, d1 0.5 s; every transfer 1 s on the air.
    # Own links: c0 d0 0-1, d0>d1 1-2, d1 2-2.5, d1>d2 2.5-3.5, d2 3.5-4.5; c1 d0 1-2,
    # d0>d1 2-3, d1 3-3.5, d1>d2 3.5-4.5, d2 4.5-5.5.
    # One medium: c1's d0>d1 (ready at 2) holds the air 2-3, so c0's d1>d2 (ready at 2.5)
    # waits until 3 (3-4); c1's d1>d2 (ready at 3.5) waits until 4 (4-5); d2 runs c0 4-5 and
    # c1 5-6. (In program order, without serving the first ready, c1's d0>d1 would wait
    # behind c0's d1>d2 and end at 7.)
    ops = pipeline_ops(_chain(3), (4, 4), 8, "fp16")
    secs = {"d0": 1.0, "d1": 0.5, "d2": 1.0}

    def cost(op):
        return secs.get(op.resource, 1.0)
    own = schedule_pipeline(ops, cost)
    assert max(t.end_s for t in own) == 5.5
    air = schedule_pipeline(ops, cost, media=_air(3))
    assert sorted(_spans(air)) == sorted([
        (0, "d0", 0, 1), (0, "d0->d1", 1, 2), (1, "d0", 1, 2), (0, "d1", 2, 2.5),
        (1, "d0->d1", 2, 3), (0, "d1->d2", 3, 4), (1, "d1", 3, 3.5), (0, "d2", 4, 5),
        (1, "d1->d2", 4, 5), (1, "d2", 5, 6)])
    # bytes are what they were: the medium moves when, not what
    assert [op.bytes for op in ops if op.kind == TRANSFER] == [4 * 8 * 2] * 4


def test_latency_overlaps_on_the_medium():
    # two 1 s transfers ready at 0 on one medium, 0.25 s of airtime each: the second goes on
    # the air when the first's bytes are off it (0.25), ending 1.25; own links: both 0-1
    ops = tuple(PipeOp(kind=TRANSFER, chunk=0, resource=r, stage=None, tokens=1, context=0,
                       bytes=8) for r in ("d0->d1", "d1->d0"))
    timed = schedule_pipeline(ops, lambda op: 1.0, media=_air(2), airtime=lambda op: 0.25)
    assert [(t.start_s, t.end_s) for t in timed] == [(0, 1), (0.25, 1.25)]


@pytest.mark.parametrize("d", [2, 3, 4, 5])
def test_ring_allreduce_on_one_medium_closed_forms(d):
    # piece a = size / d seconds of air at 1 B/s. Latency 0: the 2 d (d - 1) pieces back to
    # back. Latency l >= (d - 1) a: each step starts l + a after the one before (its first
    # piece waits for a landing, the rest follow on the air), so 2 (d - 1)(a + l) + (d - 1) a.
    ops = ring_allreduce_ops([f"d{k}" for k in range(d)], 12 * d)
    a = 12.0

    def ring(latency: float) -> float:
        timed = schedule_pipeline(ops, lambda op: latency + op.bytes, media=_air(d),
                                  airtime=lambda op: op.bytes)
        return max(t.end_s for t in timed)
    assert ring(0.0) == pytest.approx(2 * d * (d - 1) * a)
    for lat in ((d - 1) * a, 5 * d * a):
        assert ring(lat) == pytest.approx(2 * (d - 1) * (a + lat) + (d - 1) * a)
    # own links (no medium): 2 (d - 1) steps of a + l
    own = schedule_pipeline(ops, lambda op: 3.0 + op.bytes)
    assert max(t.end_s for t in own) == pytest.approx(2 * (d - 1) * (a + 3.0))


def test_per_sequence_rounds_on_two_devices_by_hand():
    # 2 sequences from context 10, gamma 2: A produces 3 then 1 (done after 2 rounds), B 1 a
    # round for 4 rounds; hidden 8, fp16. Compute: 1 s per sequence in the batch; every
    # transfer 0.5 s. By hand, round by round (d0, d0>d1, d1, ids back):
    # r0 batch 2: 0-2, 2-2.5, 2.5-4.5, ids of A and B (3 + 1 = 4 ids, 16 B) 4.5-5
    # r1 batch 2: 5-7, 7-7.5, 7.5-9.5, ids of B only (A is done: 1 id, 4 B) 9.5-10
    # r2 batch 1: 10-11, 11-11.5, 11.5-12.5, B's id 12.5-13
    # r3 batch 1: 13-14, 14-14.5, 14.5-15.5 (no ids after the last round)
    g = DecodeGroup(sequences=2, context=10,
                    rounds=((3, (3, 1)), (3, (1, 1)), (3, (0, 1)), (3, (0, 1))))
    ops = decode_ops(_chain(2), [g], 8, "fp16")
    timed = schedule_pipeline(ops, lambda op: 0.5 if op.kind == TRANSFER else op.sequences)
    assert [(t.op.round, t.op.resource, t.op.sequences, t.op.bytes, t.start_s, t.end_s)
            for t in timed] == [
        (0, "d0", 2, 0, 0, 2), (0, "d0->d1", 2, 96, 2, 2.5), (0, "d1", 2, 0, 2.5, 4.5),
        (0, "d1->d0", 2, 16, 4.5, 5),
        (1, "d0", 2, 0, 5, 7), (1, "d0->d1", 2, 96, 7, 7.5), (1, "d1", 2, 0, 7.5, 9.5),
        (1, "d1->d0", 2, 4, 9.5, 10),
        (2, "d0", 1, 0, 10, 11), (2, "d0->d1", 1, 48, 11, 11.5), (2, "d1", 1, 0, 11.5, 12.5),
        (2, "d1->d0", 1, 4, 12.5, 13),
        (3, "d0", 1, 0, 13, 14), (3, "d0->d1", 1, 48, 14, 14.5), (3, "d1", 1, 0, 14.5, 15.5)]
    # the batch's mean context: 10; then (13 + 11) / 2 = 12; then B alone: 12, 13
    assert [op.context for op in ops if op.resource == "d0"] == [10, 12, 12, 13]
    assert g.final_tokens == (10 + 4) * 2


def test_bad_per_sequence_rounds_raise():
    for rounds in (((1, (1,)),), ((1, (0, 0)),), ((1, (0, 1)), (1, (1, 1))),
                   ((1, (1, -1)),)):
        with pytest.raises(ValueError):
            DecodeGroup(sequences=2, context=0, rounds=rounds)


@settings(max_examples=60, deadline=None)
@given(devices=st.integers(2, 4), chunks=st.lists(st.integers(1, 6), min_size=1, max_size=5),
       secs=st.lists(st.floats(0.1, 2.0), min_size=5, max_size=5),
       share=st.floats(0.0, 1.0))
def test_one_airtime_at_a_time_and_inputs_respected(devices, chunks, secs, share):
    ops = pipeline_ops(_chain(devices, 12), tuple(chunks), 8, "fp16")

    def cost(op):
        return secs[int(op.resource[-1]) % 5] * (1 + op.tokens)
    timed = schedule_pipeline(ops, cost, media=_air(devices),
                              airtime=lambda op: share * cost(op))
    air = sorted((t.start_s, t.start_s + share * cost(t.op)) for t in timed
                 if t.op.kind == TRANSFER)
    assert all(x[1] <= y[0] + 1e-9 for x, y in zip(air, air[1:]))
    for t in timed:
        if t.op.input >= 0:
            assert t.start_s >= timed[t.op.input].end_s - 1e-12
    devs: dict[str, list] = {}
    for t in timed:
        if t.op.kind != TRANSFER:
            devs.setdefault(t.op.resource, []).append((t.start_s, t.end_s))
    for spans in devs.values():  # a device runs one op at a time
        spans.sort()
        assert all(x[1] <= y[0] + 1e-12 for x, y in zip(spans, spans[1:]))
    # FIFO by readiness, work-conserving: an op that did not start when ready waited for its
    # channel (a device, or the air), which let go of the op before it exactly then; and a
    # channel never ran an op that became ready later than one left waiting
    channel = {t.op.resource: ("air" if t.op.kind == TRANSFER else t.op.resource)
               for t in timed}
    ready = [max([timed[d].end_s for d in (t.op.input, t.op.after) if d >= 0], default=0.0)
             for t in timed]
    for i, t in enumerate(timed):
        assert t.start_s >= ready[i] - 1e-12
        mine = [u for u in timed if channel[u.op.resource] == channel[t.op.resource]]
        if t.start_s > ready[i] + 1e-9:
            assert any(abs(u.free_s - t.start_s) < 1e-9 for u in mine)
        for j, u in enumerate(timed):
            if channel[u.op.resource] == channel[t.op.resource] and j != i:
                # u was ready (and waiting) before t was, yet t went first: never
                assert not (ready[j] < ready[i] - 1e-9 and u.start_s > t.start_s + 1e-9)
