"""Which of a pass's weights stay programmed on an analog CiM unit (`WeightPlan`), and the
unit model the engine uses (`cim_step_cost`): the residency plan of the step, then each op by
`sim.units.cim.cost.cim_op_cost`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache

from mappers.ir import Graph, Op
from mappers.quantize import DEQUANT_SUFFIX

from sim.cost import Cost
from sim.hardware import System
from sim.units.cim.cost import CIM_KINDS, cim_op_cost, layout, op_bits
from sim.units.cim.crossbar import CimUnit, load_cim
from sim.units.cim.unit import CimSlot

_PJ = 1e-12


@dataclass(frozen=True, slots=True)
class WeightPlan:
    """Whether the CiM weights of a whole forward pass stay resident on ``unit``.

    ``crossbars_needed`` is one copy of every GEMM and LM-head weight of the graph, repeated
    layers included. If it fits in the chip's crossbars, every weight is programmed once
    (before the first request, ``initial_program_s`` / ``initial_program_j``, not charged per
    step) and `resident_bytes` gives an op its whole weight; otherwise each op's weights are
    programmed before the op runs, and `resident_bytes` is 0, so `cim_op_cost` charges it.
    """

    crossbars_needed: int
    crossbars: int
    weight_bytes: int
    initial_program_s: float
    initial_program_j: float

    @property
    def resident(self) -> bool:
        return self.crossbars_needed <= self.crossbars

    def resident_bytes(self, op: Op) -> int:
        """Bytes of ``op``'s weights already programmed when it runs."""
        return op.weight_bytes if self.resident and op.kind in CIM_KINDS else 0


def plan_weights(graph: Graph, unit: CimUnit) -> WeightPlan:
    """The residency plan of ``graph``'s GEMM and LM-head weights on ``unit``."""
    needed = wbytes = 0
    prog_s = prog_j = 0.0
    for seg in graph.segments:
        for op in seg.ops:
            if op.kind not in CIM_KINDS:
                continue
            m, n, k = op.dims
            wbits, _ = op_bits(op)
            rt, ct, _ = layout(unit, n, k, wbits)
            needed += seg.repeat * rt * ct
            wbytes += seg.repeat * op.weight_bytes
    xb = unit.crossbar
    if needed:
        # every crossbar written once, write_parallel_crossbars at a time, row by row
        waves = -(-needed // unit.write_parallel_crossbars)
        write_s = waves * xb.rows * -(-xb.cols // xb.write_cells_parallel) * xb.write_time_s
        prog_s = max(write_s, wbytes / unit.weight_load_bandwidth_bytes_per_s)
        prog_j = (needed * xb.rows * xb.cols * xb.write_energy_j
                  + wbytes * 8 * unit.io_energy_pj_per_bit * _PJ)
    return WeightPlan(crossbars_needed=needed, crossbars=unit.crossbars, weight_bytes=wbytes,
                      initial_program_s=prog_s, initial_program_j=prog_j)


@lru_cache(maxsize=16)
def slot_unit(slot: CimSlot) -> CimUnit:
    """The `CimUnit` a chip's ``cim`` slot names (loaded once per slot; slots are frozen)."""
    return load_cim(slot.unit).unit


def slot_plan(system: System, graph: Graph) -> WeightPlan:
    """Residency plan of the weights the chip's CiM unit runs: every op of ``graph`` whose kind
    the slot lists in either phase (the crossbars must hold what both phases use, so the plan
    is the same for the prefill and every decode step of a run)."""
    slot = system.chip.cim
    kinds = set(slot.prefill_ops) | set(slot.decode_ops)
    segments = tuple(replace(seg, ops=tuple(op for op in seg.ops if op.kind.value in kinds))
                     for seg in graph.segments)
    return plan_weights(replace(graph, segments=segments), slot_unit(slot))


def cim_step_cost(system: System, graph: Graph) -> Callable[[Op], Cost]:
    """Unit model of the chip's CiM unit for one step (the ``cost`` model of
    `sim.units.cim.unit.UNIT`): plan the residency of the step's weights once (`slot_plan`),
    then cost each op with `cim_op_cost`. Resident weights were programmed at load (the engine
    reports that cost in its summary, outside every step); weights that are not are programmed
    before every op instance, every step. Activations move in and out in the graph's transfer
    ops (`mappers.transfers`, `sim.units.cim.link`), so the ops here leave that I/O out."""
    if system.chip.cim is None:
        raise ValueError("cim_step_cost: ops placed on 'cim' but the chip has no CiM unit")
    unit = slot_unit(system.chip.cim)
    plan = slot_plan(system, graph)

    def cost(op: Op) -> Cost:
        if op.name.endswith(DEQUANT_SUFFIX):
            # dequantization on CiM is the GEMM's own work: integer codes sliced over the
            # cells, extra reads where groups split a crossbar, scale multiplies in the
            # periphery (`_gemm`); nothing is left for the op `place` moved here
            return Cost(time_s=0.0, compute_s=0.0, memory_s=0.0, comm_s=0.0, energy_j=0.0,
                        bound="compute", dram_bytes=0.0, cycles=0.0, stall_cycles=0.0,
                        utilization=math.nan)
        return cim_op_cost(op, unit, resident_weights_bytes=plan.resident_bytes(op),
                           act_io=False)
    return cost
