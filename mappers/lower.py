"""Pass 1, ``lower``: a model and a step become the op IR of one chip.

Conventions (docs/ops.md has the full table):

* A step is a ragged batch (`mappers.ir.Batch`): weight GEMMs and elementwise ops run over
  its total new tokens; attention is one set of ops per distinct sequence shape.
* Each op records the format of each operand (`mappers.ir.OperandFormats`), and its bytes are
  counted at those widths.
* Matrix products count ``2 M N K`` FLOPs, plus ``M N`` for a bias add.
* Elementwise ops count a fixed number of FLOPs per element (`FLOPS_PER_ELEMENT`); these are a
  bookkeeping convention, not instruction counts.
* Attention is a fused FlashAttention-style kernel: the score and probability matrices stay on
  chip, so softmax moves no DRAM bytes; K and V are read from the KV cache once per step.
  Causal attention counts only the (query, key) pairs the mask keeps. Sliding-window
  attention (Mistral) keeps only the last ``W`` keys of each query (itself included), and the
  step reads only the keys some query of it sees (`window_keys`): attention pairs and KV bytes
  stop growing once the context passes the window. A quantized KV cache's scales (and zero
  points) count in ``kv_bytes`` and ``formats.kv_scale_bytes``: per-token ones are written by
  ``kv_write`` and read with each cached key; static per-channel ones are read once per op.
* Mixture of experts (Mixtral, Qwen3-MoE): the MLP becomes a ``router`` GEMM (hidden ->
  experts, replicated across tensor-parallel chips), a ``router_topk`` softmax/top-k on the
  vector units, and the routed experts as two GEMMs ``expert_gate_up`` and ``expert_down``.
  A step's ``T`` tokens make ``T k`` token-expert rows spread over the expected number of
  distinct experts ``e`` they touch (`ModelConfig.expected_experts`); the ``e`` expert GEMMs
  of ``T k / e`` rows each are one GEMM of ``T k / e`` rows whose weight is the ``e``
  experts' weights side by side (columns for gate/up, rows of K for down), so the weight
  bytes are exactly those of the experts the step reads and the rows per weight are the
  rows each expert sees. FLOPs count the ``T k`` rows exactly. Each expert's MLP width is
  split across tensor-parallel chips as the dense MLP is. A shared expert (Qwen2-MoE) is a
  dense gated MLP over all ``T`` tokens (``shared_gate_up``, ``shared_act``,
  ``shared_down``), so every step reads its weights; its sigmoid gate is a one-column GEMM
  ``shared_gate`` (replicated, as the router) and ``shared_combine`` adds the gated shared
  output to the routed one.
* Causal LMs compute logits for the last position of each sequence only (as serving engines
  do); a bidirectional (diffusion) LM computes logits for every position it processes.
* Tensor parallelism follows Megatron-LM: QKV and gate/up projections split by columns, output
  and down projections by rows, each followed by an all-reduce of the hidden state; norms and
  the embedding table are replicated; the LM head is split over the vocabulary. KV heads are
  split when there are at least as many as chips, else replicated. An MLP width that ``tp``
  does not divide is split unevenly: the graph is that of the busiest chip, ``ceil(I / tp)``.
* Pipeline parallelism splits the layers into ``pp`` contiguous stages of near-equal size
  (`stage_layers`); after every stage but the last, a ``p2p`` op sends the step's activations
  (tokens x hidden) to the next stage. One graph holds all stages, in order.
* Dataflow (`mappers.wiring.wire`): each op reads what `READS` names. Attention reads K and V
  from the cache (after ``kv_write``) when there is a context; a prefill from scratch reads
  them straight from the QKV projection, so its cache write is off the critical path (it may
  overlap attention).
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import Callable, Sequence

from sim.dtypes import nbytes
from sim.errors import ConfigError

from .ir import Batch, Graph, Op, OperandFormats, OpKind, Phase, Precision, Segment
from .models import ModelConfig
from .wiring import wire

#: The ops `_Builder.attention` makes for each sequence shape, in order.
ATTENTION_OPS = ("kv_write", "attn_score", "softmax", "attn_value")

#: FLOPs per element of the elementwise ops (pdsim's convention; docs/ops.md).
FLOPS_PER_ELEMENT = {
    "rmsnorm": 4,      # square, accumulate, scale by 1/rms, scale by weight
    "layernorm": 7,    # accumulate, subtract mean, square, accumulate, scale, weight, bias
    "rope": 3,         # x*cos + rotate(x)*sin
    "silu_gate": 5,    # x*sigmoid(x) (negate, exp, add, divide) times the gate
    "gelu": 8,         # tanh approximation
    "softmax": 5,      # scale, max, subtract-exp, sum, normalise
    "alibi": 1,        # one bias add per score
    "residual": 1,
}


def causal_pairs(new_tokens: int, context: int, causal: bool,
                 window: int | None = None) -> int:
    """(query, key) pairs per sequence and head that attention computes.

    A causal step of ``L`` queries over ``c`` cached keys keeps ``L c + L (L + 1) / 2``
    pairs; a bidirectional one keeps all ``L (c + L)``. With a sliding ``window`` ``W``, query
    ``j`` (0-based in the step) keeps ``min(c + j + 1, W)`` keys.
    """
    if not causal:
        if window is not None:
            raise ValueError("causal_pairs: a sliding window needs a causal model")
        return new_tokens * (context + new_tokens)
    if window is None or window >= context + new_tokens:
        return new_tokens * context + new_tokens * (new_tokens + 1) // 2
    under = max(0, min(new_tokens, window - context))  # queries that see fewer than W keys
    return under * context + under * (under + 1) // 2 + (new_tokens - under) * window


def window_keys(new_tokens: int, context: int, window: int | None) -> int:
    """Keys a step of ``new_tokens`` queries over ``context`` cached keys reads: all
    ``context + new_tokens``, or under a sliding ``window`` ``W`` only from the first
    query's oldest visible key on (``W + new_tokens - 1`` at most)."""
    keys = context + new_tokens
    return keys if window is None else min(keys, window + new_tokens - 1)


