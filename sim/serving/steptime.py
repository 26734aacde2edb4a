"""Step times of an instance: a memoised table over (tokens, batch, context), filled from
pdsim's chip models (`sim.step.compile_step`) on demand and interpolated in between.

A ragged step (sequences with their own new tokens and cached context) is keyed by its
total new tokens ``T``, its sequence count ``B`` and its mean context ``C``; the key's step
is ``B`` sequences sharing the ``T`` tokens as evenly as integers allow, each on ``C``
cached tokens. Grid nodes are geometric in each axis (ratio ``2 ** (1 / per_octave)``; the
context axis also has a node at 0) and each node is simulated once, when first needed;
lookups interpolate trilinearly (in log T, log B, C). Step time is piecewise linear in each
axis (a roofline ``max`` per op), so the error is largest at a ridge between two nodes: with
32 nodes per octave it stays under 1% (0.65% worst over 500 random keys of
llama2-7b on an h100) (tests/sim/serving/test_steptime.py measures it
against direct simulation).
"""

from __future__ import annotations

import math
from typing import Callable

from mappers.ir import Batch, Phase, Precision
from mappers.models import ModelConfig
from sim.hardware import System

#: fp16 weights, activations and KV cache (`mappers.ir.Precision` defaults).
DEFAULT_PRECISION = Precision()
StepFn = Callable[[list[tuple[int, int]]], float]


def key_batch(tokens: int, batch: int, context: int) -> Batch:
    """The ragged batch a table key stands for: ``batch`` sequences sharing ``tokens`` new
    tokens evenly, each on ``context`` cached tokens."""
    q, r = divmod(tokens, batch)
    groups = [(q + 1, context)] * r + [(q, context)] * (batch - r)
    return Batch.of(groups)


class StepTimeTable:
    """Step time in seconds of ``model`` on ``system`` at ``detail`` (`sim.step.COST_MODELS`),
    memoised on a geometric grid; see the module docstring."""

    def __init__(self, model: ModelConfig, system: System, *, detail: str = "roofline",
                 precision: Precision = DEFAULT_PRECISION, per_octave: int = 32) -> None:
        self.model, self.system, self.detail, self.precision = model, system, detail, precision
        self._ratio = math.log(2) / per_octave
        self._nodes: dict[tuple[int, int, int], float] = {}
        self.simulated = 0

    def direct(self, tokens: int, batch: int, context: int) -> float:
        """Simulate the key's step (seconds), uncached."""
        from sim.step import compile_step

        phase = Phase.DECODE if tokens == batch else Phase.PREFILL
        self.simulated += 1
        return compile_step(self.model, self.system, phase=phase, precision=self.precision,
                            seqs=key_batch(tokens, batch, context), detail=self.detail).time_s

    def _node(self, t: int, b: int, c: int) -> float:
        key = (t, b, c)
        if key not in self._nodes:
            self._nodes[key] = self.direct(t, b, c)
        return self._nodes[key]

    def _axis(self, x: float, lo: int) -> tuple[int, int, float]:
        """Bracketing integer nodes of ``x`` (>= lo) and the weight of the upper one."""
        if x <= lo:
            return lo, lo, 0.0
        u = math.log(x) / self._ratio
        k = math.floor(u)
        a, b = round(math.exp(k * self._ratio)), round(math.exp((k + 1) * self._ratio))
        a = max(a, lo)
        b = max(b, a + 1)
        a = min(a, math.floor(x))
        b = max(b, math.ceil(x))
        return a, b, 0.0 if b == a else (x - a) / (b - a)

    def time(self, tokens: int, batch: int, context: float) -> float:
        """Interpolated step time (seconds) of ``batch`` sequences feeding ``tokens`` new
        tokens on a mean ``context`` cached tokens."""
        b0, b1, wb = self._axis(batch, 1)
        c0, c1, wc = self._axis(context, 0) if context >= 1 else (0, 1, context)
        total = 0.0
        t0, t1, wt = self._axis(tokens, 1)
        for t, w1 in ((t0, 1 - wt), (t1, wt)):
            if w1 == 0:
                continue
            for b, w2 in ((b0, 1 - wb), (b1, wb)):
                if w2 == 0:
                    continue
                bb, tt = min(b, t), max(t, min(b, t))  # a step feeds >= 1 token a sequence
                for c, w3 in ((c0, 1 - wc), (c1, wc)):
                    if w3 == 0:
                        continue
                    total += w1 * w2 * w3 * self._node(tt, bb, c)
        return total

    def step(self, shapes: list[tuple[int, int]]) -> float:
        """Time (seconds) of a ragged step of ``(new_tokens, context)`` per sequence."""
        tokens = sum(n for n, _ in shapes)
        return self.time(tokens, len(shapes), sum(c for _, c in shapes) / len(shapes))
