"""A training step in the op IR: forward, (recompute,) backward and optimizer update.

`lower_train` turns a model and a `TrainSpec` into one `Graph` of ordinary GEMM, attention
and elementwise ops, each `Segment` tagged with the part of the step it belongs to
(``forward``, ``recompute``, ``backward``, ``update``), so the unit models cost them as they
cost inference ops. docs/training.md gives every formula; in short:

* Forward: the prefill graph of ``batch`` sequences of ``seq`` tokens (`mappers.lower`), with
  no KV-cache writes, logits for every position, a cross-entropy ``loss`` op, and under LoRA
  the adapter GEMMs ``lora_<t>_a`` (``X A``) and ``lora_<t>_b`` (``(X A) B``) plus their add.
* Backward, per forward op in reverse order: a GEMM ``Y[M,N] = X[M,K] W[K,N]`` gives
  ``dX = dY W^T`` (``.dx``, dims ``(M, K, N)``) and, when ``W`` is trained,
  ``dW = X^T dY`` (``.dw``, dims ``(K, N, M)``), ``2 M N K`` FLOPs each: twice the forward's
  exactly; a bias adds ``db`` (``M N`` FLOPs). Attention is FlashAttention-2's backward (Dao,
  2023, Alg. 2): ``D = rowsum(dO o O)``, recompute ``S = Q K^T`` and ``P``, then ``dV``,
  ``dP``, ``dS``, ``dQ``, ``dK``: five matrix products of the forward score's size. Norms,
  activations, RoPE, residuals and the loss get elementwise backward ops
  (`FLOPS_PER_ELEMENT_BWD`); tensor parallelism's all-reduces move to the column-parallel
  GEMMs' ``dX``.
* Recompute (``full``): every layer's forward again before its backward (activation
  checkpointing at layer boundaries).
* Reuse (``activations``, Alchemist): the sequences were prefilled and recorded by serving,
  so the embedding and the layers' forward (and any recompute) run zero times; the head's
  forward (logits for every position, the loss) and the whole backward still run.
* Update: one AdamW op over the trainable parameters of the chip (`adamw_op`).

Every op has ``id`` -1, so the schedule runs the step in program order (one chip, no
overlap between forward and backward). MoE models and pipeline parallelism are refused.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sim.dtypes import DTYPE_BITS, nbytes
from sim.errors import ConfigError

from .ir import Graph, Op, OperandFormats, OpKind, Phase, Precision, Segment
from .lower import FLOPS_PER_ELEMENT, lower, shard_heads
from .models import ModelConfig

#: LoRA target projections; ``q``, ``k``, ``v`` live in ``qkv_proj``, ``gate`` and ``up`` in
#: ``gate_up_proj`` (``up`` is ``up_proj`` in a plain MLP).
LORA_TARGETS = ("q", "k", "v", "o", "gate", "up", "down")
RECOMPUTE = ("none", "full")
#: ``activations``: the step trains on sequences whose prefill a serving instance ran and
#: recorded (Alchemist), so the layers' forward (and its recompute) is not run again.
REUSE = ("none", "activations")
#: Formats the optimizer state (AdamW's m, v and the master weights) may be kept in.
OPTIMIZER_DTYPES = ("fp32", "bf16", "fp16")
TAGS = ("forward", "recompute", "backward", "update")

#: Backward FLOPs per element (pdsim's convention, docs/training.md): ``<norm>`` is ``dx``
#: and ``<norm>_dweight`` the gain (and bias) gradient of a norm.
FLOPS_PER_ELEMENT_BWD = {
    "rmsnorm": 6,            # g*dy, *x, row-sum, scale x by it/d/rms^2, subtract, /rms
    "rmsnorm_dweight": 2,    # x_hat*dy, accumulate over rows
    "layernorm": 9,          # rmsnorm's 6 + row-sum of g*dy, subtract its mean, centre x
    "layernorm_dweight": 3,  # x_hat*dy, accumulate (gain); accumulate dy (bias)
    "rope": 3,               # the inverse rotation
    "silu_gate": 12,         # recompute sigmoid (4), silu' = s(1 + a(1 - s)) (3), da (2), db (3)
    "gelu": 16,              # twice the forward's tanh approximation
    "residual": 1,           # two gradient streams merge
    "loss": 1,               # dlogits = p - onehot
    "attn_dot": 2,           # D = rowsum(dO o O): multiply, accumulate
    "attn_p_ds": 4,          # P = exp(S - L) (2), dS = P o (dP - D) (2)
    "embedding": 1,          # scatter-add of dY rows into the table's gradient
}
#: AdamW FLOPs per trainable parameter: m (3), v (4), bias corrections (2), sqrt(v) + eps
#: (2), m / (.) (1), + weight decay (2), lr scale and subtract (2).
ADAMW_FLOPS_PER_PARAM = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainSpec:
    """One training step: ``batch`` sequences of ``seq`` tokens; full fine-tuning
    (``lora_rank`` None) or LoRA adapters of rank ``lora_rank`` on ``lora_targets``;
    activation ``recompute`` ``none`` or ``full``; AdamW state in ``optimizer_dtype``."""

    batch: int
    seq: int
    lora_rank: int | None = None
    lora_targets: tuple[str, ...] = ("q", "v")
    recompute: str = "none"
    optimizer_dtype: str = "fp32"
    reuse: str = "none"

    def __post_init__(self) -> None:
        if isinstance(self.batch, bool) or not isinstance(self.batch, int) or self.batch < 1:
            raise ConfigError(f"--batch: must be a positive integer, got {self.batch!r}")
        if isinstance(self.seq, bool) or not isinstance(self.seq, int) or self.seq < 1:
            raise ConfigError(f"--seq: must be a positive integer, got {self.seq!r}")
        if self.lora_rank is not None and (not isinstance(self.lora_rank, int)
                                           or self.lora_rank < 1):
            raise ConfigError(f"--lora-rank: must be a positive integer (omit it for full "
                              f"fine-tuning), got {self.lora_rank!r}")
        bad = [t for t in self.lora_targets if t not in LORA_TARGETS]
        if bad or not self.lora_targets or len(set(self.lora_targets)) < len(self.lora_targets):
            raise ConfigError(f"--lora-targets: distinct names from {','.join(LORA_TARGETS)}, "
                              f"got {','.join(self.lora_targets) or 'none'}")
        if self.recompute not in RECOMPUTE:
            raise ConfigError(f"--recompute: must be one of {', '.join(RECOMPUTE)}, got "
                              f"{self.recompute!r}")
        if self.reuse not in REUSE:
            raise ConfigError(f"--reuse: must be one of {', '.join(REUSE)}, got {self.reuse!r}")
        if self.optimizer_dtype not in OPTIMIZER_DTYPES:
            raise ConfigError(f"--optimizer-dtype: must be one of {', '.join(OPTIMIZER_DTYPES)}"
                              f", got {self.optimizer_dtype!r}")

    @property
    def lora(self) -> bool:
        return self.lora_rank is not None

    @property
    def tokens(self) -> int:
        return self.batch * self.seq


def check_trainable(model: ModelConfig, spec: TrainSpec, *, pp: int = 1) -> None:
    """`ConfigError` for what pdsim cannot lower a training step of."""
    if model.moe:
        raise ConfigError(f"--model: training steps of mixture-of-experts models are not "
                          f"modelled yet ({model.name} has {model.num_experts} experts)")
    if pp != 1:
        raise ConfigError(f"pipeline_parallel: training steps need 1 pipeline stage, got {pp}")
    if spec.lora:
        if "gate" in spec.lora_targets and not model.gated_mlp:
            raise ConfigError(f"--lora-targets: {model.name} has no gate projection (allowed: "
                              f"q,k,v,o,up,down)")


def adapter_shapes(model: ModelConfig, spec: TrainSpec, tp: int) -> dict[str, tuple[str, int, int]]:
    """Per LoRA target: the base GEMM it adapts and the adapter's ``(K, N)`` on one chip
    (``A`` is ``K x r``, ``B`` is ``r x N``). Column-parallel targets split ``N`` over the
    chips, row-parallel ones (``o``, ``down``) split ``K``, as their base GEMMs."""
    if not spec.lora:
        return {}
    heads, kv_heads = shard_heads(model, tp)
    d, hd, inter = model.hidden_size, model.head_dim, -(-model.intermediate_size // tp)
    up = "gate_up_proj" if model.gated_mlp else "up_proj"
    shapes = {"q": ("qkv_proj", d, heads * hd), "k": ("qkv_proj", d, kv_heads * hd),
              "v": ("qkv_proj", d, kv_heads * hd), "o": ("o_proj", heads * hd, d),
              "gate": ("gate_up_proj", d, inter), "up": (up, d, inter),
              "down": ("down_proj", inter, d)}
    return {t: shapes[t] for t in LORA_TARGETS if t in spec.lora_targets}


def lower_train(model: ModelConfig, spec: TrainSpec, *, precision: Precision, tp: int = 1,
                pp: int = 1) -> Graph:
    """The op graph of one training step on one chip of a ``tp``-way group (module
    docstring); segments tagged ``forward``, ``recompute``, ``backward``, ``update``."""
    check_trainable(model, spec, pp=pp)
    fwd = lower(model, phase=Phase.PREFILL, precision=precision, tp=tp, batch=spec.batch,
                new_tokens=spec.seq, context=0)
    b = _TrainBuilder(model, spec, precision, tp)
    embed, layers, head = (s.ops for s in fwd.segments)
    layer = b.forward_layer(layers)
    head = b.forward_head(head)
    n = model.num_layers
    # Reuse: serving's prefill ran the embedding and every layer and recorded what their
    # backward needs, so those segments are not run. The head stays: serving's prefill made
    # logits for the last position only.
    reuse = spec.reuse == "activations"
    segments = [] if reuse else [
        Segment(name="embed", layer=-1, repeat=1, ops=b.plain(embed), tag="forward"),
        Segment(name="layers", layer=0, repeat=n, ops=layer, tag="forward")]
    segments += [Segment(name="head", layer=-1, repeat=1, ops=head, tag="forward"),
                 Segment(name="head_bwd", layer=-1, repeat=1, ops=b.backward(head),
                         tag="backward")]
    if spec.recompute == "full" and not reuse:  # checkpointed layers: each layer's forward again
        segments.append(Segment(name="layers_recompute", layer=0, repeat=n, ops=layer,
                                tag="recompute"))
    segments.append(Segment(name="layers_bwd", layer=0, repeat=n, ops=b.backward(layer),
                            tag="backward"))
    embed_bwd = b.backward(b.plain(embed))
    if embed_bwd:
        segments.append(Segment(name="embed_bwd", layer=-1, repeat=1, ops=embed_bwd,
                                tag="backward"))
    segments.append(Segment(name="update", layer=-1, repeat=1,
                            ops=(b.adamw(trainable_parameters(model, spec, tp)),), tag="update"))
    return Graph(model=model.name, phase=Phase.PREFILL, seqs=fwd.seqs, tp=tp,
                 precision=precision, segments=tuple(segments), pp=1)


def trainable_parameters(model: ModelConfig, spec: TrainSpec, tp: int) -> int:
    """Trainable parameters on one chip: the adapters' ``r (K + N)`` per target and layer
    under LoRA, else every parameter the chip holds (`chip_parameters`)."""
    if spec.lora:
        return model.num_layers * sum(spec.lora_rank * (k + n)
                                      for _, k, n in adapter_shapes(model, spec, tp).values())
    return chip_parameters(model, tp)


def chip_parameters(model: ModelConfig, tp: int) -> int:
    """Base-model parameters on one chip of a ``tp``-way group: the layers' GEMM weights (and
    biases) as sharded, their norms (replicated), the embedding table (replicated), the final
    norm and the LM head's vocabulary shard (none when tied to the embedding)."""
    g = lower(model, phase=Phase.PREFILL, precision=Precision(), tp=tp, batch=1,
              new_tokens=1, context=0)
    embed, layers, head = g.segments
    per_layer = sum(_weight_elements(op) for op in layers.ops)
    table = model.vocab_size * model.hidden_size
    rest = sum(_weight_elements(op) for op in (*embed.ops, *head.ops)
               if op.kind is not OpKind.LM_HEAD or not model.tie_word_embeddings)
    return model.num_layers * per_layer + table + rest


