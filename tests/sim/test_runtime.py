"""The software-stack model (issue 11, Deliver 2): kernels per op, fusion, launch and minimum
kernel times, presets selectable per run."""

import dataclasses
import json
import math
import subprocess
import sys

import pytest

from mappers.ir import Op, OperandFormats, OpKind, Phase
from mappers.models import load_model
from sim.cost import Cost
from sim.engine import Workload
from sim.errors import ConfigError
from sim.presets import load_hardware, parse_hardware
from sim.runtime import Runtime, load_runtime, runtime_names
from sim.step import compile_step, step_cost

H100 = load_hardware("h100").system
FP16 = OperandFormats(act="fp16", weight="fp16", kv="fp16", acc="fp32")
MEASURED = json.loads(open("benchmarks/calibration/h100-measured.json").read())


def _cost(t: float) -> Cost:
    return Cost(time_s=t, compute_s=0.0, memory_s=t, comm_s=0.0, energy_j=1.0,
                bound="memory", dram_bytes=100.0)


def _norm() -> Op:
    return Op(name="norm", kind=OpKind.NORM, dims=(1, 4096), formats=FP16, flops=4 * 4096,
              weight_bytes=8192, act_bytes=16384, unit="vector")


def test_presets_ship():
    assert {"eager", "cuda-graph", "fused"} <= set(runtime_names())


def test_presets_take_launch_figures_from_the_measurement():
    launch = MEASURED["launch"]
    assert load_runtime("eager").launch_s == pytest.approx(
        launch["eager_host_wall_per_launch_s"], rel=0.01)
    for name in ("eager", "cuda-graph"):
        assert load_runtime(name).min_kernel_s == pytest.approx(
            launch["graph_per_kernel_s"], rel=0.01)
    assert load_runtime("cuda-graph").launch_s == 0


def test_short_op_is_bounded_by_its_kernels():
    rt = Runtime(name="t", launch_s=10e-6, min_kernel_s=1e-6, kernels=(("norm", 8),))
    # 8 kernels, each at least max(10 us issue, 1 us device) = 80 us; its 1 us of work is less
    assert rt.apply(_norm(), _cost(1e-6)).time_s == pytest.approx(80e-6)
    assert rt.apply(_norm(), _cost(1e-6)).bound == "runtime"


def test_kernel_fixed_time_comes_on_top_of_the_work():
    """Under a graph (no host issue) 8 kernels of 1 us fixed time each and 5 us of work take
    13 us: kernels on a stream run one after another, so start-up does not hide work."""
    rt = Runtime(name="t", min_kernel_s=1e-6, kernels=(("norm", 8),))
    c = rt.apply(_norm(), _cost(5e-6))
    assert c.time_s == pytest.approx(13e-6) and c.bound == "runtime"
    # a mapping that launches two kernels per op (split-K) pays two fixed times per op kernel
    two = dataclasses.replace(_cost(5e-6), kernels=2)
    assert rt.apply(_norm(), two).time_s == pytest.approx(21e-6)


def test_transformers_stacks_launch_the_fused_projections_in_parts():
    """transformers' LlamaAttention has q_proj, k_proj, v_proj and LlamaMLP gate_proj,
    up_proj as separate nn.Linear: 3 and 2 GEMM kernels where pdsim's op list has one."""
    qkv = Op(name="qkv_proj", kind=OpKind.GEMM, dims=(1, 12288, 4096), formats=FP16,
             flops=2 * 12288 * 4096, weight_bytes=2 * 12288 * 4096, act_bytes=0,
             unit="tensor")
    o = dataclasses.replace(qkv, name="o_proj", dims=(1, 4096, 4096))
    gate_up = dataclasses.replace(qkv, name="gate_up_proj", dims=(1, 22016, 4096))
    shared = dataclasses.replace(qkv, name="shared_gate_up", dims=(1, 11264, 2048))
    for name in ("eager", "cuda-graph"):
        rt = load_runtime(name)
        assert [rt.kernels_of(x) for x in (qkv, o, gate_up, shared)] == [3, 1, 2, 2]
    assert load_runtime("fused").kernels_of(qkv) == 1


def test_long_op_keeps_its_device_time_and_traffic_multiplies_it():
    rt = Runtime(name="t", launch_s=1e-6, kernels=(("norm", 2),), traffic=(("norm", 3.0),))
    c = rt.apply(_norm(), _cost(1e-3))
    assert c.time_s == pytest.approx(3e-3) and c.dram_bytes == pytest.approx(300.0)
    assert c.bound == "memory"


