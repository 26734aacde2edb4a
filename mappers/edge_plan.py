"""The partition planner: contiguous blocks of a model's layers over a chain of devices,
chosen by dynamic programming to minimise the pipelined prefill's TTFT under each device's
memory (Jupiter's planner, in its simplest exact form).

Model: ``C`` equal chunks flow through the chain's stages (each device's block, and each hop
between consecutive devices, is a stage with one timeline). A hop holds its link for its
airtime and then delays the chunk by the latency, which holds nothing (a delay any number of
chunks can be in at once). For identical jobs in a flow shop every stage keeps its order,
so the makespan is exactly

    TTFT = sum of stage times (hops: airtime + latency)
           + (C - 1) x (the slowest stage's hold: a device's time, a hop's airtime),

which `mappers.edge.schedule_pipeline` reproduces op by op (the tests check the planner
against brute force through that scheduler, not against this formula). The formula is not a
sum, so the DP fixes a bound ``B`` on the slowest stage, minimises the sum of stage times
with every stage <= ``B`` (a shortest path over (device, layers covered)), and keeps the best
``sum + (C - 1) x B`` over every ``B`` that is some stage's time: exact, since the optimum's
slowest stage is one of those values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from sim.errors import ConfigError


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainDevice:
    """A device of the chain: seconds per layer per chunk, the seconds of its fixed work per
    chunk (the embedding on the first device, the LM head on the last: give them there),
    bytes per layer it must hold, fixed bytes (embedding/LM head) and its capacity."""

    layer_s: float
    fixed_s: float = 0.0
    layer_bytes: int
    fixed_bytes: int = 0
    capacity_bytes: int


@dataclass(frozen=True, slots=True)
class Plan:
    """Layers per device, in chain order, and the modelled TTFT in seconds."""

    layers: tuple[int, ...]
    ttft_s: float


def plan_partition(num_layers: int, chain: Sequence[ChainDevice], hop_s: Sequence[float],
                   chunks: int, hop_air_s: Sequence[float] | None = None) -> Plan:
    """The split of ``num_layers`` layers into one non-empty contiguous block per device of
    ``chain`` (in order) that minimises TTFT (module docstring); ``hop_s[i]``: seconds from
    the start of sending one chunk's hidden state from device ``i`` to its arrival at
    ``i + 1``; ``hop_air_s[i]``: the part of it the link is held (its airtime; default: all
    of it). `ConfigError` if no split fits."""
    hop_air_s = hop_s if hop_air_s is None else hop_air_s
    d = len(chain)
    if d < 1 or len(hop_s) != d - 1 or len(hop_air_s) != d - 1 or chunks < 1 \
            or num_layers < d:
        raise ConfigError(f"plan: need 1 <= devices <= layers ({num_layers}), one hop between "
                          f"consecutive devices and chunks >= 1; got {d} devices, "
                          f"{len(hop_s)} hops, {chunks} chunks")

    def fits(k: int, n: int) -> bool:
        dev = chain[k]
        return n * dev.layer_bytes + dev.fixed_bytes <= dev.capacity_bytes

    def stage(k: int, n: int) -> float:
        return n * chain[k].layer_s + chain[k].fixed_s

    bounds = sorted({stage(k, n) for k in range(d) for n in range(1, num_layers + 1)
                     if fits(k, n)} | set(hop_air_s))
    best: Plan | None = None
    for bound in bounds:
        if any(h > bound for h in hop_air_s):
            continue
        found = _min_sum(num_layers, d, bound, fits, stage)
        if found is None:
            continue
        total, layers = found
        ttft = total + sum(hop_s) + (chunks - 1) * bound
        if best is None or ttft < best.ttft_s:
            best = Plan(layers=layers, ttft_s=ttft)
    if best is None:
        raise ConfigError(f"plan: no split of {num_layers} layers over {d} devices fits their "
                          f"memory")
    return best


def _min_sum(num_layers: int, d: int, bound: float, fits, stage
             ) -> tuple[float, tuple[int, ...]] | None:
    """Least sum of device stage times, each <= ``bound`` and fitting; with its split. Among
    splits of the same sum (to rounding), the one whose slowest device stage is least: when a
    hop bounds the pipeline many splits tie on TTFT, and the balanced one is the one a decode
    reusing the split wants (every device's stage on the critical path of every token)."""
    inf = math.inf
    # cost[k][j]: least (sum, slowest stage) with devices 0..k holding layers 0..j-1 (each at
    # least one), compared by sum, then (on a tie within rounding) by slowest stage
    cost = [[(inf, inf)] * (num_layers + 1) for _ in range(d)]
    back = [[0] * (num_layers + 1) for _ in range(d)]
    for k in range(d):
        for j in range(k + 1, num_layers - (d - 1 - k) + 1):
            for n in range(1, j - k + 1):
                if not fits(k, n) or stage(k, n) > bound:
                    continue
                before = (0.0, 0.0) if k == 0 else cost[k - 1][j - n]
                if k == 0 and n != j:
                    continue
                cand = (before[0] + stage(k, n), max(before[1], stage(k, n)))
                if _better(cand, cost[k][j]):
                    cost[k][j] = cand
                    back[k][j] = n
    if cost[d - 1][num_layers][0] == inf:
        return None
    layers, j = [], num_layers
    for k in range(d - 1, -1, -1):
        layers.append(back[k][j])
        j -= back[k][j]
    return cost[d - 1][num_layers][0], tuple(reversed(layers))


def _better(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """``a`` < ``b`` by sum, sums within rounding (1e-9 relative) compared by slowest stage."""
    if b[0] == math.inf:
        return a[0] < math.inf
    if abs(a[0] - b[0]) > 1e-9 * max(abs(a[0]), abs(b[0])):
        return a[0] < b[0]
    return a[1] < b[1]
