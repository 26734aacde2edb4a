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
from typing import Callable, NamedTuple

from sim.cost import Cost

from .ir import Graph, Op, OpKind, Segment

CostFn = Callable[[Op], Cost]


class ScheduledOp(NamedTuple):
    """An op with its cost and the start of its first instance, relative to the step; instance
    ``r`` of a repeated segment starts at ``start_s + r * period_s``. ``chip`` is the pipeline
    stage whose chip runs it. A named tuple rather than a frozen dataclass: a step makes one
    per op, and a tuple is built several times faster."""

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
    #: Busy seconds of each resource (chip, unit) over the step, repeats included, in the
    #: order the resources are first used (`busy_s`).
    busy: tuple[tuple[tuple[int, str], float], ...]

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
        return dict(self.busy)


@dataclass(frozen=True, slots=True)
class _SegmentPlan:
    """How one segment's ops are laid out, from the graph's structure alone: the chip that
    runs it, each op's resource and what it waits for (``reads``: None for an op without
    dataflow, which follows the op before it; else ``(where, what)`` per input in order:
    ``where`` 0 an earlier op of this instance at position ``what``, 1 the previous repeat
    (the segment's entry), 2 an op of an earlier segment of id ``what``), the (producer,
    reader) positions read across repeats, each resource's op positions (in order of first
    use) and each op's id."""

    chip: int
    resources: tuple[tuple[int, str], ...]
    reads: tuple[tuple[tuple[int, int], ...] | None, ...]
    carried: tuple[tuple[int, int], ...]
    spans: tuple[tuple[int, ...], ...]
    ids: tuple[int, ...]


#: A graph's schedule plan (`schedule_plan`): one entry per segment.
SchedulePlan = tuple[_SegmentPlan, ...]


def schedule_plan(graph: Graph) -> SchedulePlan:
    """The schedule plan of ``graph``: everything `schedule` needs but the costs. It holds for
    every graph of the same structure (segments, and each op's id, inputs, unit and kind),
    such as the steps of one shape (`mappers.shapes`)."""
    seen: set[int] = set()  # ids of the ops of earlier segments
    out: list[_SegmentPlan] = []
    chip = 0
    for seg in graph.segments:
        pos = {op.id: i for i, op in enumerate(seg.ops) if op.id >= 0}
        n = len(seg.ops)
        reads: list[tuple[tuple[int, int], ...] | None] = []
        carried: list[tuple[int, int]] = []
        spans: dict[tuple[int, str], list[int]] = {}
        for i, op in enumerate(seg.ops):
            spans.setdefault((chip, op.unit), []).append(i)
            if op.id < 0:  # no dataflow: read the op before (the previous repeat's last op)
                reads.append(None)
                if i == 0 and n > 1:
                    carried.append((n - 1, 0))
                continue
            refs = []
            for src in op.inputs:
                j = pos.get(src)
                if j is not None and j < i:
                    refs.append((0, j))
                elif j is not None:
                    refs.append((1, 0))
                    carried.append((j, i))
                elif src in seen:
                    refs.append((2, src))
                else:
                    raise ValueError(f"schedule: op {op.name} (id {op.id}) reads id {src}, "
                                     f"which no earlier op has")
            reads.append(tuple(refs))
        out.append(_SegmentPlan(chip=chip, resources=tuple((chip, op.unit) for op in seg.ops),
                                reads=tuple(reads), carried=tuple(carried),
                                spans=tuple(tuple(v) for v in spans.values()),
                                ids=tuple(op.id for op in seg.ops)))
        seen.update(op.id for op in seg.ops if op.id >= 0)
        if any(op.kind is OpKind.P2P for op in seg.ops):
            chip += 1
    return tuple(out)


def schedule(graph: Graph, cost: CostFn, plan: SchedulePlan | None = None) -> StepSchedule:
    """Cost each op of ``graph`` with ``cost`` and place it on its resource's timeline.
    ``plan``: ``graph``'s `schedule_plan`, if the caller has it (a step of a known shape)."""
    if plan is None:
        plan = schedule_plan(graph)
    free: dict[tuple[int, str], float] = {}  # when each resource finishes its last op
    done: dict[int, float] = {}              # end of the latest instance of each op id
    busy: dict[tuple[int, str], float] = {}  # busy seconds of each resource, repeats included
    rows: list[ScheduledOp] = []
    entry = end = energy = 0.0               # entry: end of the last op before a segment
    for seg, sp in zip(graph.segments, plan):
        costs = [cost(op) for op in seg.ops]
        starts, ends = _first_instance(sp, costs, entry, free, done)
        period = _period(seg, sp, starts, ends)
        shift = (seg.repeat - 1) * period
        chip, repeat = sp.chip, seg.repeat
        for op, c, s, e, res, op_id in zip(seg.ops, costs, starts, ends, sp.resources, sp.ids):
            rows.append(ScheduledOp(seg, op, c, s, period, chip))
            energy += repeat * c.energy_j
            busy[res] = busy.get(res, 0.0) + repeat * c.time_s
            last = e + shift
            if op_id >= 0:
                done[op_id] = last
            # max() as comparisons, the same values (a missing resource reads as 0.0)
            if last > free.get(res, 0.0):
                free[res] = last
            if last > end:
                end = last
        if seg.ops:
            entry = ends[-1] + shift
    return StepSchedule(graph=graph, ops=tuple(rows), time_s=end, energy_j=energy,
                        busy=tuple(busy.items()))


def _first_instance(sp: _SegmentPlan, costs: list[Cost], entry: float,
                    free: dict[tuple[int, str], float], done: dict[int, float]
                    ) -> tuple[list[float], list[float]]:
    """Start and end of each op of the segment's first instance. Updates nothing but a copy
    of ``free``."""
    local = dict(free)
    starts: list[float] = []
    ends: list[float] = []
    for i, (refs, c, res) in enumerate(zip(sp.reads, costs, sp.resources)):
        if refs is None:
            ready = ends[i - 1] if i else entry
        else:
            ready = 0.0
            for where, what in refs:  # max() as comparisons, the same values
                t = ends[what] if where == 0 else entry if where == 1 else done[what]
                if t > ready:
                    ready = t
        start = local.get(res, 0.0)
        if not start > ready:
            start = ready
        starts.append(start)
        end = start + c.time_s
        ends.append(end)
        local[res] = end
    return starts, ends


def _period(seg: Segment, sp: _SegmentPlan, starts: list[float], ends: list[float]) -> float:
    """Steady-state period of ``seg``'s repeats (module docstring); the instance's length
    when it is not repeated."""
    if not seg.ops:
        return 0.0
    if seg.repeat == 1:
        return max(ends) - min(starts)
    period = max(max(map(ends.__getitem__, span)) - min(map(starts.__getitem__, span))
                 for span in sp.spans)
    for u, v in sp.carried:
        period = max(period, ends[u] - starts[v])
    return period