def test_fused_kind_launches_nothing():
    rt = Runtime(name="t", launch_s=10e-6, fuse=("norm",))
    assert rt.kernels_of(_norm()) == 0
    assert rt.apply(_norm(), _cost(1e-7)).time_s == pytest.approx(1e-7)


@pytest.mark.parametrize("fields, message", [
    ({"launch_s": -1.0}, "launch_s: must be >= 0"),
    ({"fuse": ("normz",)}, "fuse: unknown op kind 'normz'"),
    ({"kernels": (("norm", 0),)}, r"kernels\.norm: must be >= 1"),
    ({"kernels": (("o_proj", 2),)}, r"kernels\.o_proj: unknown op kind or name"),
    ({"kernels": (("norm", 2),), "fuse": ("norm",)}, r"kernels\.norm: also in fuse"),
    ({"traffic": (("rope", 0.5),)}, r"traffic\.rope: must be >= 1"),
])
def test_bad_runtime_fields_are_refused(fields, message):
    with pytest.raises(ConfigError, match=message):
        Runtime(name="t", **fields)


def test_hardware_yaml_names_a_runtime():
    text = load_hardware("h100").text + "runtime: cuda-graph\n"
    assert parse_hardware(text, "x.yaml").runtime == "cuda-graph"
    with pytest.raises(ConfigError, match=r"x\.yaml: runtime: unknown runtime preset 'nope'"):
        parse_hardware(load_hardware("h100").text + "runtime: nope\n", "x.yaml")


def _step(runtime, phase, batch, tokens, context):
    system = dataclasses.replace(H100, runtime=runtime)
    return compile_step(load_model("llama2-7b").config, system, phase=phase,
                        precision=Workload().precision, batch=batch, new_tokens=tokens,
                        context=context, detail="tile")


def test_runtime_replaces_the_per_op_overhead(tmp_path):
    """Under a runtime that launches for free, an op costs its device work alone: the chip
    model's time less the preset's ``op_overhead_s`` (1 us on h100)."""
    free = tmp_path / "free.yaml"
    free.write_text("name: free\n")
    system = dataclasses.replace(H100, runtime=str(free))
    op = Op(name="gemv", kind=OpKind.GEMM, dims=(1, 4096, 4096), formats=FP16,
            flops=2 * 4096 * 4096, weight_bytes=2 * 4096 * 4096, act_bytes=4 * 4096,
            unit="tensor")
    graph = compile_step(load_model("llama2-7b").config, H100, phase=Phase.DECODE,
                         precision=Workload().precision, batch=1, new_tokens=1,
                         context=16).graph
    plain = step_cost(H100, "tile", graph)(op).time_s
    assert H100.chip.efficiency.op_overhead_s == 1e-6
    assert step_cost(system, "tile", graph)(op).time_s == pytest.approx(plain - 1e-6, rel=1e-12)


def test_eager_kernel_count_is_near_the_profiled_one():
    """Kernels per prefill step from the eager preset's per-op counts (counted in
    transformers' code, Q, K, V and gate, up launched apart) against the torch profiler's count
    on the H100: 1334. The rotary cos/sin set-up is not an op."""
    rt = load_runtime("eager")
    sched = _step("eager", Phase.PREFILL, 1, 512, 0)
    kernels = sum(s.segment.repeat * rt.kernels_of(s.op) for s in sched.ops)
    measured = MEASURED["llama"]["prefill_profile"]["512"]["kernels_per_step"]
    assert measured == 1334
    assert 0.85 * measured <= kernels <= measured


def test_eager_decode_is_host_bound_and_the_graph_is_not():
    eager, graph = _step("eager", Phase.DECODE, 1, 1, 2048), _step("cuda-graph", Phase.DECODE,
                                                                   1, 1, 2048)
    assert eager.time_s > 2 * graph.time_s
    assert math.isfinite(eager.energy_j)


def test_cli_runtime_flag(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "sim.cli.main", "run", "--no-trace",
                               "--gen", "2", "--prompt", "64", *args],
                              capture_output=True, text=True)
    ok = run("--runtime", "cuda-graph")
    assert ok.returncode == 0, ok.stderr
    assert "runtime cuda-graph" in ok.stdout
    bad = run("--runtime", "nope")
    assert bad.returncode == 2 and "--runtime: unknown runtime preset 'nope'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr


def test_api_overrides_name_a_runtime():
    from sim.api import load_system
    assert load_system("h100", overrides={"runtime": "eager"}).runtime == "eager"
    with pytest.raises(ConfigError, match=r"^runtime: unknown runtime preset 'nope'"):
        load_system("h100", overrides={"runtime": "nope"})