def _weight_elements(op: Op) -> int:
    """Weight elements op ``op`` holds (GEMMs: ``K N`` plus a bias of ``N``; norms: their
    gains; the embedding's table is counted by the caller)."""
    if op.kind in (OpKind.GEMM, OpKind.LM_HEAD):
        m, n, k = op.dims
        return n * k + (n if op.flops != 2 * m * n * k else 0)
    if op.kind is OpKind.NORM:
        return op.weight_bytes // (DTYPE_BITS[op.formats.act] // 8)
    return 0


class _TrainBuilder:
    """Makes a training step's op records for one model, spec and precision."""

    def __init__(self, model: ModelConfig, spec: TrainSpec, precision: Precision,
                 tp: int) -> None:
        self.model, self.spec, self.p, self.tp = model, spec, precision, tp
        self.adapters = adapter_shapes(model, spec, tp)
        self.f_matmul = OperandFormats(act=precision.activation, weight=precision.weight,
                                       acc=precision.acc)
        self.f_act = OperandFormats(act=precision.activation)
        self.f_norm = OperandFormats(act=precision.activation, weight=precision.activation,
                                     acc=precision.acc)

    def _a(self, elements: int) -> int:
        return nbytes(elements, self.p.activation)

    def _w(self, elements: int) -> int:
        return nbytes(elements, self.p.weight)

    @staticmethod
    def plain(ops: tuple[Op, ...]) -> tuple[Op, ...]:
        """``ops`` without dataflow ids (program order) and without KV-cache writes (a
        training step keeps K and V as activations)."""
        return tuple(replace(op, id=-1, inputs=()) for op in ops
                     if op.kind is not OpKind.KV_WRITE)

    def gemm(self, name: str, m: int, n: int, k: int, *, weight_bytes: int) -> Op:
        return Op(name=name, kind=OpKind.GEMM, dims=(m, n, k), formats=self.f_matmul,
                  flops=2 * m * n * k, weight_bytes=weight_bytes,
                  act_bytes=self._a(m * k) + self._a(m * n))

    def elementwise(self, name: str, kind: OpKind, rows: int, cols: int, flops_per: int, *,
                    operands: int, weight_bytes: int = 0, extra_bytes: int = 0) -> Op:
        """``operands`` activation tensors of ``rows x cols`` read or written."""
        return Op(name=name, kind=kind, dims=(rows, cols),
                  formats=self.f_norm if kind is OpKind.NORM else self.f_act,
                  flops=flops_per * rows * cols, weight_bytes=weight_bytes,
                  act_bytes=operands * self._a(rows * cols) + extra_bytes)

    def forward_layer(self, ops: tuple[Op, ...]) -> tuple[Op, ...]:
        """A layer's forward ops, with each adapted GEMM followed by its adapters."""
        out: list[Op] = []
        for op in self.plain(ops):
            out.append(op)
            for t, (base, k, n) in self.adapters.items():
                if base == op.name:
                    m, r = op.dims[0], self.spec.lora_rank
                    out += [self.gemm(f"lora_{t}_a", m, r, k, weight_bytes=self._w(k * r)),
                            self.gemm(f"lora_{t}_b", m, n, r, weight_bytes=self._w(r * n)),
                            self.elementwise(f"lora_{t}_add", OpKind.ELEMENTWISE, m, n,
                                             FLOPS_PER_ELEMENT["residual"], operands=3)]
        return tuple(out)

    def forward_head(self, ops: tuple[Op, ...]) -> tuple[Op, ...]:
        """The final norm, logits for every position and the cross-entropy loss."""
        norm, head = self.plain(ops)
        m, n, k = head.dims
        rows = self.spec.tokens
        head = replace(head, dims=(rows, n, k), flops=head.flops // m * rows,
                       act_bytes=self._a(rows * k) + self._a(rows * n))
        loss = self.elementwise("loss", OpKind.ELEMENTWISE, rows, n,
                                FLOPS_PER_ELEMENT["softmax"], operands=1)
        return norm, head, loss

    @property
    def full(self) -> bool:
        """Whether every base weight gets a gradient (full fine-tuning; LoRA: none does)."""
        return not self.spec.lora

    def backward(self, ops: tuple[Op, ...]) -> tuple[Op, ...]:
        """The backward ops of forward ``ops``, in reverse order."""
        out: list[Op] = []
        rev = list(reversed(ops))
        i = 0
        while i < len(rev):
            op = rev[i]
            if op.kind is OpKind.ATTN_VALUE:  # attn_value, softmax, attn_score: one kernel
                score = rev[i + 2]
                out += self.attention(score)
                i += 3
                continue
            out += self.op_backward(op)
            i += 1
        return tuple(out)

    def op_backward(self, op: Op) -> list[Op]:
        name, model = op.name, self.model
        if op.kind in (OpKind.GEMM, OpKind.LM_HEAD):
            return self.gemm_backward(op)
        if op.kind is OpKind.NORM:
            rows, cols = op.dims
            key = model.norm
            per = FLOPS_PER_ELEMENT_BWD[key]
            grad_bytes = 0
            if self.full:
                per += FLOPS_PER_ELEMENT_BWD[f"{key}_dweight"]
                grad_bytes = op.weight_bytes
            return [self.elementwise(f"{name}.bwd", OpKind.NORM, rows, cols, per, operands=3,
                                     weight_bytes=op.weight_bytes + grad_bytes)]
        if op.kind is OpKind.ROPE:
            rows, cols = op.dims
            return [self.elementwise(f"{name}.bwd", OpKind.ROPE, rows, cols,
                                     FLOPS_PER_ELEMENT_BWD["rope"], operands=2)]
        if op.kind is OpKind.ACTIVATION:
            rows, cols = op.dims
            gated = model.gated_mlp
            return [self.elementwise(f"{name}.bwd", OpKind.ACTIVATION, rows, cols,
                                     FLOPS_PER_ELEMENT_BWD["silu_gate" if gated else "gelu"],
                                     operands=5 if gated else 3)]
        if op.kind is OpKind.ALL_REDUCE:
            return []  # the backward all-reduces follow the column-parallel dX (gemm_backward)
        if op.kind is OpKind.EMBEDDING:
            if not self.full:
                return []
            rows, cols = op.dims
            return [self.elementwise("embed.bwd", OpKind.ELEMENTWISE, rows, cols,
                                     FLOPS_PER_ELEMENT_BWD["embedding"], operands=1,
                                     weight_bytes=2 * self._w(rows * cols))]
        if name == "loss":
            rows, cols = op.dims
            return [self.elementwise("loss.bwd", OpKind.ELEMENTWISE, rows, cols,
                                     FLOPS_PER_ELEMENT_BWD["loss"], operands=2)]
        if name.startswith("lora_"):  # y = XW + (XA)B: dX gets the adapter's dX added
            _, k, _ = self.adapters[name.split("_")[1]]
            return [self.elementwise(f"{name}.bwd", OpKind.ELEMENTWISE, op.dims[0], k,
                                     FLOPS_PER_ELEMENT_BWD["residual"], operands=3)]
        if op.kind is OpKind.ELEMENTWISE:  # a residual: the two gradient streams merge
            rows, cols = op.dims
            return [self.elementwise(f"{name}.bwd", OpKind.ELEMENTWISE, rows, cols,
                                     FLOPS_PER_ELEMENT_BWD["residual"], operands=3)]
        raise ValueError(f"lower_train: no backward for op {name} ({op.kind})")

    def gemm_backward(self, op: Op) -> list[Op]:
        """``dX = dY W^T`` always (the gradient flows on through frozen weights); ``dW =
        X^T dY`` and the bias's ``db`` when the weight is trained (adapters always are)."""
        m, n, k = op.dims
        name, kind = op.name, op.kind
        adapter = name.startswith("lora_")
        w = self._w(n * k)
        dx = replace(self.gemm(f"{name}.dx", m, k, n, weight_bytes=w), kind=kind)
        ops = [dx]
        if adapter or self.full:
            ops.append(replace(self.gemm(f"{name}.dw", k, n, m, weight_bytes=w), kind=kind,
                               act_bytes=self._a(m * k) + self._a(m * n)))
            bias = op.flops - 2 * m * n * k
            if bias:
                ops.append(self.elementwise(f"{name}.db", OpKind.ELEMENTWISE, m, n, 1,
                                            operands=1, weight_bytes=self._w(n)))
        if name in ("qkv_proj", "gate_up_proj", "up_proj") and self.tp > 1:
            # Megatron's f operator: the column-parallel input's gradient is all-reduced
            ops.append(Op(name=f"{name}.allreduce", kind=OpKind.ALL_REDUCE,
                          dims=(m * k, self.tp), formats=self.f_act, flops=0,
                          comm_bytes=self._a(m * k)))
        return ops

    def attention(self, score: Op) -> list[Op]:
        """FlashAttention-2's backward of one attention set (``score`` its forward
        ``attn_score``): five matrix products of the score's size, the row dot ``D`` and the
        elementwise ``P``/``dS``. Bytes: Q, K, V, O, dO, L read and dQ, dK, dV written once
        (the compulsory traffic, as the forward counts K and V once)."""
        b, heads, kv_heads, lq, lk, hd = score.dims
        pairs_hd = score.flops // 2  # (query, key) pairs kept x head_dim
        scores = pairs_hd // hd
        q = self._a(b * lq * heads * hd)
        kv = self._a(b * lk * kv_heads * hd)
        rows32 = nbytes(b * lq * heads, self.p.acc)  # L or D: one fp32 per query row and head
        f_att = OperandFormats(act=self.p.activation, kv=self.p.activation, acc=self.p.acc)

        def mm(name: str, kind: OpKind, act: int, kvb: int = 0) -> Op:
            return Op(name=name, kind=kind, dims=score.dims, formats=f_att,
                      flops=2 * pairs_hd, act_bytes=act, kv_bytes=kvb, launches=0)
        dot = self.elementwise("attn_bwd_dot", OpKind.ELEMENTWISE, b * lq * heads, hd,
                               FLOPS_PER_ELEMENT_BWD["attn_dot"], operands=2,
                               extra_bytes=rows32)
        return [dot,
                replace(mm("attn_bwd_s", OpKind.ATTN_SCORE, q, kv), launches=1),
                Op(name="attn_bwd_p_ds", kind=OpKind.SOFTMAX, dims=(b, heads, lq, lk),
                   formats=OperandFormats(act=self.p.activation, acc=self.p.acc), launches=0,
                   flops=FLOPS_PER_ELEMENT_BWD["attn_p_ds"] * scores, act_bytes=2 * rows32),
                mm("attn_bwd_dv", OpKind.ATTN_VALUE, q + kv),    # dO in, dV out
                mm("attn_bwd_dp", OpKind.ATTN_SCORE, 0, kv),     # V in
                mm("attn_bwd_dq", OpKind.ATTN_VALUE, q),         # dQ out
                mm("attn_bwd_dk", OpKind.ATTN_VALUE, kv)]        # dK out

    def adamw(self, params: int) -> Op:
        """AdamW over ``params`` trainable parameters (`adamw_bytes_per_param`)."""
        per = adamw_bytes_per_param(self.p.weight, self.spec.optimizer_dtype)
        return Op(name="adamw", kind=OpKind.ELEMENTWISE, dims=(params, 1), formats=self.f_act,
                  flops=ADAMW_FLOPS_PER_PARAM * params, weight_bytes=per * params)


def master_copy(weight: str, optimizer: str) -> bool:
    """Whether AdamW keeps fp32-style master weights beside the model's: when the optimizer
    format is wider than the weights' (mixed-precision training)."""
    return DTYPE_BITS[optimizer] > DTYPE_BITS[weight]


def adamw_bytes_per_param(weight: str, optimizer: str) -> int:
    """DRAM bytes AdamW moves per parameter: read the gradient (weight format), read and
    write m and v (optimizer format), then read and write the master weight and write the
    model's copy, or (no master copy) read and write the weight."""
    g, o = DTYPE_BITS[weight] // 8, DTYPE_BITS[optimizer] // 8
    weights = 2 * o + g if master_copy(weight, optimizer) else 2 * g
    return g + 4 * o + weights
