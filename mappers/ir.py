"""The op IR: immutable records of one forward pass, grouped into repeated segments.

A `Graph` is one step of one phase (a prefill, or one decode step) on one chip of a
tensor-parallel group. Identical layers are one `Segment` with a ``repeat`` count; every total
is ``sum(segment.repeat * op.field)``, so accounting is exact while the IR stays small.

``dims`` by kind (all per chip, after tensor-parallel sharding):

==========================  ==========================================================
kind                        dims
==========================  ==========================================================
gemm, lm_head               (M, N, K) for C[M,N] = A[M,K] @ W[K,N]
attn_score, attn_value      (seqs, heads, kv_heads, query_len, key_len, head_dim)
softmax                     (seqs, heads, query_len, key_len)
norm, rope, activation,     (rows, cols) of the elementwise operand
elementwise
embedding                   (tokens, hidden)
kv_write                    (tokens, kv_heads, head_dim); one per shape group
all_reduce                  (elements, tensor_parallel)
p2p                         (elements, from_stage, to_stage): a pipeline stage's send
transfer                    (bytes,): a move between two units' memories (`mappers.transfers`)
==========================  ==========================================================

A step is a ragged `Batch`: sequences that each bring their own new tokens on top of their own
cached context (prefill chunks and decode tokens may share a step). Weight GEMMs and
elementwise ops run over the step's total tokens; attention (``kv_write``, ``attn_score``,
``softmax``, ``attn_value``) is one set of ops per distinct ``(new_tokens, context)`` shape,
whose ``seqs`` counts the sequences of that shape, so 256 equal decode sequences are one set.

Every op carries the storage format of each of its operands (`OperandFormats`); unit models
read widths from there, never from byte counts (which are DRAM traffic, scales included).

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

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from sim.dtypes import DTYPE_BITS, check_dtype
from sim.errors import ConfigError


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


#: Where a scheme dequantizes its weights (`Precision.weight_dequant`).
DEQUANT_PLACES = ("none", "vector", "mainloop")

#: `Precision.kv_scale_group` codes: one static scale per (KV head, channel) of K and of V
#: (calibrated, shared by every token: FireQ), and one per (token, KV head) whatever the head
#: size (dynamic: QServe's KV4). A positive group G is ``ceil(head_dim / G)`` per token and head.
KV_SCALE_CHANNEL = -1
KV_SCALE_HEAD = -2


class Phase(StrEnum):
    PREFILL = "prefill"
    DECODE = "decode"


@dataclass(frozen=True, slots=True, kw_only=True)
class Precision:
    """Storage formats of a step's weights, activations and KV cache, and the format matrix
    products accumulate in. Matrix products run in the activation format (weights are
    dequantised on the fly where they differ).

    ``scale_group`` > 0 adds one ``scale_dtype`` scale per ``scale_group`` weights along
    ``K`` of every GEMM and LM-head weight (group-wise weight-only quantisation, as GPTQ and
    AWQ store it); 0 (the default) adds none, unless ``channel_scales`` adds one per output
    channel (column ``N``) of every such weight (SmoothQuant's and FireQ's per-channel INT
    weights).

    The work a quantization scheme adds (`mappers.quantize`; schemes in `mappers.schemes`):
    ``weight_dequant`` says where weights are dequantized (``none``, ``vector``: on the vector
    lanes in registers before the MMA, ``mainloop``: in the GEMM's main loop, serialised with
    it), costing ``dequant_ops`` vector ops per weight element each time a weight tile is
    dequantized; ``act_quant_ops`` vector ops per element quantize the activations after each
    norm.

    KV-cache scales (quantized KV, `mappers.lower`): ``kv_scale_group`` is 0 (none),
    `KV_SCALE_HEAD` (one per token and KV head), `KV_SCALE_CHANNEL` (one per KV head and
    channel, static: held with the weights) or ``G`` > 0 (``ceil(head_dim / G)`` per token and
    head), each a ``kv_scale_dtype`` value plus as wide a zero point when ``kv_zero_points``
    (asymmetric); K and V have theirs each. ``kv_dequant_ops`` vector ops per KV element
    dequantize the cache where attention runs (`mappers.quantize`)."""

    weight: str = "fp16"
    activation: str = "fp16"
    kv: str = "fp16"
    acc: str = "fp32"
    scale_group: int = 0
    scale_dtype: str = "fp16"
    channel_scales: bool = False
    weight_dequant: str = "none"
    dequant_ops: float = 0.0
    act_quant_ops: float = 0.0
    kv_scale_group: int = 0
    kv_scale_dtype: str = "fp16"
    kv_zero_points: bool = False
    kv_dequant_ops: float = 0.0

    def __post_init__(self) -> None:
        check_dtype(self.weight, "weight dtype")
        check_dtype(self.kv_scale_dtype, "kv scale dtype")
        if self.kv_scale_group < KV_SCALE_HEAD:
            raise ConfigError(f"kv_scale_group: must be > 0, 0 (none), head or channel, got "
                              f"{self.kv_scale_group}")
        if self.kv_dequant_ops < 0:
            raise ConfigError("kv_dequant_ops: must be >= 0")
        check_dtype(self.activation, "activation dtype")
        check_dtype(self.kv, "kv dtype")
        check_dtype(self.acc, "accumulator dtype")
        check_dtype(self.scale_dtype, "scale dtype")
        if self.scale_group < 0:
            raise ConfigError(f"scale group: must be >= 0 (0: no scales), got "
                              f"{self.scale_group}")
        if self.weight_dequant not in DEQUANT_PLACES:
            raise ConfigError(f"weight_dequant: must be one of {', '.join(DEQUANT_PLACES)}, "
                              f"got {self.weight_dequant!r}")
        if self.dequant_ops < 0 or self.act_quant_ops < 0:
            raise ConfigError("dequant_ops, act_quant_ops: must be >= 0")

    @property
    def weight_scale_group(self) -> int:
        """Weights along ``K`` that share one scale: ``scale_group``, or ``-1`` for one scale
        per output channel (the whole of ``K``), ``0`` for none."""
        return self.scale_group or (-1 if self.channel_scales else 0)

    def _kv_scale_bytes(self, scales: int) -> int:
        """Bytes of ``scales`` KV scales with their zero points, if any (whole bytes)."""
        bits = DTYPE_BITS[self.kv_scale_dtype] * (2 if self.kv_zero_points else 1)
        return -(-scales * bits // 8)

    def kv_token_scale_bytes(self, tokens: int, kv_heads: int, head_dim: int) -> int:
        """Bytes of the per-token scales (and zero points) of K, or of V, of ``tokens`` tokens
        over ``kv_heads`` heads of ``head_dim``; 0 unless scales are per token."""
        g = self.kv_scale_group
        if g == KV_SCALE_HEAD:
            per = 1
        elif g > 0:
            per = -(-head_dim // g)
        else:
            return 0
        return self._kv_scale_bytes(tokens * kv_heads * per)

    def kv_channel_scale_bytes(self, kv_heads: int, head_dim: int) -> int:
        """Bytes of the static per-channel scales (and zero points) of K, or of V, of one layer
        of ``kv_heads`` heads of ``head_dim``; 0 unless scales are per channel."""
        if self.kv_scale_group != KV_SCALE_CHANNEL:
            return 0
        return self._kv_scale_bytes(kv_heads * head_dim)


@dataclass(frozen=True, slots=True, kw_only=True)
class OperandFormats:
    """Storage format of each operand of one op (names from `sim.dtypes.DTYPE_BITS`); None for
    an operand the op does not have.

    ``act``: activations read and written (always present; matrix products and vector work run
    in this format). ``out``: the format of the output where it differs from ``act`` (a GEMM
    whose inputs a scheme quantizes but whose epilogue writes the fp16 residual stream;
    None: ``act``). ``weight``: the weight (or embedding-table) operand. ``kv``: the KV cache
    read or written. ``acc``: the accumulator of a reduction (matrix products, norms, softmax).
    ``scale_bytes``: bytes of quantisation scales (and zero points) the op reads with its
    weights, where a scheme adds them; they are part of the op's ``weight_bytes`` (DRAM
    traffic) and never part of an operand's width. ``scale_group``: weights along ``K`` per
    scale (`Precision.weight_scale_group`: -1 one per output channel, 0 none); ``scale``: the
    scales' format. ``kv_scale_bytes``: bytes of KV-cache scales (and zero points) the op reads
    or writes with its KV (part of its ``kv_bytes``); ``kv_scale_group``: their
    `Precision.kv_scale_group`; ``kv_scale``: their format.
    """

    act: str
    weight: str | None = None
    kv: str | None = None
    acc: str | None = None
    out: str | None = None
    scale_bytes: int = 0
    scale_group: int = 0
    scale: str = "fp16"
    kv_scale_bytes: int = 0
    kv_scale_group: int = 0
    kv_scale: str = "fp16"

    def __post_init__(self) -> None:
        check_dtype(self.act, "activation dtype")
        for field in ("weight", "kv", "acc", "out"):
            value = getattr(self, field)
            if value is not None:
                check_dtype(value, f"{field} dtype")
        check_dtype(self.scale, "scale dtype")
        if self.kv_scale_bytes < 0:
            raise ValueError(f"OperandFormats: kv_scale_bytes must be >= 0, got "
                             f"{self.kv_scale_bytes}")
        if self.scale_bytes < 0 or self.scale_group < -1:
            raise ValueError(f"OperandFormats: scale_bytes must be >= 0 and scale_group >= -1, "
                             f"got {self.scale_bytes}, {self.scale_group}")

    @property
    def output(self) -> str:
        """Format of the op's output: ``out``, else ``act``."""
        return self.out or self.act

    def bits(self, operand: str) -> int:
        """Storage bits per element of ``operand`` (``act``, ``weight``, ``kv``, ``acc``,
        ``out``);
        raises if the op has no such operand (an internal bug: a model read what is not
        there)."""
        dtype = getattr(self, operand)
        if dtype is None:
            raise ValueError(f"OperandFormats: no {operand} operand in {self}")
        return DTYPE_BITS[dtype]


