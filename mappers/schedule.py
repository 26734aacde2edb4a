"""Pass 4, ``schedule``: cost every op and lay the step out in time, units working at once.

Resource-constrained list scheduling over the graph's dataflow (`mappers.ir`, "Dataflow").
Every unit of every chip is a resource with its own timeline: the resource of an op is
``(chip, op.unit)``, so the arrays (``tensor``), vector units, DMA engines, link, CiD unit, CiM
unit (or each of its crossbar groups, named ``cim.<group>``) and each transfer path work in
parallel. Ops are taken in program order (a topological order); each starts when the last of
its inputs is ready and its resource has finished the ops before it on that resource. A chip
with one unit per op kind whose ops each read the one before runs them one after another,
exactly as a serial schedule would.

The chip of an op is its pipeline stage: it moves on after each ``p2p`` segment (the send
belongs to the sending stage). Tensor-parallel peers run the same schedule in lockstep.

A segment repeated ``n`` times is scheduled once, as its first instance, and repeated with a
steady-state period ``P``: instance ``r`` of an op starts at ``start_s + r * P``. ``P`` is the
smallest value that keeps the repeats valid without looking at them one by one: at least the
span of each resource's ops in one instance (so instances on one resource never overlap), and
at least ``end(u) - start(v)`` for every input ``v`` reads from the previous repeat's ``u``.
For a chain (every op reads the previous one) ``P`` is the instance's length, as before.
Scheduling costs one pass over the distinct ops: a whole llama2-7b step takes milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sim.cost import Cost

from .ir import Graph, Op, OpKind, Segment

CostFn = Callable[[Op], Cost]


@dataclass(frozen=True, slots=True)
class ScheduledOp:
    """An op with its cost and the start of its first instance, relative to the step; instance
    ``r`` of a repeated segment starts at ``start_s + r * period_s``. ``chip`` is the pipeline
    stage whose chip runs it."""

    segment: Segment
    op: Op
    cost: Cost
    start_s: float
    period_s: float
    chip: int = 0

    @property
    def resource(self) -> tuple[int, str]:
        """The timeline the op occupies: (chip, unit)."""
        return self.chip, self.op.unit


@dataclass(frozen=True, slots=True)
class StepSchedule:
    graph: Graph
    ops: tuple[ScheduledOp, ...]
    time_s: float
    energy_j: float

    @property
    def dram_bytes(self) -> float:
        """DRAM bytes the unit models charged over the step, repeats included."""
        return sum(s.segment.repeat * s.cost.dram_bytes for s in self.ops)

    def total_time_where(self, bound: str) -> float:
        """Time of the step spent in ops whose ``bound`` is ``bound`` (summed over ops, so
        with concurrent units it can exceed the step's time)."""
        return sum(s.segment.repeat * s.cost.time_s for s in self.ops if s.cost.bound == bound)

    def total_op_time(self) -> float:
        """Time of every op of the step, summed over ops and repeats (with concurrent units
        it can exceed the step's time)."""
        return sum(s.segment.repeat * s.cost.time_s for s in self.ops)

    def busy_s(self) -> dict[tuple[int, str], float]:
        """Busy seconds of each resource (chip, unit) over the step, repeats included."""
        out: dict[tuple[int, str], float] = {}
        for s in self.ops:
            out[s.resource] = out.get(s.resource, 0.0) + s.segment.repeat * s.cost.time_s
        return out


def schedule(graph: Graph, cost: CostFn) -> StepSchedule:
    """Cost each op of ``graph`` with ``cost`` and place it on its resource's timeline."""
    free: dict[tuple[int, str], float] = {}  # when each resource finishes its last op
    done: dict[int, float] = {}              # end of the latest instance of each op id
    rows: list[ScheduledOp] = []
    entry = end = energy = 0.0               # entry: end of the last op before a segment
    chip = 0
    for seg in graph.segments:
        costs = [cost(op) for op in seg.ops]
        starts, ends, carried = _first_instance(seg, costs, chip, entry, free, done)
        period = _period(seg, starts, ends, carried, chip)
        shift = (seg.repeat - 1) * period
        for op, c, s, e in zip(seg.ops, costs, starts, ends):
            rows.append(ScheduledOp(segment=seg, op=op, cost=c, start_s=s, period_s=period,
                                    chip=chip))
            energy += seg.repeat * c.energy_j
            if op.id >= 0:
                done[op.id] = e + shift
            res = (chip, op.unit)
            free[res] = max(free.get(res, 0.0), e + shift)
            end = max(end, e + shift)
        if seg.ops:
            entry = ends[-1] + shift
        if any(op.kind is OpKind.P2P for op in seg.ops):
            chip += 1
    return StepSchedule(graph=graph, ops=tuple(rows), time_s=end, energy_j=energy)


def _first_instance(seg: Segment, costs: list[Cost], chip: int, entry: float,
                    free: dict[tuple[int, str], float], done: dict[int, float]
                    ) -> tuple[list[float], list[float], list[tuple[int, int]]]:
    """Start and end of each op of ``seg``'s first instance, and the (producer, reader)
    positions of inputs read from the previous repeat. Updates nothing but a copy of
    ``free``."""
    pos = {op.id: i for i, op in enumerate(seg.ops) if op.id >= 0}
    local = dict(free)
    starts: list[float] = []
    ends: list[float] = []
    carried: list[tuple[int, int]] = []
    for i, (op, c) in enumerate(zip(seg.ops, costs)):
        if op.id < 0:  # no dataflow: read the op before (the previous repeat's last op)
            ready = ends[i - 1] if i else entry
            if i == 0 and len(seg.ops) > 1:
                carried.append((len(seg.ops) - 1, 0))
        else:
            ready = 0.0
            for src in op.inputs:
                j = pos.get(src)
                if j is not None and j < i:
                    t = ends[j]
                elif j is not None:
                    t = entry
                    carried.append((j, i))
                elif src in done:
                    t = done[src]
                else:
                    raise ValueError(f"schedule: op {op.name} (id {op.id}) reads id {src}, "
                                     f"which no earlier op has")
                ready = max(ready, t)
        res = (chip, op.unit)
        start = max(ready, local.get(res, 0.0))
        starts.append(start)
        ends.append(start + c.time_s)
        local[res] = ends[-1]
    return starts, ends, carried


def _period(seg: Segment, starts: list[float], ends: list[float],
            carried: list[tuple[int, int]], chip: int) -> float:
    """Steady-state period of ``seg``'s repeats (module docstring); the instance's length
    when it is not repeated."""
    if not seg.ops:
        return 0.0
    if seg.repeat == 1:
        return max(ends) - min(starts)
    span: dict[tuple[int, str], tuple[float, float]] = {}
    for op, s, e in zip(seg.ops, starts, ends):
        lo, hi = span.get((chip, op.unit), (s, e))
        span[(chip, op.unit)] = (min(lo, s), max(hi, e))
    period = max(hi - lo for lo, hi in span.values())
    for u, v in carried:
        period = max(period, ends[u] - starts[v])
    return period
