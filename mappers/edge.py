"""Layer placement across systems: a model's layers split over devices joined by network links,
the prompt streamed through them in chunks (an intra-sequence pipeline, as Jupiter's prefill).

Pure compiler pass over a small pipeline IR; it knows no unit model. Three steps:

1. `route`: from which device holds which layers (plus the embedding and the LM head), the
   order in which one chunk visits devices: maximal runs of consecutive layers on one device
   (`Stage`), with a hop wherever the next run lives elsewhere. A U-shaped split (HAT) visits
   the device twice.
2. `pipeline_ops`: one compute op per (chunk, stage) on the device's timeline and one
   ``transfer`` op per (chunk, hop) on the link's timeline, carrying the hidden state
   ``tokens x hidden x activation bytes``. The LM head runs once, on the last chunk (prefill
   produces the first token from the prompt's last position); an LM head alone on its device
   receives that position's hidden state only.
3. `schedule_pipeline`: resource-constrained list scheduling in program order (chunk-major),
   the rule of `mappers.schedule`: an op starts when its input is ready and its resource
   (a device or a link, each one timeline) has finished the ops before it. So chunk ``c`` on
   device ``d`` overlaps chunk ``c + 1`` on device ``d - 1``, and a link sends while both
   ends compute. Times come from a cost callable the simulator supplies (`sim.edge`).
   Link directions on a shared *medium* (one Wi-Fi channel) are not timelines of their own:
   the medium carries one transfer's bytes at a time, first come (ready) first served.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from sim.dtypes import nbytes
from sim.errors import ConfigError

COMPUTE, TRANSFER = "compute", "transfer"


@dataclass(frozen=True, slots=True, kw_only=True)
class Holding:
    """What one device holds: inclusive layer ranges, and the embedding/LM head if flagged."""

    device: str
    layers: tuple[tuple[int, int], ...]
    embedding: bool = False
    lm_head: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Stage:
    """A maximal run of consecutive layers ``first..last`` (inclusive) on one device; empty
    (``last = first - 1``) for an embedding or LM head alone on its device."""

    device: str
    first: int
    last: int
    embedding: bool = False
    lm_head: bool = False

    @property
    def layers(self) -> int:
        """Layers the stage runs (0 for an embedding or LM head alone)."""
        return max(0, self.last - self.first + 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class PipeOp:
    """One op of the pipeline: a stage's compute for a chunk on ``resource`` (the device), or
    a hidden-state ``transfer`` of ``bytes`` on ``resource`` (a link direction ``a->b``).
    ``input`` is the index of the op it waits for (-1: none)."""

    kind: str
    chunk: int
    resource: str
    stage: Stage | None
    tokens: int
    context: int
    bytes: int = 0
    input: int = -1


@dataclass(frozen=True, slots=True)
class Timed:
    """An op with its start and end in seconds from the start of the prefill."""

    op: PipeOp
    start_s: float
    end_s: float


def check_split(num_layers: int, holdings: Sequence[Holding]) -> None:
    """Refuse a split that leaves a layer unassigned, assigns one twice, names a layer the
    model lacks, or has no (or two) embedding/LM-head holders; one `ConfigError` line."""
    owner: dict[int, str] = {}
    for h in holdings:
        for first, last in h.layers:
            if not 0 <= first <= last < num_layers:
                raise ConfigError(f"devices.{h.device}.layers: range [{first}, {last}] must "
                                  f"satisfy 0 <= first <= last < {num_layers} (the model's "
                                  f"layers)")
            for layer in range(first, last + 1):
                if layer in owner:
                    raise ConfigError(f"devices.{h.device}.layers: layer {layer} is also "
                                      f"held by {owner[layer]}; each layer goes to one device")
                owner[layer] = h.device
    missing = [i for i in range(num_layers) if i not in owner]
    if missing:
        raise ConfigError(f"devices: layers {_ranges(missing)} are held by no device (the "
                          f"model has layers 0..{num_layers - 1})")
    for part in ("embedding", "lm_head"):
        holders = [h.device for h in holdings if getattr(h, part)]
        if len(holders) != 1:
            raise ConfigError(f"devices: exactly one device must set {part}: true, got "
                              f"{len(holders)} ({', '.join(holders) or 'none'})")


def route(num_layers: int, holdings: Sequence[Holding]) -> tuple[Stage, ...]:
    """The stages one chunk passes through, in order (module docstring); the split must pass
    `check_split`. The embedding joins the stage of layer 0 when on the same device, else it
    is a stage of its own; likewise the LM head with the last layer."""
    owner = {layer: h.device for h in holdings for a, b in h.layers
             for layer in range(a, b + 1)}
    embed = next(h.device for h in holdings if h.embedding)
    head = next(h.device for h in holdings if h.lm_head)
    runs: list[list] = []
    for layer in range(num_layers):
        if runs and runs[-1][0] == owner[layer]:
            runs[-1][2] = layer
        else:
            runs.append([owner[layer], layer, layer])
    stages = [Stage(device=d, first=a, last=b) for d, a, b in runs]
    if embed == stages[0].device:
        stages[0] = Stage(device=embed, first=stages[0].first, last=stages[0].last,
                          embedding=True)
    else:
        stages.insert(0, Stage(device=embed, first=0, last=-1, embedding=True))
    last = stages[-1]
    if head == last.device:
        stages[-1] = Stage(device=head, first=last.first, last=last.last,
                           embedding=last.embedding, lm_head=True)
    else:
        stages.append(Stage(device=head, first=num_layers, last=num_layers - 1,
                            lm_head=True))
    return tuple(stages)


def hidden_bytes(tokens: int, hidden: int, activation: str) -> int:
    """Bytes of the hidden state of ``tokens`` tokens: tokens x hidden x activation bytes."""
    return nbytes(tokens * hidden, activation)


def link_name(a: str, b: str) -> str:
    """The name of the link between devices ``a`` and ``b`` (order-free)."""
    return "|".join(sorted((a, b)))


def direction(a: str, b: str) -> str:
    """The resource of the ``a`` to ``b`` direction of their link: a link's directions send
    at once, each at the link's bandwidth (full duplex), so each is a timeline."""
    return f"{a}->{b}"


