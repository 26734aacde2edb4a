"""Pass 2, ``place``: name the unit of the chip that runs each op.

Every op runs on the one chip type of the system (all chips of a tensor-parallel group do the
same work): matrix products on the systolic arrays (``tensor``), elementwise work on the
vector units (``vector``), pure data movement on the DMA engines (``dma``), and collectives
and pipeline sends on the interconnect (``link``). The chip's memory-side units
(``chip.units``: a compute-in-DRAM unit ``cid``, an analog CiM unit ``cim``, any type the
simulator registers) take the op kinds each lists for the step's phase (``decode_ops`` /
``prefill_ops``), and the op's unit is named after it. The placer reads those lists as data and
knows no unit type; the chip's validation keeps an op kind on at most one unit per phase.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from sim.hardware import System

from .ir import Graph, Op, OpKind, Phase

UNIT_OF_KIND: dict[OpKind, str] = {
    OpKind.GEMM: "tensor",
    OpKind.LM_HEAD: "tensor",
    OpKind.ATTN_SCORE: "tensor",
    OpKind.ATTN_VALUE: "tensor",
    OpKind.SOFTMAX: "vector",
    OpKind.NORM: "vector",
    OpKind.ROPE: "vector",
    OpKind.ACTIVATION: "vector",
    OpKind.ELEMENTWISE: "vector",
    OpKind.EMBEDDING: "dma",
    OpKind.KV_WRITE: "dma",
    OpKind.ALL_REDUCE: "link",
    OpKind.P2P: "link",
}


def place(graph: Graph, system: System) -> Graph:
    """Return ``graph`` with every op's ``unit`` set: a memory-side unit of the chip where it
    lists the op's kind for this phase, else the chip's own unit for the kind."""
    targets: dict[str, str] = {}
    for unit, desc in system.chip.units.items():
        kinds = desc.decode_ops if graph.phase is Phase.DECODE else desc.prefill_ops
        for kind in kinds:
            targets.setdefault(kind, unit)

    # Placement is a function of (kind, phase, system): the phase's memory-unit targets, as a
    # hashable key of the memo below.
    where = tuple(sorted(targets.items()))
    segments = tuple(replace(seg, ops=tuple(_placed(op, where) for op in seg.ops))
                     for seg in graph.segments)
    return replace(graph, segments=segments)


@lru_cache(maxsize=1 << 14)
def _placed(op: Op, targets: tuple[tuple[str, str], ...]) -> Op:
    """``op`` on the memory-side unit ``targets`` (``(kind, unit)`` pairs) names for its kind,
    else on the chip's own unit for the kind. Memoised: consecutive decode steps lower mostly
    equal ops (only attention changes with the context), and a hit is several times cheaper
    than `dataclasses.replace`; equal ops also come back as one object, which keeps the
    simulator's per-op memos and trace cheap."""
    return replace(op, unit=dict(targets).get(op.kind.value, UNIT_OF_KIND[op.kind]))
