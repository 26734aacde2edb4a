"""The CiM unit's I/O path as a link, and the cost of the transfer ops placed on it.

`mappers.transfers` puts every move between the chip's memory and a CiM unit's buffers on
the ``cim_io`` path. Its link is the one the CiM description already has for weights
(`sim.units.cim.crossbar.CimUnit`): ``weight_load_bandwidth_bytes_per_s`` per direction,
``io_energy_pj_per_bit``, no latency figure (0). The GEMMs the engine costs on the CiM leave
their activation I/O out (`sim.units.cim.residency.cim_step_cost`), so it is charged once, here.
"""

from __future__ import annotations

from typing import Callable

from mappers.ir import Graph, Op, OpKind

from sim.cost import Cost
from sim.hardware import Link, System
from sim.units.cim.crossbar import CimUnit

_PJ = 1e-12


def cim_link(unit: CimUnit) -> Link:
    """The link between the chip's memory and ``unit``'s buffers."""
    return Link(bandwidth_bytes_per_s=unit.weight_load_bandwidth_bytes_per_s, latency_s=0.0,
                energy_pj_per_bit=unit.io_energy_pj_per_bit)


def link_transfer_cost(link: Link, op: Op) -> Cost:
    """One transfer of ``op.comm_bytes`` over ``link``: ``bytes / bandwidth + latency`` seconds
    (bound ``link``), ``bytes x 8 x energy_pj_per_bit`` joules (NaN without a figure)."""
    if op.kind is not OpKind.TRANSFER:
        raise ValueError(f"link_transfer_cost: op {op.name} is a {op.kind.value}, not a "
                         f"transfer")
    time = op.comm_bytes / link.bandwidth_bytes_per_s + link.latency_s
    energy = (op.comm_bytes * 8 * link.energy_pj_per_bit * _PJ
              if link.energy_pj_per_bit is not None else float("nan"))
    return Cost(time_s=time, compute_s=0.0, memory_s=0.0, comm_s=time, energy_j=energy,
                bound="link", dram_bytes=0.0)


def cim_io_step_cost(system: System, graph: Graph) -> Callable[[Op], Cost]:
    """Unit model of the ``cim_io`` path for one step (`sim.step.UNIT_MODELS`)."""
    from sim.units.cim.residency import slot_unit

    if system.chip.cim is None:
        raise ValueError("cim_io_step_cost: transfers on 'cim_io' but the chip has no CiM unit")
    link = cim_link(slot_unit(system.chip.cim))
    return lambda op: link_transfer_cost(link, op)
