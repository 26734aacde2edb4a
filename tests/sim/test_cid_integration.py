"""CiD units in the whole pipeline: placement, op costs, capacity checks, the `pdsim cid`
command, and the CENT study."""

import json
from dataclasses import replace

import numpy as np
import pytest

from mappers.ir import Phase, Precision
from mappers.lower import lower
from mappers.models import load_model
from sim.step import compile_step
from mappers.place import place
from sim.units.cid import ops as cid_ops
from sim.cli.main import main
from sim.engine import Workload, simulate
from sim.errors import ConfigError
from sim.presets import load_hardware, parse_hardware

LLAMA = load_model("llama2-7b").config
CENT = load_hardware("cent").system
ATTACC = load_hardware("attacc").system


def _units(system, phase):
    graph = lower(LLAMA, phase=phase, batch=1, new_tokens=1 if phase is Phase.DECODE else 8,
                  context=64, precision=Precision())
    return {op.name: op.unit for seg in place(graph, system).segments for op in seg.ops}


def test_placement_follows_the_cid_unit():
    """CENT: every matrix product, attention and KV write on the AiM banks in both phases;
    AttAcc: only decode attention (and KV writes) on the PIM stacks; H100: no CiD."""
    for phase in Phase:
        u = _units(CENT, phase)
        assert u["qkv_proj"] == u["lm_head"] == u["attn_score"] == u["kv_write"] == "cid"
        assert u["softmax"] == u["attn_norm"] == "vector"
    dec, pre = _units(ATTACC, Phase.DECODE), _units(ATTACC, Phase.PREFILL)
    assert dec["attn_score"] == dec["attn_value"] == dec["kv_write"] == "cid"
    assert dec["qkv_proj"] == "tensor" and pre["attn_score"] == "tensor"
    assert pre["kv_write"] == "cid"
    assert "cid" not in _units(load_hardware("h100").system, Phase.DECODE).values()


def test_cid_gemm_cost_is_the_engine_gemv_per_token():
    """A decode GEMM on CENT costs the command-level GEMV of its weight matrix, once per
    token; a GEMM of M tokens costs what `unit_gemm` finds (passes of several vectors held in
    AiM's global buffer; tests/sim/test_cid_multitoken.py), less than M GEMVs."""
    sched = compile_step(LLAMA, CENT, phase=Phase.DECODE, batch=1, new_tokens=1, context=100,
                         precision=Precision())
    qkv = next(s for s in sched.ops if s.op.name == "qkv_proj")
    m, n, k = qkv.op.dims
    run = cid_ops.unit_gemv(CENT.chip.cid, n, k, "fp16")
    assert qkv.cost.time_s == pytest.approx(run.time_s * m, rel=1e-12)
    assert qkv.cost.bound == "memory" and 0 < qkv.cost.utilization <= 1
    sched4 = compile_step(LLAMA, CENT, phase=Phase.DECODE, batch=4, new_tokens=1, context=100,
                          precision=Precision())
    qkv4 = next(s for s in sched4.ops if s.op.name == "qkv_proj")
    assert qkv4.cost.time_s == cid_ops.unit_gemm(CENT.chip.cid, 4, n, k, "fp16").time_s
    assert qkv4.cost.time_s < 4 * qkv.cost.time_s


def test_causal_prefill_attention_streams_only_the_kept_keys():
    """Prefill attention on CiD: a causal model's query i reads context + i + 1 keys, so the
    banks stream L c + L (L + 1) / 2 of the L (c + L) key rows a bidirectional model (LLaDA)
    of the same shape reads; decode (one query over every key) is unchanged. Times and
    energies scale by exactly that ratio (the same GEMV per query, fewer rows)."""
    llada = load_model("llada-8b").config
    L, c = 64, 32

    def score(model, phase, new_tokens):
        sched = compile_step(model, CENT, phase=phase, batch=1, new_tokens=new_tokens,
                             context=c, precision=Precision())
        return next(s for s in sched.ops if s.op.name == "attn_score")

    kept = L * c + L * (L + 1) // 2
    causal = score(replace(llada, causal=True), Phase.PREFILL, L)
    full = score(llada, Phase.PREFILL, L)
    assert causal.op.dims == full.op.dims
    assert causal.cost.time_s == pytest.approx(full.cost.time_s * kept / (L * (c + L)),
                                               rel=1e-12)
    assert causal.cost.energy_j == pytest.approx(full.cost.energy_j * kept / (L * (c + L)),
                                                 rel=1e-12)
    dec_causal = score(replace(llada, causal=True), Phase.DECODE, 1)
    assert dec_causal.cost.time_s == pytest.approx(score(llada, Phase.DECODE, 1).cost.time_s,
                                                   rel=1e-12)


def test_cent_decode_step_is_bounded_by_internal_bandwidth():
    """Llama2-7B decode on CENT's 8 pipelined AiM devices, one stage after another at batch
    1: the step takes at least weights / one device's peak internal bandwidth (16.4 TB/s)
    and, with row switches, the input broadcast, refresh, the vector ops and the 7 hops, at
    most twice that."""
    result = simulate(CENT, LLAMA, Workload(prompt_tokens=128, gen_tokens=3),
                      decode_sample=2)
    peak = cid_ops.peak_internal_bytes_per_s(cid_ops.unit_device(CENT.chip.cid), "aim")
    floor = result.steps[1].totals["weight_bytes"] / peak
    assert floor <= result.steps[1].time_s <= 2 * floor
    assert result.summary["decode_energy_j"] > 0


def test_kv_cache_bigger_than_the_cid_unit_is_refused():
    with pytest.raises(ConfigError, match="the CiD unit of attacc must hold .* KV cache"):
        simulate(ATTACC, LLAMA, Workload(batch=64, prompt_tokens=4000, gen_tokens=96))


