"""The compiler pipeline, top to bottom: ``lower -> place -> schedule``.

Later passes (``quantize``, ``tile``) slot in here; each is a pure function of the IR.
"""

from __future__ import annotations

import importlib
from typing import Callable

from sim.cost import Cost
from sim.hardware import System
from sim.roofline import roofline_cost
from sim.tile import tile_cost

from .ir import Graph, Op, Phase, Precision
from .lower import lower
from .models import ModelConfig
from .place import place
from .schedule import CostFn, StepSchedule, schedule


#: Unit models by detail level: ``tile`` simulates GEMMs on the systolic arrays (mapping
#: search) and vector work lane by lane; ``roofline`` is the baseline bound.
COST_MODELS = {"tile": tile_cost, "roofline": roofline_cost}

#: Models of memory-side units (`mappers.place.MEMORY_UNITS`), used at every detail level:
#: ``unit name -> "module:function"`` of a ``(system, op) -> Cost`` function, imported on use.
UNIT_MODELS = {"cid": "sim.cid_ops:cid_cost"}

#: Memory-side units whose model needs the whole step, not one op: ``unit name ->
#: "module:function"`` of a factory ``(system, graph) -> (op -> Cost)``, called once per step
#: (the analog CiM unit plans which weights stay programmed on its crossbars from every GEMM
#: of the step before it can cost one).
STEP_UNIT_MODELS = {"cim": "sim.cim_cost:cim_step_cost"}


def _load(spec: str) -> Callable:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def op_cost(system: System, detail: str, op: Op) -> Cost:
    """Cost of one op on the unit ``place`` chose: a memory-side unit's own model, else the
    chip model of ``detail``. Units in `STEP_UNIT_MODELS` need the step: use `step_cost`."""
    if op.unit in STEP_UNIT_MODELS:
        raise ValueError(f"op_cost: unit {op.unit!r} is costed per step; use step_cost")
    spec = UNIT_MODELS.get(op.unit)
    if spec is None:
        return COST_MODELS[detail](system, op)
    return _load(spec)(system, op)


def step_cost(system: System, detail: str, graph: Graph) -> CostFn:
    """The cost function of one placed step: `op_cost`, except for ops on a unit in
    `STEP_UNIT_MODELS`, whose factory is called once here with the whole ``graph``."""
    used = {op.unit for seg in graph.segments for op in seg.ops}
    step_models = {u: _load(spec)(system, graph) for u, spec in STEP_UNIT_MODELS.items()
                   if u in used}
    # Pipeline stages repeat the same layer ops: cost each distinct op once per step.
    memo: dict[Op, Cost] = {}

    def cost(op: Op) -> Cost:
        if op not in memo:
            model = step_models.get(op.unit)
            memo[op] = model(op) if model is not None else op_cost(system, detail, op)
        return memo[op]
    return cost


def compile_step(model: ModelConfig, system: System, *, phase: Phase, batch: int,
                 new_tokens: int, context: int, precision: Precision,
                 detail: str = "tile") -> StepSchedule:
    """Lower one step of ``model``, place it on ``system`` and schedule it at ``detail``."""
    graph = lower(model, phase=phase, batch=batch, new_tokens=new_tokens, context=context,
                  precision=precision, tp=system.tensor_parallel,
                  pp=system.pipeline_parallel)
    graph = place(graph, system)
    return schedule(graph, step_cost(system, detail, graph))