def chunk_sizes(prompt_tokens: int, chunk_tokens: int) -> tuple[int, ...]:
    """The prompt cut into chunks of ``chunk_tokens`` (the last one shorter if need be)."""
    full, rest = divmod(prompt_tokens, chunk_tokens)
    return (chunk_tokens,) * full + ((rest,) if rest else ())


def pipeline_ops(stages: Sequence[Stage], chunks: Sequence[int], hidden: int,
                 activation: str) -> tuple[PipeOp, ...]:
    """The ops of a chunked prefill through ``stages`` (module docstring), chunk-major: for
    each chunk, each stage's compute and, between stages on different devices, a transfer of
    the chunk's hidden state. The last stage (LM head) computes only for the last chunk."""
    ops: list[PipeOp] = []
    context = 0
    for c, tokens in enumerate(chunks):
        prev = -1
        for s, stage in enumerate(stages):
            if stage.lm_head and stage.layers == 0 and c + 1 < len(chunks):
                continue  # an LM head alone has work only on the last chunk
            if s and stages[s - 1].device != stage.device:
                # an LM head alone needs only the last position's hidden state
                moved = 1 if stage.layers == 0 and stage.lm_head else tokens
                ops.append(PipeOp(kind=TRANSFER, chunk=c,
                                  resource=direction(stages[s - 1].device, stage.device),
                                  stage=None, tokens=tokens, context=context,
                                  bytes=hidden_bytes(moved, hidden, activation), input=prev))
                prev = len(ops) - 1
            ops.append(PipeOp(kind=COMPUTE, chunk=c, resource=stage.device, stage=stage,
                              tokens=tokens, context=context, input=prev))
            prev = len(ops) - 1
        context += tokens
    return tuple(ops)


