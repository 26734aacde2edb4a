"""The analog CiM unit in the whole pipeline: the ``chip.cim`` slot, placement per phase, op
costs through the step unit model, weight residency across steps, the HALO package under its
mappings, ``pdsim describe``, bad input, and the dtype check that looks only at ops on the
systolic arrays.

References: `sim.units.cim.cost.cim_op_cost` called directly (the engine must charge exactly
what the
model gives; relative tolerance 1e-12, the same arithmetic); crossbar counts and programming
times in closed form from the model's dimensions (docs/cim.md), with the bound stated where
per-op rounding makes an exact total pointless.
"""

import json
import math
import re

import pytest

from mappers.ir import OpKind, Phase, Precision
from mappers.lower import lower
from mappers.mapping import POLICIES, apply_mapping
from mappers.models import load_model
from sim.step import compile_step
from mappers.place import place
from sim.cli.main import main
from sim.units.cim.cost import cim_op_cost, cim_op_result
from sim.units.cim.residency import plan_weights, slot_unit
from sim.units.cim.crossbar import load_cim
from sim.engine import Workload, simulate
from sim.errors import ConfigError
from sim.presets import load_hardware, parse_hardware
from sim.schema import to_dict

LLAMA = load_model("llama2-7b").config
W8 = Precision(weight="int8", activation="int8", kv="int8")
HALO = load_hardware("halo-package").system  # its YAML lists: phase-aware
ALL_CIM = apply_mapping(HALO, "all-cim")
ALL_CID = apply_mapping(HALO, "all-pim")
CIM = "halo-package-cim"
XBARS = 103224
REL = 1e-12


def _units(system, phase):
    graph = lower(LLAMA, phase=phase, batch=1, new_tokens=1 if phase is Phase.DECODE else 8,
                  context=64, precision=W8)
    return {op.name: op.unit for seg in place(graph, system).segments for op in seg.ops}


def test_placement_per_phase():
    """Phase-aware: prefill GEMMs and LM head on CiM, prefill attention on the host die's
    arrays, the prompt's KV writes on CiD; decode GEMVs, attention and KV writes on CiD.
    All-CiM: GEMMs of both phases on CiM, attention on the arrays. All-CiD: every matrix
    product on CiD. Vector ops stay on the host die everywhere."""
    pre, dec = _units(HALO, Phase.PREFILL), _units(HALO, Phase.DECODE)
    assert pre["qkv_proj"] == pre["down_proj"] == pre["lm_head"] == "cim"
    assert pre["attn_score"] == pre["attn_value"] == "tensor" and pre["kv_write"] == "cid"
    assert dec["qkv_proj"] == dec["lm_head"] == dec["attn_score"] == dec["kv_write"] == "cid"
    assert "cim" not in dec.values()
    for phase in Phase:
        cim, cid = _units(ALL_CIM, phase), _units(ALL_CID, phase)
        assert cim["qkv_proj"] == cim["o_proj"] == cim["lm_head"] == "cim"
        assert cim["attn_score"] == cim["attn_value"] == "tensor" and cim["kv_write"] == "dma"
        assert cid["gate_up_proj"] == cid["lm_head"] == cid["attn_value"] == "cid"
        assert "cim" not in cid.values()
        for u in (cim, cid, _units(HALO, phase)):
            assert u["softmax"] == u["attn_norm"] == u["act"] == "vector"


