"""Pipelined decode over a multi-system (docs/edge.md, "Pipelined decode"): groups of sequences
(`mappers.edge_decode.DecodeGroup`) in flight at once, group ``g`` on device ``d`` overlapping
group ``g + 1`` on device ``d - 1``, with plain or speculative rounds.

Each compute op costs the step simulator's time for its stage (`sim.edge.stage_time_s`, DECODE
phase, the group's sequences as the batch, the round's new tokens over the context). Decode
step costs are piecewise linear in the context under the roofline, so each (device, stage,
batch, new tokens) is simulated at up to `SAMPLES` evenly spaced contexts and linearly
interpolated in between (as `sim.speculative` does). Speculative rounds follow
`sim.speculative`'s acceptance model: a round verifies ``gamma + 1`` tokens per sequence and
advances the context by the accepted count plus one. In a batch each sequence draws its own
counts and leaves the batch when it has its tokens (`batch_spec_rounds`); `sim.speculative`'s
own lock step is left to its users. The draft is ``gamma`` Medusa-style heads on the LM head's
device, each charged one LM head's time at the round's batch (a head is a linear layer to the
vocabulary; its small residual block is left out).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mappers.edge import COMPUTE, Stage, Timed, link_bytes, link_name
from mappers.edge_decode import DecodeGroup, DecodeOp, decode_ops
from mappers.ir import Phase, Precision
from mappers.models import ModelConfig
from sim.edge import MultiSystem, check_fits, checked_route, schedule_links, stage_time_s
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


def batch_spec_rounds(tokens: int, gamma: int, accepted: Sequence[Sequence[int]]
                      ) -> tuple[tuple[int, tuple[int, ...]], ...]:
    """Speculative rounds of a batch whose sequences accept drafts independently: sequence
    ``i`` produces ``accepted[i][r] + 1`` tokens in its ``r``-th verify step (its counts
    cycled; its last step capped at what it has left) until it has ``tokens``, then leaves the
    batch (count 0 from then on). Every round verifies ``gamma + 1`` tokens per sequence still
    in it; the rounds end with the last sequence. With one sequence the counts are
    `spec_rounds`'s."""
    if gamma < 1 or not accepted or not all(len(row) for row in accepted):
        raise ConfigError(f"--gamma: draft tokens per round must be >= 1, got {gamma}")
    made = [0] * len(accepted)
    out, r = [], 0
    while any(m < tokens for m in made):
        step = tuple(min(int(row[r % len(row)]) + 1, tokens - m) if m < tokens else 0
                     for row, m in zip(accepted, made))
        made = [m + n for m, n in zip(made, step)]
        out.append((gamma + 1, step))
        r += 1
    return tuple(out)


def sample_batch_rounds(tokens: int, gamma: int, accept: float, seeds: Sequence[int]
                        ) -> tuple[tuple[int, tuple[int, ...]], ...]:
    """`batch_spec_rounds` for one sequence per seed, each drawing its counts i.i.d. from its
    own seed (`sim.speculative`'s `sample_accepted` at rate ``accept``, ``tokens`` draws): a
    sequence accepts the same drafts whichever batch it is put in, and alone it draws what
    `spec_rounds` is given from the same seed."""
    from sim.speculative import sample_accepted

    return batch_spec_rounds(tokens, gamma, [sample_accepted(accept, gamma, tokens, s)
                                             for s in seeds])


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
        return link_bytes(self.timeline)

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
    check_fits(ms, model, sum(g.final_tokens for g in groups), precision)
    ops = decode_ops(stages, groups, model.hidden_size, precision.activation)
    curves = _curves(ms, model, ops, precision, detail)
    head_s: dict[int, float] = {}  # draft heads' seconds per batch (sequences in the round)
    alone = Stage(device=stages[-1].device, first=0, last=-1, lm_head=True)

    def heads(seqs: int) -> float:
        if seqs not in head_s:
            head_s[seqs] = draft_heads * stage_time_s(
                ms.systems[alone.device], model, alone, 1, groups[0].context, precision,
                detail, Phase.DECODE, seqs) if draft_heads else 0.0
        return head_s[seqs]

    def cost(op: DecodeOp) -> float:
        if op.kind == COMPUTE:
            at, ts = curves[(op.resource, op.stage, op.sequences, op.tokens)]
            extra = heads(op.sequences) if op.stage.lm_head else 0.0
            return float(np.interp(op.context, at, ts)) + extra
        return ms.link_of(op.resource).transfer_s(op.bytes, rng)
    return DecodeRun(tuple(groups), schedule_links(ms, ops, cost))


def simulate_sequences(ms: MultiSystem, model: ModelConfig, *, prompt_tokens: int, gen: int,
                       sequences: int, micro_batches: int, precision: Precision,
                       detail: str = "roofline", rng=None) -> DecodeRun:
    """``sequences`` sequences of one ``prompt_tokens`` prompt (each its own KV cache), each
    decoding ``gen - 1`` tokens after the prefill, plainly, in ``micro_batches`` groups as even
    as can be (the first ones one sequence more) pipelined through ``ms``."""
    if not 1 <= micro_batches <= sequences:
        raise ConfigError(f"--micro-batches: must be between 1 and the {sequences} "
                          f"sequences, got {micro_batches}")
    sizes = [sequences // micro_batches + (k < sequences % micro_batches)
             for k in range(micro_batches)]
    groups = [DecodeGroup(sequences=n, context=prompt_tokens, rounds=plain_rounds(gen - 1))
              for n in sizes]
    return simulate_groups(ms, model, groups, precision=precision, detail=detail, rng=rng)


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
