"""Ascendra's two-tier priorities (Ikram, Li, Elnikety, Bagchi, "Ascendra: Dynamic Request
Prioritization for Efficient LLM Serving", arXiv 2504.20828, 2025).

Instances are split into two pools, both collocated and both hybrid-batching (every running
decode plus prefill chunks in one iteration, as Sarathi-Serve):

* ``ascendra`` (low priority, LP; takes every arrival): admits waiting requests out of arrival
  order, shortest remaining prefill first, for throughput. Before each iteration a performance
  model, the instance's own step-time table (`sim.serving.steptime`), predicts when each
  request still waiting would emit its first token if it stayed: after this iteration and the
  prefill of every request ahead of it (in the LP order) and its own, at the prefill rate of a
  full chunk. A request predicted to miss its TTFT deadline (arrival + the TTFT target) is
  moved, before it misses it, to the least-loaded high-priority instance. Because the
  prediction is never earlier than the end of the iteration about to run, a request that stays
  is still within its deadline when the LP instance next decides.
* ``ascendra-hp`` (high priority, HP; takes no arrivals): serves moved requests earliest
  deadline first.

Both tiers size each iteration's prefill chunk with the same model: the largest chunk whose
step, with every running decode, stays within the TBT target (and the TTFT target, so that a
request arriving during an iteration cannot pass its deadline before the next decision); at
least `MIN_CHUNK` tokens so that prefills always progress. Requests that have emitted their
first token are past the TTFT decision and are never moved; running sequences are never moved
(their KV cache stays where it is). An idle high-priority instance takes the oldest waiting
low-priority request (`ascendra_hp_batch`), as the paper's "ticket" entry lends idle
high-priority capacity to the low-priority pool.
"""

from __future__ import annotations

from collections import deque

from sim.serving.metrics import slo_target

#: A high-priority instance with an empty queue and fewer running sequences than this takes
#: work from the low-priority pool.
PULL_BELOW = 8
#: Smallest prefill chunk an iteration carries (tokens), so that prefills always progress.
MIN_CHUNK = 32


def ascendra_batch(inst, now: float) -> list:
    """Low-priority instance: move requests predicted to miss their TTFT deadline to the
    high-priority pool, then a hybrid batch admitting shortest prefill first."""
    batch = _hybrid(inst, now, key=lambda s: (s.generated == 0, s.needed, s.request.arrival_s))
    _offload(inst, now, batch)
    return batch


def ascendra_hp_batch(inst, now: float) -> list:
    """High-priority instance: a hybrid batch admitting earliest TTFT deadline first, those
    already past it last (under overload, plain EDF would let every request miss). With an
    empty queue and fewer than `PULL_BELOW` running sequences it first takes the oldest
    waiting request of the longest low-priority queue (the paper's "ticket" entry: an idle
    high-priority instance lends its capacity to the low-priority pool)."""
    if _idle(inst):
        lps = [p for p in inst.peers if getattr(p.policy, "low_priority", False) and p.waiting]
        if lps:
            _lend(max(lps, key=lambda p: len(p.waiting)), inst, now)
    return _hybrid(inst, now, key=lambda s: (s.generated == 0, deadline(s, inst.slo) <= now,
                                             s.request.arrival_s))


ascendra_batch.needs_slo = ("ttft",)
ascendra_batch.needs_pool = "ascendra-hp"
ascendra_batch.low_priority = True
ascendra_hp_batch.needs_slo = ("ttft",)
ascendra_hp_batch.needs_pool = "ascendra"
ascendra_hp_batch.takes_arrivals = False
ascendra_hp_batch.offload_target = True


def deadline(seq, slo: dict) -> float:
    """The TTFT deadline of ``seq`` (seconds): arrival + the TTFT target."""
    return seq.request.arrival_s + slo_target(slo, "ttft")


def _target_s(inst) -> float:
    """The longest iteration the tier allows (seconds): the TBT and TTFT targets."""
    return min(t for m in ("ttft", "tbt") if (t := slo_target(inst.slo, m)) is not None)


