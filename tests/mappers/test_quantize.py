"""Quantization schemes as data and the ``quantize`` pass (issue 14).

References: the llama2-7b down projection is ``M x 4096 x 11008`` (Touvron et al. 2023,
hidden 4096, MLP 11008), so with 2 x 300 prompt tokens its weights are dequantized
``ceil(600 / 128) = 5`` times: 5 x 11008 x 4096 = 225,443,840 element ops at one op each.
"""

from __future__ import annotations

import pytest

from mappers.ir import OpKind, Phase
from mappers.models import load_model
from mappers.pipeline import compile_graph
from mappers.schemes import load_scheme, parse_scheme, shipped_schemes
from sim.cli.main import main
from sim.errors import ConfigError
from sim.presets import load_hardware
from sim.step import compile_step

LLAMA = load_model("llama2-7b").config
H100 = load_hardware("h100").system


def _graph(scheme: str, phase=Phase.PREFILL, batch=2, new_tokens=300, context=0):
    return compile_graph(LLAMA, H100, phase=phase, batch=batch, new_tokens=new_tokens,
                         context=context, precision=load_scheme(scheme))


def _ops(graph):
    return [op for seg in graph.segments for op in seg.ops]


def test_the_six_schemes_ship_with_their_formats():
    assert set(shipped_schemes()) == {"fp16", "w8a8", "w4a16", "w4a8-qserve", "w4fp8-fireq",
                                      "fp8"}
    fireq = load_scheme("w4fp8-fireq")
    assert (fireq.weight, fireq.activation, fireq.kv) == ("int4", "fp8", "int4")
    assert load_scheme("w4a16").scale_group == 128


@pytest.mark.parametrize("text,message", [
    ("weight: int4\nactivation: [", "malformed YAML at line 2"),
    ("- a\n- b\n", "must be a mapping"),
    ("weight: int4\nactivation: fp8\nkv: int4\ncolour: red\n", "unknown field 'colour'"),
    ("weight: int4\nactivation: fp8\n", "missing field 'kv'"),
    ("weight: int3\nactivation: fp8\nkv: int4\n", "unknown dtype 'int3'"),
    ("weight: int4\nactivation: fp8\nkv: int4\nweight_dequant: gpu\n", "weight_dequant"),
    ("weight: int4\nactivation: fp8\nkv: int4\ndequant_ops: -1\n", "dequant_ops"),
    ("weight: int4\nactivation: fp8\nkv: int4\nweight_group: 1.5\n", "weight_group"),
])
def test_malformed_schemes_are_refused(text, message):
    with pytest.raises(ConfigError, match=f"^--quant: .*{message}"):
        parse_scheme(text)


def test_cli_refuses_unknown_and_malformed_schemes_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("weight: int4\nactivation: [\n")
    for spec in ("w3a3", str(bad)):
        assert main(["run", "--prompt", "8", "--gen", "2", "--quant", spec]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--quant" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


def test_fp16_adds_no_work():
    assert [op.name for op in _ops(_graph("fp16"))] == \
        [op.name for op in _ops(compile_graph(LLAMA, H100, phase=Phase.PREFILL, batch=2,
                                              new_tokens=300, context=0,
                                              precision=load_scheme("fp16")))]
    assert not any(".w_dequant" in op.name or ".act_quant" in op.name
                   for op in _ops(_graph("fp16")))


def test_fireq_inserts_dequant_per_gemm_and_quant_per_norm():
    ops = _ops(_graph("w4fp8-fireq"))
    gemms = [op for op in ops if op.kind in (OpKind.GEMM, OpKind.LM_HEAD)]
    norms = [op for op in ops if op.kind is OpKind.NORM]
    deq = [op for op in ops if op.name.endswith(".w_dequant")]
    aq = [op for op in ops if op.name.endswith(".act_quant")]
    acts = [op for op in ops if op.kind is OpKind.ACTIVATION]
    assert len(deq) == len(gemms) and len(aq) == len(norms) + len(acts)
    assert all(op.formats.act == "fp16" for op in norms + acts)
    assert all(op.unit == "vector" and op.bytes == 0 and op.launches == 0 for op in deq + aq)
    down = next(op for op in deq if op.dims == (600, 4096, 11008))  # (M, N, K) of down_proj
    assert down.flops == 225_443_840
    ids = [op.id for op in ops]
    assert len(set(ids)) == len(ids)


def test_mainloop_dequant_serialises_and_vector_dequant_runs_beside():
    g = {s: _ops(_graph(s)) for s in ("w4a8-qserve", "w4fp8-fireq")}
    for scheme, serial in (("w4a8-qserve", True), ("w4fp8-fireq", False)):
        ops = g[scheme]
        for i, op in enumerate(ops):
            if op.name.endswith(".w_dequant"):
                gemm = ops[i + 1]
                assert (gemm.inputs == (op.id,)) is serial
                if not serial:
                    assert op.inputs == gemm.inputs
    # every reader of a norm reads its quantized output instead
    ops = g["w4fp8-fireq"]
    norm_ids = {op.id for op in ops if op.kind in (OpKind.NORM, OpKind.ACTIVATION)}
    assert not any(set(op.inputs) & norm_ids for op in ops
                   if not op.name.endswith(".act_quant"))


def test_dequant_work_costs_time_where_it_serialises():
    def t(precision):
        return compile_step(LLAMA, H100, phase=Phase.PREFILL, batch=2, new_tokens=300,
                            context=0, precision=precision).time_s
    from dataclasses import replace
    q = load_scheme("w4a8-qserve")
    assert t(q) > t(replace(q, weight_dequant="none"))
    assert t(replace(q, weight_dequant="vector")) < t(q)


def test_decode_time_falls_with_weight_width_across_schemes():
    t = [compile_step(LLAMA, H100, phase=Phase.DECODE, batch=1, new_tokens=1, context=512,
                      precision=load_scheme(s), detail="tile").time_s
         for s in ("fp16", "fp8", "w4fp8-fireq")]
    assert t[0] > t[1] > t[2]
    assert t[1] < 0.62 * t[0] and t[2] < 0.7 * t[1]   # weight-bound: bytes halve each time
