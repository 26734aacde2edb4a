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
3. `schedule_pipeline`: event-driven list scheduling. An op is ready when its input (and, for
   a stage's compute, the same stage's previous chunk, whose KV cache it reads) has ended;
   each resource (a device, a link direction, or a shared *medium* such as one Wi-Fi channel
   that several directions send on) runs, of its ready ops, the one that became ready first
   (ties: program order), as HAT's event loop (`sim.hat_events`) does. So chunk ``c`` on
   device ``d`` overlaps chunk ``c + 1`` on device ``d - 1``, a link sends while both ends
   compute, and on a U-shaped split the device starts chunk ``c + 1``'s first layers while
   chunk ``c`` is away. A transfer holds its direction (or medium) for its bytes' airtime,
   bytes / bandwidth, and arrives the link's latency later: the latency is propagation, so
   transfers pipeline. Times come from a cost callable the simulator supplies (`sim.edge`).
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
    after: int = -1  # the same stage's op for the previous chunk: its KV cache is read


@dataclass(frozen=True, slots=True)
class Timed:
    """An op with its start and end in seconds from the start of the prefill; ``free_s``:
    when it let go of its resource (a transfer: its bytes out, before it arrives at
    ``end_s``; a compute op: ``end_s``)."""

    op: PipeOp
    start_s: float
    end_s: float
    free_s: float

    @property
    def held_s(self) -> float:
        """Seconds the op held its resource (a transfer: its airtime, without the latency)."""
        return self.free_s - self.start_s


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
    last = [-1] * len(stages)  # each stage's op for the previous chunk
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
                              tokens=tokens, context=context, input=prev, after=last[s]))
            prev = last[s] = len(ops) - 1
        context += tokens
    return tuple(ops)


def schedule_pipeline(ops: Sequence[PipeOp], cost: Callable[[PipeOp], float], *,
                      media: Mapping[str, str] | None = None,
                      airtime: Callable[[PipeOp], float] | None = None) -> tuple[Timed, ...]:
    """Place each op on its resource (module docstring); ``cost(op)`` is its duration in
    seconds, asked once per op in program order (so sampled jitter follows op order).

    Every resource (a device, a link direction, a shared medium) is one FIFO by readiness: of
    the ops waiting for it, it runs the one whose inputs (``input`` and ``after``) ended first
    (ties: program order), without preemption. A compute op holds its device for its whole
    duration. A transfer holds its link direction, or the medium ``media`` maps the direction
    to, for ``airtime(op)`` seconds (its bytes on the wire; default: its whole duration) and
    ends, arriving, ``cost(op)`` after its start: the rest, the latency, is propagation that
    delays the receiver but not the next transfer."""
    media = media or {}
    durations = [cost(op) for op in ops]
    holds = [airtime(op) if airtime is not None and op.kind != COMPUTE else durations[i]
             for i, op in enumerate(ops)]
    channel = [media.get(op.resource, op.resource) for op in ops]
    n = len(ops)
    deps = [[d for d in (op.input, getattr(op, "after", -1)) if d >= 0] for op in ops]
    pending = [len(set(d)) for d in deps]
    waiters: list[list[int]] = [[] for _ in range(n)]  # ops waiting on each op's end
    for i, d in enumerate(deps):
        for j in set(d):
            waiters[j].append(i)
    start = [0.0] * n
    end = [0.0] * n
    events: list[tuple[float, int]] = []  # (end time, op)
    queue: dict[str, list[tuple[float, int]]] = {}  # resource -> waiting (ready time, op)
    busy: dict[str, float] = {}  # resource -> when its current op lets go of it
    for i in range(n):
        if not pending[i]:
            heapq.heappush(queue.setdefault(channel[i], []), (0.0, i))
    done = 0
    while done < n:
        # the next moment something happens: an op ends, or a resource frees with ops waiting
        t = events[0][0] if events else float("inf")
        for m, waiting in queue.items():
            if waiting:
                t = min(t, max(busy.get(m, 0.0), waiting[0][0]))
        if t == float("inf"):
            raise RuntimeError("schedule_pipeline: ops wait on each other (an input cycle)")
        while events and events[0][0] <= t:
            _, i = heapq.heappop(events)
            done += 1
            for j in waiters[i]:
                pending[j] -= 1
                if not pending[j]:
                    ready = max(end[d] for d in deps[j])
                    heapq.heappush(queue.setdefault(channel[j], []), (ready, j))
        for m in sorted(queue):
            waiting = queue[m]
            while waiting and busy.get(m, 0.0) <= t and waiting[0][0] <= t:
                _, i = heapq.heappop(waiting)
                start[i], end[i] = t, t + durations[i]
                busy[m] = t + holds[i]
                heapq.heappush(events, (end[i], i))
    return tuple(Timed(op, start[i], end[i], start[i] + holds[i]) for i, op in enumerate(ops))


def link_bytes(timeline: Sequence[Timed]) -> dict[str, int]:
    """Bytes moved on each link direction (``a->b``) or medium by the transfers of
    ``timeline``."""
    out: dict[str, int] = {}
    for t in timeline:
        if t.op.kind != COMPUTE:
            out[t.op.resource] = out.get(t.op.resource, 0) + t.op.bytes
    return out


def _ranges(layers: list[int]) -> str:
    parts, start = [], layers[0]
    for prev, cur in zip(layers, layers[1:] + [None]):
        if cur != prev + 1 if cur is not None else True:
            parts.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = cur
    return ", ".join(parts)
