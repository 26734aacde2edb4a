"""One step, compiled and timed: the compiler's placed graph (`mappers.pipeline`), each op
costed by the model of the unit it was placed on, then scheduled (`mappers.schedule`).

This is where the simulator dispatches to unit models; the compiler never imports them.
"""

from __future__ import annotations

import dataclasses
import importlib
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Callable

from mappers.ir import Batch, Graph, Op, Phase, Precision
from mappers.models import ModelConfig
from mappers.pipeline import compile_graph
from mappers.schedule import CostFn, SchedulePlan, StepSchedule, schedule
from mappers.shapes import StepShapes

from sim.cost import Cost
from sim.hardware import System
from sim.units.registry import load, unit_type

if TYPE_CHECKING:  # annotation only: unit models are imported on use
    from sim.units.cid.audit import StreamAudit

#: Chip models by detail level, as ``"module:function"`` imported on first use: ``tile``
#: simulates GEMMs on the systolic arrays (mapping search) and vector work lane by lane;
#: ``roofline`` is the baseline bound.
COST_MODELS = {"tile": "sim.units.systolic.tile:tile_cost",
               "roofline": "sim.roofline:roofline_cost"}


def chip_cost_model(detail: str) -> Callable:
    """The chip model ``(system, op) -> Cost`` of ``detail`` (a key of `COST_MODELS`)."""
    return _load(COST_MODELS[detail])


class RunMemo:
    """What the steps of one run (one model, system, precision and ``detail``) share: each
    step shape's compiled graph and schedule plan (`mappers.shapes.StepShapes`: a decode step
    lowers only its attention ops anew), and the costs of the ops whose cost depends on the op
    alone (chip-model ops and those of unit types registered ``op_only``), found by identity
    for the ops a shape's steps share (no hashing of the op) and else by value."""

    def __init__(self) -> None:
        self.costs: dict[Op, Cost] = {}
        self.by_identity: dict[int, tuple[Op, Cost]] = {}  # id(op) -> (op kept alive, cost)
        self.shapes: StepShapes | None = None

    def compile(self, model: ModelConfig, system: System, phase: Phase, precision: Precision,
                seqs: Batch) -> tuple[Graph, SchedulePlan]:
        """The compiled graph of a step and its schedule plan."""
        if self.shapes is None:
            self.shapes = StepShapes(model, system, precision)
        elif not all(a is b or a == b for a, b in zip(
                (self.shapes.model, self.shapes.system, self.shapes.precision),
                (model, system, precision))):
            raise ValueError("RunMemo: one memo serves one run (one model, system, precision)")
        return self.shapes.compile(phase, seqs)


