"""Layer placement across devices (`mappers.edge`): the split checks, the route a chunk takes,
the hidden-state transfers and the pipeline timeline, against hand counts."""

from __future__ import annotations

import pytest

from mappers.edge import (COMPUTE, TRANSFER, Holding, check_split, chunk_sizes, pipeline_ops,
                          route, schedule_pipeline)
from sim.errors import ConfigError


def _two(split: int = 2, layers: int = 4) -> tuple[Holding, ...]:
    return (Holding(device="a", layers=((0, split - 1),), embedding=True),
            Holding(device="b", layers=((split, layers - 1),), lm_head=True))


def test_route_two_halves():
    stages = route(4, _two())
    assert [(s.device, s.first, s.last, s.embedding, s.lm_head) for s in stages] == [
        ("a", 0, 1, True, False), ("b", 2, 3, False, True)]


def test_route_u_shape_visits_the_device_twice():
    holds = (Holding(device="dev", layers=((0, 0), (3, 3)), embedding=True, lm_head=True),
             Holding(device="cloud", layers=((1, 2),)))
    assert [(s.device, s.layers) for s in route(4, holds)] == [("dev", 1), ("cloud", 2),
                                                               ("dev", 1)]


def test_route_embedding_elsewhere_is_a_stage_of_its_own():
    holds = (Holding(device="a", layers=((0, 3),), lm_head=True),
             Holding(device="b", layers=(), embedding=True))
    stages = route(4, holds)
    assert [(s.device, s.layers, s.embedding) for s in stages] == [("b", 0, True),
                                                                  ("a", 4, False)]


@pytest.mark.parametrize("holds, words", [
    ((Holding(device="a", layers=((0, 1),), embedding=True),
      Holding(device="b", layers=((3, 3),), lm_head=True)), "layers 2 are held by no device"),
    ((Holding(device="a", layers=((0, 2),), embedding=True),
      Holding(device="b", layers=((2, 3),), lm_head=True)), "layer 2 is also held by a"),
    ((Holding(device="a", layers=((0, 4),), embedding=True, lm_head=True),), "< 4"),
    ((Holding(device="a", layers=((0, 3),)),), "embedding: true, got 0"),
    ((Holding(device="a", layers=((0, 1),), embedding=True, lm_head=True),
      Holding(device="b", layers=((2, 3),), lm_head=True)), "lm_head: true, got 2"),
])
def test_bad_splits_are_refused(holds, words):
    with pytest.raises(ConfigError, match=words):
        check_split(4, holds)


def test_chunk_sizes_cover_the_prompt():
    assert chunk_sizes(10, 4) == (4, 4, 2)
    assert chunk_sizes(8, 4) == (4, 4)
    assert chunk_sizes(3, 8) == (3,)


def test_every_crossing_hidden_state_is_one_transfer_op():
    """U-shape, 3 chunks of 5, 7, 7 tokens, hidden 16, fp16: two crossings per chunk, each
    tokens x 16 x 2 bytes; by hand 2 x (5 + 7 + 7) x 32 = 1216 bytes in all."""
    holds = (Holding(device="dev", layers=((0, 0), (3, 3)), embedding=True, lm_head=True),
             Holding(device="cloud", layers=((1, 2),)))
    ops = pipeline_ops(route(4, holds), (7, 7, 5), 16, "fp16")
    moves = [op for op in ops if op.kind == TRANSFER]
    assert [(op.resource, op.bytes) for op in moves] == [
        ("dev->cloud", 224), ("cloud->dev", 224), ("dev->cloud", 224), ("cloud->dev", 224),
        ("dev->cloud", 160), ("cloud->dev", 160)]
    assert sum(op.bytes for op in moves) == 1216
    assert [op.context for op in ops if op.kind == COMPUTE and op.resource == "cloud"] == [
        0, 7, 14]


def _timeline(stage_s: float, link_s: float, chunks: int):
    ops = pipeline_ops(route(4, _two()), (4,) * chunks, 8, "fp16")
    return schedule_pipeline(ops, lambda op: stage_s if op.kind == COMPUTE else link_s)


def test_pipeline_ttft_compute_bound():
    """2 devices, 3 chunks, stage 10 s, link 3 s: by hand, device a runs chunks at 0-10,
    10-20, 20-30; each hidden state lands 3 s later; device b runs 13-23, 23-33, 33-43:
    TTFT = (C + D - 1) x stage + link = 4 x 10 + 3 = 43 s."""
    tl = _timeline(10.0, 3.0, 3)
    assert max(t.end_s for t in tl) == 43.0
    b = [(t.start_s, t.end_s) for t in tl if t.op.resource == "b"]
    assert b == [(13.0, 23.0), (23.0, 33.0), (33.0, 43.0)]
    # chunk c + 1 on a overlaps chunk c on b
    a = [(t.start_s, t.end_s) for t in tl if t.op.resource == "a"]
    assert a[1][0] < b[0][1] and a[1][1] > b[0][0]


