"""Per-core memory-level parallelism (issue 11, Deliver 1): a core keeps a bounded number of
line requests in flight, so by Little's law it sustains at most ``outstanding x line_bytes /
latency`` from DRAM, and too few cores cannot fill the memory. The threshold core count is
computed here from the preset's YAML fields, in closed form."""

import dataclasses
import math

import pytest

from mappers.ir import Op, OperandFormats, OpKind, Phase
from mappers.models import load_model
from sim.engine import Workload
from sim.errors import ConfigError
from sim.hardware import MemoryParallelism
from sim.presets import load_hardware, parse_hardware
from sim.step import compile_step
from sim.units.systolic.tile import tile_cost

H100 = load_hardware("h100").system
FP16 = OperandFormats(act="fp16", weight="fp16", kv="fp16", acc="fp32")
MLP = H100.chip.core.memory_parallelism


def _with_cores(cores: int):
    return dataclasses.replace(H100, chip=dataclasses.replace(H100.chip, cores=cores))


def _threshold() -> float:
    """Cores needed to fill DRAM: the memory's achievable bandwidth over one core's, where
    one core's is ``outstanding x line_bytes / dram_latency_s`` (all from the YAML)."""
    chip = H100.chip
    per_core = MLP.outstanding * MLP.line_bytes / MLP.dram_latency_s
    return chip.memory.bandwidth_bytes_per_s * chip.efficiency.memory / per_core


def test_h100_figures_give_a_threshold_inside_the_chip():
    # 64 x 128 B / 228 ns = 35.9 GB/s per SM; 0.85 x 3352 GB/s / 35.9 GB/s = 79.3 SMs
    assert _threshold() == pytest.approx(79.3, abs=0.05)
    assert MLP.dram_bytes_per_s == pytest.approx(35.93e9, rel=1e-3)
    assert MLP.l2_bytes_per_s == pytest.approx(2 * 35.93e9, rel=1e-3)


def _gemv(n: int = 11008, k: int = 4096) -> Op:
    return Op(name="gemv", kind=OpKind.GEMM, dims=(1, n, k), formats=FP16, flops=2 * n * k,
              weight_bytes=2 * n * k, act_bytes=2 * (n + k), unit="tensor")


@pytest.mark.parametrize("cores", [132, 100, 80, 60, 40, 20, 8])
def test_gemv_streams_at_the_smaller_of_memory_and_cores(cores):
    system = _with_cores(cores)
    op = _gemv()
    cost = tile_cost(system, op)
    memory = H100.chip.memory.bandwidth_bytes_per_s * H100.chip.efficiency.memory
    expected_bw = min(memory, cores * 64 * 128 / 228e-9)  # every core holds output tiles
    assert cost.memory_s == pytest.approx(cost.dram_bytes / expected_bw, rel=1e-9)


def _decode_s(cores: int) -> float:
    model = load_model("llama2-7b").config
    return compile_step(model, _with_cores(cores), phase=Phase.DECODE,
                        precision=Workload().precision, batch=1, new_tokens=1,
                        context=2048, detail="tile").time_s


def test_decode_slows_only_below_the_core_threshold():
    """Above the threshold the step is as fast as on all 132 SMs (DRAM-bound either way);
    at half the threshold the weight streaming takes about twice as long."""
    full = _decode_s(132)
    above = _decode_s(math.ceil(_threshold()) + 1)
    half = _decode_s(math.floor(_threshold() / 2))
    assert above == pytest.approx(full, rel=0.02)
    # GEMVs are ~90% of the batch-1 step; their DRAM time scales by threshold / cores >= 2
    assert half >= 1.7 * full


def test_without_the_field_cores_do_not_bound_bandwidth():
    chip = dataclasses.replace(H100.chip, core=dataclasses.replace(H100.chip.core,
                                                                   memory_parallelism=None))
    few = dataclasses.replace(H100, chip=dataclasses.replace(chip, cores=8))
    many = dataclasses.replace(H100, chip=chip)
    op = _gemv()
    assert tile_cost(few, op).memory_s == pytest.approx(tile_cost(many, op).memory_s)


@pytest.mark.parametrize("field, value, message", [
    ("outstanding", 0, "outstanding: must be >= 1"),
    ("line_bytes", 0, "line_bytes: must be >= 1"),
    ("l2_latency_s", 0.0, "l2_latency_s"),
    ("dram_latency_s", 50e-9, "dram_latency_s: must be >= l2_latency_s"),
])
def test_bad_fields_are_refused(field, value, message):
    fields = {"outstanding": 64, "line_bytes": 128, "l2_latency_s": 114e-9,
              "dram_latency_s": 228e-9, field: value}
    with pytest.raises(ConfigError, match=message):
        MemoryParallelism(**fields)


def test_yaml_error_names_the_path():
    text = load_hardware("h100").text.replace("outstanding: 64", "outstanding: 0")
    with pytest.raises(ConfigError, match=r"chip\.core\.memory_parallelism\.outstanding"):
        parse_hardware(text, "x.yaml")
