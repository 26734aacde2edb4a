"""Decode over a multi-system: several groups of sequences pipelined across the devices, and
the ring all-reduce of tensor parallelism over network links (docs/edge.md, "Pipelined decode").

Pure compiler pass over the pipeline IR of `mappers.edge`; it knows no unit model.

* `decode_ops`: each *group* (a micro-batch of sequences, e.g. one of Jupiter's outline
  points) runs *rounds*; a round sends ``new_tokens`` tokens per sequence through every stage
  (1 for plain decode, ``gamma + 1`` for a speculative verify step, the point's text for a
  point's prefill), with the hidden state of ``sequences x new_tokens`` tokens crossing each
  hop, then the sampled token ids going back to the embedding's device. A round advances every
  sequence alike (lock step) or each by its own count (speculation with per-sequence
  acceptance); a sequence that has finished has left the batch, so later rounds run with fewer
  sequences.
  A group's next round waits for its own ids; between groups nothing waits but the devices and
  links themselves, each serving the op that became ready first. Program order, which breaks
  ties, is round-major (round 0 of every group, then round 1, ...), so with the scheduler of
  `mappers.edge`, group ``g`` on device ``d`` overlaps group ``g + 1`` on device ``d - 1``.
* `ring_allreduce_ops`: the ``2 (D - 1)`` steps of a ring all-reduce (reduce-scatter, then
  all-gather) over ``D`` devices, each device sending ``size / D`` bytes to the next one per
  step, a step waiting for the piece the device received in the step before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from mappers.edge import COMPUTE, TRANSFER, Stage, direction, hidden_bytes

TOKEN_ID_BYTES = 4  # one sampled token id (int32)


@dataclass(frozen=True, slots=True, kw_only=True)
class DecodeGroup:
    """A micro-batch of ``sequences`` sequences decoded together from ``context`` cached tokens
    each. ``rounds``: (new tokens per sequence, advance) for each round, in order; the advance
    is the tokens every sequence's context grows by (an int: lock step), or a tuple of one
    count per sequence, where 0 means the sequence has finished and left the batch (it stays
    out; every other count is >= 1, as a verify step always yields a token)."""

    sequences: int
    context: int
    rounds: tuple[tuple[int, int | tuple[int, ...]], ...]

    def __post_init__(self) -> None:
        if self.sequences < 1 or self.context < 0:
            raise ValueError(f"DecodeGroup: sequences >= 1 and context >= 0, got "
                             f"{self.sequences}, {self.context}")
        gone: set[int] = set()
        for q, a in self.rounds:
            if isinstance(a, tuple):
                if len(a) != self.sequences or any(n < 0 for n in a) or not any(a) or any(
                        a[i] for i in gone):
                    raise ValueError(f"DecodeGroup: a per-sequence advance needs one count "
                                     f"per sequence, >= 0, one at least > 0, and a finished "
                                     f"sequence (0) stays out; got {a}")
                gone |= {i for i, n in enumerate(a) if n == 0}
                a = 0
            if q < 1 or a < 0:
                raise ValueError(f"DecodeGroup: each round needs new tokens >= 1 and an "
                                 f"advance >= 0, got {self.rounds}")

    def advances(self, r: int) -> tuple[int, ...]:
        """Round ``r``'s advance of each sequence (0: not in the batch)."""
        a = self.rounds[r][1]
        return a if isinstance(a, tuple) else (a,) * self.sequences

    def in_batch(self, r: int) -> tuple[int, ...]:
        """The sequences (indices) that run round ``r``: all in lock step, else those with a
        count > 0."""
        a = self.rounds[r][1]
        return tuple(range(self.sequences)) if not isinstance(a, tuple) else tuple(
            i for i, n in enumerate(a) if n)

    @property
    def final_tokens(self) -> int:
        """Tokens cached over all the group's sequences at the end (KV cache)."""
        return self.sequences * self.context + sum(
            sum(self.advances(r)) for r in range(len(self.rounds)))


