"""The dataflow of a lowered step: each op's ``id`` (program order) and ``inputs`` (the ids of
the ops whose outputs it reads), from the ops' names (`READS`; `mappers.ir`, "Dataflow")."""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from .ir import Op, Segment

#: The ops each op reads, by name: one entry per operand, each a tuple of alternatives of
#: which the first the graph has is read (rope's output, else qk_norm's, else the QKV
#: projection's). ``mlp_residual`` read inside the layer is the previous layer's (the residual
#: stream; the embedding, or the stage's receive, for the first layer: `mappers.ir`).
_Q = ("rope", "qk_norm", "qkv_proj")
READS: dict[str, tuple[tuple[str, ...], ...]] = {
    "embed": (),
    "embed_norm": (("embed",),),
    "attn_norm": (("mlp_residual",),),
    "qkv_proj": (("attn_norm",),),
    "qk_norm": (("qkv_proj",),),
    "rope": (("qk_norm", "qkv_proj"),),
    "kv_write": (_Q, ("qkv_proj",)),            # K after RoPE, V from the projection
    "attn_score": (_Q,),                        # + K: `_KV` below
    "softmax": (("attn_score",),),
    "attn_value": (("softmax",),),              # + V: `_KV` below
    "o_proj": (("attn_value",),),
    "attn_allreduce": (("o_proj",),),
    "attn_residual": (("attn_allreduce", "o_proj"), ("mlp_residual",)),
    "mlp_norm": (("attn_residual",),),
    "gate_up_proj": (("mlp_norm",),),
    "up_proj": (("mlp_norm",),),
    "act": (("gate_up_proj", "up_proj", "expert_gate_up"),),
    "down_proj": (("act",),),
    "router": (("mlp_norm",),),
    "router_topk": (("router",),),
    "expert_gate_up": (("mlp_norm",), ("router_topk",)),  # rows gathered by the routing
    "expert_down": (("act",), ("router_topk",)),          # outputs weighted by the gates
    "shared_gate_up": (("mlp_norm",),),
    "shared_act": (("shared_gate_up",),),
    "shared_down": (("shared_act",),),
    "shared_gate": (("mlp_norm",),),
    "shared_combine": (("expert_down",), ("shared_down",), ("shared_gate", "shared_down")),
    "mlp_allreduce": (("down_proj", "shared_combine", "expert_down"),),
    "mlp_residual": (("mlp_allreduce", "down_proj", "shared_combine", "expert_down"),
                     ("attn_residual",)),
    "pp_send": (("mlp_residual",),),
    "final_norm": (("mlp_residual",),),
    "lm_head": (("final_norm",),),
}
_ATTENTION = frozenset({"kv_write", "attn_score", "softmax", "attn_value"})
#: Where attention finds K and V: the cache when the step has a context, else the new K, V.
_KV = {True: ("kv_write",), False: _Q}


def wire(segments: list[Segment], *, from_cache: bool) -> list[Segment]:
    """``segments`` with ids (in program order; pipeline stages share their layer ops, and so
    their ids) and ``inputs`` from `READS`. ``from_cache``: attention reads K and V from the
    cache (after ``kv_write``) rather than from the QKV projection.

    The ids and inputs depend only on the ops' names, on which ops are one object (the stages'
    shared layer) and on ``from_cache``: that skeleton is wired once (`_wire_plan`) and the
    wired ops are memoised (`_wired`), so a decode step wires only the ops that changed with
    the context (attention)."""
    ids: dict[int, int] = {}  # id(op object) -> op id: the stages' shared layer ops once
    for seg in segments:
        for op in seg.ops:
            if id(op) not in ids:
                ids[id(op)] = len(ids)
    skeleton = tuple(tuple((op.name, ids[id(op)]) for op in seg.ops) for seg in segments)
    plan = _wire_plan(skeleton, from_cache)
    return [replace(seg, ops=tuple(_wired(op, *io) for op, io in zip(seg.ops, seg_plan)))
            for seg, seg_plan in zip(segments, plan)]


@lru_cache(maxsize=1 << 14)
def _wired(op: Op, op_id: int, inputs: tuple[int, ...]) -> Op:
    """``op`` with its id and inputs (memoised: equal ops come back as one object)."""
    return replace(op, id=op_id, inputs=inputs)


@lru_cache(maxsize=256)
def _wire_plan(skeleton: tuple[tuple[tuple[str, int], ...], ...], from_cache: bool
               ) -> tuple[tuple[tuple[int, tuple[int, ...]], ...], ...]:
    """The (id, inputs) of each op of ``skeleton`` (per segment, each op's name and id)."""
    names: dict[str, list[int]] = {}
    for seg in skeleton:
        for name, uid in seg:
            ids_of = names.setdefault(name, [])
            if uid not in ids_of:
                ids_of.append(uid)
    latest: dict[str, int] = {}  # the last op of each name so far, in program order

    def reads(name: str) -> tuple[int, ...]:
        operands = READS[name]
        if name == "attn_score":
            operands += (_KV[from_cache],)
        elif name == "attn_value":
            operands += (_KV[from_cache] if from_cache else ("qkv_proj",),)
        out: list[int] = []
        for alternatives in operands:
            found = next(a for a in alternatives if a in names)
            # attention is one op set per sequence shape: inside a set, read its own ops
            own = name in _ATTENTION and found in _ATTENTION
            out += [i for i in ([latest[found]] if own else names[found]) if i not in out]
        return tuple(out)

    wired: dict[int, tuple[int, tuple[int, ...]]] = {}
    for seg in skeleton:
        seen: set[str] = set()
        for k, (name, uid) in enumerate(seg):
            if uid not in wired:
                inputs = reads(name)
                if name in _ATTENTION and name in seen:
                    # a later shape group's attention runs inside the first group's kernel
                    # (`launches` 0), after the op before it: one kernel, in order
                    inputs += (seg[k - 1][1],)
                wired[uid] = (uid, inputs)
                latest[name] = uid
            seen.add(name)
    return tuple(tuple(wired[uid] for _, uid in seg) for seg in skeleton)
