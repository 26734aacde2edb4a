"""A small event loop for many devices sharing a cloud (docs/edge.md, "HAT").

Each request is a *process*: a generator that yields what it waits for, and is resumed when
that is done:

* `Use(resource, seconds, kind)`: a FIFO timeline (a device's GPU, one direction of its link):
  the op starts when the process asks and the resource has finished what was asked before.
  A link is held for the bytes' serialisation (bytes / bandwidth) only; its latency is flight
  time that delays the receiver but not the next transfer (transfers pipeline on a WAN).
* `Cloud(instance, tokens, context)`: a job for a cloud instance, which batches: when idle it
  starts an iteration with the queued jobs (FIFO, up to its token budget, at least one) and
  times it with its step-time table; every job of the iteration resumes at its end.
* `Spawn(process)`: start a child process now (returns a handle at once); `Join(handles)`:
  resume when every child has finished.

Every op records what decided its start: the resource's previous op (it had to wait for the
resource) or the process's previous op (its input). `critical_path` walks those links back
from an op and splits the elapsed time into device compute, transfer, cloud waiting and cloud
compute; the pieces tile the interval exactly, so they sum to the latency.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Callable, Generator

DEVICE, TRANSFER, WAITING, CLOUD = "device", "transfer", "waiting", "cloud"
KINDS = (DEVICE, TRANSFER, WAITING, CLOUD)


@dataclass(slots=True)
class Op:
    """One op's place in time: ``queued`` (asked, or joined a cloud queue), ``start``,
    ``end`` (s); ``cause`` is the op whose end decided ``start`` (None: the request's start)."""

    kind: str
    queued: float
    start: float
    end: float
    cause: Op | None
    bytes: int = 0


@dataclass(slots=True)
class Resource:
    """A FIFO timeline: free at ``free`` seconds, ``last`` the op that ends then; ``moved``
    the bytes its ops carried (a link direction)."""

    name: str
    free: float = 0.0
    last: Op | None = None
    moved: int = 0  # bytes carried (links)


@dataclass(slots=True)
class Instance:
    """A cloud instance: a step-time function of ``[(new_tokens, context), ...]`` and a token
    budget per iteration."""

    name: str
    step: Callable[[list[tuple[int, int]]], float]
    max_tokens: int = 2048
    queue: list = field(default_factory=list)
    busy: bool = False
    kicked: bool = False
    iterations: int = 0
    busy_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Use:
    """Hold ``resource`` for ``seconds``; then, for a link, ``latency`` seconds of flight
    that keep the process waiting but leave the link free for the next transfer."""

    resource: Resource
    seconds: float
    kind: str
    bytes: int = 0
    latency: float = 0.0


@dataclass(frozen=True, slots=True)
class Cloud:
    instance: Instance
    tokens: int
    context: int


@dataclass(frozen=True, slots=True)
class Spawn:
    process: Generator


@dataclass(frozen=True, slots=True)
class Join:
    handles: tuple


@dataclass(slots=True)
class _Proc:
    gen: Generator
    last: Op | None
    done: bool = False
    waiters: list = field(default_factory=list)


class Loop:
    """The event heap; `start` processes, then `run`."""

    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list = []
        self._seq = 0

    def _at(self, t: float, fn: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, fn))

    def start(self, gen: Generator, at: float = 0.0, last: Op | None = None) -> _Proc:
        """Start process ``gen`` at time ``at``."""
        proc = _Proc(gen, last)
        self._at(at, lambda: self._step(proc, None))
        return proc

    def run(self) -> None:
        while self._heap:
            self.now, _, fn = heapq.heappop(self._heap)
            fn()

    def _step(self, proc: _Proc, value) -> None:
        try:
            cmd = proc.gen.send(value)
        except StopIteration:
            proc.done = True
            for w in proc.waiters:
                w()
            return
        if isinstance(cmd, Use):
            res = cmd.resource
            waits = res.free > self.now
            start = res.free if waits else self.now
            op = Op(cmd.kind, self.now, start, start + cmd.seconds,
                    res.last if waits else proc.last, cmd.bytes)
            res.free, res.last, res.moved = op.end, op, res.moved + cmd.bytes
            if cmd.latency:
                op = Op(cmd.kind, op.end, op.end, op.end + cmd.latency, op)
            self._resume(proc, op)
        elif isinstance(cmd, Cloud):
            inst = cmd.instance
            inst.queue.append((cmd, proc, self.now))
            self._kick(inst)
        elif isinstance(cmd, Spawn):
            child = _Proc(cmd.process, proc.last)
            self._step(child, None)
            self._at(self.now, lambda: self._step(proc, child))
        elif isinstance(cmd, Join):
            pending = [h for h in cmd.handles if not h.done]

            def resume() -> None:
                proc.last = max((h.last for h in cmd.handles if h.last is not None),
                                key=lambda o: o.end, default=proc.last)
                self._step(proc, None)
            if not pending:
                self._at(self.now, resume)
                return
            left = [len(pending)]

            def one() -> None:
                left[0] -= 1
                if left[0] == 0:
                    resume()
            for h in pending:
                h.waiters.append(one)
        else:
            raise TypeError(f"a process yielded {cmd!r}")

    def _resume(self, proc: _Proc, op: Op) -> None:
        def go() -> None:
            proc.last = op
            self._step(proc, op)
        self._at(op.end, go)

    def _iterate(self, inst: Instance) -> None:
        batch, tokens = [], 0
        while inst.queue and (not batch or tokens + inst.queue[0][0].tokens <= inst.max_tokens):
            item = inst.queue.pop(0)
            batch.append(item)
            tokens += item[0].tokens
        seconds = inst.step([(c.tokens, c.context) for c, _, _ in batch])
        start, end = self.now, self.now + seconds
        inst.busy, inst.iterations, inst.busy_s = True, inst.iterations + 1, inst.busy_s + seconds

        def finish() -> None:
            inst.busy = False
            for _, proc, queued in batch:
                wait = Op(WAITING, queued, queued, start, proc.last)
                self._resume_now(proc, Op(CLOUD, queued, start, end, wait))
            self._kick(inst)
        self._at(end, finish)

    def _kick(self, inst: Instance) -> None:
        """Start ``inst``'s next iteration once every event of this instant has run, so jobs
        queued at the same time (a batch's sequences coming back) ride together."""
        if inst.busy or inst.kicked:
            return
        inst.kicked = True

        def go() -> None:
            inst.kicked = False
            if not inst.busy and inst.queue:
                self._iterate(inst)
        self._at(self.now, go)

    def _resume_now(self, proc: _Proc, op: Op) -> None:
        proc.last = op
        self._step(proc, op)


def critical_path(op: Op | None, since: float = 0.0) -> dict[str, float]:
    """Seconds of each kind (`KINDS`) on the chain of causes ending at ``op``, counting only
    time after ``since``: the chain tiles ``[since, op.end]`` when the chain starts at or
    before ``since``."""
    out = dict.fromkeys(KINDS, 0.0)
    while op is not None and op.end > since:
        out[op.kind] += op.end - max(op.start, since)
        op = op.cause
    return out
