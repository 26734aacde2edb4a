"""Tensor parallelism over edge links, a baseline for Jupiter (docs/edge.md, "Tensor parallel
over links"): every layer sharded Megatron-style over the ``D`` devices of a multi-system
(attention heads, KV heads, MLP width and vocabulary divided by ``D``), with two all-reduces of
the activations per layer (after attention and after the MLP) as ring all-reduces over the
network links (`mappers.edge_decode.ring_allreduce_ops`, ring in the file's device order).

A pass (the prompt at once, or one decode token) costs the slowest device's compute for its
shard (the step simulator's, `sim.edge.stage_time_s`) plus ``2 x layers`` all-reduces of
``tokens x hidden x activation bytes``; compute and communication do not overlap (each
all-reduce needs the layer's output, and the next layer needs the all-reduce). Not charged:
the embedding's and the LM head's collectives (one of each per pass, against ``2 x layers``
all-reduces).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from mappers.edge import Holding, Stage, hidden_bytes, link_name
from mappers.edge_decode import ring_allreduce_ops
from mappers.ir import Phase, Precision
from mappers.models import ModelConfig
from sim.edge import MultiSystem, device_footprint, schedule_links, stage_time_s
from sim.errors import ConfigError


def shard(model: ModelConfig, d: int) -> ModelConfig:
    """One device's shard of every layer of ``model`` over ``d`` devices; `ConfigError` when
    ``d`` does not divide the heads, KV heads or MLP width."""
    for name in ("num_heads", "num_kv_heads", "intermediate_size"):
        if getattr(model, name) % d:
            raise ConfigError(f"tensor parallel: {d} devices must divide {model.name}'s "
                              f"{name} ({getattr(model, name)})")
    return replace(model, num_heads=model.num_heads // d, num_kv_heads=model.num_kv_heads // d,
                   intermediate_size=model.intermediate_size // d,
                   vocab_size=-(-model.vocab_size // d))


def allreduce_s(ms: MultiSystem, size_bytes: int, rng=None) -> float:
    """Seconds of a ring all-reduce of ``size_bytes`` over ``ms``'s devices in file order,
    scheduled op by op on the links (each direction one timeline, or the links' shared
    medium: `sim.edge.schedule_links`)."""
    names = [d.name for d in ms.spec.devices]
    links = {}
    for a, b in zip(names, names[1:] + names[:1]):
        if len(names) > 1 and link_name(a, b) not in ms.links:
            raise ConfigError(f"links: the tensor-parallel ring needs a link between {a} and "
                              f"{b} (devices in file order, the last back to the first)")
        links[f"{a}->{b}"] = ms.links.get(link_name(a, b))
    ops = ring_allreduce_ops(names, size_bytes)
    timeline = schedule_links(ms, ops, lambda op: links[op.resource].transfer_s(op.bytes, rng))
    return max((t.end_s for t in timeline), default=0.0)


@dataclass(frozen=True, slots=True)
class TPResult:
    """Tensor-parallel request: TTFT and end-to-end (s), and the seconds of compute and of
    all-reduces in each."""

    ttft_s: float
    e2e_s: float
    prefill_compute_s: float
    decode_compute_s: float
    prefill_transfer_s: float
    decode_transfer_s: float


def tp_footprint(ms: MultiSystem, model: ModelConfig, kv_tokens: int, precision: Precision
                 ) -> tuple[int, int]:
    """(bytes one device holds, bytes the smallest device has) under tensor parallelism."""
    part = shard(model, len(ms.spec.devices))
    need = device_footprint(part, Holding(device="tp", layers=((0, model.num_layers - 1),),
                                          embedding=True, lm_head=True), kv_tokens, precision)
    have = min(s.chip.memory.capacity_bytes * s.tensor_parallel * s.pipeline_parallel
               for s in ms.systems.values())
    return need, have


def simulate_tp(ms: MultiSystem, model: ModelConfig, *, prompt_tokens: int, gen: int,
                precision: Precision, detail: str = "roofline", samples: int = 4) -> TPResult:
    """One request (a ``prompt_tokens`` prefill in one pass, then ``gen - 1`` decode steps)
    tensor-parallel over ``ms`` (module docstring). Decode compute is simulated at up to
    ``samples`` contexts and interpolated in between."""
    d = len(ms.spec.devices)
    part = shard(model, d)
    need, have = tp_footprint(ms, model, prompt_tokens + gen - 1, precision)
    if need > have:
        raise ConfigError(f"tensor parallel: each device needs {need / 1e9:.2f} GB (its shard "
                          f"of the weights and KV cache), the smallest has {have / 1e9:.2f} GB")
    whole = Stage(device="tp", first=0, last=model.num_layers - 1, embedding=True,
                  lm_head=True)

    def compute(tokens: int, context: int, phase: Phase) -> float:
        return max(stage_time_s(s, part, whole, tokens, context, precision, detail, phase)
                   for s in ms.systems.values())
    reduces = 2 * model.num_layers
    pre_c = compute(prompt_tokens, 0, Phase.PREFILL)
    pre_t = reduces * allreduce_s(ms, hidden_bytes(prompt_tokens, model.hidden_size,
                                                   precision.activation))
    steps = gen - 1
    dec_c = dec_t = 0.0
    if steps:
        ctx = prompt_tokens + np.arange(steps)
        at = np.unique(np.linspace(ctx[0], ctx[-1], min(samples, steps)).round().astype(int))
        ts = [compute(1, int(c), Phase.DECODE) for c in at]
        dec_c = float(np.interp(ctx, at, ts).sum())
        dec_t = steps * reduces * allreduce_s(ms, hidden_bytes(1, model.hidden_size,
                                                               precision.activation))
    return TPResult(ttft_s=pre_c + pre_t, e2e_s=pre_c + pre_t + dec_c + dec_t,
                    prefill_compute_s=pre_c, decode_compute_s=dec_c, prefill_transfer_s=pre_t,
                    decode_transfer_s=dec_t)
