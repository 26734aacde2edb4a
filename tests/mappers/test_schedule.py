"""The concurrent list scheduler (`mappers.schedule`) on small hand-built graphs, against
timelines worked out by hand in each test's docstring; and on a whole llama2-7b step."""

from dataclasses import replace

import pytest

from mappers.ir import Batch, Graph, Op, OperandFormats, OpKind, Phase, Precision, Segment
from mappers.lower import lower
from mappers.models import load_model
from mappers.schedule import schedule
from sim.cost import Cost

F16 = OperandFormats(act="fp16")


def op(name, unit, *, id=-1, inputs=(), kind=OpKind.GEMM, seconds=1.0):
    """A placed op whose duration (in seconds) is carried in ``flops`` for `cost_of`."""
    return Op(name=name, kind=kind, dims=(1, 1, 1), formats=F16, flops=int(seconds * 1000),
              unit=unit, id=id, inputs=inputs)


def cost_of(o: Op) -> Cost:
    t = o.flops / 1000
    return Cost(time_s=t, compute_s=t, memory_s=0.0, comm_s=0.0, energy_j=t, bound="compute")


def graph(*segments: Segment) -> Graph:
    return Graph(model="toy", phase=Phase.PREFILL, seqs=Batch.uniform(1, 1, 0), tp=1,
                 precision=Precision(), segments=segments)


def seg(*ops, repeat=1, name="s"):
    return Segment(name=name, layer=0, repeat=repeat, ops=tuple(ops))


def times(sched):
    return {s.op.name: (s.start_s, s.start_s + s.cost.time_s) for s in sched.ops}


def test_independent_ops_on_different_units_overlap():
    """a (tensor, 3 s) and b (vector, 2 s) read nothing: both start at 0; c (vector, 1 s)
    reads both, so starts at max(3, 2) = 3 and the step ends at 4 (serially: 6)."""
    g = graph(seg(op("a", "tensor", id=0, seconds=3), op("b", "vector", id=1, seconds=2),
                  op("c", "vector", id=2, inputs=(0, 1), seconds=1)))
    s = schedule(g, cost_of)
    assert times(s) == {"a": (0, 3), "b": (0, 2), "c": (3, 4)}
    assert s.time_s == 4
    assert s.energy_j == 6


def test_independent_ops_on_one_unit_wait_for_it():
    """The same graph with a and b on one unit: b waits for a (0-3, 3-5), c at 5-6."""
    g = graph(seg(op("a", "tensor", id=0, seconds=3), op("b", "tensor", id=1, seconds=2),
                  op("c", "vector", id=2, inputs=(0, 1), seconds=1)))
    assert times(schedule(g, cost_of)) == {"a": (0, 3), "b": (3, 5), "c": (5, 6)}


@pytest.mark.parametrize("layers, chunks", [(4, 3), (3, 5), (1, 4), (5, 1)])
def test_layer_pipelining_over_token_chunks(layers, chunks):
    """A prefill cut into C token chunks through L layers, each layer's weights resident on its
    own crossbar group (unit ``cim.l``), each (layer, chunk) taking t: chunk c enters layer l
    when layer l - 1 has done it and layer l has done chunk c - 1, so (l, c) runs over
    [(l + c) t, (l + c + 1) t] and the prefill takes (L + C - 1) t, against L C t serially."""
    t = 0.5
    ops = [op(f"l{i}c{c}", f"cim.{i}", id=i * chunks + c, seconds=t,
              inputs=((i - 1) * chunks + c,) if i else ())
           for i in range(layers) for c in range(chunks)]
    s = schedule(graph(seg(*ops)), cost_of)
    assert s.time_s == pytest.approx((layers + chunks - 1) * t, rel=1e-12)
    for name, (start, end) in times(s).items():
        i, c = map(int, name[1:].split("c"))
        assert (start, end) == pytest.approx(((i + c) * t, (i + c + 1) * t))


def _waves(spare: bool):
    """Two weight waves on a CiM: program wave i (p = 2 s, on the write path ``cim.write``),
    then compute it (c = 3 s) on its crossbars; wave 1 also reads wave 0's output. With spare
    crossbars wave 1 goes to group 1; without, to group 0, whose crossbars it may overwrite only
    after wave 0's compute (the program op reads it)."""
    g1 = "cim.1" if spare else "cim.0"
    return graph(seg(
        op("prog0", "cim.write", id=0, kind=OpKind.TRANSFER, seconds=2),
        op("comp0", "cim.0", id=1, inputs=(0,), seconds=3),
        op("prog1", "cim.write", id=2, kind=OpKind.TRANSFER, seconds=2,
           inputs=() if spare else (1,)),
        op("comp1", g1, id=3, inputs=(2, 1), seconds=3)))