def shard_heads(model: ModelConfig, tp: int) -> tuple[int, int]:
    """Query and KV heads per chip; `ConfigError` when ``tp`` cannot split the model."""
    if model.num_heads % tp:
        raise ConfigError(f"--tp: must divide {model.name}'s {model.num_heads} attention "
                          f"heads, got {tp}")
    kv = model.num_kv_heads
    if (kv >= tp and kv % tp) or (kv < tp and tp % kv):
        raise ConfigError(f"--tp: must divide, or be a multiple of, {model.name}'s {kv} KV "
                          f"heads, got {tp}")
    # An MLP width tp does not divide is split unevenly, ceil(width / tp) columns on the
    # busiest chip (as CENT splits Llama2-13B's 13824 over 20 devices); lower() costs that chip.
    return model.num_heads // tp, max(1, kv // tp)


def stage_layers(num_layers: int, pp: int) -> tuple[int, ...]:
    """Layers of each of ``pp`` contiguous pipeline stages: near-equal, the first
    ``num_layers % pp`` stages one layer longer (32 over 8: 4 each; 70 over 8: 9 x 6, 8 x 2).
    `ConfigError` when there are fewer layers than stages."""
    if pp < 1 or pp > num_layers:
        raise ConfigError(f"pipeline_parallel: must be between 1 and the model's {num_layers} "
                          f"layers, got {pp}")
    base, extra = divmod(num_layers, pp)
    return tuple(base + (s < extra) for s in range(pp))


