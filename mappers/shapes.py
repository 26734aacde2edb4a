"""A step's graph as a function of its shape: compiled once per shape, re-lowered only where
the context changes.

Two steps of one run whose batches have the same shape (the phase, the sequence groups' counts
and new tokens in group order, and whether any sequence has a context) compile
(`mappers.pipeline.compile_graph`) to graphs that differ only in their attention ops
(`mappers.lower.attention_lowering`): every other op is lowered from the shape alone, and the passes
after lowering set an attention op's unit, id and inputs from its name and kind, never from
its context. `StepShapes` compiles the first step of each shape through the whole pipeline,
notes where each attention op landed, and builds a later step of that shape by lowering its
attention ops and putting them in those places with the template's unit, id and inputs. The
graph equals the one `compile_graph` makes (tests/mappers/test_shapes.py compares them over
presets, schemes, pipeline stages and ragged batches), and every op that did not change is the
template's own object, so the simulator's per-op memos find it by identity and its schedule
plan (`mappers.schedule.schedule_plan`) is the template's.

A shape whose template lacks that form is compiled in full at every step: a pass changed an
attention op beyond its unit, id and inputs, a ``transfer`` op reads one or another op derives
from one (their sizes follow the context: quantize's KV dequantization), or the template
built one token of context further differs from the full pipeline's graph (a probe, once per
shape, for any other dependence on the context).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace

from sim.hardware import System

from .ir import Batch, Graph, Op, OpKind, Phase, Precision
from .lower import ATTENTION_OPS, attention_lowering
from .models import ModelConfig
from .pipeline import compile_graph
from .schedule import SchedulePlan, schedule_plan

#: Shapes a `StepShapes` keeps (least recently used dropped first): a decode phase has one
#: per batch composition; a serving run's mixed steps may have many.
SHAPES_KEPT = 64


@dataclass(frozen=True, slots=True)
class _Template:
    """A compiled step and where its attention ops sit: ``slots`` holds, for each placed
    attention op, ``(segment, position, k)`` with ``k`` its index among the step's lowered
    attention ops (groups in order); ``tags`` the unit, id and inputs of the first op placed
    for each ``k`` (pipeline stages share their layer ops). ``slots`` is None when the shape
    is compiled in full every step (module docstring)."""

    graph: Graph
    plan: SchedulePlan
    slots: tuple[tuple[int, int, int], ...] | None
    tags: tuple[dict, ...] = ()


class StepShapes:
    """The compiled graphs of one run's steps by shape (module docstring), for one ``model``,
    ``system`` and ``precision``; keeps the `SHAPES_KEPT` most recently used shapes."""

    def __init__(self, model: ModelConfig, system: System, precision: Precision) -> None:
        self.model, self.system, self.precision = model, system, precision
        self._attention = attention_lowering(model, precision, system.tensor_parallel)
        self._templates: OrderedDict[tuple, _Template] = OrderedDict()

    def compile(self, phase: Phase, seqs: Batch) -> tuple[Graph, SchedulePlan]:
        """The compiled graph of the step ``seqs`` of ``phase`` (equal to `compile_graph`'s)
        and its schedule plan."""
        key = (phase, tuple((g.count, g.new_tokens) for g in seqs.groups),
               any(g.context > 0 for g in seqs.groups))
        t = self._templates.get(key)
        if t is None:
            t = self._templates[key] = self._template(phase, seqs)
            if len(self._templates) > SHAPES_KEPT:
                self._templates.popitem(last=False)
            return t.graph, t.plan
        self._templates.move_to_end(key)
        if t.slots is None:
            graph = self._full(phase, seqs)
            return graph, schedule_plan(graph)
        if seqs == t.graph.seqs:
            return t.graph, t.plan
        return self._from(t, seqs), t.plan

    def _full(self, phase: Phase, seqs: Batch) -> Graph:
        return compile_graph(self.model, self.system, phase=phase, seqs=seqs,
                             precision=self.precision)

    def _template(self, phase: Phase, seqs: Batch) -> _Template:
        graph = self._full(phase, seqs)
        plan = schedule_plan(graph)
        raw = tuple(op for group in self._attention(seqs) for op in group)
        slots = _slots(graph, raw)
        if slots is None:
            return _Template(graph=graph, plan=plan, slots=None)
        first: dict[int, Op] = {}
        for s, pos, k in slots:
            first.setdefault(k, graph.segments[s].ops[pos])
        tags = tuple({"unit": op.unit, "id": op.id, "inputs": op.inputs}
                     for _, op in sorted(first.items()))
        t = _Template(graph=graph, plan=plan, slots=slots, tags=tags)
        # A probe one token of context further: a pass that sizes another op from the context
        # (one not caught above) shows as a difference, and the shape is compiled in full.
        probe = Batch.of((g.new_tokens, g.context + 1) for g in seqs.groups
                         for _ in range(g.count))
        if self._from(t, probe) != self._full(phase, probe):
            return _Template(graph=graph, plan=plan, slots=None)
        return t

    def _from(self, t: _Template, seqs: Batch) -> Graph:
        """The graph of ``seqs`` built from the template ``t`` (module docstring)."""
        # lowered straight with the template's unit, id and inputs: placed and wired
        new = [op for group in self._attention(seqs, t.tags) for op in group]
        segments = list(t.graph.segments)
        changed: dict[int, list[Op]] = {}
        for s, pos, k in t.slots:
            old, op = segments[s].ops[pos], new[k]
            if (old.unit, old.id, old.inputs) != (op.unit, op.id, op.inputs):
                op = replace(op, unit=old.unit, id=old.id, inputs=old.inputs)
            if op == old:
                continue  # the same op at this context (the cache write; a full window)
            ops = changed.get(s)
            if ops is None:
                ops = changed[s] = list(segments[s].ops)
            ops[pos] = op
        for s, ops in changed.items():
            segments[s] = replace(segments[s], ops=tuple(ops))
        return replace(t.graph, seqs=seqs, segments=tuple(segments))


def _slots(graph: Graph, raw: tuple[Op, ...]) -> tuple[tuple[int, int, int], ...] | None:
    """Where each op of ``raw`` sits in every layer segment of ``graph``, in order: placed ops
    that differ from it only in unit, id and inputs. None when some layer segment does not
    hold them all so, or a transfer op reads one (`_Template`)."""
    slots: list[tuple[int, int, int]] = []
    for s, seg in enumerate(graph.segments):
        if seg.name != "layers":
            continue
        k = 0
        for pos, op in enumerate(seg.ops):
            if k < len(raw) and op.name == raw[k].name \
                    and replace(op, unit="", id=-1, inputs=()) == raw[k]:
                slots.append((s, pos, k))
                k += 1
        if k < len(raw):
            return None
    ids = {graph.segments[s].ops[pos].id for s, pos, _ in slots}
    if any(op.kind is OpKind.TRANSFER and ids.intersection(op.inputs)
           for seg in graph.segments for op in seg.ops):
        return None
    # an op a pass derives from an attention op (quantize's ``attn_score.kv_dequant``) is
    # sized by the context too
    if any(op.id not in ids and op.name.partition(".")[0] in ATTENTION_OPS
           and op.name not in ATTENTION_OPS for seg in graph.segments for op in seg.ops):
        return None
    return tuple(slots)
