"""Pass ``quantize`` (after ``lower``): the work a quantization scheme adds, as explicit ops.

Operand formats are set at lowering from the step's `Precision` (which `mappers.schemes` builds
from a scheme); this pass reads the scheme's work fields and inserts, as ``elementwise`` ops that
the ``place`` pass puts on the vector unit and its unit model charges there:

* ``act_quant`` after every norm and MLP activation (``act_quant_ops`` ops per element):
  quantizing the GEMMs' inputs to the scheme's activation format. Fused into the producing
  kernel as QServe and FireQ do: no DRAM traffic and no launch of its own.
* ``w_dequant`` with every weight GEMM (dims ``(M, N, K)``, its GEMM's; ``dequant_ops`` ops
  per weight element, each weight
  tile dequantized once per ``DEQUANT_TILE_M`` rows of activations, the M tile of Hopper GEMM
  kernels). ``mainloop`` (QServe's INT4 -> INT8, AWQ's INT4 -> fp16) serialises with the MMA:
  the GEMM reads the dequant op. ``vector`` (FireQ's INT4 -> FP8 in registers) runs on the
  vector lanes beside the MMA: it reads the GEMM's inputs and nothing waits for it, so it
  costs time only where the vector unit is the busier resource (the schedule's per-resource
  span). No DRAM traffic, no launch. These are the GPU kernels' places: where the ``place``
  pass puts the GEMM on a memory-side unit (a CiD near-bank unit, a CiM crossbar array), the
  dequant op goes with it and that unit's model charges the dequantization as that unit does
  it (`mappers.place`).

* ``kv_dequant`` before every ``attn_score`` and ``attn_value`` of a scheme with
  ``kv_dequant_ops`` > 0 (dims: its attention op's; ``kv_dequant_ops`` ops per K or V element
  read, once per ``DEQUANT_TILE_M`` queries of a sequence, times the share of (query, key)
  pairs a causal mask keeps): the quantized cache converted as the attention kernel loads it
  (QServe's KV4 -> fp16, FireQ's INT4 -> FP8). On the GPU that is the vector lanes, beside the
  attention's MMAs and loads, as ``vector`` weight dequantization is: it reads the attention
  op's inputs and nothing waits for it, so it costs time where the vector lanes are the busier
  resource. Both papers' kernels overlap the conversion with the KV loads (QServe reworks its
  KV4 attention until it is memory-bound again; FireQ pipelines it in FlashAttention-3's
  warp-specialised loop). Where ``place`` puts attention on a memory-side unit, the dequant op
  goes with it, as ``w_dequant`` does.

It also rewrites formats: where a scheme quantizes activations (``act_quant_ops`` > 0) to
fewer than 16 bits, only the GEMM inputs are quantized; the residual stream and the vector ops
on it (norms, RoPE, the MLP activation, residual adds) stay in ``RESIDUAL`` (fp16), as in
QServe's and FireQ's kernels, so those ops' format becomes fp16 and their activation bytes grow
to match (a norm's gain vector too), and the weight GEMMs write their outputs in fp16 (their
epilogue dequantizes: ``formats.out``). A plain precision (``--dtype int8``, no scheme) keeps
every activation in its format.

The pass is pure and deterministic; new ops get ids above the graph's largest, the same for
the same original op in every pipeline stage (stages share layer ids).
"""

from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction

from sim.dtypes import DTYPE_BITS, nbytes

from .ir import Graph, Op, OpKind

#: Name suffix of a GEMM's weight-dequantization op (``<gemm>.w_dequant``).
DEQUANT_SUFFIX = ".w_dequant"

#: Name suffix of an attention op's KV-dequantization op (``<attn>.kv_dequant``).
KV_DEQUANT_SUFFIX = ".kv_dequant"

#: Rows of activations per dequantization of a weight tile (CTA tile M of Hopper GEMMs).
DEQUANT_TILE_M = 128

#: Format of the residual stream and the vector ops on it under a quantized scheme.
RESIDUAL = "fp16"
_RESIDUAL_KINDS = frozenset({OpKind.NORM, OpKind.ROPE, OpKind.ACTIVATION, OpKind.ELEMENTWISE})
_QUANT_AFTER = frozenset({OpKind.NORM, OpKind.ACTIVATION})