def lower(model: ModelConfig, *, phase: Phase, precision: Precision, tp: int = 1,
          pp: int = 1, seqs: Batch | None = None, batch: int | None = None,
          new_tokens: int | None = None, context: int | None = None) -> Graph:
    """The op graph of one step on one chip of a ``tp``-way tensor-parallel group, through
    ``pp`` pipeline stages in turn.

    The step is the ragged batch ``seqs``, or (the uniform convenience) ``batch`` sequences
    of ``new_tokens`` new tokens each over ``context`` cached ones; give one or the other."""
    if seqs is None:
        if batch is None or new_tokens is None or context is None:
            raise ValueError("lower: give seqs, or batch, new_tokens and context")
        if batch < 1 or new_tokens < 1 or context < 0:
            raise ValueError(f"lower: bad step batch={batch} new_tokens={new_tokens} "
                             f"context={context}")  # the CLI validates users' values first
        seqs = Batch.uniform(batch, new_tokens, context)
    elif (batch, new_tokens, context) != (None, None, None):
        raise ValueError("lower: give seqs or batch/new_tokens/context, not both")
    shard_heads(model, tp)  # refuse a tp that cannot split the heads before a bad pp
    stages = stage_layers(model.num_layers, pp)
    b = _builder(model, precision, tp)
    tokens = seqs.tokens
    d = model.hidden_size
    pre, before, after, post = _fixed_ops(model, precision, tp, tokens, seqs.sequences)
    layer = list(before)
    for group_ops in attention_lowering(model, precision, tp)(seqs):
        layer += group_ops
    layer += after

    segments = [Segment(name="embed", layer=-1, repeat=1, ops=tuple(pre))]
    first = 0
    for s, count in enumerate(stages):  # a stage's segment is named by its first layer
        segments.append(Segment(name="layers", layer=first, repeat=count, ops=tuple(layer)))
        first += count
        if s + 1 < pp:
            segments.append(Segment(name="pp_send", layer=-1, repeat=1,
                                    ops=(b.p2p("pp_send", tokens * d, s),)))
    segments.append(Segment(name="head", layer=-1, repeat=1, ops=tuple(post)))
    segments = wire(segments, from_cache=any(g.context > 0 for g in seqs.groups))
    return Graph(model=model.name, phase=phase, seqs=seqs, tp=tp, precision=precision,
                 segments=tuple(segments), pp=pp)


def attention_lowering(model: ModelConfig, precision: Precision, tp: int
                       ) -> Callable[[Batch], list[list[Op]]]:
    """The lowering of the ops of a step that change with the context: a function of the
    step's batch that gives its attention ops, one list per sequence shape (in the batch's group
    order), run in one kernel (the first list pays the launch). A layer is its `_fixed_ops`
    ``before``, these, then ``after``."""
    heads, kv_heads = shard_heads(model, tp)
    b = _builder(model, precision, tp)

    def attention_ops(seqs: Batch, tags: Sequence[dict] | None = None) -> list[list[Op]]:
        """``tags``: more fields of each op, groups in order (a compiled graph's unit, id and
        inputs: `mappers.shapes`)."""
        n = len(ATTENTION_OPS)
        return [b.attention(g.count, g.new_tokens, g.context, heads, kv_heads,
                            launches=int(i == 0),
                            tags=None if tags is None else tags[i * n:(i + 1) * n])
                for i, g in enumerate(seqs.groups)]
    return attention_ops


