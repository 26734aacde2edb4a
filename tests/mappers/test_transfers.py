"""The ``transfers`` pass (`mappers.transfers`) on a hand-built placed graph, and the dataflow
`mappers.lower` gives every op."""

import pytest

from mappers.ir import Batch, Graph, Op, OperandFormats, OpKind, Phase, Precision, Segment
from mappers.lower import lower
from mappers.models import load_model
from mappers.place import place
from mappers.transfers import insert_transfers
from sim.presets import load_hardware

F16 = OperandFormats(act="fp16")


def _graph(*ops):
    return Graph(model="toy", phase=Phase.PREFILL, seqs=Batch.uniform(1, 4, 0), tp=1,
                 precision=Precision(), segments=(Segment(name="s", layer=0, repeat=1,
                                                          ops=tuple(ops)),))


def test_moves_across_memories_become_transfers_once_per_producer():
    """norm (vector, 4 x 8 fp16 = 64 B out) -> gemm on the CiM (4 x 16 fp16 = 128 B out) read
    by two host ops and by a CiD op; a CiD op also reads the norm. Expected: one 64 B transfer
    into the CiM before the gemm, one 128 B transfer out before the first host reader, shared
    by every reader in the chip's memory (the CiD's banks are the chip's memory: no transfer
    between the host and the CiD)."""
    norm = Op(name="norm", kind=OpKind.NORM, dims=(4, 8), formats=F16, flops=1, unit="vector",
              id=0)
    gemm = Op(name="qkv", kind=OpKind.GEMM, dims=(4, 16, 8), formats=F16, flops=1, unit="cim",
              id=1, inputs=(0,))
    rope = Op(name="rope", kind=OpKind.ROPE, dims=(4, 16), formats=F16, flops=1,
              unit="vector", id=2, inputs=(1,))
    kvw = Op(name="kv_write", kind=OpKind.KV_WRITE, dims=(4, 1, 8), formats=F16, flops=0,
             unit="cid", id=3, inputs=(2, 1, 0))
    g = _graph(norm, gemm, rope, kvw)
    out = insert_transfers(g)
    ops = out.segments[0].ops
    assert [o.name for o in ops] == ["norm", "xfer_norm", "qkv", "xfer_qkv", "rope", "kv_write"]
    xin, xout = ops[1], ops[3]
    assert (xin.kind, xin.unit, xin.dims, xin.comm_bytes, xin.inputs) == (
        OpKind.TRANSFER, "cim_io", (64,), 64, (0,))
    assert (xout.unit, xout.comm_bytes, xout.inputs) == ("cim_io", 128, (1,))
    assert len({o.id for o in ops}) == len(ops)
    assert ops[2].inputs == (xin.id,)
    assert ops[4].inputs == (xout.id,)
    assert ops[5].inputs == (2, xout.id, 0)
    assert g.segments[0].ops == (norm, gemm, rope, kvw)  # pure: the input graph is unchanged


def test_no_cim_no_transfers():
    model = load_model("llama2-7b").config
    g = lower(model, phase=Phase.DECODE, batch=1, new_tokens=1, context=10,
              precision=Precision())
    placed = place(g, load_hardware("halo-package").system)  # decode: host and CiD only
    assert insert_transfers(placed) == placed


@pytest.mark.parametrize("phase, context", [(Phase.PREFILL, 0), (Phase.DECODE, 30)])
@pytest.mark.parametrize("pp", [1, 2])
def test_lowered_graph_is_a_dag_in_program_order(phase, context, pp):
    """Every input names an earlier op of the step or (the residual stream) a later op of its
    own segment, read from the previous layer; attention reads the cache after kv_write only
    when there is a context."""
    model = load_model("llama2-7b").config
    g = lower(model, phase=phase, batch=2, new_tokens=1 if context else 8, context=context,
              precision=Precision(), pp=pp)
    seen: set[int] = set()
    for seg in g.segments:
        pos = {op.id: i for i, op in enumerate(seg.ops)}
        for i, op in enumerate(seg.ops):
            for src in op.inputs:
                assert src in seen or src in pos, (op.name, src)
                if src in pos and pos[src] >= i:  # carried: only the residual stream
                    assert seg.ops[pos[src]].name == "mlp_residual"
                    assert op.name in ("attn_norm", "attn_residual")
        seen |= set(pos)
    layer = {op.name: op for op in g.segments[1].ops}
    reads_cache = layer["kv_write"].id in layer["attn_score"].inputs
    assert reads_cache == (context > 0)
    assert (layer["kv_write"].id in layer["attn_value"].inputs) == (context > 0)
    assert layer["attn_score"].inputs[0] == layer["rope"].id