@dataclass(frozen=True, slots=True, kw_only=True)
class SeqGroup:
    """``count`` sequences of one shape: ``new_tokens`` processed this step on top of
    ``context`` tokens already in their KV cache."""

    count: int
    new_tokens: int
    context: int

    def __post_init__(self) -> None:
        if self.count < 1 or self.new_tokens < 1 or self.context < 0:
            raise ValueError(f"SeqGroup: bad shape count={self.count} "
                             f"new_tokens={self.new_tokens} context={self.context}")


@dataclass(frozen=True, slots=True)
class Batch:
    """The sequences of one step (a ragged batch), as groups of equal shape.

    ``groups`` is canonical: one group per distinct ``(new_tokens, context)``, sorted by it,
    so two batches with the same sequences in any order are equal (and hash alike). Build one
    with `Batch.uniform` or `Batch.of`.
    """

    groups: tuple[SeqGroup, ...]

    def __post_init__(self) -> None:
        shapes = [(g.new_tokens, g.context) for g in self.groups]
        if not shapes or shapes != sorted(set(shapes)):
            raise ValueError(f"Batch: groups must be non-empty, distinct and sorted by "
                             f"(new_tokens, context); got {shapes} (use Batch.of)")

    @classmethod
    def uniform(cls, batch: int, new_tokens: int, context: int) -> Batch:
        """``batch`` sequences of ``new_tokens`` new tokens over ``context`` cached ones."""
        return cls((SeqGroup(count=batch, new_tokens=new_tokens, context=context),))

    @classmethod
    def of(cls, sequences: Iterable[tuple[int, int]]) -> Batch:
        """A ragged batch from ``(new_tokens, context)`` per sequence, in any order."""
        counts = Counter(tuple(s) for s in sequences)
        return cls(tuple(SeqGroup(count=n, new_tokens=q, context=c)
                         for (q, c), n in sorted(counts.items())))

    @property
    def sequences(self) -> int:
        """Number of sequences."""
        return sum(g.count for g in self.groups)

    @property
    def tokens(self) -> int:
        """New tokens over all sequences: the rows of every weight GEMM."""
        return sum(g.count * g.new_tokens for g in self.groups)

    @property
    def uniform_shape(self) -> tuple[int, int, int] | None:
        """``(batch, new_tokens, context)`` when every sequence has one shape, else None."""
        if len(self.groups) != 1:
            return None
        g = self.groups[0]
        return g.count, g.new_tokens, g.context


