"""Step times of an instance: memoised tables filled from pdsim's chip models
(`sim.step.compile_step`) on demand and interpolated in between.

A step is a ragged batch: sequences with their own new tokens ``n`` and cached context
``c``. Its ops split in two (`mappers.lower`): every op but attention runs over the step's
total new tokens ``T`` (weight GEMMs, norms, all-reduces) or its sequence count ``B`` (the
LM head), and attention is one set of ops per sequence shape, run one shape after another in
one kernel (`mappers.wiring`). So a step's time is

    dense(T, B) + sum over its sequences of A(n, c)

with two tables: ``dense``, the step's time less its attention ops, keyed by ``(T, B)``
(simulated on ``key_batch(T, B, 0)``, ``B`` sequences sharing ``T`` tokens evenly), and
``A``, one sequence's attention ops summed over every layer (launches excluded: the kernel's
launch is in ``dense``), keyed by ``(n, c)``. Decodes (``n = 1``) enter at their mean
context, their attention being linear in it, so a decode step costs two lookups however
many sequences it has. One detail of the schedule is kept: with no cached context anywhere
in the step, attention reads the new K and V and the first shape's KV-cache write runs
beside it, off the critical path; with a context it is on the path (with its launch).

Grid nodes are geometric in each axis (ratio ``2 ** (1 / per_octave)``; the context axis
also has a node at 0), each simulated once, when first needed; lookups interpolate
bilinearly (in log spacing of the nodes). Error against simulating the step itself
(tests/sim/serving/test_steptime.py; docs/serving.md has the measured worst cases): under 1%
for decode-only, prefill-only and mixed steps.
"""

from __future__ import annotations

import math
from typing import Callable

from mappers.ir import Batch, OpKind, Phase, Precision
from mappers.models import ModelConfig
from sim.hardware import System

#: fp16 weights, activations and KV cache (`mappers.ir.Precision` defaults).
DEFAULT_PRECISION = Precision()
StepFn = Callable[[list[tuple[int, int]]], float]
_ATTENTION = (OpKind.KV_WRITE, OpKind.ATTN_SCORE, OpKind.SOFTMAX, OpKind.ATTN_VALUE)


def key_batch(tokens: int, batch: int, context: int) -> Batch:
    """The ragged batch a table key stands for: ``batch`` sequences sharing ``tokens`` new
    tokens evenly, each on ``context`` cached tokens."""
    q, r = divmod(tokens, batch)
    groups = [(q + 1, context)] * r + [(q, context)] * (batch - r)
    return Batch.of(groups)