@dataclass(frozen=True, slots=True, kw_only=True)
class DecodeOp:
    """One op of a pipelined decode: a stage's compute for a group's round on ``resource``
    (the device) or a ``transfer`` of ``bytes`` on a link direction ``a->b``. ``tokens`` are
    new tokens per sequence, ``context`` cached tokens per sequence; ``input``: index of the
    op it waits for (-1: none)."""

    kind: str
    group: int
    round: int
    resource: str
    stage: Stage | None
    sequences: int
    tokens: int
    context: int
    bytes: int = 0
    input: int = -1


def decode_ops(stages: Sequence[Stage], groups: Sequence[DecodeGroup], hidden: int,
               activation: str) -> tuple[DecodeOp, ...]:
    """The ops of decoding ``groups`` through ``stages`` (module docstring), round-major. A
    group whose rounds are done drops out. A round's batch is the group's sequences still in
    it; its ``context`` is their mean context, rounded (exact for a cost linear in the summed
    context, as attention's KV reads are). After every round that is not the group's last, the
    token ids of the sequences that run the next round (``advance`` ids each) go back to the
    first stage's device."""
    ops: list[DecodeOp] = []
    last = [-1] * len(groups)
    context = [[g.context] * g.sequences for g in groups]
    for r in range(max((len(g.rounds) for g in groups), default=0)):
        for gi, g in enumerate(groups):
            if r >= len(g.rounds):
                continue
            q = g.rounds[r][0]
            advances, batch = g.advances(r), g.in_batch(r)
            n = len(batch)
            mean = (2 * sum(context[gi][i] for i in batch) + n) // (2 * n)
            prev = last[gi]
            for s, stage in enumerate(stages):
                if s and stages[s - 1].device != stage.device:
                    ops.append(DecodeOp(
                        kind=TRANSFER, group=gi, round=r,
                        resource=direction(stages[s - 1].device, stage.device), stage=None,
                        sequences=n, tokens=q, context=mean,
                        bytes=hidden_bytes(n * q, hidden, activation), input=prev))
                    prev = len(ops) - 1
                ops.append(DecodeOp(kind=COMPUTE, group=gi, round=r, resource=stage.device,
                                    stage=stage, sequences=n, tokens=q, context=mean,
                                    input=prev))
                prev = len(ops) - 1
            if r + 1 < len(g.rounds) and stages[-1].device != stages[0].device:
                ids = sum(advances[i] for i in g.in_batch(r + 1))
                ops.append(DecodeOp(
                    kind=TRANSFER, group=gi, round=r,
                    resource=direction(stages[-1].device, stages[0].device), stage=None,
                    sequences=n, tokens=q, context=mean, bytes=ids * TOKEN_ID_BYTES,
                    input=prev))
                prev = len(ops) - 1
            last[gi] = prev
            for i in range(g.sequences):
                context[gi][i] += advances[i]
    return tuple(ops)


def ring_allreduce_ops(devices: Sequence[str], size_bytes: int) -> tuple[DecodeOp, ...]:
    """The transfers of a ring all-reduce of ``size_bytes`` over ``devices`` (in ring order;
    module docstring): ``2 (D - 1)`` steps, device ``i`` sending ``ceil(size / D)`` bytes to
    device ``i + 1`` (mod D) in each, after receiving the previous step's piece from ``i - 1``.
    Empty for one device."""
    d = len(devices)
    if d < 2:
        return ()
    piece = -(-size_bytes // d)
    ops: list[DecodeOp] = []
    for step in range(2 * (d - 1)):
        for i in range(d):
            # the piece device i forwards in this step arrived from device i - 1 in the last
            wait = (step - 1) * d + (i - 1) % d if step else -1
            ops.append(DecodeOp(kind=TRANSFER, group=0, round=step,
                                resource=direction(devices[i], devices[(i + 1) % d]),
                                stage=None, sequences=1, tokens=0, context=0, bytes=piece,
                                input=wait))
    return tuple(ops)
