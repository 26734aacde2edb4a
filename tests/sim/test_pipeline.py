"""Pipeline parallelism (``System.pipeline_parallel``): the stage split, the step time of one
batch in flight (every stage in turn plus ``pp - 1`` point-to-point hops), per-stage capacity,
bad values, and the ``--pp`` flag.

References are independent of the engine's pipeline code: the same step lowered with
``pp = 1`` (its ops' costs summed), the hop's closed form ``S / (B x link efficiency) + L``
for ``S = tokens x hidden x activation bytes`` (plus the chip's per-op overhead, as
for every op), and the model's parameter count. Sums of the
same floats in a different order agree to 1e-12 relative (float rounding, no modelling
difference).
"""

import json
from dataclasses import replace

import pytest

from mappers.ir import OpKind, Phase, Precision
from mappers.lower import lower, stage_layers
from mappers.models import load_model
from sim.step import compile_step
from sim.cli.main import main
from sim.engine import Workload, simulate, stage_footprints
from sim.errors import ConfigError
from sim.presets import load_hardware, parse_hardware
from sim.roofline import roofline_cost
from sim.units.systolic.tile import tile_cost
from sim.trace import read_trace

LLAMA = load_model("llama2-7b").config
#: Llama2-70B cut to 70 layers, so that 8 stages are uneven (9 x 6, 8 x 2)
SEVENTY = replace(load_model("llama2-70b").config, num_layers=70)
H100 = load_hardware("h100").system
CENT = load_hardware("cent").system
FP16 = Precision()


def test_stage_split_32_over_8_and_70_over_8():
    assert stage_layers(32, 8) == (4,) * 8
    assert stage_layers(70, 8) == (9,) * 6 + (8,) * 2
    assert stage_layers(7, 1) == (7,)
    graph = lower(SEVENTY, phase=Phase.DECODE, batch=1, new_tokens=1, context=8,
                  precision=FP16, pp=8)
    layers = [s for s in graph.segments if s.layer >= 0]
    assert [s.layer for s in layers] == [0, 9, 18, 27, 36, 45, 54, 62]  # contiguous
    assert [s.repeat for s in layers] == [9] * 6 + [8] * 2
    sends = [op for s in graph.segments for op in s.ops if op.kind == OpKind.P2P]
    assert [op.dims for op in sends] == [(8192, s, s + 1) for s in range(7)]
    # every stage but the last is followed by its send
    names = [s.name for s in graph.segments]
    assert names == ["embed"] + ["layers", "pp_send"] * 7 + ["layers", "head"]


@pytest.mark.parametrize("bad", [0, 33])
def test_too_many_stages_is_refused(bad):
    with pytest.raises(ConfigError, match=rf"^pipeline_parallel: must be between 1 and the "
                                          rf"model's 32 layers, got {bad}$"):
        stage_layers(32, bad)


def _hop_s(system, tokens, hidden):
    """One send of ``tokens`` fp16 hidden states; an op pays the chip's per-op overhead (a
    kernel launch on a GPU) as every op does."""
    link, eff = system.interconnect, system.chip.efficiency
    return tokens * hidden * 2 / (link.bandwidth_bytes_per_s * eff.link) + link.latency_s \
        + eff.op_overhead_s


def _hop_j(system, tokens, hidden):
    """Link energy of that send; a link without an energy figure adds none (docs)."""
    return tokens * hidden * 2 * 8 * (system.interconnect.energy_pj_per_bit or 0.0) * 1e-12


@pytest.mark.parametrize("detail", ["tile", "roofline"])
@pytest.mark.parametrize("system, pp", [(H100, 2), (H100, 4), (CENT, 8)])
@pytest.mark.parametrize("phase, tokens, context", [(Phase.PREFILL, 96, 0),
                                                    (Phase.DECODE, 1, 300)])
