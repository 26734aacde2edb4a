"""Reading recorded activations back over PCIe for a reuse step (Alchemist; docs/training.md,
"Reading the samples back").

A reuse step (`mappers.train`, ``reuse="activations"``) trains on sequences whose prefill
serving recorded. When those records were offloaded to host memory, the backward of layer
``l`` needs layer ``l``'s recorded activations back on the chip. They are prefetched over the
PCIe link's host-to-device direction (its own direction: the offloads go the other way),
layer by layer in backward order, into two layer buffers on the chip (double buffering: one
layer's records in flight while the other's are in use).

List schedule (`prefetch_end_s`), layers numbered ``i = 1..L`` in backward order, compute
``c_i`` (the layer's backward), transfer ``x_i`` (its recorded bytes / PCIe bytes/s):

* transfer ``i`` starts when the link is free (transfer ``i-1`` ended) and a buffer is free:
  at once for ``i <= 2`` (the step's start: the samples wait on the host), else when the
  backward of layer ``i-2`` has ended and released its buffer;
* the backward of layer ``i`` starts when transfer ``i`` has ended, the backward of layer
  ``i-1`` has ended, and not before ``lead_s`` (the head's forward and backward, which run
  first and need no record).

With equal layers (``c``, ``x``) and ``L >= 2`` the last backward ends at

    max(2 x, max(lead, x) + c) + (L - 2) max(c, x) + c,

which for ``lead <= x`` is ``x + (L - 1) max(c, x) + c``: the first layer's transfer, then a
pipeline of per-layer ``max(compute, transfer)``. With the records on the chip (``x = 0``)
it is ``lead + L c``, the step as scheduled; the difference is the read-back's exposed time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

#: Layer buffers on the chip for the prefetch: the one in use and the one loading.
BUFFERS = 2


def prefetch_end_s(lead_s: float, compute_s: Sequence[float],
                   transfer_s: Sequence[float]) -> float:
    """When the last layer's backward ends (seconds from the step's start) under the list
    schedule of the module docstring: ``compute_s[i]`` and ``transfer_s[i]`` are layer
    ``i``'s backward and read-back in backward order; ``lead_s`` the work before the first
    layer's backward."""
    if len(compute_s) != len(transfer_s):
        raise ValueError("prefetch_end_s: one compute and one transfer time per layer")
    link = 0.0                 # when the link's host-to-device direction is free
    ends: list[float] = []     # when each layer's backward ended (its buffer released)
    done = lead_s              # when the previous layer's backward ended
    for i, (c, x) in enumerate(zip(compute_s, transfer_s)):
        link, done = layer_step(link, ends[i - BUFFERS] if i >= BUFFERS else 0.0, done, c, x)
        ends.append(done)
    return done


def layer_step(link_s: float, buffer_s: float, done_s: float, compute_s: float,
               transfer_s: float) -> tuple[float, float]:
    """One layer of the list schedule: its transfer starts when the link (free at
    ``link_s``) and a buffer (free at ``buffer_s``) are, its backward when the transfer has
    arrived and the previous backward (ended ``done_s``) has ended. Returns (arrival, which
    frees the link; the backward's end)."""
    arrived = max(link_s, buffer_s) + transfer_s
    return arrived, max(arrived, done_s) + compute_s


@dataclass(frozen=True, slots=True, kw_only=True)
class Prefetch:
    """A reuse step's read-back: ``lead_s`` (seconds before the first layer's backward),
    ``layer_s`` (one layer's backward, seconds), ``layers``, ``layer_bytes_per_token`` (one
    layer's recorded bytes per token on one chip) and the link's ``pcie_bytes_per_s``.

    With a mix (`mappers.readback_mix`): ``read`` says which layers (backward order) are read
    back, the others recomputed from their recorded input (``input_bytes_per_token``) with
    their forward (``forward_s`` for ``step_tokens`` tokens, linear in the tokens). ``read``
    None: every layer read back."""

    lead_s: float
    layer_s: float
    layers: int
    layer_bytes_per_token: int
    pcie_bytes_per_s: float
    read: tuple[bool, ...] | None = None
    forward_s: float = 0.0
    input_bytes_per_token: int = 0
    step_tokens: int = 1

    @property
    def read_layers(self) -> int:
        """Layers whose records are read back (the rest are recomputed)."""
        return self.layers if self.read is None else sum(self.read)

    @property
    def record_bytes_per_token(self) -> int:
        """Bytes recorded (and offloaded, read back) per token, every layer, one chip."""
        n = self.read_layers
        return n * self.layer_bytes_per_token + (self.layers - n) * self.input_bytes_per_token

    def transfer_s(self, tokens: int) -> float:
        """Seconds to read one layer's records of ``tokens`` tokens back."""
        return tokens * self.layer_bytes_per_token / self.pcie_bytes_per_s

    def end_s(self, tokens: int) -> float:
        """When the last layer's backward ends for ``tokens`` read-back tokens (seconds)."""
        from .readback_mix import mix_end_s

        read = (True,) * self.layers if self.read is None else self.read
        return mix_end_s(read, lead_s=self.lead_s, backward_s=self.layer_s,
                         forward_s=self.forward_s * tokens / self.step_tokens,
                         record_s=self.transfer_s(tokens),
                         input_s=tokens * self.input_bytes_per_token / self.pcie_bytes_per_s)

    def exposed_s(self, tokens: int) -> float:
        """Seconds the read-back of ``tokens`` recorded tokens adds to the step: the prefetch
        schedule's end less the step's own ``lead + layers x layer`` (records on chip),
        recomputed layers' forward included."""
        if tokens <= 0:
            return 0.0
        return max(0.0, self.end_s(tokens) - (self.lead_s + self.layers * self.layer_s))

    def bytes(self, tokens: int) -> int:
        """Bytes read back for ``tokens`` tokens (every layer, one chip)."""
        return self.record_bytes_per_token * tokens

    def buffer_bytes(self, tokens: int) -> int:
        """Chip bytes of the `BUFFERS` layer buffers for a step of ``tokens`` tokens (a
        recomputed layer's forward refills the buffer its input came into)."""
        return BUFFERS * self.layer_bytes_per_token * tokens


def breakeven_transfer_s(prefetch: Prefetch, budget_s: float) -> float:
    """The per-layer transfer time (seconds) at which the read-back exposes ``budget_s``
    seconds (the time the reuse step saves over the step that runs the forward), by bisection
    on `prefetch_end_s` (non-decreasing in the transfer time, and unbounded); 0 when no
    budget is left."""
    if budget_s <= 0:
        return 0.0
    n, c, lead = prefetch.layers, prefetch.layer_s, prefetch.lead_s

    def exposed(x: float) -> float:
        return prefetch_end_s(lead, [c] * n, [x] * n) - (lead + n * c)

    lo, hi = 0.0, max(budget_s, c, lead, 1e-12)
    while exposed(hi) < budget_s:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if exposed(mid) < budget_s:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return hi
