"""Step costs of HAT's parts (docs/edge.md, "HAT"): the device's pieces of a U-shaped split
from the step simulator, the cloud's middle layers from the serving simulator's step-time
tables.

Device pieces are `sim.edge.stage_time_s` of a stage of the right layer count (the step
simulator's schedule of that many layers, with the embedding and LM head where held). A step
over a context ``c`` is linear in ``c`` between nodes (roofline attention is linear in the
context for a fixed number of new tokens), so contexts are simulated on a grid of
`CONTEXT_STEP` tokens and linearly interpolated, as `sim.speculative.step_curve` does.

The cloud's middle layers: `sim.serving.steptime.StepTimeTable` times a ragged batch of the
whole model (embedding and LM head included). Every part of a step but the embedding and the
head scales with the layer count, so the step of ``n`` middle layers alone is the table of a
model of ``n + 1`` layers less the table of a model of one layer, on the same grid nodes
(`MiddleTable`): exact for the step simulator's per-layer sum, no head or embedding counted.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from mappers.edge import Stage
from mappers.hat import UShape
from mappers.ir import Phase, Precision
from mappers.models import ModelConfig
from sim.edge import stage_time_s
from sim.hardware import System

#: Context grid (tokens) of the device pieces' linear interpolation.
CONTEXT_STEP = 256


def _at(fn, context: int) -> float:
    """``fn(context)`` linearly interpolated between grid nodes `CONTEXT_STEP` apart."""
    lo = context // CONTEXT_STEP * CONTEXT_STEP
    if lo == context:
        return fn(lo)
    w = (context - lo) / CONTEXT_STEP
    return (1 - w) * fn(lo) + w * fn(lo + CONTEXT_STEP)


def _phase(tokens: int) -> Phase:
    return Phase.DECODE if tokens == 1 else Phase.PREFILL


@lru_cache(maxsize=4096)
def head_rows_s(system: System, model: ModelConfig, rows: int, precision: Precision,
                detail: str) -> float:
    """Seconds of the final norm + LM head over ``rows`` positions (a verify step needs the
    target's distribution at every one of its gamma + 1 positions, a prefill at one)."""
    from sim.step import compile_step

    sched = compile_step(replace(model, num_layers=1), system, phase=Phase.DECODE,
                         batch=rows, new_tokens=1, context=0, precision=precision,
                         detail=detail)
    return sum(s.cost.time_s for s in sched.ops if s.segment.name == "head")


class DevicePieces:
    """Seconds of each device piece of ``split`` on ``system`` (class docstring of the
    module); every method is pure given its arguments (memoised)."""

    def __init__(self, system: System, model: ModelConfig, split: UShape, precision: Precision,
                 detail: str = "roofline") -> None:
        self.system, self.model, self.split = system, model, split
        self.precision, self.detail = precision, detail

    def _layers(self, n: int, tokens: int, context: int, *, embedding: bool = False,
                head: bool = False) -> float:
        stage = Stage(device="d", first=0, last=n - 1, embedding=embedding, lm_head=head)
        return _at(lambda c: stage_time_s(self.system, self.model, stage, tokens, c,
                                          self.precision, self.detail, _phase(tokens)),
                   context)

    def first(self, tokens: int, context: int) -> float:
        """Embedding + the first k layers over ``tokens`` new tokens on ``context`` cached."""
        return self._layers(self.split.first, tokens, context, embedding=True)

    def last(self, tokens: int, context: int, head_rows: int) -> float:
        """The last m layers over ``tokens`` new tokens, then the LM head on ``head_rows``
        positions (0: none)."""
        t = self._layers(self.split.last, tokens, context)
        return t + (self.head(head_rows) if head_rows else 0.0)

    def head(self, rows: int) -> float:
        """Final norm + LM head over ``rows`` positions."""
        return head_rows_s(self.system, self.model, rows, self.precision, self.detail)

    def draft_prefill(self, tokens: int, context: int) -> float:
        """The draft's own layers (adapter + its copy of the last m) over a prompt chunk: the
        first k layers' hidden states are shared with the target, so only these run."""
        n = self.split.adapter + self.split.last
        return self._layers(n, tokens, context) if n else 0.0

    def draft_step(self, context: int) -> float:
        """One draft token: embedding, k + adapter + m layers and the LM head, one new token
        on ``context`` cached ones."""
        return self._layers(self.split.draft_layers, 1, context, embedding=True, head=True)


class WholeModel:
    """A whole model on one system (the device-only baseline): prefill and decode seconds."""

    def __init__(self, system: System, model: ModelConfig, precision: Precision,
                 detail: str = "roofline") -> None:
        self.system, self.model, self.precision, self.detail = system, model, precision, detail
        self._stage = Stage(device="d", first=0, last=model.num_layers - 1, embedding=True,
                            lm_head=True)

    def step(self, tokens: int, context: int) -> float:
        """Seconds of ``tokens`` new tokens on ``context`` cached ones, LM head at one row."""
        return _at(lambda c: stage_time_s(self.system, self.model, self._stage, tokens, c,
                                          self.precision, self.detail, _phase(tokens)),
                   context)


class MiddleTable:
    """Step time (s) of a ragged batch through ``layers`` middle layers of ``model`` on
    ``system``: two serving step-time tables, of ``layers + 1`` layers and of one (module
    docstring)."""

    def __init__(self, model: ModelConfig, system: System, layers: int, *,
                 precision: Precision, detail: str = "roofline") -> None:
        from sim.serving.steptime import StepTimeTable

        self.layers = layers
        self._big = StepTimeTable(replace(model, num_layers=layers + 1), system,
                                  detail=detail, precision=precision)
        self._one = StepTimeTable(replace(model, num_layers=1), system, detail=detail,
                                  precision=precision)

    def step(self, shapes: list[tuple[int, int]]) -> float:
        """Seconds of the step of ``(new_tokens, context)`` per sequence."""
        return self._big.step(shapes) - self._one.step(shapes)


class FullTable:
    """Step time (s) of a ragged batch through the whole model (cloud-only baseline)."""

    def __init__(self, model: ModelConfig, system: System, *, precision: Precision,
                 detail: str = "roofline") -> None:
        from sim.serving.steptime import StepTimeTable

        self._table = StepTimeTable(model, system, detail=detail, precision=precision)

    def step(self, shapes: list[tuple[int, int]]) -> float:
        return self._table.step(shapes)
