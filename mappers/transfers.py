"""Pass 3, ``transfers``: an explicit ``transfer`` op wherever an op reads an output that lives
in another unit's memory.

Where an op's output lives is the memory of the unit that ran it (`MEMORY_OF`): the host die's
units (arrays, vector units, DMA, link) and a compute-in-DRAM unit share the chip's memory (a
CiD unit's banks *are* the chip's DRAM stacks: HALO, AttAcc and CENT put the MAC units in
the stacks the host reads), so an edge between them moves nothing that is not already
charged: the host op's DRAM bytes and the CiD command stream (input-buffer writes and result
reads) carry it. An analog CiM unit keeps its inputs and outputs in its own buffers, reached
over its I/O path (the 2.5D link that also brings its weights): an edge between the chip's
memory and the CiM's crosses that path. Chips exchange data only through the ops that already
say so (``all_reduce``, ``p2p``).

The pass inserts, before the first reader in each segment, one ``transfer`` op per (producer,
destination memory): ``dims = (bytes,)``, ``comm_bytes = bytes``, ``unit`` = the path
(`PATH_OF`), and rewires the readers to it. The simulator costs it with the path's link
model (`sim.step`). Pure: the graph in, a new graph out.
"""

from __future__ import annotations

import math
from dataclasses import replace

from sim.dtypes import nbytes

from .ir import Graph, Op, OperandFormats, OpKind, Segment

#: The memory holding the outputs of each unit (units not listed: the chip's memory).
MEMORY_OF: dict[str, str] = {"cim": "cim"}

#: The path (a resource of its own, costed by the simulator's link model) between the chip's
#: memory and each other memory.
PATH_OF: dict[str, str] = {"cim": "cim_io"}


def memory_of(unit: str) -> str:
    """The memory where ``unit`` leaves its outputs (``cim.<group>`` is a CiM group)."""
    return MEMORY_OF.get(unit.partition(".")[0], "chip")


def output_bytes(op: Op) -> int:
    """Bytes of ``op``'s output (its ``formats.output``), by kind (dims in `mappers.ir`)."""
    d = op.dims
    if op.kind in (OpKind.GEMM, OpKind.LM_HEAD):
        elements = d[0] * d[1]
    elif op.kind is OpKind.ATTN_VALUE:  # (batch, heads, kv_heads, queries, keys, head_dim)
        elements = d[0] * d[1] * d[3] * d[5]
    elif op.kind is OpKind.ATTN_SCORE:
        elements = d[0] * d[1] * d[3] * d[4]
    elif op.kind is OpKind.SOFTMAX:
        elements = math.prod(d)
    elif op.kind is OpKind.KV_WRITE:
        elements = 2 * math.prod(d)
    elif op.kind in (OpKind.ALL_REDUCE, OpKind.P2P):
        elements = d[0]
    elif op.kind is OpKind.TRANSFER:
        return d[0]
    else:  # norm, rope, activation, elementwise, embedding: (rows, cols)
        elements = d[0] * d[1]
    return nbytes(elements, op.formats.output)


def insert_transfers(graph: Graph) -> Graph:
    """``graph`` with a ``transfer`` op before each read across memories (module docstring).
    Ops must be placed (``unit`` set) and wired (``id`` set)."""
    ops_by_id = {op.id: op for seg in graph.segments for op in seg.ops if op.id >= 0}
    if not ops_by_id or len({memory_of(op.unit) for op in ops_by_id.values()}) == 1:
        return graph  # every output in one memory: nothing to move (most steps of most chips)
    next_id = max(ops_by_id) + 1
    made: dict[tuple[int, int, str], Op] = {}  # (segment, producer, memory) -> its transfer
    segments: list[Segment] = []
    for s, seg in enumerate(graph.segments):
        ops: list[Op] = []
        for op in seg.ops:
            here = memory_of(op.unit)
            inputs = []
            for src in op.inputs:
                there = memory_of(ops_by_id[src].unit)
                if there == here:
                    inputs.append(src)
                    continue
                key = (s, src, here)
                if key not in made:
                    producer = ops_by_id[src]
                    size = output_bytes(producer)
                    path = PATH_OF[there if there != "chip" else here]
                    made[key] = Op(name=f"xfer_{producer.name}"[:24], kind=OpKind.TRANSFER,
                                   dims=(size,),
                                   formats=OperandFormats(act=producer.formats.output),
                                   flops=0,
                                   comm_bytes=size, unit=path, id=next_id, inputs=(src,))
                    next_id += 1
                    ops.append(made[key])
                inputs.append(made[key].id)
            # an op whose inputs all stay in one memory is kept as it is (the same object)
            ops.append(op if op.id < 0 or tuple(inputs) == op.inputs
                       else replace(op, inputs=tuple(inputs)))
        segments.append(replace(seg, ops=tuple(ops)) if len(ops) > len(seg.ops) else seg)
    return replace(graph, segments=tuple(segments)) if made else graph
