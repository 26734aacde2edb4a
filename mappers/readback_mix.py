"""Which layers a reuse step reads back and which it recomputes (Alchemist with offloaded
records; docs/training.md, "Read back or recompute").

Reading a layer's records back over PCIe costs ``x`` (its recorded bytes / PCIe bytes/s) on
the link and lets its backward (``c``) run without its forward. A layer can instead be
recomputed, as under activation checkpointing: only its input hidden state (``tokens x
hidden`` activations, the boundary) is recorded and read back (``y``, small), and its
forward (``f``) runs again just before its backward, into the same layer buffer. A real
system with a slow link does this per layer: with the list schedule of `mappers.readback`
(two layer buffers, transfers in backward order, one link), a read-back layer runs ``(c, x)``
and a recomputed one ``(f + c, y)``.

`best_mix` finds, for every count ``n`` of read-back layers in ``0..L``, the placement (which
of the L layers, in backward order) with the earliest end, and the best over all ``n``. The
search is exact over all ``2^L`` subsets: the schedule's state after a layer is ``(link free,
backward end of the layer before, backward end of this layer)`` and every later time is
non-decreasing in each of the three, so a state that is no earlier in all three than
another with the same ``n`` can be dropped (Pareto pruning) without losing the optimum.
Ties go to fewer read-back layers (fewer bytes recorded, offloaded and held on the host),
then to the earlier placement in backward order.

``n = L`` is the step that reads every layer back (`mappers.readback.Prefetch` as before);
``n = 0`` recomputes every layer's forward from the recorded inputs: the step without reuse
less the embedding's forward (serving ran it), plus the inputs' exposed read-back.
"""

from __future__ import annotations

from dataclasses import dataclass

from .readback import BUFFERS, layer_step, prefetch_end_s

#: Policies: ``all`` reads every layer's records back; ``auto`` picks the layers (`best_mix`).
READBACK = ("auto", "all")


@dataclass(frozen=True, slots=True)
class Mix:
    """A placement: ``read[i]`` whether layer ``i`` (backward order) is read back (else
    recomputed) and ``end_s``, when the last layer's backward ends (seconds from the step's
    start, `mappers.readback.prefetch_end_s`)."""

    read: tuple[bool, ...]
    end_s: float

    @property
    def count(self) -> int:
        """Layers read back (``n``)."""
        return sum(self.read)


def mix_end_s(read: tuple[bool, ...], *, lead_s: float, backward_s: float, forward_s: float,
              record_s: float, input_s: float) -> float:
    """End (seconds) of the placement ``read`` under the list schedule: a read-back layer is
    ``(backward_s, record_s)``, a recomputed one ``(forward_s + backward_s, input_s)``."""
    return prefetch_end_s(lead_s, [backward_s if r else forward_s + backward_s for r in read],
                          [record_s if r else input_s for r in read])


def best_mix(layers: int, *, lead_s: float, backward_s: float, forward_s: float,
             record_s: float, input_s: float) -> tuple[Mix, dict[int, Mix]]:
    """The best placement overall and the best for each ``n`` in ``0..layers`` (module
    docstring), every layer alike: backward ``backward_s``, forward ``forward_s``, records
    read back in ``record_s``, input in ``input_s`` (seconds)."""
    if layers < 1:
        raise ValueError(f"best_mix: layers must be >= 1, got {layers}")
    # Per n, the Pareto front of states (link free, e2, e1) and their placements: e2 is the
    # backward end that frees the next layer's buffer (two layers before it), e1 the last
    # backward's end (lead_s before the first layer).
    fronts: dict[int, list[tuple[tuple[float, float, float], tuple[bool, ...]]]] = {
        0: [((0.0, 0.0, lead_s), ())]}
    for i in range(layers):
        grown: dict[int, list] = {}
        for n, states in fronts.items():
            for (link, e2, e1), read in states:
                for r in (False, True):
                    c, x = (backward_s, record_s) if r else (forward_s + backward_s, input_s)
                    arrived, done = layer_step(link, e2 if i >= BUFFERS else 0.0, e1, c, x)
                    grown.setdefault(n + r, []).append(
                        ((arrived, e1 if i >= 1 else 0.0, done), read + (r,)))
        fronts = {n: _pareto(states) for n, states in grown.items()}
    by_count = {}
    for n in sorted(fronts):
        state, read = min(fronts[n], key=lambda s: (s[0][2], [not r for r in s[1]]))
        by_count[n] = Mix(read, state[2])
    best = min(by_count.values(), key=lambda m: (m.end_s, m.count))
    return best, by_count


def _pareto(states: list) -> list:
    """The states no other is no later than in all three times (ties: the first kept, in
    sorted order, so the earlier placement in backward order of equal times)."""
    states.sort(key=lambda s: (s[0], [not r for r in s[1]]))
    kept: list = []
    for s in states:
        a = s[0]
        if not any(k[0][0] <= a[0] and k[0][1] <= a[1] and k[0][2] <= a[2] for k in kept):
            kept.append(s)
    return kept