def test_step_is_every_stage_plus_the_hops(system, pp, detail, phase, tokens, context):
    """Step time and energy with ``pp`` stages = the pp = 1 step's + (pp - 1) closed-form
    hops; FLOPs and DRAM bytes unchanged; the sends' comm bytes are the hidden states."""
    batch = 2
    piped = replace(system, pipeline_parallel=pp, num_chips=max(system.num_chips, pp))
    one = replace(system, pipeline_parallel=1)
    kw = dict(phase=phase, batch=batch, new_tokens=tokens, context=context, precision=FP16,
              detail=detail)
    a, b = compile_step(LLAMA, one, **kw), compile_step(LLAMA, piped, **kw)
    ref_s = sum(s.segment.repeat * s.cost.time_s for s in a.ops)
    if context == 0:
        # a prefill from scratch reads K and V from the projection: a cache write on another
        # unit than attention's (H100's DMA) runs beside it and leaves the serial sum (all
        # three on CENT's CiD stay serial); each write is shorter than the attention it hides
        # behind
        attn = {s.op.unit for s in a.ops if s.op.kind == OpKind.ATTN_SCORE}
        ref_s -= sum(s.segment.repeat * s.cost.time_s for s in a.ops
                     if s.op.kind == OpKind.KV_WRITE and s.op.unit not in attn)
    h = LLAMA.hidden_size
    hops = (pp - 1) * _hop_s(system, batch * tokens, h)
    assert b.time_s == pytest.approx(ref_s + hops, rel=1e-12)
    assert b.time_s == pytest.approx(a.time_s + hops, rel=1e-12)
    assert b.energy_j == pytest.approx(a.energy_j + (pp - 1) * _hop_j(system, batch * tokens, h),
                                       rel=1e-12)
    for f in ("flops", "weight_bytes", "act_bytes", "kv_bytes"):
        assert b.graph.total(f) == a.graph.total(f)
    assert b.graph.total("comm_bytes") == a.graph.total("comm_bytes") \
        + (pp - 1) * batch * tokens * h * 2
    assert b.dram_bytes == pytest.approx(a.dram_bytes, rel=1e-12)
    sends = [s for s in b.ops if s.op.kind == OpKind.P2P]
    assert len(sends) == pp - 1 and {s.op.unit for s in sends} == {"link"}
    assert {s.cost.bound for s in sends} == {"link"}


@pytest.mark.parametrize("model", [roofline_cost, tile_cost])
def test_p2p_cost_is_one_hop(model):
    graph = lower(LLAMA, phase=Phase.DECODE, batch=3, new_tokens=1, context=10,
                  precision=FP16, pp=2)
    op = next(op for s in graph.segments for op in s.ops if op.kind == OpKind.P2P)
    op = replace(op, unit="link")
    cost = model(CENT, op)
    assert op.comm_bytes == 3 * 4096 * 2
    assert cost.time_s == pytest.approx(_hop_s(CENT, 3, 4096), rel=1e-12)
    assert cost.energy_j == pytest.approx(_hop_j(CENT, 3, 4096) + 0.0, rel=1e-12)
    assert cost.dram_bytes == 0


def test_run_is_pp1_run_plus_hops():
    """A whole run: end-to-end = the pp = 1 run's + hops of the prompt and of every decode
    step (closed form), as the CENT study used to add outside the engine."""
    w = Workload(batch=1, prompt_tokens=64, gen_tokens=5)
    one = simulate(replace(CENT, pipeline_parallel=1), LLAMA, w).summary
    eight = simulate(CENT, LLAMA, w).summary
    hops = 7 * (_hop_s(CENT, 64, 4096) + 4 * _hop_s(CENT, 1, 4096))
    assert eight["e2e_s"] == pytest.approx(one["e2e_s"] + hops, rel=1e-12)
    assert eight["energy_j"] == pytest.approx(
        one["energy_j"] + 7 * _hop_j(CENT, 64 + 4, 4096), rel=1e-12)
    assert eight["chips"] == 8 and one["chips"] == 1


def test_stage_footprints_add_up_to_the_model():
    """Weights over the stages are the model's parameters (untied head on the last stage,
    embedding on the first); KV cache over the stages is the one-stage KV cache."""
    w = Workload(batch=2, prompt_tokens=1000, gen_tokens=100)
    one = stage_footprints(LLAMA, replace(CENT, pipeline_parallel=1), w)
    stages = stage_footprints(LLAMA, CENT, w)
    assert len(one) == 1 and len(stages) == 8
    assert sum(s[0] for s in stages) == one[0][0] == 2 * LLAMA.parameter_counts()["total"]
    assert sum(s[1] for s in stages) == one[0][1]
    layer_w = 2 * LLAMA.parameter_counts()["per_layer"]
    assert stages[1][0] == 4 * layer_w
    assert stages[0][0] == 4 * layer_w + 2 * LLAMA.parameter_counts()["embedding"]


def test_cent_100k_context_fits_its_eight_devices():
    """13.5 GB of weights + 52 GB of KV cache: refused on one 16 GiB device, accepted on
    CENT's 8 (one stage: 4 layers, 1.9 GB + 6.6 GB)."""
    w = Workload(prompt_tokens=100000, gen_tokens=10)
    with pytest.raises(ConfigError, match=r"^workload does not fit: the CiD unit of cent must "
                                          r"hold 13\.5 GB of weights \+ 52\.4 GB"):
        simulate(replace(CENT, pipeline_parallel=1), LLAMA, w, decode_sample=2)
    result = simulate(CENT, LLAMA, w, decode_sample=2)
    assert result.summary["weight_bytes_per_chip"] + result.summary["kv_cache_bytes_per_chip"] \
        <= CENT.chip.memory.capacity_bytes


