"""Recorded training samples (Alchemist, docs/serving.md "Reusing serving's activations"): the
bounded store the prefills' recorded activations wait in, its drop rule, and how a training
step is packed from them.

* **Capacity.** A store holds at most ``capacity_bytes`` of recorded samples: host memory when
  they are offloaded over PCIe (default `HOST_BYTES_PER_CHIP`), the chip's DRAM otherwise
  (default: one step's tokens, the activation memory the job already reserves). A sample
  occupies its bytes from its record until a step takes it.
* **Drop rule.** A sample that does not fit: ``oldest`` drops the oldest stored samples until
  it does (online learning wants fresh feedback); ``newest`` drops the new sample (recording
  stops while the store is full). A sample larger than the whole store keeps only its first
  tokens that fit (the rest dropped). Dropped and cut samples and dropped bytes are counted.
* **Packing.** A step trains on ``batch x seq`` tokens. It takes samples oldest first until
  those tokens are filled; a sample longer than the room left is split, its first tokens in
  this step and the rest (with their share of the bytes) kept at the head of the queue for
  the next, so every recorded token is trained once (splits counted). Too few samples leave
  the rest of the step to fresh data, whose forward runs. Of the tokens taken, those of
  samples whose offload ended by the step's start are reused; a late sample's are recomputed
  (hedging), the sample counted.
* **Data** (`DATA`). ``mixed``: a step starts whenever the instance may train, fresh data
  filling what samples do not. ``served``: the job trains on the served prompts only (online
  learning on user feedback), so a step waits until stored samples hold its tokens; without
  reuse the prompts are queued the same way, holding no bytes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

#: Host memory per chip for offloaded samples when the ``training:`` block gives none: an
#: NVIDIA DGX H100 has 2 TB of system memory for its 8 GPUs (DGX H100 datasheet), 250 GB each.
HOST_BYTES_PER_CHIP = 2e12 / 8
DROP = ("oldest", "newest")
#: What a step trains on: ``mixed``, recorded samples first and fresh data for the rest of the
#: step (a step starts whenever the instance may train); ``served``, only the served prompts
#: (online learning on user feedback): a step starts once they fill it.
DATA = ("mixed", "served")


@dataclass(frozen=True, slots=True)
class Sample:
    """One recorded prefill: ``ready_s`` (seconds; when its offload ends, or its record when
    kept in DRAM), its prompt ``tokens`` and ``nbytes`` recorded."""

    ready_s: float
    tokens: int
    nbytes: int


@dataclass(frozen=True, slots=True)
class Packed:
    """A step's share of recorded samples: ``reused`` tokens (ready samples), ``recomputed``
    tokens (late samples), ``late`` samples, ``split`` samples (their rest left for the next
    step); the rest of the step's tokens are fresh data."""

    reused: int = 0
    recomputed: int = 0
    late: int = 0
    split: int = 0


class SampleStore:
    """Samples waiting for a step, at most ``capacity_bytes`` (bytes) of them, dropped by
    ``drop`` (`DROP`) when full; counters of what was stored, dropped and cut."""

    def __init__(self, *, capacity_bytes: float, drop: str) -> None:
        if drop not in DROP:
            raise ValueError(f"drop must be one of {DROP}, got {drop!r}")
        self.capacity_bytes, self.drop = capacity_bytes, drop
        self.samples: deque[Sample] = deque()
        self.stored_bytes = self.peak_bytes = self.stored_tokens = 0
        self.dropped = self.dropped_bytes = self.cut = 0

    def add(self, sample: Sample) -> bool:
        """Store ``sample`` under the drop rule; whether it was kept (maybe cut)."""
        if sample.nbytes > self.capacity_bytes:  # keep its first tokens that fit
            per_token = sample.nbytes // sample.tokens
            keep = int(self.capacity_bytes // per_token) if per_token else sample.tokens
            if keep < 1:
                self._count_drop(sample)
                return False
            self.cut += 1
            self.dropped_bytes += sample.nbytes - keep * per_token
            sample = Sample(sample.ready_s, keep, keep * per_token)
        if self.drop == "newest" and self.stored_bytes + sample.nbytes > self.capacity_bytes:
            self._count_drop(sample)
            return False
        while self.stored_bytes + sample.nbytes > self.capacity_bytes:
            old = self.samples.popleft()
            self.stored_bytes -= old.nbytes
            self.stored_tokens -= old.tokens
            self._count_drop(old)
        self.samples.append(sample)
        self.stored_bytes += sample.nbytes
        self.stored_tokens += sample.tokens
        self.peak_bytes = max(self.peak_bytes, self.stored_bytes)
        return True

    def take(self, now: float, tokens: int) -> Packed:
        """Pack a step of ``tokens`` tokens starting at ``now`` (module docstring)."""
        room, reused, recomputed, late, split = tokens, 0, 0, 0, 0
        while room > 0 and self.samples:
            s = self.samples.popleft()
            n = min(s.tokens, room)
            taken = s.nbytes * n // s.tokens  # bytes are per token: exact
            self.stored_bytes -= taken
            self.stored_tokens -= n
            if n < s.tokens:  # the rest waits, first in line, for the next step
                self.samples.appendleft(Sample(s.ready_s, s.tokens - n, s.nbytes - taken))
                split += 1
            room -= n
            if s.ready_s > now:
                late += 1
                recomputed += n
            else:
                reused += n
        return Packed(reused=reused, recomputed=recomputed, late=late, split=split)

    def __len__(self) -> int:
        return len(self.samples)

    def _count_drop(self, sample: Sample) -> None:
        self.dropped += 1
        self.dropped_bytes += sample.nbytes
