"""Memory of a training step on one chip, by class: weights, gradients, optimizer state and
the activations kept for the backward pass (docs/training.md, "Memory").

What a forward op keeps for its backward (``saved_bytes``):

* a norm: its input, and one ``acc``-format value per row (``1/rms``; LayerNorm also the mean);
* a GEMM whose weight is trained or adapted: its input ``X`` (for ``dW = X^T dY``); none
  when frozen and not adapted (``dX = dY W^T`` needs only ``W``). ``o_proj``'s input is the
  attention output ``O``, which attention keeps already;
* a LoRA adapter: ``X A`` (``M x r``), for ``dB``;
* attention (FlashAttention-2): Q, K, V, O and the log-sum-exp ``L`` (``acc`` format);
* an activation: its inputs (gate and up, or the up projection);
* RoPE, residuals, all-reduces, the embedding (token ids only): nothing;
* the loss: the logits (``tokens x vocab / tp``).

Full recompute keeps only each layer's input (``tokens x hidden``) and, while a layer's
backward runs, that one layer's kept activations (recomputed). Transient buffers (the
gradient of the activations in flight, workspace) are not counted. Under ``reuse``
(activations recorded by serving) every layer's kept activations are resident, as without
recompute: they were recorded, not recomputed; offloaded to the host and read back over
PCIe (``offloaded``, `mappers.readback`), only the two layer buffers of the prefetch are.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sim.dtypes import nbytes

from .ir import Graph, Op, OpKind, Precision
from .readback import BUFFERS
from .models import ModelConfig
from .train import TrainSpec, adapter_shapes, chip_parameters, master_copy, trainable_parameters


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainMemory:
    """Bytes on one chip by class."""

    weights: int
    gradients: int
    optimizer: int
    activations: int

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations

    def as_dict(self) -> dict[str, int]:
        return {"weights": self.weights, "gradients": self.gradients,
                "optimizer": self.optimizer, "activations": self.activations,
                "total": self.total}


def train_memory(model: ModelConfig, spec: TrainSpec, graph: Graph, *, precision: Precision,
                 tp: int = 1, offloaded: bool = False) -> TrainMemory:
    """Memory by class of the training step ``graph`` (from `mappers.train.lower_train`);
    ``offloaded``: under reuse, the records wait on the host and are read back layer by layer
    into `mappers.readback.BUFFERS` layer buffers (the head's kept activations stay)."""
    base = chip_parameters(model, tp)
    trainable = trainable_parameters(model, spec, tp)
    adapters = trainable if spec.lora else 0
    weights = nbytes(base + adapters, precision.weight)
    gradients = nbytes(trainable, precision.weight)
    states = 2 + int(master_copy(precision.weight, spec.optimizer_dtype))  # m, v (+ master)
    optimizer = states * nbytes(trainable, spec.optimizer_dtype)
    if offloaded and spec.reuse == "none":
        raise ValueError("train_memory: offloaded records need reuse='activations'")
    if spec.reuse != "none":  # the recorded activations are the forward's: count those
        from .train import lower_train
        graph = lower_train(model, replace(spec, reuse="none"), precision=precision, tp=tp)
        spec = replace(spec, reuse="none", recompute="none")
    by_name = {seg.name: seg for seg in graph.segments}
    layer = saved_bytes(by_name["layers"].ops, spec, precision, model, tp)
    head = saved_bytes(by_name["head"].ops, spec, precision, model, tp)
    if offloaded:
        activations = BUFFERS * layer + head
    elif spec.recompute == "full":
        layer_inputs = model.num_layers * nbytes(spec.tokens * model.hidden_size,
                                                 precision.activation)
        activations = layer_inputs + layer + head
    else:
        activations = model.num_layers * layer + head
    return TrainMemory(weights=weights, gradients=gradients, optimizer=optimizer,
                       activations=activations)


def saved_bytes(ops: tuple[Op, ...], spec: TrainSpec, precision: Precision,
                model: ModelConfig, tp: int) -> int:
    """Bytes the forward ``ops`` (one layer, or the head) keep for the backward pass (module
    docstring)."""
    act, acc = precision.activation, precision.acc
    adapted = {base for base, _, _ in adapter_shapes(model, spec, tp).values()}
    total = 0
    for op in ops:
        if op.kind is OpKind.NORM:
            rows, cols = op.dims
            per_row = 2 if model.norm == "layernorm" else 1
            total += nbytes(rows * cols, act) + nbytes(per_row * rows, acc)
        elif op.kind in (OpKind.GEMM, OpKind.LM_HEAD):
            m, n, k = op.dims
            if op.name.startswith("lora_"):
                if op.name.endswith("_a"):
                    total += nbytes(m * n, act)  # X A, for dB
            elif op.name != "o_proj" and (not spec.lora or op.name in adapted):
                total += nbytes(m * k, act)
            elif op.name == "o_proj":
                pass  # its input is O, kept by attention
        elif op.kind is OpKind.ATTN_SCORE:
            b, heads, kv_heads, lq, _, hd = op.dims
            q = b * lq * heads * hd
            kv = 2 * b * lq * kv_heads * hd  # training: the keys are the step's own tokens
            total += nbytes(2 * q + kv, act) + nbytes(b * lq * heads, acc)  # Q, O, K, V; L
        elif op.kind is OpKind.ACTIVATION:
            rows, cols = op.dims
            total += nbytes((2 if model.gated_mlp else 1) * rows * cols, act)
        elif op.name == "loss":
            rows, cols = op.dims
            total += nbytes(rows * cols, act)
    return total
