"""The discrete-event loop: a heap of events (arrivals, iteration ends, KV transfers), the
simulation jumping from one to the next.

A heap beat SimPy here (benchmarks/bench_serve.py): each instance's iteration is one event
and nothing waits on shared resources but the KV ports (`Link`), so SimPy's generator
processes add overhead and no modelling power.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Callable

from sim.serving.instance import Instance
from sim.serving.request import Request, Sequence
from sim.serving.router import ROUTERS

_ARRIVE, _STEP_END, _TRANSFER_END, _TRAIN_END = 0, 1, 2, 3


@dataclass(frozen=True, slots=True, kw_only=True)
class Link:
    """The KV hand-over ports: every prefill instance has an egress port and every decode
    instance an ingress port, each ``bandwidth_bytes_per_s`` with ``latency_s`` a transfer. A
    transfer from prefill p to decode d holds p's egress and d's ingress for latency + bytes /
    bandwidth (one transfer at a time a port); transfers between disjoint pairs overlap."""

    bandwidth_bytes_per_s: float = 50e9
    latency_s: float = 5e-6

    def __post_init__(self) -> None:
        if not self.bandwidth_bytes_per_s > 0 or self.latency_s < 0:
            raise ValueError("link: bandwidth_bytes_per_s must be > 0 and latency_s >= 0")


@dataclass(slots=True)
class Transfer:
    """One KV-cache hand-over: request id, bytes, start and end (seconds), the sending
    prefill instance's and the receiving decode instance's names."""

    request: int
    nbytes: int
    start_s: float
    end_s: float
    source: str = ""
    target: str = ""


@dataclass(slots=True)
class ServeResult:
    sequences: list[Sequence]
    instances: list[Instance]
    transfers: list[Transfer] = field(default_factory=list)
    end_s: float = 0.0


def simulate_serving(requests: list[Request], instances: list[Instance], *,
                     router: str = "round_robin", kv_bytes_per_token: int = 0,
                     link: Link = Link(),
                     progress: Callable[[int, int], None] | None = None) -> ServeResult:
    """Serve ``requests`` (sorted by arrival) on ``instances``. Requests enter collocated or
    prefill instances; with prefill instances each sequence, once its prompt is prefilled
    (first token out), moves its KV cache (``kv_bytes_per_token`` per cached token) over
    ``link`` to a decode instance (chosen by ``router`` when the transfer is issued; it waits
    for the sender's egress and the receiver's ingress port, `Link`). An instance with a
    ``trainer`` (`sim.serving.training`) runs training chunks while it has no serving work
    (or, with a time share, between serving iterations while training is under its share),
    until the last request completes. Returns every sequence with its timings."""
    # A policy marked ``takes_arrivals = False`` only serves what other instances move to it.
    entry = [i for i in instances if i.role in ("collocated", "prefill")
             and getattr(i.policy, "takes_arrivals", True)]
    decode = [i for i in instances if i.role == "decode"]
    if not entry:
        raise ValueError("cluster: needs a collocated or prefill instance")
    if any(i.role == "prefill" for i in instances) != bool(decode):
        raise ValueError("cluster: prefill instances need decode instances and vice versa")
    route = ROUTERS[router]
    for inst in instances:
        inst.peers = instances
    turns, dturns = [0], [0]
    events: list = []
    n = 0
    for r in requests:
        events.append((r.arrival_s, n, _ARRIVE, r, None))
        n += 1
    heapq.heapify(events)
    seqs: list[Sequence] = []
    transfers: list[Transfer] = []
    # When each instance's KV port is next free: prefill instances' egress, decode ingress.
    port_free = {id(i): 0.0 for i in instances}
    done = 0
    now = 0.0

    def kick(inst: Instance, now: float) -> None:
        nonlocal n
        if inst.busy:
            return
        trainer = inst.trainer if done < len(requests) else None
        if trainer is not None and not trainer.can_start():
            trainer = None  # served data only: too few prompts for a step yet
        if trainer is not None and inst.load and trainer.owed(now):
            train(inst, now, inst.load)  # its share of the time, ahead of serving work
            return
        batch = inst.policy(inst, now)
        moved, inst.moved = inst.moved, []
        for target in moved:
            kick(target, now)
        if not batch:
            if trainer is not None:  # nothing serving can run: the instance trains
                train(inst, now, 0)
            return
        if inst.trainer is not None:
            inst.trainer.ahead = False  # serving ran: training may take its share again
        inst.grow(batch)
        dt = (inst.step_time([(k, s.computed) for s, k in batch]) if inst.offload is None
              else inst.offload.step_time(inst, batch, now))
        if inst.trainer is not None:  # Alchemist: recording the prefill's activations
            dt += inst.trainer.record_time(sum(
                min(k, max(0, s.request.prompt_tokens - s.computed)) for s, k in batch))
        inst.busy = True
        inst.timeline.append(_iteration(now, now + dt, batch, inst.used_blocks))
        heapq.heappush(events, (now + dt, n, _STEP_END, inst, batch))
        n += 1

    def train(inst: Instance, now: float, pending: int) -> None:
        nonlocal n
        inst.busy = True
        heapq.heappush(events, (inst.trainer.start(now, pending), n, _TRAIN_END, inst, None))
        n += 1

    if requests:
        for inst in instances:
            if inst.trainer is not None:
                kick(inst, 0.0)
    while events:
        now, _, kind, obj, batch = heapq.heappop(events)
        if kind == _TRAIN_END:
            obj.busy = False
            obj.trainer.finish()
            kick(obj, now)
        elif kind == _ARRIVE:
            seq = Sequence(obj)
            seqs.append(seq)
            inst = route(entry, turns)
            inst.enqueue(seq, now)
            kick(inst, now)
        elif kind == _STEP_END:
            inst = obj
            inst.busy = False
            woken: list[Instance] = []
            for seq, k in batch:
                prompt = seq.request.prompt_tokens
                if inst.trainer is not None and seq.computed < prompt <= seq.computed + k:
                    inst.trainer.record(now, prompt)  # a recorded prefill: a training sample
                seq.computed += k
                if seq.needed == 0:
                    seq.emit(now)
                if seq.done:
                    home = seq.kv_home  # Adrenaline: its cache's instance may now admit more
                    inst.release(seq)
                    if home is not None:
                        woken.append(home)
                    done += 1
                    if progress is not None:
                        progress(done, len(requests))
                elif inst.role == "prefill" and seq.needed == 1:
                    nbytes = kv_bytes_per_token * seq.computed
                    if inst.offload is None:
                        inst.release(seq)
                    else:  # the controller may keep the cache here (bytes 0: a sync only)
                        nbytes = inst.offload.hand_over(inst, seq, nbytes, now)
                    # The receiver is chosen now (the sender must know where to write); the
                    # ports are held for latency included, so one port is today's one link.
                    dest = route(decode, dturns)
                    dest.incoming += 1
                    start = max(now, port_free[id(inst)], port_free[id(dest)])
                    end = start + link.latency_s + nbytes / link.bandwidth_bytes_per_s
                    port_free[id(inst)] = port_free[id(dest)] = end
                    seq.transfer_s += end - now
                    transfers.append(Transfer(seq.request.id, nbytes, start, end, inst.name,
                                              dest.name))
                    heapq.heappush(events, (end, n, _TRANSFER_END, seq, dest))
                    n += 1
            kick(inst, now)
            for other in woken:
                kick(other, now)
        else:
            inst = batch  # the decode instance the transfer was sent to
            inst.incoming -= 1
            inst.enqueue(obj, now)
            kick(inst, now)
    return ServeResult(seqs, instances, transfers, now)


def _iteration(start: float, end: float, batch, blocks: int):
    from sim.serving.instance import Iteration

    return Iteration(start, end, len(batch), sum(k for _, k in batch), blocks)
