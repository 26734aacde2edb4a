"""A step's graph as a function of its shape (`mappers.shapes`).

Reference: the whole pipeline (`compile_graph`) run on each step from scratch. A graph built
from its shape's template must equal it, op for op, and its schedule plan must be the one
`schedule_plan` makes of it; across presets whose units differ (CiD, CiM with transfers),
pipeline and tensor parallelism, a quantization scheme that adds ops, a sliding window that the
context crosses, and ragged batches whose groups keep their shape.
"""

from dataclasses import replace

import pytest

from mappers.ir import Batch, OpKind, Phase, Precision
from mappers.mapping import apply_mapping
from mappers.models import load_model
from mappers.pipeline import compile_graph
from mappers.schedule import schedule_plan
from mappers.schemes import load_scheme
from mappers.shapes import SHAPES_KEPT, StepShapes
from sim.presets import load_hardware

LLAMA = load_model("llama2-7b").config
MISTRAL = load_model("mistral-7b").config  # sliding window 4096
FP16 = Precision()


def _system(name, tp=1, pp=1):
    name, _, mapping = name.partition(":")  # halo-package:all-cim: the preset under a policy
    system = load_hardware(name).system
    if mapping:
        system = apply_mapping(system, mapping)
    if (tp, pp) == (1, 1):
        return system
    from sim.schema import build, to_dict
    return build(type(system), to_dict(system) | {"tensor_parallel": tp, "pipeline_parallel": pp,
                                                   "num_chips": tp * pp}, "--tp/--pp")


def _check(model, system, precision, steps):
    shapes = StepShapes(model, system, precision)
    for phase, seqs in steps:
        graph, plan = shapes.compile(phase, seqs)
        full = compile_graph(model, system, phase=phase, seqs=seqs, precision=precision)
        assert graph == full
        assert plan == schedule_plan(full)
    return shapes


def _decode(batch, contexts):
    return [(Phase.DECODE, Batch.uniform(batch, 1, c)) for c in contexts]


@pytest.mark.parametrize("hw, tp, pp, scheme", [
    ("h100", 1, 1, None), ("h100", 2, 2, None), ("h100", 1, 1, "w4a8-qserve"),
    ("h100", 1, 3, "w4fp8-fireq"), ("cent", 1, 1, None), ("halo-package:phase-aware", 1, 1, None),
    ("halo-package:all-cim", 1, 1, None), ("attacc", 1, 1, None), ("cent", 1, 1, "w4a8-qserve"),
    ("halo-package:phase-aware", 1, 1, "w4fp8-fireq")])
def test_steps_of_a_shape_equal_the_full_pipeline(hw, tp, pp, scheme):
    precision = FP16 if scheme is None else load_scheme(scheme)
    steps = ([(Phase.PREFILL, Batch.uniform(2, 64, 0)), (Phase.PREFILL, Batch.uniform(2, 64, 0))]
             + _decode(2, [64, 65, 66, 200, 65]))
    _check(LLAMA, _system(hw, tp, pp), precision, steps)


def test_a_sliding_window_the_context_crosses():
    # the keys stop growing at the window: the attention ops come back equal, kept as they were
    steps = _decode(1, [4090, 4094, 4095, 4096, 4097, 5000, 6000])
    _check(MISTRAL, _system("h100"), FP16, steps)


def test_ragged_batches_of_one_shape():
    # groups ordered by context: the same (count, new tokens) sequence is one shape
    steps = [(Phase.DECODE, Batch.of([(1, c), (1, c), (4, 2 * c)])) for c in (50, 51, 80)]
    steps += [(Phase.PREFILL, Batch.of([(16, 0), (8, 40), (8, 41)])),
              (Phase.PREFILL, Batch.of([(16, 0), (8, 90), (8, 91)]))]
    shapes = _check(LLAMA, _system("h100"), FP16, steps)
    assert len(shapes._templates) == 2


def test_unchanged_ops_are_the_templates_own_objects():
    # what lets the simulator's cost memo find them by identity
    shapes = StepShapes(LLAMA, _system("h100", pp=2), FP16)
    first, _ = shapes.compile(Phase.DECODE, Batch.uniform(1, 1, 100))
    later, _ = shapes.compile(Phase.DECODE, Batch.uniform(1, 1, 101))
    changed = 0
    for a, b in zip(first.segments, later.segments, strict=True):
        for x, y in zip(a.ops, b.ops, strict=True):
            if x is not y:
                assert x.kind in (OpKind.ATTN_SCORE, OpKind.SOFTMAX, OpKind.ATTN_VALUE)
                changed += 1
    assert changed == 3 * 2  # three attention ops in each of the two stages' layers
    stages = [seg for seg in later.segments if seg.name == "layers"]
    assert all(x is y for x, y in zip(stages[0].ops, stages[1].ops))  # stages share ops


def test_a_shape_whose_attention_a_transfer_reads_is_compiled_in_full():
    # all GEMMs on the CiM: o_proj reads attention's output over the CiM's I/O path, a
    # transfer whose size follows the context
    shapes = _check(LLAMA, _system("halo-package:all-cim"), FP16,
                    [(Phase.PREFILL, Batch.of([(32, 0), (32, 10)])),
                     (Phase.PREFILL, Batch.of([(32, 0), (32, 20)]))])
    (template,) = shapes._templates.values()
    assert template.slots is None
    assert any(op.kind is OpKind.TRANSFER for seg in template.graph.segments for op in seg.ops)


def test_shapes_kept_are_bounded():
    shapes = StepShapes(LLAMA, _system("h100"), FP16)
    for batch in range(1, SHAPES_KEPT + 3):
        shapes.compile(Phase.DECODE, Batch.uniform(batch, 1, 10))
    assert len(shapes._templates) == SHAPES_KEPT
    graph, _ = shapes.compile(Phase.DECODE, Batch.uniform(1, 1, 11))  # dropped: built again
    assert graph == compile_graph(LLAMA, _system("h100"), phase=Phase.DECODE,
                                  seqs=Batch.uniform(1, 1, 11), precision=FP16)
    assert replace(graph, seqs=Batch.uniform(1, 1, 11)) == graph