@dataclass(frozen=True, slots=True, kw_only=True)
class Op:
    """One operation on one chip. Bytes are DRAM traffic by class; FLOPs are exact integers.

    ``formats`` gives the storage format of each operand (unit models read widths there).
    ``launches`` is the kernel launches the op pays (the chip's per-op overhead): 0 for the
    attention ops of a ragged step's later shape groups, which run inside the kernel of the
    first group (varlen attention takes every sequence of a step in one launch).
    ``comm_bytes`` is the message each chip contributes to a collective (for a ``transfer``,
    the bytes it moves). ``unit`` is empty until the ``place`` pass names the unit that runs
    the op (for a ``transfer``, the link it uses). ``id`` and ``inputs`` make the graph a DAG
    (module docstring, "Dataflow").
    """

    name: str
    kind: OpKind
    dims: tuple[int, ...]
    formats: OperandFormats
    flops: int
    weight_bytes: int = 0
    act_bytes: int = 0
    kv_bytes: int = 0
    comm_bytes: int = 0
    launches: int = 1
    unit: str = ""
    id: int = -1
    inputs: tuple[int, ...] = ()

    @property
    def dtype(self) -> str:
        """The compute format: that of the activations (``formats.act``)."""
        return self.formats.act

    @property
    def bytes(self) -> int:
        """DRAM bytes moved (weights + activations + KV cache)."""
        return self.weight_bytes + self.act_bytes + self.kv_bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Segment:
    """Ops run in order, the whole sequence ``repeat`` times (layers ``layer`` onwards).
    ``layer`` is -1 for ops outside the layer stack (embedding, LM head). ``tag`` is the
    part of a training step the ops belong to (``forward``, ``recompute``, ``backward``,
    ``update``: `mappers.train`); empty in an inference step."""

    name: str
    layer: int
    repeat: int
    ops: tuple[Op, ...]
    tag: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Graph:
    """One step of one phase over the sequences of ``seqs`` (a ragged `Batch`); per chip of
    a ``tp``-way group, through all ``pp`` pipeline stages in turn."""

    model: str
    phase: Phase
    seqs: Batch
    tp: int
    precision: Precision
    segments: tuple[Segment, ...]
    pp: int = 1

    @property
    def batch(self) -> int:
        """Number of sequences in the step."""
        return self.seqs.sequences

    @property
    def tokens(self) -> int:
        """New tokens of the step, over all sequences."""
        return self.seqs.tokens

    def total(self, field: str) -> int:
        """Exact sum of an integer op field over the step, repeats included."""
        return sum(seg.repeat * sum(getattr(op, field) for op in seg.ops)
                   for seg in self.segments)

    def total_where(self, field: str, kinds: frozenset[OpKind]) -> int:
        return sum(seg.repeat * sum(getattr(op, field) for op in seg.ops if op.kind in kinds)
                   for seg in self.segments)
