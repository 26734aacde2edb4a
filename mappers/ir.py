"""The op IR: immutable records of one forward pass, grouped into repeated segments.

A `Graph` is one step of one phase (a prefill, or one decode step) on one chip of a
tensor-parallel group. Identical layers are one `Segment` with a ``repeat`` count; every total
is ``sum(segment.repeat * op.field)``, so accounting is exact while the IR stays small.

``dims`` by kind (all per chip, after tensor-parallel sharding):

==========================  ==========================================================
kind                        dims
==========================  ==========================================================
gemm, lm_head               (M, N, K) for C[M,N] = A[M,K] @ W[K,N]
attn_score, attn_value      (batch, heads, kv_heads, query_len, key_len, head_dim)
softmax                     (batch, heads, query_len, key_len)
norm, rope, activation,     (rows, cols) of the elementwise operand
elementwise
embedding                   (tokens, hidden)
kv_write                    (tokens, kv_heads, head_dim)
all_reduce                  (elements, tensor_parallel)
p2p                         (elements, from_stage, to_stage): a pipeline stage's send
transfer                    (bytes,): a move between two units' memories (`mappers.transfers`)
==========================  ==========================================================

Dataflow: every op has an ``id`` (unique in the graph, except that pipeline stages share their
layer ops) and ``inputs``, the ids of the ops whose outputs it reads, so the graph is a DAG.
Inside a segment, an input that names an op of the same segment at or after the reader's own
position is that op's output from the *previous repeat* (layer ``i + 1`` reads layer ``i``);
on the first repeat it is the segment's entry instead: the last op before the segment. An
input outside the segment is the latest instance of that op. An op with ``id`` -1 (built by
hand, without dataflow) reads the op before it, so such a graph runs in program order.

With pipeline parallelism (``pp`` stages) the layer stack is one `Segment` per stage, each
but the last followed by a ``pp_send`` segment whose ``p2p`` op sends the step's activations
to the next stage's chip; the graph spans every stage of the step, run one after another (one
batch in flight).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sim.dtypes import check_dtype


class OpKind(StrEnum):
    GEMM = "gemm"
    ATTN_SCORE = "attn_score"
    SOFTMAX = "softmax"
    ATTN_VALUE = "attn_value"
    NORM = "norm"
    ROPE = "rope"
    ACTIVATION = "activation"
    ELEMENTWISE = "elementwise"
    EMBEDDING = "embedding"
    LM_HEAD = "lm_head"
    KV_WRITE = "kv_write"
    ALL_REDUCE = "all_reduce"
    P2P = "p2p"
    TRANSFER = "transfer"


#: Kinds whose FLOPs are matrix products (the "2 x parameters x tokens + attention" part).
MATMUL_KINDS = frozenset({OpKind.GEMM, OpKind.LM_HEAD, OpKind.ATTN_SCORE, OpKind.ATTN_VALUE})


class Phase(StrEnum):
    PREFILL = "prefill"
    DECODE = "decode"


@dataclass(frozen=True, slots=True, kw_only=True)
class Precision:
    """Storage formats of weights, activations and the KV cache. Matrix products run in the
    activation format (weights are dequantised on the fly where they differ)."""

    weight: str = "fp16"
    activation: str = "fp16"
    kv: str = "fp16"

    def __post_init__(self) -> None:
        check_dtype(self.weight, "weight dtype")
        check_dtype(self.activation, "activation dtype")
        check_dtype(self.kv, "kv dtype")


@dataclass(frozen=True, slots=True, kw_only=True)
class Op:
    """One operation on one chip. Bytes are DRAM traffic by class; FLOPs are exact integers.

    ``comm_bytes`` is the message each chip contributes to a collective (for a ``transfer``,
    the bytes it moves). ``unit`` is empty until the ``place`` pass names the unit that runs
    the op (for a ``transfer``, the link it uses). ``id`` and ``inputs`` make the graph a DAG
    (module docstring, "Dataflow").
    """

    name: str
    kind: OpKind
    dims: tuple[int, ...]
    dtype: str
    flops: int
    weight_bytes: int = 0
    act_bytes: int = 0
    kv_bytes: int = 0
    comm_bytes: int = 0
    unit: str = ""
    id: int = -1
    inputs: tuple[int, ...] = ()

    @property
    def bytes(self) -> int:
        """DRAM bytes moved (weights + activations + KV cache)."""
        return self.weight_bytes + self.act_bytes + self.kv_bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Segment:
    """Ops run in order, the whole sequence ``repeat`` times (layers ``layer`` onwards).
    ``layer`` is -1 for ops outside the layer stack (embedding, LM head)."""

    name: str
    layer: int
    repeat: int
    ops: tuple[Op, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Graph:
    """One step of one phase for ``batch`` sequences: ``new_tokens`` tokens each, on top of
    ``context`` tokens already in the KV cache; per chip of a ``tp``-way group, through all
    ``pp`` pipeline stages in turn."""

    model: str
    phase: Phase
    batch: int
    new_tokens: int
    context: int
    tp: int
    precision: Precision
    segments: tuple[Segment, ...]
    pp: int = 1

    def total(self, field: str) -> int:
        """Exact sum of an integer op field over the step, repeats included."""
        return sum(seg.repeat * sum(getattr(op, field) for op in seg.ops)
                   for seg in self.segments)

    def total_where(self, field: str, kinds: frozenset[OpKind]) -> int:
        return sum(seg.repeat * sum(getattr(op, field) for op in seg.ops if op.kind in kinds)
                   for seg in self.segments)
