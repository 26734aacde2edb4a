"""Pipelined decode ops and the ring all-reduce (`mappers.edge_decode`), scheduled by the list
scheduler of `mappers.edge`, against hand-laid timelines and hand byte counts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mappers.edge import TRANSFER, Holding, route, schedule_pipeline
from mappers.edge_decode import DecodeGroup, decode_ops, ring_allreduce_ops


def _stages(devices: int, layers: int = 6):
    per = layers // devices
    holds = [Holding(device=f"d{k}", layers=((k * per, k * per + per - 1),),
                     embedding=k == 0, lm_head=k == devices - 1) for k in range(devices)]
    return route(layers, holds)


def test_every_crossing_hidden_state_is_charged_bytes_conserved():
    # hidden 8, fp16 (2 bytes): group A (2 sequences) verifies 1 then 5 tokens, B (3) 1 token.
    groups = [DecodeGroup(sequences=2, context=10, rounds=((1, 1), (5, 3))),
              DecodeGroup(sequences=3, context=10, rounds=((1, 1),))]
    ops = decode_ops(_stages(3), groups, 8, "fp16")
    moved: dict[str, list[int]] = {}
    for op in ops:
        if op.kind == TRANSFER:
            moved.setdefault(op.resource, []).append(op.bytes)
    # each hop: A's 2x1 and 2x5 tokens, B's 3x1, at 16 bytes a token
    assert sum(moved["d0->d1"]) == sum(moved["d1->d2"]) == (2 + 10 + 3) * 16
    assert len(moved["d0->d1"]) == len(moved["d1->d2"]) == 3
    # token ids back only between a group's rounds: A after round 0, one id per sequence
    assert moved["d2->d0"] == [2 * 4]


def test_two_groups_overlap_on_two_devices_by_hand():
    # compute 1 s, every transfer 0.5 s. Laid out by hand (round-major):
    # r0 g0: a 0-1, a>b 1-1.5, b 1.5-2.5, b>a 2.5-3 | r0 g1: a 1-2, a>b 2-2.5, b 2.5-3.5, b>a 3.5-4
    # r1 g0: a 3-4, a>b 4-4.5, b 4.5-5.5 | r1 g1: a 4-5, a>b 5-5.5, b 5.5-6.5
    groups = [DecodeGroup(sequences=1, context=0, rounds=((1, 1), (1, 1)))] * 2
    timed = schedule_pipeline(decode_ops(_stages(2), groups, 4, "fp16"),
                              lambda op: 1.0 if op.kind != TRANSFER else 0.5)
    assert [(t.op.group, t.op.round, t.op.resource, t.start_s, t.end_s) for t in timed] == [
        (0, 0, "d0", 0, 1), (0, 0, "d0->d1", 1, 1.5), (0, 0, "d1", 1.5, 2.5),
        (0, 0, "d1->d0", 2.5, 3),
        (1, 0, "d0", 1, 2), (1, 0, "d0->d1", 2, 2.5), (1, 0, "d1", 2.5, 3.5),
        (1, 0, "d1->d0", 3.5, 4),
        (0, 1, "d0", 3, 4), (0, 1, "d0->d1", 4, 4.5), (0, 1, "d1", 4.5, 5.5),
        (1, 1, "d0", 4, 5), (1, 1, "d0->d1", 5, 5.5), (1, 1, "d1", 5.5, 6.5)]
    # one group alone: 5.5 s, so the two one after the other would take 11 s, not 6.5


def _ring_s(d: int, size: int, bw: dict[str, float], lat: float) -> float:
    timed = schedule_pipeline(ring_allreduce_ops([f"d{k}" for k in range(d)], size),
                              lambda op: lat + op.bytes / bw.get(op.resource, 1000.0))
    return max(t.end_s for t in timed)


def test_ring_allreduce_closed_form():
    # 4 devices, 4000 bytes: 6 steps of a 1000-byte piece, 0.5 + 1000 / 1000 = 1.5 s each
    assert _ring_s(4, 4000, {}, 0.5) == pytest.approx(9.0)
    # 2 devices, 3000 bytes: 2 steps of 1500 bytes at 1000 B/s, 0.1 s latency: 2 x 1.6
    assert _ring_s(2, 3000, {}, 0.1) == pytest.approx(3.2)
    assert ring_allreduce_ops(["solo"], 100) == ()


def test_ring_allreduce_runs_at_its_slowest_link():
    # d0->d1 at half speed: its six 2.5 s steps run back to back (traced by hand: each
    # piece it forwards has arrived by the time it is free), 15 s in all
    assert _ring_s(4, 4000, {"d0->d1": 500.0}, 0.5) == pytest.approx(15.0)


def test_bad_groups_raise():
    with pytest.raises(ValueError):
        DecodeGroup(sequences=0, context=0, rounds=((1, 1),))
    with pytest.raises(ValueError):
        DecodeGroup(sequences=1, context=0, rounds=((0, 1),))


@settings(max_examples=60, deadline=None)
@given(devices=st.integers(1, 4),
       groups=st.lists(st.tuples(st.integers(1, 4), st.lists(
           st.tuples(st.integers(1, 5), st.integers(0, 5)), min_size=1, max_size=4)),
           min_size=1, max_size=4),
       seconds=st.floats(0.1, 3.0))
def test_schedule_respects_inputs_and_resources(devices, groups, seconds):
    gs = [DecodeGroup(sequences=n, context=0, rounds=tuple(r)) for n, r in groups]
    ops = decode_ops(_stages(devices, 12), gs, 8, "fp16")
    timed = schedule_pipeline(ops, lambda op: seconds * (op.tokens + 1))
    for t in timed:
        if t.op.input >= 0:  # never before what it waits for
            assert t.start_s >= timed[t.op.input].end_s - 1e-12
            assert timed[t.op.input].op.group == t.op.group
    by_resource: dict[str, list] = {}
    for t in timed:
        by_resource.setdefault(t.op.resource, []).append((t.start_s, t.end_s))
    for spans in by_resource.values():  # one op at a time on a device or link direction
        spans.sort()
        assert all(a[1] <= b[0] + 1e-12 for a, b in zip(spans, spans[1:]))
    # every round of every group runs every stage once
    computes = sum(1 for op in ops if op.kind != TRANSFER)
    assert computes == sum(len(r) for _, r in groups) * len(_stages(devices, 12))
