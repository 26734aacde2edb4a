"""Roofline cost model: the baseline unit model that tile-level simulators replace op by op.

``time = max(FLOPs / achievable compute, DRAM bytes / achievable bandwidth) + op overhead``
(the overhead once per kernel launch the op pays, ``op.launches``)

Compute runs at the peak of the op's activation format (``op.formats.act``); each operand's
bytes are already counted at its own width by the lowering.

Achievable compute and bandwidth are the peaks times the preset's ``efficiency`` fractions.
All of an op's bytes are charged to DRAM (activations included): the roofline assumes no
reuse through L2 between ops, which is what the tile-level models refine.

A ring all-reduce of ``S`` bytes over ``p`` chips sends ``2 (p - 1) / p * S`` bytes per chip in
``2 (p - 1)`` latency-bound steps (Patarasuk and Yuan, JPDC 2009). A pipeline stage's
point-to-point send (``p2p``) of ``S`` bytes is one hop: ``S`` bytes over the link plus its
latency.
"""

from __future__ import annotations

import math

from mappers.ir import Op, OpKind
from sim.hardware import System

from sim.cost import Cost

_PJ = 1e-12


def roofline_cost(system: System, op: Op) -> Cost:
    """Cost of one instance of ``op`` on the unit ``place`` chose for it."""
    chip = system.chip
    eff = chip.efficiency
    memory_s = op.bytes / (chip.memory.bandwidth_bytes_per_s * eff.memory)
    compute_s = comm_s = 0.0
    if op.unit == "tensor":
        compute_s = op.flops / (chip.peak_tensor_flops(op.formats.act) * eff.tensor)
    elif op.unit == "vector":
        compute_s = op.flops / (chip.peak_vector_flops * eff.vector)
    elif op.unit == "link":
        link = system.interconnect
        sent, hops = link_traffic(op)
        comm_s = sent / (link.bandwidth_bytes_per_s * eff.link) + hops * link.latency_s
    elif op.unit != "dma":
        raise ValueError(f"roofline: op {op.name} placed on unknown unit {op.unit!r}")

    busy = max(compute_s, memory_s, comm_s)
    bound = ("compute" if busy == compute_s and compute_s > 0 else
             "link" if busy == comm_s and comm_s > 0 else "memory")
    return Cost(time_s=busy + eff.op_overhead_s * op.launches, compute_s=compute_s,
                memory_s=memory_s, comm_s=comm_s, energy_j=energy_j(system, op, op.bytes),
                bound=bound, dram_bytes=op.bytes)


def link_traffic(op: Op) -> tuple[float, int]:
    """Bytes one chip sends over its link for ``op``, and the latency-bound steps it takes: a
    ring all-reduce over ``p = dims[1]`` chips, or one point-to-point hop."""
    if op.kind == OpKind.P2P:
        return float(op.comm_bytes), 1
    p = op.dims[1]
    return 2 * (p - 1) / p * op.comm_bytes, 2 * (p - 1)


def energy_j(system: System, op: Op, dram_bytes: float) -> float:
    """Energy of one instance: FLOPs on its unit, ``dram_bytes`` of DRAM traffic, and the
    all-reduce or send bits over the links where the interconnect has an energy figure."""
    chip = system.chip
    if chip.energy is None or chip.memory.energy_pj_per_bit is None:
        return math.nan
    per_flop = (chip.energy.tensor_pj_per_flop if op.unit == "tensor"
                else chip.energy.vector_pj_per_flop)
    joules = op.flops * per_flop * _PJ + dram_bytes * 8 * chip.memory.energy_pj_per_bit * _PJ
    link_pj = system.interconnect.energy_pj_per_bit if system.interconnect else None
    if op.comm_bytes and link_pj is not None:  # links without a figure add nothing (docs)
        joules += link_traffic(op)[0] * 8 * link_pj * _PJ
    return joules
