"""The record every unit cost model returns."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Cost:
    """Time and energy of one op instance on its unit.

    ``compute_s``, ``memory_s`` and ``comm_s`` are the times each resource alone would need;
    ``time_s`` is what the model charges (for a roofline, their maximum plus the per-op
    overhead). ``bound`` names the resource that set ``time_s``. ``energy_j`` is NaN when the
    hardware description has no energy figures. Tile-level models also report the op's
    ``cycles`` on its unit's clock, the part of them that was not compute (``stall_cycles``),
    and the unit's ``utilization``; the roofline leaves them NaN. ``dram_bytes`` is the DRAM
    traffic the model charged: the op's own bytes for the roofline, more where a tile mapping
    re-reads operands that do not fit on chip.
    """

    time_s: float
    compute_s: float
    memory_s: float
    comm_s: float
    energy_j: float
    bound: str
    dram_bytes: float = 0.0
    cycles: float = math.nan
    stall_cycles: float = math.nan
    utilization: float = math.nan
    #: kernels the op's mapping launches each time the op is launched (split-K's reduction
    #: is a second kernel); a runtime (`sim.runtime`) charges each its fixed time
    kernels: int = 1