class StepTimeTable:
    """Step time in seconds of ``model`` on ``system`` at ``detail`` (`sim.step.COST_MODELS`),
    memoised on geometric grids; see the module docstring."""

    def __init__(self, model: ModelConfig, system: System, *, detail: str = "roofline",
                 precision: Precision = DEFAULT_PRECISION, per_octave: int = 32,
                 attention_per_octave: int = 8) -> None:
        self.model, self.system, self.detail, self.precision = model, system, detail, precision
        self._ratio = math.log(2) / per_octave
        self._attn_ratio = math.log(2) / attention_per_octave
        self._dense: dict[tuple[int, int], float] = {}
        self._attn: dict[tuple[int, int], float] = {}
        self._memo: dict = {}  # op costs shared by every node (`sim.step.step_cost`)
        self._ovh = system.chip.efficiency.op_overhead_s
        self._kv_write: tuple[float, float] | None = None  # (a token's KV write, launch)
        self.simulated = 0

    def simulate(self, seqs: Batch) -> float:
        """Simulate the ragged step ``seqs`` (seconds), uncached."""
        return self._schedule(seqs).time_s

    def direct(self, tokens: int, batch: int, context: int) -> float:
        """Simulate the key's step (seconds), uncached."""
        return self.simulate(key_batch(tokens, batch, context))

    def _schedule(self, seqs: Batch, memo: dict | None = None):
        from sim.step import compile_step

        phase = Phase.DECODE if seqs.tokens == seqs.sequences else Phase.PREFILL
        self.simulated += 1
        return compile_step(self.model, self.system, phase=phase, precision=self.precision,
                            seqs=seqs, detail=self.detail, memo=memo)

    def _attention_rows(self, schedule) -> tuple[float, float, float]:
        """(attention ops' time without launches, first KV write's time without its launch,
        that launch) of a schedule, over every layer (seconds)."""
        attn = first = launch = 0.0
        for r in schedule.ops:
            if r.op.kind in _ATTENTION:
                t = r.segment.repeat * (r.cost.time_s - self._ovh * r.op.launches)
                attn += t
                if r.op.kind is OpKind.KV_WRITE and r.op.launches:
                    first += t
                    launch += r.segment.repeat * self._ovh * r.op.launches
        return attn, first, launch

    def _dense_node(self, t: int, b: int) -> float:
        """The step of ``key_batch(t, b, 0)`` less its attention: every op but attention,
        and the attention kernel's launches (seconds)."""
        key = (t, b)
        if key not in self._dense:
            s = self._schedule(key_batch(t, b, 0), self._memo)
            attn, first, _ = self._attention_rows(s)
            # With no context the first shape's KV write runs beside its attention.
            self._dense[key] = s.time_s - attn + first
        return self._dense[key]

    def _attention_node(self, n: int, c: int) -> float:
        """Attention of one sequence of ``n`` new tokens on ``c`` cached ones: its attention
        ops' time over every layer, launches excluded (seconds)."""
        key = (n, c)
        if key not in self._attn:
            s = self._schedule(Batch.uniform(1, n, c), self._memo)
            attn, first, launch = self._attention_rows(s)
            self._attn[key] = attn
            if self._kv_write is None:
                self._kv_write = (first / n, launch)
        return self._attn[key]

    def _axis(self, x: float, lo: int, ratio: float = 0.0) -> tuple[int, int, float]:
        """Bracketing integer nodes of ``x`` (>= lo; geometric with log ``ratio``, default
        the dense table's) and the weight of the upper one."""
        if x <= lo:
            return lo, lo, 0.0
        ratio = ratio or self._ratio
        k = math.floor(math.log(x) / ratio)
        a, b = round(math.exp(k * ratio)), round(math.exp((k + 1) * ratio))
        a = max(a, lo)
        b = max(b, a + 1)
        a = min(a, math.floor(x))
        b = max(b, math.ceil(x))
        return a, b, 0.0 if b == a else (x - a) / (b - a)

    def dense(self, tokens: int, batch: int) -> float:
        """Interpolated time (seconds) of every op but attention of a step of ``batch``
        sequences feeding ``tokens`` new tokens."""
        return _bilinear(self._axis(tokens, 1), self._axis(batch, 1),
                         lambda t, b: self._dense_node(max(t, min(b, t)), min(b, t)))

    def attention(self, new_tokens: float, context: float) -> float:
        """Interpolated attention time (seconds, every layer, launches excluded) of one
        sequence of ``new_tokens`` new tokens on ``context`` cached ones."""
        c_axis = self._axis(context, 0, self._attn_ratio) if context >= 1 else (0, 1, context)
        return _bilinear(self._axis(new_tokens, 1, self._attn_ratio), c_axis,
                         self._attention_node)

    def time(self, tokens: int, batch: int, context: float) -> float:
        """Interpolated step time (seconds) of the key ``key_batch(tokens, batch, context)``:
        ``batch`` sequences feeding ``tokens`` new tokens on ``context`` cached tokens each."""
        q, r = divmod(tokens, batch)
        shapes = [(q, context)] * (batch - r) + [(q + 1, context)] * r
        return self._time(tokens, batch, shapes, context > 0)

    def step(self, shapes: list[tuple[int, int]]) -> float:
        """Time (seconds) of a ragged step of ``(new_tokens, context)`` per sequence."""
        tokens = sum(n for n, _ in shapes)
        return self._time(tokens, len(shapes), shapes, any(c for _, c in shapes))

    def _time(self, tokens: int, batch: int, shapes, cached: bool) -> float:
        own, decodes, dctx = 0.0, 0, 0.0
        if tokens == batch:  # decodes only: attention linear in the context, sum at the mean
            decodes, dctx = batch, sum(c for _, c in shapes)
        else:
            for n, c in shapes:
                if n == 1:
                    decodes += 1
                    dctx += c
                else:
                    own += self.attention(n, c)
        if decodes:
            own += decodes * self.attention(1, dctx / decodes)
        per_token, launch = self._kv_write  # set by the attention lookups above
        if cached:  # attention reads the cache, so the first KV write is on the path
            own += launch
        else:       # the first shape's KV write runs beside its attention
            first = min(shapes)
            own -= per_token * first[0] * shapes.count(first)
        return self.dense(tokens, batch) + own


def _bilinear(x_axis: tuple, y_axis: tuple, node) -> float:
    """Bilinear interpolation of ``node(x, y)`` between the grid points of two axes, each
    ``(lower, upper, weight of upper)``; a point of zero weight is never simulated."""
    (x0, x1, wx), (y0, y1, wy) = x_axis, y_axis
    total = 0.0
    for x, w1 in ((x0, 1 - wx), (x1, wx)):
        if w1 == 0:
            continue
        for y, w2 in ((y0, 1 - wy), (y1, wy)):
            if w2 != 0:
                total += w1 * w2 * node(x, y)
    return total
