"""Pipelined decode over a multi-system (docs/edge.md, "Pipelined decode"): groups of sequences
(`mappers.edge_decode.DecodeGroup`) in flight at once, group ``g`` on device ``d`` overlapping
group ``g + 1`` on device ``d - 1``, with plain or speculative rounds.

Each compute op costs the step simulator's time for its stage (`sim.edge.stage_time_s`, DECODE
phase, the group's sequences as the batch, the round's new tokens over the context). Decode
step costs are piecewise linear in the context under the roofline, so each (device, stage,
batch, new tokens) is simulated at up to `SAMPLES` evenly spaced contexts and linearly
interpolated in between (as `sim.speculative` does). Speculative rounds follow
`sim.speculative`'s acceptance model: a round verifies ``gamma + 1`` tokens per sequence and
advances the context by the accepted count plus one; the draft is ``gamma`` Medusa-style heads
on the LM head's device, each charged one LM head's time (a head is a linear layer to the
vocabulary; its small residual block is left out).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mappers.edge import COMPUTE, Stage, Timed, link_name, schedule_pipeline
from mappers.edge_decode import DecodeGroup, DecodeOp, decode_ops
from mappers.ir import Phase, Precision
from mappers.models import ModelConfig
from sim.edge import MultiSystem, check_fits, checked_route, stage_time_s
from sim.errors import ConfigError

SAMPLES = 4  # contexts simulated per stage curve (the rest interpolated)


def plain_rounds(tokens: int) -> tuple[tuple[int, int], ...]:
    """``tokens`` one-token rounds (plain autoregressive decode)."""
    return ((1, 1),) * tokens


def spec_rounds(tokens: int, gamma: int, accepted: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """Speculative rounds until ``tokens`` tokens are produced: round ``r`` verifies ``gamma +
    1`` tokens and produces ``accepted[r] + 1`` (cycled; the last round capped at what is
    left), the context growing by as much (`sim.speculative`)."""
    if gamma < 1 or not len(accepted):
        raise ConfigError(f"--gamma: draft tokens per round must be >= 1, got {gamma}")
    out, made, r = [], 0, 0
    while made < tokens:
        n = min(int(accepted[r % len(accepted)]) + 1, tokens - made)
        out.append((gamma + 1, n))
        made += n
        r += 1
    return tuple(out)


@dataclass(frozen=True, slots=True)
class DecodeRun:
    """A pipelined decode's timeline (seconds from its start) and the groups it ran."""

    groups: tuple[DecodeGroup, ...]
    timeline: tuple[Timed, ...]

    @property
    def makespan_s(self) -> float:
        return max((t.end_s for t in self.timeline), default=0.0)

    def link_bytes(self) -> dict[str, int]:
        """Bytes moved on each link direction (``a->b``)."""
        out: dict[str, int] = {}
        for t in self.timeline:
            if t.op.kind != COMPUTE:
                out[t.op.resource] = out.get(t.op.resource, 0) + t.op.bytes
        return out

    def breakdown(self) -> dict[str, float]:
        """The makespan seen by the group that finishes last: its own ops' ``compute`` and
        ``transfer`` seconds, and ``waiting``, the rest (its next op held up by a device or
        link busy with other groups). The three sum to the makespan."""
        if not self.timeline:
            return {"compute": 0.0, "transfer": 0.0, "waiting": 0.0}
        last = max(self.timeline, key=lambda t: t.end_s).op.group
        mine = [t for t in self.timeline if t.op.group == last]
        compute = sum(t.end_s - t.start_s for t in mine if t.op.kind == COMPUTE)
        transfer = sum(t.end_s - t.start_s for t in mine if t.op.kind != COMPUTE)
        return {"compute": compute, "transfer": transfer,
                "waiting": max(0.0, self.makespan_s - compute - transfer)}


def simulate_groups(ms: MultiSystem, model: ModelConfig, groups: Sequence[DecodeGroup], *,
                    precision: Precision, detail: str = "roofline", draft_heads: int = 0,
                    rng=None) -> DecodeRun:
    """Decode ``groups`` pipelined through ``ms`` (module docstring). Checks the split, a link
    for every hop (the token ids' way back included) and the memory: every device holds the
    KV cache of all groups' sequences at their final lengths. ``draft_heads``: speculative
    draft heads on the LM head's device (0: none)."""
    stages = checked_route(ms, model)
    if stages[-1].device != stages[0].device and \
            link_name(stages[-1].device, stages[0].device) not in ms.links:
        raise ConfigError(f"links: decode sends token ids from {stages[-1].device} back to "
                          f"{stages[0].device} but no link joins them (add one under links:)")
    kv_tokens = sum(g.sequences * (g.context + sum(a for _, a in g.rounds)) for g in groups)
    check_fits(ms, model, kv_tokens, precision)
    ops = decode_ops(stages, groups, model.hidden_size, precision.activation)
    curves = _curves(ms, model, ops, precision, detail)
    head_s = {}
    if draft_heads:
        head = stages[-1]
        alone = Stage(device=head.device, first=0, last=-1, lm_head=True)
        for seqs in {g.sequences for g in groups}:
            head_s[seqs] = draft_heads * stage_time_s(
                ms.systems[head.device], model, alone, 1, groups[0].context, precision,
                detail, Phase.DECODE, seqs)

    def cost(op: DecodeOp) -> float:
        if op.kind == COMPUTE:
            at, ts = curves[(op.resource, op.stage, op.sequences, op.tokens)]
            extra = head_s.get(op.sequences, 0.0) if op.stage.lm_head else 0.0
            return float(np.interp(op.context, at, ts)) + extra
        return ms.links[link_name(*op.resource.split("->"))].transfer_s(op.bytes, rng)
    return DecodeRun(tuple(groups), schedule_pipeline(ops, cost))


def _curves(ms: MultiSystem, model: ModelConfig, ops: Sequence[DecodeOp],
            precision: Precision, detail: str) -> dict:
    """(contexts, seconds) per (device, stage, sequences, new tokens): the simulated stage
    time at up to `SAMPLES` contexts spanning the ops' contexts."""
    spans: dict[tuple, list[int]] = {}
    for op in ops:
        if op.kind == COMPUTE:
            key = (op.resource, op.stage, op.sequences, op.tokens)
            lo_hi = spans.setdefault(key, [op.context, op.context])
            lo_hi[0], lo_hi[1] = min(lo_hi[0], op.context), max(lo_hi[1], op.context)
    out = {}
    for (device, stage, seqs, q), (lo, hi) in spans.items():
        at = np.unique(np.linspace(lo, hi, min(SAMPLES, hi - lo + 1)).round().astype(int))
        ts = [stage_time_s(ms.systems[device], model, stage, q, int(c), precision, detail,
                           Phase.DECODE, seqs) for c in at]
        out[(device, stage, seqs, q)] = (at.astype(float), np.array(ts))
    return out