def _crossbars_closed_form(model, rows=128, weights_per_row=16):
    """One copy of every GEMM and the LM head at W8 differential (8 columns per weight, 16
    weights per crossbar row): sum of ceil(K / rows) x ceil(N / 16), layers repeated."""
    h, i, q, kv = model.hidden_size, model.intermediate_size, model.q_dim, model.kv_dim
    xb = lambda n, k: -(-k // rows) * -(-n // weights_per_row)  # noqa: E731
    layer = xb(q + 2 * kv, h) + xb(h, q) + xb(2 * i, h) + xb(h, i)
    return model.num_layers * layer + xb(model.vocab_size, h)


@pytest.mark.parametrize("phase", list(Phase))
def test_cim_costs_are_the_crossbar_model(phase):
    """Every op the engine put on CiM costs exactly `cim_op_cost` with the residency
    `plan_weights` gives (llama2-7b needs 3.23 M crossbars, the package has 103,224: nothing
    is resident, so every op is charged its programming)."""
    sched = compile_step(LLAMA, ALL_CIM, phase=phase, batch=1,
                         new_tokens=1 if phase is Phase.DECODE else 64, context=64, precision=W8)
    unit = load_cim(CIM).unit
    plan = plan_weights(sched.graph, unit)
    assert plan.crossbars_needed == _crossbars_closed_form(LLAMA) == 3226112
    assert not plan.resident
    on_cim = [s for s in sched.ops if s.op.unit == "cim"]
    assert {s.op.kind for s in on_cim} == {OpKind.GEMM, OpKind.LM_HEAD}
    for s in on_cim:
        want = cim_op_cost(s.op, unit, resident_weights_bytes=0, act_io=False)
        assert s.cost == want
        assert cim_op_result(s.op, unit).program_s > 0


def test_activations_cross_the_cim_link_once_as_transfers():
    """HALO prefill: each CiM GEMM reads its input through one ``cim_io`` transfer of M x K
    activations and its output leaves through one of M x N (the logits, read by no op, stay),
    so the transfers carry exactly the activation bytes the crossbar model used to fold into
    the GEMM (`cim_op_result(act_io=True).act_bytes`), which the engine's GEMMs now leave out;
    each costs bytes / weight_load_bandwidth (3352 GB/s) and 3.59 pJ/bit."""
    halo = HALO
    sched = compile_step(LLAMA, halo, phase=Phase.PREFILL, batch=1, new_tokens=64, context=0,
                         precision=W8)
    unit = slot_unit(halo.chip.cim)
    by_id = {s.op.id: s for s in sched.ops}
    xfers = [s for s in sched.ops if s.op.kind == OpKind.TRANSFER]
    assert xfers and {s.op.unit for s in xfers} == {"cim_io"}
    for s in xfers:
        assert s.cost.time_s == pytest.approx(s.op.comm_bytes / 3352e9, rel=1e-12)
        assert s.cost.energy_j == pytest.approx(s.op.comm_bytes * 8 * 3.59e-12, rel=1e-12)
        assert s.cost.dram_bytes == 0
    for s in sched.ops:
        if s.op.unit != "cim" or s.op.kind == OpKind.LM_HEAD:
            continue
        m, n, k = s.op.dims
        inputs = [by_id[i].op for i in s.op.inputs]
        assert [(o.kind, o.comm_bytes) for o in inputs] == [(OpKind.TRANSFER, m * k)]
        out = [x.op for x in xfers if x.op.inputs == (s.op.id,)]
        assert [o.comm_bytes for o in out] == [m * n]
        assert m * k + m * n == cim_op_result(s.op, unit).act_bytes
        assert s.cost.dram_bytes == cim_op_result(s.op, unit).program_bytes
        for x in (*inputs, *out):  # every reader of the GEMM's output is on the host die
            assert x.unit == "cim_io"


def test_reprogramming_charged_every_step():
    """Not resident: each decode step of the all-CiM mapping writes every crossbar of the model
    once. Lower bound: needed / write_parallel_crossbars waves of 128 rows x 0.72 us; per-op
    rounding of the last wave adds less than one wave per op instance (upper bound)."""
    result = simulate(ALL_CIM, LLAMA, Workload(prompt_tokens=64, gen_tokens=3, precision=W8))
    unit = load_cim(CIM).unit
    xb = unit.crossbar
    wave = xb.rows * -(-xb.cols // xb.write_cells_parallel) * xb.write_time_s
    floor = _crossbars_closed_form(LLAMA) / unit.write_parallel_crossbars * wave
    for step in result.steps[1:]:
        instances = sum(s.segment.repeat for s in step.schedule.ops if s.op.unit == "cim")
        program = sum(s.segment.repeat * cim_op_result(s.op, unit).program_s
                      for s in step.schedule.ops if s.op.unit == "cim")
        assert floor <= program <= floor + instances * wave
        assert program <= step.time_s
    s = result.summary
    assert s["cim_weights_resident"] is False and s["cim_load_program_s"] == 0.0
    # decode is almost all reprogramming (the rest: crossbar reads, the logic die's vector ops)
    assert s["decode_write_bound_fraction"] > 0.98


@pytest.fixture
def big_cim_system(tmp_path):
    """The package under all-cim with a CiM of 4 M crossbars: llama2-7b's 3.23 M fit, so
    they stay."""
    cim = tmp_path / "big-cim.yaml"
    cim.write_text(load_cim(CIM).text.replace(f"crossbars: {XBARS} ", "crossbars: 4000000 "))
    hw = load_hardware("halo-package").text.replace(f"unit: {CIM}", f"unit: {cim}")
    return apply_mapping(parse_hardware(hw, "big.yaml"), "all-cim")


def test_resident_weights_are_programmed_once_at_load(big_cim_system):
    """Resident: no step pays programming (every CiM op costs `cim_op_cost` with its whole
    weight resident); the one programming of the model is in the summary, outside TTFT, and
    equals its closed form: ceil(needed / 12903) waves of 128 rows x 0.72 us (the write time
    exceeds the 6.6 GB / 3.35 TB/s transfer), 128 x 128 cells per crossbar at 25.6 pJ plus
    the weight bytes at 3.59 pJ/bit."""
    result = simulate(big_cim_system, LLAMA, Workload(prompt_tokens=64, gen_tokens=3,
                                                      precision=W8))
    unit = slot_unit(big_cim_system.chip.cim)
    for step in result.steps:
        for s in step.schedule.ops:
            if s.op.unit == "cim":
                assert s.cost == cim_op_cost(s.op, unit, act_io=False,
                                             resident_weights_bytes=s.op.weight_bytes)
                assert cim_op_result(s.op, unit,
                                     resident_weights_bytes=s.op.weight_bytes).program_s == 0
    s = result.summary
    need = _crossbars_closed_form(LLAMA)
    xb = unit.crossbar
    assert s["cim_weights_resident"] is True and s["cim_crossbars_needed"] == need
    waves = -(-need // unit.write_parallel_crossbars)
    assert s["cim_load_program_s"] == pytest.approx(waves * 128 * xb.write_time_s, rel=REL)
    weight_bytes = result.steps[0].schedule.graph  # every GEMM and the LM head, int8
    wbytes = sum(seg.repeat * op.weight_bytes for seg in weight_bytes.segments
                 for op in seg.ops if op.kind in (OpKind.GEMM, OpKind.LM_HEAD))
    assert s["cim_load_program_j"] == pytest.approx(
        need * 128 * 128 * xb.write_energy_j + wbytes * 8 * 3.59e-12, rel=REL)
    small = simulate(ALL_CIM, LLAMA, Workload(prompt_tokens=64, gen_tokens=3, precision=W8))
    # no per-step programming, which is over 98% of the small CiM's decode step (test above)
    assert s["tbt_mean_s"] < small.summary["tbt_mean_s"] / 50
    assert s["decode_write_bound_fraction"] == 0


def _package(system):
    """The system as data without the op lists of its memory-side slots and its mapping."""
    d = to_dict(system)
    d.pop("mapping")
    for slot in ("cid", "cim"):
        for k in ("decode_ops", "prefill_ops"):
            d["chip"][slot].pop(k)
    return d


def test_every_mapping_is_the_same_package():
    """One hardware description: each named policy changes the op lists of the CiD and CiM
    slots and nothing else (reference: the package as loaded, field for field)."""
    base = _package(HALO)
    for name in POLICIES:
        assert _package(apply_mapping(HALO, name)) == base, name
    assert HALO.chip.cid.decode_ops == ALL_CID.chip.cid.decode_ops
    assert set(ALL_CIM.chip.cim.decode_ops) == {"gemm", "lm_head"}
    assert not ALL_CID.chip.cim.prefill_ops


def test_describe_shows_the_cim_unit(capsys):
    assert main(["describe", "halo-package", "--json"]) == 0
    cim = json.loads(capsys.readouterr().out)["cim"]
    unit = load_cim(CIM).unit
    assert cim["crossbars"] == XBARS and cim["weight_capacity"] == XBARS * 128 * 16
    # ISAAC-style peak: all weights once per 7 reads of 100 ns (W8A8 differential)
    assert cim["peak_macs_per_s"] == pytest.approx(XBARS * 128 * 16 / (7 * 100e-9), rel=REL)
    assert cim["prefill_ops"] == ["gemm", "lm_head"] and cim["decode_ops"] == []
    assert unit.weight_capacity() == cim["weight_capacity"]
    assert main(["describe", "halo-package"]) == 0
    text = capsys.readouterr().out
    assert "analog CiM" in text and f"{XBARS} crossbars of 128x128" in text
    assert "CiM runs            prefill: gemm, lm_head; decode: nothing" in text
    assert main(["describe", "h100", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cim"] is None


def test_run_prints_the_residency_and_writes_a_trace(tmp_path, capsys):
    out = tmp_path / "t.h5"
    assert main(["run", "--hw", "halo-package", "--mapping", "all-cim", "--dtype", "int8",
                 "--prompt", "64", "--gen", "3", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert re.search(r"CiM weights \(per chip\) +not resident \(3226112 crossbars needed of "
                     rf"{XBARS}\)", text)
    assert "bound by CiM reprogramming" in text
    from sim.trace import read_trace
    ops = read_trace(out).ops
    assert b"write" in set(ops["bound"]) and b"cim" in set(ops["unit"])


def _hw_text(**subs):
    text = load_hardware("halo-package").text
    for old, new in subs.values():
        assert old in text
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize("subs, message", [
    ({"a": (f"unit: {CIM}", "unit: nope")},
     "chip.cim.unit: unknown CiM preset 'nope'"),
    ({"a": ("prefill_ops: [gemm, lm_head]", "prefill_ops: [gemm, softmax]")},
     "chip.cim.prefill_ops: 'softmax' cannot run on a CiM unit (allowed: gemm, lm_head)"),
    ({"a": ("prefill_ops: [gemm, lm_head]", "prefill_ops: [gemm, gemm]")},
     "chip.cim.prefill_ops: lists an op kind twice"),
    ({"a": ("prefill_ops: [kv_write]", "prefill_ops: [kv_write, gemm]")},
     "chip.cim.prefill_ops: gemm also in cid.prefill_ops"),
    ({"a": ("decode_ops: []", "decode_ops: [gemm]")},
     "chip.cim.decode_ops: gemm also in cid.decode_ops"),
    ({"a": (f"    unit: {CIM}", f"    unit: {CIM}\n    crossbars: 3")},
     "chip.cim.crossbars: unknown field (allowed: unit, prefill_ops, decode_ops)"),
])
def test_bad_cim_slot_exits_2(tmp_path, capsys, subs, message):
    path = tmp_path / "bad.yaml"
    path.write_text(_hw_text(**subs))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_hardware(path.read_text(), "bad.yaml")
    assert main(["describe", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_bad_cim_file_named_by_the_slot_exits_2(tmp_path, capsys):
    cim = tmp_path / "cim.yaml"
    cim.write_text(load_cim(CIM).text.replace(f"crossbars: {XBARS} ", "crossbars: 0 "))
    path = tmp_path / "hw.yaml"
    path.write_text(_hw_text(a=(f"unit: {CIM}", f"unit: {cim}")))
    assert main(["run", "--hw", str(path), "--no-trace"]) == 2
    err = capsys.readouterr().err
    assert "chip.cim.unit: " in err and "crossbars: must be >= 1, got 0" in err


def test_dtype_check_looks_only_at_ops_on_the_arrays(capsys):
    """CENT puts every matrix product on its AiM banks, so int4 runs although its stand-in
    systolic array has no int4; the HALO package under all-pim likewise. The H100 and the
    package under phase-aware (prefill attention on the logic die's arrays) still refuse it,
    before any step is simulated."""
    int4 = Precision(weight="int4", activation="int4", kv="int4")
    w = Workload(prompt_tokens=32, gen_tokens=2, precision=int4)
    cent = simulate(load_hardware("cent").system, LLAMA, w)
    assert cent.summary["ttft_s"] > 0 and math.isfinite(cent.summary["tbt_mean_s"])
    assert simulate(ALL_CID, LLAMA, w).summary["ttft_s"] > 0
    for system in (load_hardware("h100").system, HALO):
        with pytest.raises(ConfigError, match="dtype: 'int4' is not supported"):
            simulate(system, LLAMA, w)
    assert main(["run", "--hw", "cent", "--dtype", "int4", "--prompt", "32", "--gen", "2",
                 "--no-trace"]) == 0
    capsys.readouterr()
    assert main(["run", "--hw", "h100", "--dtype", "int4", "--no-trace"]) == 2
    assert "'int4' is not supported by this systolic array" in capsys.readouterr().err