def test_a_stage_that_overflows_is_refused():
    """70-layer Llama2-70B over 8 H100s: stage 0 (9 layers and the embedding) overflows
    80 GiB at 1.95M cached tokens while stage 7 (8 layers and the head) and the total would fit."""
    system = replace(H100, pipeline_parallel=8)
    w = Workload(batch=39, prompt_tokens=50000, gen_tokens=1)
    stages = stage_footprints(SEVENTY, system, w)
    cap = H100.chip.memory.capacity_bytes
    assert sum(stages[0]) > cap >= sum(stages[7]) and sum(map(sum, stages)) < 8 * cap
    with pytest.raises(ConfigError, match=r"^workload does not fit: one chip of pipeline stage "
                                          r"0 \(of 8\) needs 15\.9 GB of weights \+ 71\.9 GB "
                                          r"of KV cache, h100 has 85\.9 GB \(raise --tp/--pp"):
        simulate(system, SEVENTY, w)


def test_system_validation():
    with pytest.raises(ConfigError, match=r"^pipeline_parallel: must be >= 1, got 0$"):
        replace(H100, pipeline_parallel=0)
    with pytest.raises(ConfigError, match=r"^pipeline_parallel: tensor_parallel x "
                                          r"pipeline_parallel must be <= num_chips \(8\), "
                                          r"got 2 x 8$"):
        replace(H100, tensor_parallel=2, pipeline_parallel=8)
    with pytest.raises(ConfigError, match=r"^interconnect: required when pipeline_parallel"):
        replace(H100, pipeline_parallel=2, interconnect=None)
    halo = load_hardware("halo-package").system
    with pytest.raises(ConfigError, match=r"^pipeline_parallel: must be 1 for a chip with a "
                                          r"cim unit"):
        # (the package is one chip: two, linked as the H100's are, to reach the CiM check)
        replace(halo, num_chips=2, pipeline_parallel=2, interconnect=H100.interconnect)
    text = load_hardware("cent").text
    with pytest.raises(ConfigError, match=r"pipeline_parallel: tensor_parallel x .* 1 x 9$"):
        parse_hardware(text.replace("pipeline_parallel: 8", "pipeline_parallel: 9"), "x.yaml")
    with pytest.raises(ConfigError, match=r"pipeline_parallel: must be >= 1, got 0$"):
        parse_hardware(text.replace("pipeline_parallel: 8", "pipeline_parallel: 0"), "x.yaml")


@pytest.mark.parametrize("argv, message", [
    (["--pp", "0"], None),  # argparse: exit 2
    (["--pp", "33"], "--pp: at most 8 on h100 (num_chips 8 / tensor_parallel 1), got 33"),
    (["--hw", "halo-package", "--pp", "2"],
     "--pp: at most 1 on halo-package (num_chips 1 / tensor_parallel 1), got 2"),
    (["--hw", "cent", "--prompt", "1000000", "--gen", "2"],
     "workload does not fit: the CiD unit of cent in pipeline stage 0 (of 8) must hold"),
])
def test_bad_values_exit_2(argv, message, capsys, tmp_path):
    try:
        code = main(["run", "--no-trace", *argv])
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if message is not None:
        assert err.count("\n") == 1 and message in err


def test_pp_flag_on_h100(tmp_path, capsys):
    out = tmp_path / "t.h5"
    assert main(["run", "--pp", "2", "--prompt", "64", "--gen", "3", "--json", "-o",
                 str(out)]) == 0
    s = json.loads(capsys.readouterr().out)["summary"]
    assert s["chips"] == 2
    assert s["decode_comm_bytes"] == 2 * 1 * 4096 * 2  # two decode steps, one hop each
    assert s["prefill_comm_bytes"] == 64 * 4096 * 2
    t = read_trace(out)
    assert t.meta["pipeline_parallel"] == 2
    sends = t.ops[t.ops["kind"] == b"p2p"]
    assert len(sends) == 3 and set(sends["unit"]) == {b"link"}
    assert set(sends["segment"]) == {b"pp_send"}
    prefill = t.ops[t.ops["step"] == 0]
    stages = prefill[(prefill["segment"] == b"layers") & (prefill["op"] == b"qkv_proj")]
    assert list(stages["layer"]) == [0, 16] and list(stages["repeat"]) == [16, 16]
    assert main(["run", "--pp", "2", "--prompt", "64", "--gen", "3", "--no-trace"]) == 0
    assert "(tp 1, pp 2, tile)" in capsys.readouterr().out