def test_pipeline_ttft_link_bound():
    """Stage 2 s, link 5 s: the link is the bottleneck; sends at 2-7, 7-12, 12-17, device b
    finishes at 19 = stage + C x link + stage."""
    tl = _timeline(2.0, 5.0, 3)
    assert max(t.end_s for t in tl) == 19.0
    assert [(t.start_s, t.end_s) for t in tl if t.op.kind == TRANSFER] == [
        (2.0, 7.0), (7.0, 12.0), (12.0, 17.0)]


def test_one_chunk_is_the_serial_sum():
    tl = _timeline(10.0, 3.0, 1)
    assert max(t.end_s for t in tl) == 23.0


def test_link_latency_pipelines_by_hand():
    """Stage 2 s; a transfer holds its direction 2 s (bytes / bandwidth) and arrives 3 s of
    latency later. By hand: a runs 0-2, 2-4, 4-6; the link sends 2-4, 4-6, 6-8 (the next
    chunk's bytes go out while the previous one is in flight), arrivals 7, 9, 11; b runs 7-9,
    9-11, 11-13: TTFT = stage + latency + C x airtime + stage = 2 + 3 + 6 + 2 = 13 s. Held
    for the latency too, the sends would be 2-7, 7-12, 12-17 and TTFT 19."""
    ops = pipeline_ops(route(4, _two()), (4,) * 3, 8, "fp16")
    tl = schedule_pipeline(ops, lambda op: 2.0 if op.kind == COMPUTE else 5.0,
                           airtime=lambda op: 2.0)
    assert [(t.start_s, t.free_s, t.end_s) for t in tl if t.op.kind == TRANSFER] == [
        (2.0, 4.0, 7.0), (4.0, 6.0, 9.0), (6.0, 8.0, 11.0)]
    assert [(t.start_s, t.end_s) for t in tl if t.op.resource == "b"] == [
        (7.0, 9.0), (9.0, 11.0), (11.0, 13.0)]
    held = schedule_pipeline(ops, lambda op: 2.0 if op.kind == COMPUTE else 5.0)
    assert max(t.end_s for t in held) == 19.0


def _u_timeline(chunks: int, airtime=None):
    """A 2-device U: dev holds the embedding + L0 and L3 + LM head, cloud L1-2. Every compute
    1 s, every transfer 2 s from start to arrival."""
    holds = (Holding(device="dev", layers=((0, 0), (3, 3)), embedding=True, lm_head=True),
             Holding(device="cloud", layers=((1, 2),)))
    ops = pipeline_ops(route(4, holds), (4,) * chunks, 8, "fp16")
    return schedule_pipeline(ops, lambda op: 1.0 if op.kind == COMPUTE else 2.0,
                             airtime=airtime)


def test_u_shape_overlaps_chunks_by_hand():
    """2 chunks on the U, airtime 0.5 s of each 2 s transfer. By hand: dev runs chunk 0's
    first stage 0-1 and, not waiting for chunk 0 to come back, chunk 1's 1-2; up 1-3 and 2-4
    (the link free at 1.5); cloud 3-4, 4-5; down 4-6, 5-7; dev's last stage 6-7, 7-8: TTFT
    8 s. Chunk 1's first stage runs while chunk 0 is on the link (1-3) and in the cloud
    (3-4). In program order (chunk 0's return stage before chunk 1's first) the device would
    serialise the chunks: twice the one-chunk 7 s, 14 s."""
    tl = _u_timeline(2, airtime=lambda op: 0.5)
    spans = [(t.op.chunk, t.op.resource, t.start_s, t.end_s) for t in tl]
    assert spans == [
        (0, "dev", 0, 1), (0, "dev->cloud", 1, 3), (0, "cloud", 3, 4), (0, "cloud->dev", 4, 6),
        (0, "dev", 6, 7),
        (1, "dev", 1, 2), (1, "dev->cloud", 2, 4), (1, "cloud", 4, 5), (1, "cloud->dev", 5, 7),
        (1, "dev", 7, 8)]
    # chunk 1's first stage lies inside chunk 0's time away (it leaves at 1, is back at 6)
    assert spans[1][2] <= spans[5][2] and spans[5][3] <= spans[3][3]
    assert max(t.end_s for t in _u_timeline(1)) == 7.0
    # held for the whole 2 s, chunk 1's hop up waits for chunk 0's (3-5): TTFT 9 s
    assert max(t.end_s for t in _u_timeline(2)) == 9.0


def test_lm_head_alone_gets_the_last_position_only():
    """The LM head on a device of its own: one hop of 1 x hidden x 2 bytes, on the last chunk."""
    holds = (Holding(device="a", layers=((0, 3),), embedding=True),
             Holding(device="h", layers=(), lm_head=True))
    ops = pipeline_ops(route(4, holds), (4, 4), 8, "fp16")
    moves = [(op.chunk, op.bytes) for op in ops if op.kind == TRANSFER]
    assert moves == [(1, 16)]


