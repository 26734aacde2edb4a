"""Pass 2, ``place``: name the unit of the chip that runs each op.

Every op runs on the one chip type of the system (all chips of a tensor-parallel group do the
same work): matrix products on the systolic arrays (``tensor``), elementwise work on the
vector units (``vector``), pure data movement on the DMA engines (``dma``), and collectives
and pipeline sends on the interconnect (``link``). The chip's memory-side units
(``chip.units``: a compute-in-DRAM unit ``cid``, an analog CiM unit ``cim``, any type the
simulator registers) take the op kinds each lists for the step's phase (``decode_ops`` /
``prefill_ops``), and the op's unit is named after it. The placer reads those lists as data and
knows no unit type; the chip's validation keeps an op kind on at most one unit per phase.

A weight-dequantization op (``<gemm>.w_dequant``, `mappers.quantize`, right before its GEMM)
runs where its GEMM's weights are: on the vector unit beside the arrays, or on the memory-side
unit that takes the GEMM, whose model then charges the dequantization as that unit does it
(near-bank MAC lanes, crossbar periphery). There it takes the GEMM's inputs and the GEMM reads
it (the unit dequantizes as its weights stream), so the two run one after the other on the
unit and the activations' transfer to the unit is made once. A KV-dequantization op
(``<attn>.kv_dequant``) goes with its attention op the same way (the near-bank unit of a CiD
that runs attention, or the host's vector lanes).
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from sim.hardware import System

from .ir import Graph, Op, OpKind, Phase
from .quantize import DEQUANT_SUFFIX, KV_DEQUANT_SUFFIX

_SUFFIXES = (DEQUANT_SUFFIX, KV_DEQUANT_SUFFIX)

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
    segments = tuple(replace(seg, ops=_with_dequant_units(
        tuple(_placed(op, where) for op in seg.ops))) for seg in graph.segments)
    return replace(graph, segments=segments)


def _with_dequant_units(ops: tuple[Op, ...]) -> tuple[Op, ...]:
    """``ops`` with each dequant op moved onto its GEMM's memory-side unit (module)."""
    if not any(op.name.endswith(_SUFFIXES) for op in ops):
        return ops
    out = list(ops)
    for i, op in enumerate(ops[:-1]):
        gemm = ops[i + 1]  # or the attention op of a KV dequant op
        if not op.name.endswith(_SUFFIXES) or gemm.unit == UNIT_OF_KIND[gemm.kind]:
            continue
        if op.name not in (gemm.name + DEQUANT_SUFFIX, gemm.name + KV_DEQUANT_SUFFIX):
            raise ValueError(f"place: dequant op {op.name} is not right before its reader")
        # the dequant op reads the GEMM's activations (`quantize` wired it so in both places)
        out[i] = replace(op, unit=gemm.unit)
        if op.id >= 0:
            out[i + 1] = replace(gemm, inputs=(op.id,))
    return tuple(out)


@lru_cache(maxsize=1 << 14)
def _placed(op: Op, targets: tuple[tuple[str, str], ...]) -> Op:
    """``op`` on the memory-side unit ``targets`` (``(kind, unit)`` pairs) names for its kind,
    else on the chip's own unit for the kind. Memoised: consecutive decode steps lower mostly
    equal ops (only attention changes with the context), and a hit is several times cheaper
    than `dataclasses.replace`; equal ops also come back as one object, which keeps the
    simulator's per-op memos and trace cheap."""
    return replace(op, unit=dict(targets).get(op.kind.value, UNIT_OF_KIND[op.kind]))