def _chunk(inst, shapes: list[tuple[int, int]], context: int, limit: int) -> int:
    """The largest prefill chunk (tokens, at most ``limit``, at least `MIN_CHUNK` or
    ``limit``) that, fed on ``context`` cached tokens beside ``shapes``, keeps the step within
    `_target_s` by the step-time table. Step time is a maximum of rooflines, convex in the
    chunk, so the chord between no chunk and ``limit`` lies above it: the chunk where the chord
    meets the target is within it (checked; halved in the rare case interpolation disagrees)."""
    target = _target_s(inst)
    full = inst.step_time([*shapes, (limit, context)])
    if full <= target:
        return limit
    base = inst.step_time(shapes) if shapes else 0.0
    n = int(limit * (target - base) / (full - base)) if target > base else 0
    while n > MIN_CHUNK and inst.step_time([*shapes, (n, context)]) > target:
        n //= 2
    return min(max(n, MIN_CHUNK), limit)


def _hybrid(inst, now: float, *, key) -> list:
    """Sarathi-style hybrid batch (every decode, then prefill chunks of running sequences,
    then admissions in ``key`` order) with a chunk budget from `_chunk`."""
    decodes = [s for s in inst.running if s.computed and s.needed == 1 and s.generated]
    while decodes and not inst.fits_growth([(s, 1) for s in decodes]):
        victim = inst.running[-1]
        inst.preempt(victim, now)
        decodes = [s for s in decodes if s is not victim]
    batch = [(s, 1) for s in decodes]
    shapes = [(1, s.computed) for s in decodes]
    budget = inst.max_tokens - len(batch)
    chosen = {id(s) for s in decodes}
    pending = [s for s in inst.running if id(s) not in chosen]
    if budget > 0 and (pending or inst.waiting):
        first = pending[0].computed if pending else 0
        budget = _chunk(inst, shapes, first, budget)
    for seq in pending:
        if budget <= 0:
            break
        n = min(seq.needed, budget)
        if not inst.fits_growth([*batch, (seq, n)]):
            break
        batch.append((seq, n))
        budget -= n
    inst.grow(batch)
    inst.waiting = deque(sorted(inst.waiting, key=key))
    while budget > 0 and inst.waiting and len(inst.running) < inst.max_batch:
        seq = inst.waiting[0]
        n = min(seq.needed, budget)
        if not inst.can_admit(seq, n):
            break
        inst.admit(seq, now, n)
        batch.append((seq, n))
        budget -= n
    return batch


def _idle(hp) -> bool:
    return not hp.waiting and len(hp.running) < PULL_BELOW


def _lend(lp, hp, now: float) -> None:
    """Move ``lp``'s oldest waiting request that has not started to ``hp``."""
    fresh = [s for s in lp.waiting if s.generated == 0]
    if fresh:
        lp.move(min(fresh, key=lambda s: s.request.arrival_s), hp, now)


def _offload(inst, now: float, batch: list) -> None:
    """Move every waiting request predicted to miss its TTFT deadline in this instance to the
    least-loaded high-priority instance (module docstring)."""
    targets = [p for p in inst.peers if getattr(p.policy, "offload_target", False)]
    if not targets or not any(s.generated == 0 for s in inst.waiting):
        return
    shapes = [(n, s.computed) for s, n in batch]
    end = now + (inst.step_time(shapes) if shapes else 0.0)
    # Prefill rate of a full chunk beside the decodes now running (seconds a token).
    decodes = [(1, s.computed) for s in inst.running if s.generated and s.needed == 1]
    chunk = _chunk(inst, decodes, 0, inst.max_tokens - len(decodes)) if \
        inst.max_tokens > len(decodes) else MIN_CHUNK
    per_token = inst.step_time([*decodes, (chunk, 0)]) / chunk
    ahead = 0
    for seq in list(inst.waiting):  # in the LP order `_hybrid` sorted them into
        first = end + (ahead + seq.needed) * per_token
        if seq.generated == 0 and first > deadline(seq, inst.slo):
            inst.move(seq, min(targets, key=lambda p: p.load), now)
        else:
            ahead += seq.needed
    for hp in targets:  # idle high-priority instances take the oldest of the rest
        if _idle(hp) and not hp.busy:
            _lend(inst, hp, now)
