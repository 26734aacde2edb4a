"""Decode over a multi-system: several groups of sequences pipelined across the devices, and
the ring all-reduce of tensor parallelism over network links (docs/edge.md, "Pipelined decode").

Pure compiler pass over the pipeline IR of `mappers.edge`; it knows no unit model.

* `decode_ops`: each *group* (a micro-batch of sequences moving in lock step, e.g. one of
  Jupiter's outline points) runs *rounds*; a round sends ``new_tokens`` tokens per sequence
  through every stage (1 for plain decode, ``gamma + 1`` for a speculative verify step, the
  point's text for a point's prefill), with the hidden state of ``sequences x new_tokens``
  tokens crossing each hop, then the sampled token ids going back to the embedding's device.
  A group's next round waits for its own ids; between groups nothing waits but the devices and
  links themselves. Program order is round-major (round 0 of every group, then round 1, ...),
  so with the list scheduler of `mappers.edge`, group ``g`` on device ``d`` overlaps group
  ``g + 1`` on device ``d - 1``.
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
    """A micro-batch of ``sequences`` sequences decoded in lock step from ``context`` cached
    tokens each. ``rounds``: (new tokens per sequence, tokens the context then grows by) for
    each round, in order."""

    sequences: int
    context: int
    rounds: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        if self.sequences < 1 or self.context < 0:
            raise ValueError(f"DecodeGroup: sequences >= 1 and context >= 0, got "
                             f"{self.sequences}, {self.context}")
        if any(q < 1 or a < 0 for q, a in self.rounds):
            raise ValueError(f"DecodeGroup: each round needs new tokens >= 1 and an advance "
                             f">= 0, got {self.rounds}")


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
    group whose rounds are done drops out; the token ids back to the first stage's device
    (``sequences x advance`` ids) are sent after every round that is not the group's last."""
    ops: list[DecodeOp] = []
    last = [-1] * len(groups)
    context = [g.context for g in groups]
    for r in range(max((len(g.rounds) for g in groups), default=0)):
        for gi, g in enumerate(groups):
            if r >= len(g.rounds):
                continue
            q, advance = g.rounds[r]
            prev = last[gi]
            for s, stage in enumerate(stages):
                if s and stages[s - 1].device != stage.device:
                    ops.append(DecodeOp(
                        kind=TRANSFER, group=gi, round=r,
                        resource=direction(stages[s - 1].device, stage.device), stage=None,
                        sequences=g.sequences, tokens=q, context=context[gi],
                        bytes=hidden_bytes(g.sequences * q, hidden, activation), input=prev))
                    prev = len(ops) - 1
                ops.append(DecodeOp(kind=COMPUTE, group=gi, round=r, resource=stage.device,
                                    stage=stage, sequences=g.sequences, tokens=q,
                                    context=context[gi], input=prev))
                prev = len(ops) - 1
            if r + 1 < len(g.rounds) and stages[-1].device != stages[0].device:
                ops.append(DecodeOp(
                    kind=TRANSFER, group=gi, round=r,
                    resource=direction(stages[-1].device, stages[0].device), stage=None,
                    sequences=g.sequences, tokens=q, context=context[gi],
                    bytes=g.sequences * advance * TOKEN_ID_BYTES, input=prev))
                prev = len(ops) - 1
            last[gi] = prev
            context[gi] += advance
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