def schedule_pipeline(ops: Sequence[PipeOp], cost: Callable[[PipeOp], float], *,
                      media: Mapping[str, str] | None = None,
                      airtime: Callable[[PipeOp], float] | None = None) -> tuple[Timed, ...]:
    """Place each op on its resource's timeline in program order (module docstring);
    ``cost(op)`` is its duration in seconds, asked once per op in program order.

    ``media`` maps a resource (a link direction) to the shared medium it sends on. Such an op
    holds its medium for ``airtime(op)`` seconds from its start (its bytes on the air; the rest
    of its duration, the latency, overlaps other transfers) and ends ``cost(op)`` after its
    start. A free medium serves the waiting op that became ready first (ties: program order),
    without preemption; the op's direction has no timeline of its own."""
    media = media or {}
    if not any(op.resource in media for op in ops):
        return _in_order(ops, cost)
    return _with_media(ops, [cost(op) for op in ops], media, airtime or cost)


def _in_order(ops: Sequence[PipeOp], cost: Callable[[PipeOp], float]) -> tuple[Timed, ...]:
    free: dict[str, float] = {}
    out: list[Timed] = []
    for op in ops:
        ready = out[op.input].end_s if op.input >= 0 else 0.0
        start = max(ready, free.get(op.resource, 0.0))
        end = start + cost(op)
        free[op.resource] = end
        out.append(Timed(op, start, end))
    return tuple(out)


def _with_media(ops: Sequence[PipeOp], durations: list[float], media: Mapping[str, str],
                airtime: Callable[[PipeOp], float]) -> tuple[Timed, ...]:
    """Event-driven form of the list scheduler: an op on a plain resource starts when its
    input and the op before it on the resource (program order) have ended, as in
    `_in_order`; an op on a medium queues there once its input has ended."""
    n = len(ops)
    before = [-1] * n  # the previous op on the same plain resource
    after: list[list[int]] = [[] for _ in range(n)]  # ops waiting on each op's end
    last: dict[str, int] = {}
    for i, op in enumerate(ops):
        if op.input >= 0:
            after[op.input].append(i)
        if op.resource not in media:
            before[i] = last.get(op.resource, -1)
            if before[i] >= 0 and before[i] != op.input:
                after[before[i]].append(i)
            last[op.resource] = i
    start = [0.0] * n
    end: list[float | None] = [None] * n
    events: list[tuple[float, int]] = []  # (end time, op)
    queue: dict[str, list[tuple[float, int]]] = {}  # medium -> waiting (ready time, op)
    busy: dict[str, float] = {}  # medium -> end of the airtime on it

    def begin(i: int, t: float) -> None:
        start[i] = t
        heapq.heappush(events, (t + durations[i], i))

    def arrive(i: int, t: float) -> None:
        """Op ``i``'s dependences may have ended by ``t``: start or queue it if so."""
        op = ops[i]
        if op.input >= 0 and end[op.input] is None:
            return
        if op.resource in media:
            heapq.heappush(queue.setdefault(media[op.resource], []), (t, i))
        elif before[i] < 0 or end[before[i]] is not None:
            begin(i, t)

    for i, op in enumerate(ops):
        if op.input < 0:
            arrive(i, 0.0)
    done = 0
    while done < n:
        # the next moment something happens: an op ends, or a medium frees with ops waiting
        t = min([events[0][0]] if events else [], default=float("inf"))
        for m, waiting in queue.items():
            if waiting:
                t = min(t, max(busy.get(m, 0.0), waiting[0][0]))
        if t == float("inf"):
            raise RuntimeError("schedule_pipeline: ops wait on each other (an input cycle)")
        while events and events[0][0] <= t:
            _, i = heapq.heappop(events)
            end[i] = start[i] + durations[i]
            done += 1
            for j in after[i]:
                arrive(j, end[i])
        for m in sorted(queue):
            waiting = queue[m]
            while waiting and busy.get(m, 0.0) <= t:
                _, i = heapq.heappop(waiting)
                busy[m] = t + airtime(ops[i])
                begin(i, t)
    return tuple(Timed(op, start[i], start[i] + durations[i]) for i, op in enumerate(ops))


def _ranges(layers: list[int]) -> str:
    parts, start = [], layers[0]
    for prev, cur in zip(layers, layers[1:] + [None]):
        if cur != prev + 1 if cur is not None else True:
            parts.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = cur
    return ", ".join(parts)