def test_programming_the_next_wave_overlaps_compute_with_spare_crossbars():
    """Spare crossbars: prog0 0-2, comp0 2-5, prog1 2-4 (beside comp0), comp1 5-8: 8 s."""
    s = schedule(_waves(spare=True), cost_of)
    assert times(s) == {"prog0": (0, 2), "comp0": (2, 5), "prog1": (2, 4), "comp1": (5, 8)}
    assert s.time_s == 8


def test_programming_waits_for_compute_without_spare_crossbars():
    """One crossbar group: prog0 0-2, comp0 2-5, prog1 5-7, comp1 7-10: serial, 10 s."""
    s = schedule(_waves(spare=False), cost_of)
    assert times(s) == {"prog0": (0, 2), "comp0": (2, 5), "prog1": (5, 7), "comp1": (7, 10)}
    assert s.time_s == 10


def test_one_unit_per_kind_chain_is_serial_as_before():
    """Ops without dataflow (id -1) read the op before them: a 1 + 2 + 3 s layer repeated 4
    times after a 0.5 s embedding takes 0.5 + 4 x 6 = 24.5 s, period 6, as the serial
    schedule had it."""
    g = graph(seg(op("embed", "dma", seconds=0.5), name="embed"),
              seg(op("norm", "vector", seconds=1), op("gemm", "tensor", seconds=2),
                  op("add", "vector", seconds=3), repeat=4))
    s = schedule(g, cost_of)
    assert s.time_s == 24.5
    rows = {r.op.name: r for r in s.ops}
    assert [rows[n].start_s for n in ("norm", "gemm", "add")] == [0.5, 1.5, 3.5]
    assert {rows[n].period_s for n in ("norm", "gemm", "add")} == {6}


def test_repeated_segment_with_a_side_branch_has_a_steady_period():
    """Each repeat: x (vector, 1 s) reads the previous repeat's y; w (dma, 3 s) and y (tensor,
    2 s) both read x. First instance: x 0-1, w 1-4, y 1-3. Period: the carried edge y -> x needs
    3 - 0 = 3, the DMA's span 3: P = 3. Three repeats: w's last instance ends at 1 + 2 x 3 + 3
    = 10 (serially: 18)."""
    g = graph(seg(op("x", "vector", id=0, inputs=(2,), seconds=1),
                  op("w", "dma", id=1, inputs=(0,), seconds=3),
                  op("y", "tensor", id=2, inputs=(0,), seconds=2), repeat=3))
    s = schedule(g, cost_of)
    assert times(s) == {"x": (0, 1), "w": (1, 4), "y": (1, 3)}
    assert {r.period_s for r in s.ops} == {3}
    assert s.time_s == 10
    assert s.busy_s() == {(0, "vector"): 3, (0, "dma"): 9, (0, "tensor"): 6}


def test_input_from_an_earlier_segment_is_its_last_instance():
    """z (vector, 1 s) reads y of a segment repeated twice with period 2 (y: tensor, 2 s): y's
    last instance ends at 4, so z runs 4-5."""
    g = graph(seg(op("y", "tensor", id=0, inputs=(0,), seconds=2), repeat=2),
              seg(op("z", "vector", id=1, inputs=(0,), seconds=1)))
    assert times(schedule(g, cost_of))["z"] == (4, 5)


def test_unknown_input_is_an_internal_error():
    with pytest.raises(ValueError, match="reads id 7"):
        schedule(graph(seg(op("a", "tensor", id=0, inputs=(7,)))), cost_of)


def test_llama_step_with_equal_op_times_is_the_critical_path():
    """llama2-7b prefill from scratch with every op taking 1 s on its placed units: per layer
    the cache write (DMA) runs beside attention, so a layer is its 13-op critical path
    (attn_norm, qkv, rope, score, softmax, value, o_proj, residual, norm, gate_up, act, down,
    residual) and the step is 1 (embed) + 32 x 13 + 2 (final_norm, lm_head) = 419 s."""
    model = load_model("llama2-7b").config
    g = lower(model, phase=Phase.PREFILL, batch=1, new_tokens=8, context=0,
              precision=Precision())
    units = {OpKind.GEMM: "tensor", OpKind.LM_HEAD: "tensor", OpKind.ATTN_SCORE: "tensor",
             OpKind.ATTN_VALUE: "tensor", OpKind.EMBEDDING: "dma", OpKind.KV_WRITE: "dma"}
    g = replace(g, segments=tuple(
        replace(sg, ops=tuple(replace(o, unit=units.get(o.kind, "vector")) for o in sg.ops))
        for sg in g.segments))
    s = schedule(g, lambda o: cost_of(replace(o, flops=1000)))
    assert s.time_s == 1 + 32 * 13 + 2
    assert s.energy_j == 1 + 32 * 14 + 2
