"""An instance: one model replica on one system (tp x pp chips) with a role, a paged KV
cache and a batching policy; it holds its queue and running sequences while it simulates."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable

from sim.serving.request import Sequence

ROLES = ("collocated", "prefill", "decode")
#: Share of the KV blocks an admission leaves free: vLLM's block-manager ``watermark`` (default
#: 0.01, ``watermark_blocks = int(watermark * num_gpu_blocks)``, "to avoid frequent cache
#: eviction"): a preempted sequence comes back only once decode growth has room again.
WATERMARK = 0.01


@dataclass(slots=True)
class Iteration:
    """One iteration of an instance: start and end (seconds), sequences and new tokens."""

    start_s: float
    end_s: float
    batch: int
    tokens: int
    kv_blocks: int


class Instance:
    """A replica named ``name`` with ``role`` (one of `ROLES`), step times from ``step_time``
    (``[(new_tokens, context), ...] -> seconds``), a KV cache of ``kv_blocks`` blocks of
    ``block_tokens`` tokens (vLLM's paged attention), at most ``max_batch`` sequences and
    ``max_tokens`` new tokens an iteration, batched by ``policy`` (`sim.serving.policies`).
    ``slo``: the run's latency targets, {metric: (percentile, seconds)}, for policies that
    schedule by deadline; ``peers``: every instance of the simulation (set by the simulator),
    for policies that move waiting requests between instances (`move`)."""

    def __init__(self, *, name: str, role: str, step_time: Callable, kv_blocks: int,
                 policy: Callable, block_tokens: int = 16, max_batch: int = 256,
                 max_tokens: int = 4096, kind: str = "",
                 slo: dict[str, tuple[float, float]] | None = None) -> None:
        if role not in ROLES:
            raise ValueError(f"role: must be one of {', '.join(ROLES)}, got {role!r}")
        if kv_blocks < 1:
            raise ValueError(f"{name}: no room for the KV cache (0 blocks)")
        self.name, self.role, self.kind = name, role, kind
        self.step_time, self.policy = step_time, policy
        self.kv_blocks, self.block_tokens = kv_blocks, block_tokens
        self.watermark_blocks = int(WATERMARK * kv_blocks)
        self.max_batch, self.max_tokens = max_batch, max_tokens
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.alloc: dict[int, int] = {}  # id(seq) -> blocks held
        self.used_blocks = 0
        self.peak_blocks = 0
        self.busy = False
        self.timeline: list[Iteration] = []
        self.slo = dict(slo or {})
        self.peers: list[Instance] = []
        self.moved: list[Instance] = []  # instances `move` gave work since the last iteration
        self.incoming = 0  # KV caches in flight to this (decode) instance
        # An offload controller (Adrenaline) that times this instance's iterations and hands
        # its prefilled sequences over; None: `step_time` and a plain KV hand-over.
        self.offload = None
        # Training run in the gaps serving leaves (`sim.serving.training.Trainer`); None: none.
        self.trainer = None

    def blocks(self, tokens: int) -> int:
        return -(-tokens // self.block_tokens)

    def _blocks_of(self, seq: Sequence, tokens: int) -> int:
        """Blocks ``seq`` holds here at ``tokens`` cached tokens: none when its cache lives on
        another instance (``seq.kv_home``), which reserved it whole."""
        return 0 if seq.kv_home is not None else self.blocks(tokens)

    @property
    def free_blocks(self) -> int:
        return self.kv_blocks - self.used_blocks

    def enqueue(self, seq: Sequence, now: float) -> None:
        seq.queued_s = now
        self.waiting.append(seq)

    def can_admit(self, seq: Sequence, new_tokens: int | None = None,
                  reserve: int | None = None) -> bool:
        """Whether the blocks for ``seq``'s next ``new_tokens`` (default: all it needs) fit
        with ``reserve`` blocks still free (default `watermark_blocks`; vLLM's
        ``can_allocate``: ``free - required >= watermark_blocks``)."""
        n = seq.needed if new_tokens is None else new_tokens
        keep = self.watermark_blocks if reserve is None else reserve
        return self._blocks_of(seq, seq.computed + n) + keep <= self.free_blocks

    def admit(self, seq: Sequence, now: float, new_tokens: int | None = None) -> None:
        """Move the head of the queue, ``seq``, to the running set, allocating the blocks of
        its cache and of its next ``new_tokens`` (default: all it needs)."""
        assert self.waiting[0] is seq
        self.waiting.popleft()
        seq.queue_delay_s += now - seq.queued_s
        self.running.append(seq)
        self.alloc[id(seq)] = 0
        n = seq.needed if new_tokens is None else new_tokens
        self._take(seq, self._blocks_of(seq, seq.computed + n))

    def fits_growth(self, batch: list[tuple[Sequence, int]]) -> bool:
        return self._growth(batch) <= self.free_blocks

    def _growth(self, batch) -> int:
        return sum(max(0, self._blocks_of(s, s.computed + n) - self.alloc[id(s)])
                   for s, n in batch)

    def grow(self, batch: list[tuple[Sequence, int]]) -> None:
        """Allocate the blocks the iteration ``batch`` writes; internal bug if they don't fit."""
        for s, n in batch:
            need = self._blocks_of(s, s.computed + n) - self.alloc[id(s)]
            if need > 0:  # most decode steps stay inside their last block
                self._take(s, need)
        if self.used_blocks > self.kv_blocks:
            raise AssertionError(f"{self.name}: KV blocks {self.used_blocks} > {self.kv_blocks}")

    def _take(self, seq: Sequence, blocks: int) -> None:
        self.alloc[id(seq)] += blocks
        self.used_blocks += blocks
        self.peak_blocks = max(self.peak_blocks, self.used_blocks)

    def release(self, seq: Sequence) -> None:
        """Free ``seq``'s blocks and drop it from the running set (finished or handed over);
        blocks reserved for it on its ``kv_home`` are freed too."""
        self.used_blocks -= self.alloc.pop(id(seq))
        self.running.remove(seq)
        home, seq.kv_home = seq.kv_home, None
        if home is not None:
            home.used_blocks -= home.alloc.pop(id(seq))

    def make_room(self, batch: list[tuple[Sequence, int]], now: float,
                  eligible=None) -> list[Sequence]:
        """Preempt by recompute, latest-arrived first, running sequences (those ``eligible``
        allows: default all) until the blocks ``batch`` writes fit; returns them, in order.
        vLLM's ``_schedule_running`` pops its victims from the tail of the FCFS running queue.
        Preempted sequences leave ``batch``; the caller rebuilds what it runs from
        ``running``."""
        out: list[Sequence] = []
        while not self.fits_growth(batch):
            pool = [s for s in self.running if eligible is None or eligible(s)]
            if not pool:
                break
            victim = max(pool, key=lambda s: (s.request.arrival_s, s.request.id))
            self.preempt(victim, now)
            batch = [(s, n) for s, n in batch if s is not victim]
            out.append(victim)
        return out

    def preempt(self, seq: Sequence, now: float) -> None:
        """Preempt by recompute: drop the KV cache, requeue at the head of the queue."""
        self.release(seq)
        seq.computed = 0
        seq.preemptions += 1
        seq.queued_s = now
        self.waiting.appendleft(seq)

    def move(self, seq: Sequence, target: Instance, now: float) -> None:
        """Hand the waiting sequence ``seq`` (no KV cache here) to ``target``'s queue; the
        simulator starts ``target`` if it is idle."""
        assert seq.computed == 0 and id(seq) not in self.alloc
        self.waiting.remove(seq)
        seq.queue_delay_s += now - seq.queued_s
        seq.moves += 1
        target.enqueue(seq, now)
        self.moved.append(target)

    @property
    def load(self) -> int:
        return len(self.waiting) + len(self.running)