@lru_cache(maxsize=64)
def _fixed_ops(model: ModelConfig, precision: Precision, tp: int, tokens: int, sequences: int
               ) -> tuple[tuple[Op, ...], tuple[Op, ...], tuple[Op, ...], tuple[Op, ...]]:
    """The ops of a step that do not depend on the context: before the layers, of a layer
    before and after its attention, and after the layers. Memoised: every decode step of a
    run has the same ones (and gets the same objects, which keeps later memos cheap)."""
    heads, kv_heads = shard_heads(model, tp)
    b = _Builder(model, precision, tp)
    d, hd, inter = model.hidden_size, model.head_dim, -(-model.intermediate_size // tp)

    pre = [b.embedding(tokens)]
    if model.embedding_norm:
        pre.append(b.norm("embed_norm", tokens, d))

    layer = [b.norm("attn_norm", tokens, d),
             b.gemm("qkv_proj", tokens, (heads + 2 * kv_heads) * hd, d,
                    bias=model.linear_bias or model.qkv_bias)]
    if model.qk_norm:
        layer.append(b.norm("qk_norm", tokens * (heads + kv_heads), hd, weight_elems=2 * hd))
    if model.position == "rope":
        layer.append(b.elementwise("rope", OpKind.ROPE, tokens, (heads + kv_heads) * hd,
                                   "rope", reads=1))
    before, layer = layer, []  # the step's attention goes between the two
    layer.append(b.gemm("o_proj", tokens, d, heads * hd))
    layer += b.all_reduce("attn_allreduce", tokens * d)
    layer.append(b.elementwise("attn_residual", OpKind.ELEMENTWISE, tokens, d, "residual",
                               reads=2))
    layer.append(b.norm("mlp_norm", tokens, d))
    if model.moe:
        layer += b.experts(tokens)
    elif model.gated_mlp:
        layer.append(b.gemm("gate_up_proj", tokens, 2 * inter, d))
        layer.append(b.elementwise("act", OpKind.ACTIVATION, tokens, inter, "silu_gate",
                                   reads=2))
    else:
        layer.append(b.gemm("up_proj", tokens, inter, d))
        layer.append(b.elementwise("act", OpKind.ACTIVATION, tokens, inter, "gelu", reads=1))
    if not model.moe:
        layer.append(b.gemm("down_proj", tokens, d, inter))
    layer += b.all_reduce("mlp_allreduce", tokens * d)
    layer.append(b.elementwise("mlp_residual", OpKind.ELEMENTWISE, tokens, d, "residual",
                               reads=2))

    logit_rows = tokens if not model.causal else sequences
    post = [b.norm("final_norm", tokens, d),
            b.gemm("lm_head", logit_rows, -(-model.vocab_size // tp), d, kind=OpKind.LM_HEAD,
                   bias=False)]
    return tuple(pre), tuple(before), tuple(layer), tuple(post)


@lru_cache(maxsize=64)
def _builder(model: ModelConfig, precision: Precision, tp: int) -> _Builder:
    """The op builder of ``model`` (it holds nothing else: one per run, not one per step)."""
    return _Builder(model, precision, tp)


class _Builder:
    """Makes op records with consistent byte accounting for one model and precision."""

    def __init__(self, model: ModelConfig, precision: Precision, tp: int) -> None:
        self.model, self.p, self.tp = model, precision, tp
        p = precision
        # The operand formats of each family of ops (shared records: the IR stays small).
        self.f_matmul = OperandFormats(act=p.activation, weight=p.weight, acc=p.acc,
                                       scale_group=p.weight_scale_group, scale=p.scale_dtype)
        # a norm's weight vector stays in the activation format whatever the weights' (no
        # scheme quantizes the norms' gains)
        self.f_norm = OperandFormats(act=p.activation, weight=p.activation, acc=p.acc)
        self.f_act = OperandFormats(act=p.activation)
        self.f_table = OperandFormats(act=p.activation, weight=p.weight)
        kv_scales = dict(kv_scale_group=p.kv_scale_group, kv_scale=p.kv_scale_dtype)
        self.f_kv_write = OperandFormats(act=p.activation, kv=p.kv, **kv_scales)
        self.f_attention = OperandFormats(act=p.activation, kv=p.kv, acc=p.acc, **kv_scales)
        self.f_softmax = OperandFormats(act=p.activation, acc=p.acc)

    def _act(self, elements: int) -> int:
        return nbytes(elements, self.p.activation)

    def _w(self, elements: int) -> int:
        return nbytes(elements, self.p.weight)

    def gemm(self, name: str, m: int, n: int, k: int, *, kind: OpKind = OpKind.GEMM,
             bias: bool | None = None) -> Op:
        bias = self.model.linear_bias if bias is None else bias
        formats, scales = self.f_matmul, 0
        group = self.p.weight_scale_group
        if group:  # one scale per group of K weights (or per output column) of each column
            scales = nbytes(n * (1 if group < 0 else -(-k // group)), self.p.scale_dtype)
            formats = replace(formats, scale_bytes=scales)
        return Op(name=name, kind=kind, dims=(m, n, k), formats=formats,
                  flops=2 * m * n * k + (m * n if bias else 0),
                  weight_bytes=self._w(n * k + (n if bias else 0)) + scales,
                  act_bytes=self._act(m * k) + self._act(m * n))

    def norm(self, name: str, rows: int, cols: int, *, weight_elems: int | None = None) -> Op:
        kind = self.model.norm
        if weight_elems is None:
            weight_elems = cols * (2 if kind == "layernorm" else 1)
        return Op(name=name, kind=OpKind.NORM, dims=(rows, cols), formats=self.f_norm,
                  flops=FLOPS_PER_ELEMENT[kind] * rows * cols,
                  weight_bytes=self._act(weight_elems), act_bytes=2 * self._act(rows * cols))

    def elementwise(self, name: str, kind: OpKind, rows: int, cols: int, flop_key: str, *,
                    reads: int) -> Op:
        """``reads`` operands of ``rows x cols`` in, one out."""
        elements = rows * cols
        return Op(name=name, kind=kind, dims=(rows, cols), formats=self.f_act,
                  flops=FLOPS_PER_ELEMENT[flop_key] * elements,
                  act_bytes=(reads + 1) * self._act(elements))

    def embedding(self, tokens: int) -> Op:
        d = self.model.hidden_size
        return Op(name="embed", kind=OpKind.EMBEDDING, dims=(tokens, d), formats=self.f_table,
                  flops=0, weight_bytes=self._w(tokens * d), act_bytes=self._act(tokens * d))

    def attention(self, batch: int, new_tokens: int, context: int, heads: int,
                  kv_heads: int, *, launches: int = 1,
                  tags: Sequence[dict] | None = None) -> list[Op]:
        """`ATTENTION_OPS` of ``batch`` sequences; ``tags``: more fields of each."""
        wr, sc, sm, av = ({},) * 4 if tags is None else tags
        hd, kv, window = self.model.head_dim, self.p.kv, self.model.sliding_window
        tokens, keys = batch * new_tokens, window_keys(new_tokens, context, window)
        scores = batch * heads * causal_pairs(new_tokens, context, self.model.causal, window)
        kv_tile = batch * kv_heads * keys * hd  # K (or V) elements read per step
        dims = (batch, heads, kv_heads, new_tokens, keys, hd)
        softmax_flops = FLOPS_PER_ELEMENT["softmax"] + (
            FLOPS_PER_ELEMENT["alibi"] if self.model.position == "alibi" else 0)
        # KV scales (`Precision.kv_scale_group`): per-token ones are written with the new K
        # and V and read with every cached key; static per-channel ones are read once per op
        p = self.p
        write_scales = 2 * p.kv_token_scale_bytes(tokens, kv_heads, hd)
        read_scales = (p.kv_token_scale_bytes(batch * keys, kv_heads, hd)
                       + p.kv_channel_scale_bytes(kv_heads, hd))
        f_write, f_read = self.f_kv_write, self.f_attention
        if write_scales:
            f_write = replace(f_write, kv_scale_bytes=write_scales)
        if read_scales:
            f_read = replace(f_read, kv_scale_bytes=read_scales)
        return [
            Op(name="kv_write", kind=OpKind.KV_WRITE, dims=(tokens, kv_heads, hd),
               formats=f_write, launches=launches, flops=0,
               act_bytes=self._act(2 * tokens * kv_heads * hd),
               kv_bytes=nbytes(2 * tokens * kv_heads * hd, kv) + write_scales, **wr),
            Op(name="attn_score", kind=OpKind.ATTN_SCORE, dims=dims, formats=f_read,
               launches=launches, flops=2 * scores * hd, act_bytes=self._act(tokens * heads * hd),
               kv_bytes=nbytes(kv_tile, kv) + read_scales, **sc),
            Op(name="softmax", kind=OpKind.SOFTMAX, dims=(batch, heads, new_tokens, keys),
               formats=self.f_softmax, launches=launches, flops=softmax_flops * scores, **sm),
            Op(name="attn_value", kind=OpKind.ATTN_VALUE, dims=dims, formats=f_read,
               launches=launches, flops=2 * scores * hd, act_bytes=self._act(tokens * heads * hd),
               kv_bytes=nbytes(kv_tile, kv) + read_scales, **av),
        ]

    def experts(self, tokens: int) -> list[Op]:
        """Router, top-k and the routed experts of a MoE MLP over ``tokens`` tokens (module
        docstring): gate/up, activation, down."""
        m, d = self.model, self.model.hidden_size
        inter = -(-m.expert_intermediate_size // self.tp)
        rows = tokens * m.experts_per_token  # token-expert pairs
        touched = m.expected_experts(tokens)
        per_expert = max(1, round(rows / touched))
        gate_up = self.gemm("expert_gate_up", per_expert, round(touched * 2 * inter), d)
        down = self.gemm("expert_down", per_expert, d, round(touched * inter))
        # FLOPs and activation bytes count every token-expert row exactly
        gate_up = replace(gate_up, flops=2 * rows * 2 * inter * d,
                          act_bytes=self._act(rows * d) + self._act(rows * 2 * inter))
        down = replace(down, flops=2 * rows * d * inter,
                       act_bytes=self._act(rows * inter) + self._act(rows * d))
        ops = [self.gemm("router", tokens, m.num_experts, d, bias=False),
               self.elementwise("router_topk", OpKind.ELEMENTWISE, tokens, m.num_experts,
                                "softmax", reads=1),
               gate_up,
               self.elementwise("act", OpKind.ACTIVATION, rows, inter, "silu_gate", reads=2),
               down]
        if m.shared_expert_intermediate_size:
            shared = -(-m.shared_expert_intermediate_size // self.tp)
            ops += [self.gemm("shared_gate_up", tokens, 2 * shared, d, bias=False),
                    self.elementwise("shared_act", OpKind.ACTIVATION, tokens, shared,
                                     "silu_gate", reads=2),
                    self.gemm("shared_down", tokens, d, shared, bias=False)]
            if m.shared_expert_gate:
                ops.append(self.gemm("shared_gate", tokens, 1, d, bias=False))
            # routed + sigmoid(gate) x shared: one pass over the two outputs
            ops.append(self.elementwise("shared_combine", OpKind.ELEMENTWISE, tokens, d,
                                        "residual", reads=2))
        return ops

    def p2p(self, name: str, elements: int, stage: int) -> Op:
        """Stage ``stage`` sends ``elements`` activations to stage ``stage + 1``: each chip of
        the tensor-parallel group sends the whole hidden state to its peer (no DRAM bytes: the
        activations leave from on-chip buffers, as for the all-reduce)."""
        return Op(name=name, kind=OpKind.P2P, dims=(elements, stage, stage + 1),
                  formats=self.f_act, flops=0, comm_bytes=self._act(elements))

    def all_reduce(self, name: str, elements: int) -> list[Op]:
        if self.tp == 1:
            return []
        return [Op(name=name, kind=OpKind.ALL_REDUCE, dims=(elements, self.tp),
                   formats=self.f_act, flops=0, comm_bytes=self._act(elements))]