def test_runs_are_deterministic():
    w = Workload(prompt_tokens=64, gen_tokens=8)
    # assert_equal counts NaN (CENT's static energy: it has no TDP) as equal to NaN.
    np.testing.assert_equal(simulate(CENT, LLAMA, w).summary, simulate(CENT, LLAMA, w).summary)


def test_cid_unit_validation():
    text = load_hardware("cent").text
    with pytest.raises(ConfigError, match="chip.cid.mode: unknown PIM mode 'rank'"):
        parse_hardware(text.replace("mode: aim", "mode: rank"), "x.yaml")
    with pytest.raises(ConfigError, match="chip.cid.decode_ops: 'softmax' cannot run"):
        parse_hardware(text.replace("decode_ops: [gemm,", "decode_ops: [softmax,"), "x.yaml")
    with pytest.raises(ConfigError, match="chip.cid.dram: --dram: unknown DRAM preset"):
        parse_hardware(text.replace("dram: gddr6-aim", "dram: ddr9"), "x.yaml")
    plain = replace(CENT.chip.cid, dram="hbm3", mode="bank")
    assert plain.mode == "bank"


def test_pdsim_cid_json(capsys):
    """The command's numbers are the op model's (no re-derivation in the CLI)."""
    assert main(["cid", "--op", "gemv", "--rows", "4096", "--cols", "4096", "--hw", "hbm3",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    run = cid_ops.gemv(cid_ops.unit_device(
        replace(CENT.chip.cid, dram="hbm3", mode="bank", tccd_ab=None)), "bank", 4096, 4096,
        "fp16")
    assert out["cycles"] == run.cycles and out["energy_j"] == pytest.approx(run.energy_j)
    assert out["internal_bandwidth_bytes_per_s"] == pytest.approx(
        run.internal_bandwidth_bytes_per_s)
    assert 1 < out["internal_over_external"] < 16 * 4 / 6


@pytest.mark.parametrize("argv, message", [
    (["cid", "--hw", "h100", "--rows", "4", "--cols", "4"], "h100 has no CiD unit"),
    (["cid", "--rows", "4"], "--rows and --cols: required"),
    (["cid", "--op", "attention", "--context", "10000000"], "KV cache does not fit"),
    (["cid", "--hw", "nope", "--rows", "4", "--cols", "4"], "unknown preset 'nope'"),
    (["cid", "--rows", "-3", "--cols", "4"], "must be >= 1"),
])
def test_pdsim_cid_bad_input_exits_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(argv))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_pdsim_cid_bad_dram_file_exits_2(tmp_path, capsys):
    from sim.units.cid.dram import load_dram
    from sim.schema import to_dict
    import yaml
    data = to_dict(load_dram("hbm3"))
    data["timing"]["tRCD"] = 0
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["cid", "--hw", str(path), "--rows", "4", "--cols", "4"]) == 2
    assert "timing.tRCD: must be >= 1, got 0" in capsys.readouterr().err


def test_cent_study_writes_its_folder(tmp_path, capsys):
    """`pdsim reproduce cent` end to end: files written, and CENT's batch-1 decode faster
    than both GPUs (the PIM's internal bandwidth is 16x a device's pins); it prints the
    headline table (the speed-ups) after the files."""
    assert main(["reproduce", "cent", "-o", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "cent.json").read_text())
    out = capsys.readouterr().out
    assert out.startswith("wrote ") and "CENT's speed-up over it" in out
    for gpu in ("a100", "h100"):
        assert f"{data['speedup_over'][gpu]:.2f}x (published 6.32x)" in out
    assert {p.name for p in tmp_path.iterdir()} == {"cent.json", "cent.png", "README.md"}
    assert data["speedup_over"]["a100"] > data["speedup_over"]["h100"] > 1
    readme = (tmp_path / "README.md").read_text()
    # both of CENT's mappings for the three sizes, on 8 / 20 / 32 devices, beside CENT's figures
    for model, devices in (("llama2-7b", 8), ("llama2-13b", 20), ("llama2-70b", 32)):
        tp, pp = data["runs"][f"{model}/tp"], data["runs"][f"{model}/pp"]
        assert (tp["tensor_parallel"], tp["pipeline_parallel"]) == (devices, 1)
        assert (pp["tensor_parallel"], pp["pipeline_parallel"]) == (1, devices)
        assert f"| {model} | {devices} | tp (tp {devices}, pp 1) |" in readme
        # the copied CENT figures reproduce the published ratios (REFERENCE.md)
        sp = tp["speedup_over_gpu_baseline"]
        assert sp["cent_sim"] == pytest.approx(sp["published"], abs=0.005)


def test_cent_accelerator_growth_is_its_softmax_formula():
    """CENT's simulator's Acc latency grows from 512 to 4096 keys by exactly its softmax
    formula (cent_power_calculator.py): 7B, 32 heads, (4096 - 512) x 32 / 512 x 110 cycles."""
    from sim.studies.cent import cent_softmax_s
    from sim.studies.cent_data import CENT_BLOCK_MS
    for model, heads in (("llama2-7b", 32), ("llama2-13b", 40), ("llama2-70b", 64)):
        block = CENT_BLOCK_MS[(model, "tp")]
        growth = (block[4096][2] - block[512][2]) / 1e3
        formula = cent_softmax_s(4096, heads, 1) - cent_softmax_s(512, heads, 1)
        assert growth == pytest.approx(formula, rel=1e-9)
    assert cent_softmax_s(4096, 32, 1) - cent_softmax_s(512, 32, 1) == pytest.approx(
        3584 * 32 / 512 * 110 / 2e9)