def quantize(graph: Graph) -> Graph:
    """Return ``graph`` with the scheme's activation-quantization and weight-dequantization ops
    (see module); unchanged when the precision adds no work."""
    p = graph.precision
    dequant = p.weight_dequant != "none" and p.dequant_ops > 0
    bits = DTYPE_BITS[p.activation]
    widen = bits < DTYPE_BITS[RESIDUAL] and p.act_quant_ops > 0
    kv_dequant = p.kv_dequant_ops > 0
    if not dequant and not p.act_quant_ops and not widen and not kv_dequant:
        return graph
    top = max((op.id for seg in graph.segments for op in seg.ops), default=-1)
    fresh: dict[tuple[str, int], int] = {}

    def new_id(tag: str, op: Op) -> int:
        if op.id < 0:
            return -1
        if (tag, op.id) not in fresh:
            fresh[(tag, op.id)] = top + 1 + len(fresh)
        return fresh[(tag, op.id)]

    segments = []
    for seg in graph.segments:
        out: list[Op] = []
        rewire: dict[int, int] = {}
        for op in seg.ops:
            if rewire and op.id >= 0:
                op = replace(op, inputs=tuple(rewire.get(i, i) for i in op.inputs))
            if widen and op.kind in _RESIDUAL_KINDS:
                op = _widened(op, bits)
            if widen and op.kind in (OpKind.GEMM, OpKind.LM_HEAD):
                op = _fp16_out(op)
            if dequant and op.kind in (OpKind.GEMM, OpKind.LM_HEAD):
                out.extend(_with_dequant(op, p.weight_dequant, p.dequant_ops,
                                         new_id("w_dequant", op)))
                continue
            if kv_dequant and op.kind in (OpKind.ATTN_SCORE, OpKind.ATTN_VALUE):
                out.extend(_with_kv_dequant(op, p.kv_dequant_ops, new_id("kv_dequant", op)))
                continue
            out.append(op)
            if p.act_quant_ops and op.kind in _QUANT_AFTER:
                rows, cols = op.dims
                qid = new_id("act_quant", op)
                out.append(Op(name=f"{op.name}.act_quant", kind=OpKind.ELEMENTWISE,
                              dims=op.dims, launches=0,
                              formats=replace(op.formats, act=p.activation),
                              flops=math.ceil(p.act_quant_ops * rows * cols), id=qid,
                              inputs=(op.id,) if qid >= 0 else ()))
                if qid >= 0:
                    rewire[op.id] = qid
        segments.append(replace(seg, ops=tuple(out)))
    return replace(graph, segments=tuple(segments))


def _widened(op: Op, bits: int) -> Op:
    """A residual-stream op moved to ``RESIDUAL`` from its ``bits``-bit format (module)."""
    scale = DTYPE_BITS[RESIDUAL]
    fmt = replace(op.formats, act=RESIDUAL)
    weight_bytes = op.weight_bytes
    if op.kind is OpKind.NORM and fmt.weight is not None:  # the gain vector: activation width
        weight_bytes = op.weight_bytes * scale // DTYPE_BITS[fmt.weight]
        fmt = replace(fmt, weight=RESIDUAL)
    return replace(op, formats=fmt, act_bytes=op.act_bytes * scale // bits,
                   weight_bytes=weight_bytes)


def _fp16_out(gemm: Op) -> Op:
    """A weight GEMM whose epilogue writes ``RESIDUAL`` (module): its ``M x N`` output bytes
    at that width instead of the activation format's."""
    m, n, _ = gemm.dims
    before = nbytes(m * n, gemm.formats.act)
    return replace(gemm, formats=replace(gemm.formats, out=RESIDUAL),
                   act_bytes=gemm.act_bytes - before + nbytes(m * n, RESIDUAL))


def _with_dequant(gemm: Op, place: str, ops_per_weight: float, did: int) -> list[Op]:
    """The dequant op and the GEMM, wired as ``place`` says (module)."""
    m, n, k = gemm.dims
    flops = math.ceil(ops_per_weight * k * n * math.ceil(m / DEQUANT_TILE_M))
    dq = Op(name=f"{gemm.name}{DEQUANT_SUFFIX}", kind=OpKind.ELEMENTWISE, dims=gemm.dims,
            formats=gemm.formats, launches=0, flops=flops, id=did,
            inputs=gemm.inputs if did >= 0 else ())
    if place == "mainloop" and did >= 0:
        gemm = replace(gemm, inputs=(did,))
    return [dq, gemm]


def _with_kv_dequant(attn: Op, ops_per_element: float, did: int) -> list[Op]:
    """The KV-dequant op beside its attention op (module)."""
    batch, heads, kv_heads, queries, keys, hd = attn.dims
    # elements of K (or V) x query tiles x the causal share of pairs, exactly
    per_tile = Fraction(ops_per_element) * batch * kv_heads * keys * hd
    kept = Fraction(attn.flops, 2 * batch * heads * queries * keys * hd)
    flops = math.ceil(per_tile * math.ceil(queries / DEQUANT_TILE_M) * kept)
    dq = Op(name=f"{attn.name}{KV_DEQUANT_SUFFIX}", kind=OpKind.ELEMENTWISE, dims=attn.dims,
            formats=attn.formats, launches=0, flops=flops, id=did,
            inputs=attn.inputs if did >= 0 else ())
    return [dq, attn]