def step_cost(system: System, detail: str, graph: Graph, *,
              memo: RunMemo | dict[Op, Cost] | None = None,
              dram_audit: StreamAudit | None = None) -> CostFn:
    """The cost function of one placed step: each op on a memory-side unit by that unit's
    model, every other op by the chip model of ``detail``. ``dram_audit``: a
    `sim.units.cid.audit.StreamAudit` handed to the models of unit types that generate DRAM
    command streams (``dram_audit`` in their registration: the CiD unit), which then check
    every stream they generate (``pdsim run --check-dram``).

    A memory-side unit's model is the ``cost`` factory its type registers
    (`sim.units.registry`), used at every detail level and called once per step (the analog
    CiM unit plans which weights stay programmed on its crossbars from every GEMM of the step
    before it can cost one; CiD ops need only themselves). The ``transfer`` ops on a path a
    unit type lists in its ``links`` are costed by that path's factory, registered the same
    way. With a ``runtime`` on the system every op is then charged as that software stack runs
    it (`sim.runtime`), which replaces the chip's ``op_overhead_s``.

    Each distinct op is costed once per step (pipeline stages repeat the same layer ops).
    ``memo``, if given, keeps the costs of ops whose cost depends on the op alone (chip-model
    ops, and those of unit types registered ``op_only``) across calls: pass one `RunMemo` (or
    a plain dict, which keeps the costs by value alone) for all steps of one run (one
    ``system`` and ``detail``), so a decode step costs only the ops that changed with the
    context. The costs are the same as without it (and an audit checks each distinct stream
    once anyway)."""
    runtime = None
    if system.runtime is not None:
        from sim.runtime import load_runtime
        runtime = load_runtime(system.runtime)
        system = _without_op_overhead(system)  # the runtime's launches replace it
    chip = partial(chip_cost_model(detail), system)
    used = {op.unit for seg in graph.segments for op in seg.ops}
    units, op_only = {}, set()
    for unit in system.chip.units:
        if unit in used:
            kind = unit_type(unit)
            audit = {"audit": dram_audit} if dram_audit is not None and kind.dram_audit else {}
            units[unit] = kind.model("cost")(system, graph, **audit)
            if kind.op_only:
                op_only.add(unit)
            for path, spec in kind.links:  # its transfer paths (`mappers.transfers`)
                if path in used:
                    units[path] = load(spec)(system, graph)
    if isinstance(memo, RunMemo):
        shared, by_identity = memo.costs, memo.by_identity
    else:  # a plain dict: the costs by value alone
        shared, by_identity = ({} if memo is None else memo), {}
    own: dict[Op, Cost] = {}

    def cost(op: Op) -> Cost:
        if op.unit in units and op.unit not in op_only:  # this step's model: by value
            c = own.get(op)
            if c is None:
                c = own[op] = _charge(op, model(op, units[op.unit]))
            return c
        hit = by_identity.get(id(op))
        if hit is not None and hit[0] is op:
            return hit[1]
        c = shared.get(op)
        if c is None:
            c = shared[op] = _charge(op, model(op, units.get(op.unit, chip)))
        by_identity[id(op)] = (op, c)
        return c

    def model(op: Op, unit: Callable) -> Cost:
        if runtime is None:
            return unit(op)
        part, p = runtime.part(op)
        if p == 1:
            return unit(op)
        # a fused projection the stack launches as p GEMMs: p times one part's cost (each
        # part keeps its own mapping; ``kernels`` stays per launch, `Runtime.kernels_of`)
        c = unit(part)
        return dataclasses.replace(
            c, time_s=c.time_s * p, compute_s=c.compute_s * p, memory_s=c.memory_s * p,
            energy_j=c.energy_j * p, dram_bytes=c.dram_bytes * p, cycles=c.cycles * p,
            stall_cycles=c.stall_cycles * p)

    def _charge(op: Op, c: Cost) -> Cost:
        return c if runtime is None else runtime.apply(op, c)
    return cost


@lru_cache(maxsize=64)
def _without_op_overhead(system: System) -> System:
    eff = dataclasses.replace(system.chip.efficiency, op_overhead_s=0.0)
    return dataclasses.replace(system, chip=dataclasses.replace(system.chip, efficiency=eff))


def _load(spec: str) -> Callable:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def compile_step(model: ModelConfig, system: System, *, phase: Phase, precision: Precision,
                 seqs: Batch | None = None, batch: int | None = None,
                 new_tokens: int | None = None, context: int | None = None,
                 detail: str = "tile", memo: RunMemo | dict[Op, Cost] | None = None,
                 dram_audit: StreamAudit | None = None) -> StepSchedule:
    """Lower one step of ``model`` (the ragged batch ``seqs``, or ``batch`` equal sequences),
    place it on ``system`` and schedule it at ``detail`` (``memo``: the run's `RunMemo`, or a
    dict of costs as `step_cost` takes; ``dram_audit``: as `step_cost`)."""
    shaped = isinstance(memo, RunMemo)
    if shaped and seqs is None and None not in (batch, new_tokens, context):
        seqs = Batch.uniform(batch, new_tokens, context)
        batch = new_tokens = context = None
    if shaped and seqs is not None and batch is None:
        graph, plan = memo.compile(model, system, phase, precision, seqs)
    else:
        graph = compile_graph(model, system, phase=phase, seqs=seqs, batch=batch,
                              new_tokens=new_tokens, context=context, precision=precision)
        plan = None
    return schedule(graph, step_cost(system, detail, graph, memo=memo, dram_audit=dram_audit),
                    plan)