def _brute_force(num_layers, chain, hop_s, chunks, hop_air):
    """Every split, timed by the pipeline scheduler (not by the planner's formula); hop ``k``
    takes ``hop_s[k]`` to arrive and holds its link ``hop_air[k]`` of that."""
    from itertools import combinations

    from mappers.edge import PipeOp

    best = None
    d = len(chain)
    for cuts in combinations(range(1, num_layers), d - 1):
        sizes = [b - a for a, b in zip((0, *cuts), (*cuts, num_layers))]
        if any(n * c.layer_bytes + c.fixed_bytes > c.capacity_bytes
               for n, c in zip(sizes, chain)):
            continue
        ops = []
        for c in range(chunks):
            prev = -1
            for k, n in enumerate(sizes):
                if k:
                    ops.append(PipeOp(kind=TRANSFER, chunk=c, resource=f"hop{k}", stage=None,
                                      tokens=1, context=0, bytes=hop_s[k - 1], input=prev))
                    prev = len(ops) - 1
                ops.append(PipeOp(kind=COMPUTE, chunk=c, resource=f"dev{k}", stage=None,
                                  tokens=n, context=k, input=prev))
                prev = len(ops) - 1

        def cost(op):
            if op.kind == TRANSFER:
                return op.bytes
            dev = chain[op.context]
            return op.tokens * dev.layer_s + dev.fixed_s
        ttft = max(t.end_s for t in schedule_pipeline(
            ops, cost, airtime=lambda op: hop_air[int(op.resource[3:]) - 1]))
        if best is None or ttft < best[0] - 1e-12:
            best = (ttft, tuple(sizes))
    return best


def test_planner_is_optimal_by_brute_force():
    """Random small chains (2-4 devices, 4-9 layers, 1-5 chunks, some memory-bound, hops
    held for all or part of their time): the planner's TTFT equals the best of every split
    timed by the scheduler, and its split achieves it."""
    import random

    from mappers.edge_plan import ChainDevice, plan_partition

    rng = random.Random(20)
    checked = 0
    for _ in range(150):
        d = rng.randint(2, 4)
        layers = rng.randint(d, 9)
        chain = [ChainDevice(layer_s=rng.choice((1.0, 2.0, 3.0, 5.0)),
                             fixed_s=rng.choice((0.0, 0.5, 2.0)), layer_bytes=10,
                             fixed_bytes=rng.choice((0, 10)),
                             capacity_bytes=rng.randint(2, layers) * 10 + 10)
                 for _ in range(d)]
        hops = [rng.choice((0.25, 1.0, 4.0, 8.0)) for _ in range(d - 1)]
        # the link held for all of it (latency 0), or for part: the rest latency
        air = [h * rng.choice((1.0, 1.0, 0.5, 0.125)) for h in hops]
        chunks = rng.randint(1, 5)
        brute = _brute_force(layers, chain, hops, chunks, air)
        if brute is None:
            with pytest.raises(ConfigError, match="no split"):
                plan_partition(layers, chain, hops, chunks, air)
            continue
        plan = plan_partition(layers, chain, hops, chunks, air)
        assert plan.ttft_s == pytest.approx(brute[0]), (chain, hops, air, chunks)
        assert sum(plan.layers) == layers and min(plan.layers) >= 1
        checked += 1
    assert checked > 80


def test_planner_hand_case():
    """4 layers, a device twice as fast as the other, one free hop, 1 chunk: the serial sum
    is least with every layer on the fast one, but each device holds at least one layer:
    3 on the fast (3 x 1 s) + 1 on the slow (2 s) = 5 s."""
    from mappers.edge_plan import ChainDevice, plan_partition

    fast = ChainDevice(layer_s=1.0, layer_bytes=1, capacity_bytes=10)
    slow = ChainDevice(layer_s=2.0, layer_bytes=1, capacity_bytes=10)
    plan = plan_partition(4, [fast, slow], [0.0], chunks=1)
    assert plan == type(plan)(layers=(3, 1), ttft_s=5.0)
    # with many chunks the bottleneck matters: 3 + 1 gives max 3 s; 2 + 2 gives max 4 s
    assert plan_partition(4, [fast, slow], [0.0], chunks=10).layers == (3, 1)


def test_planner_breaks_ties_towards_balance():
    # a 100 s hop bounds every split of 8 one-second layers over 4 equal devices: every split
    # has the same TTFT (8 + 300 + 3 x 100 s); the planner keeps the balanced one, whose
    # slowest device stage (2 s) is least, for the decode that reuses the split
    from mappers.edge_plan import ChainDevice, plan_partition

    chain = [ChainDevice(layer_s=1.0, layer_bytes=1, capacity_bytes=100)] * 4
    plan = plan_partition(8, chain, [100.0] * 3, 4)
    assert plan.layers == (2, 2, 2, 2)
    assert plan.ttft_s == pytest.approx(8 + 300 + 3 * 100)
