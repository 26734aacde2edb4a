"""cocotb testbenches of the datapath's Verilog (Icarus by default, ``SIM=verilator`` too).

Each configuration is exported and compiled once per session (`testbenches.runner.build`, into a
temporary cache), then GEMMs run back to back through it: random shapes that do not divide the
array, M = 1 (decode-like), K = 1, extreme codes (int8 -128/127, FP8 +-448, min normal,
subnormals, +-0 and NaN, INT4 -8/7), the largest products, and full-buffer shapes; once at full
rate and once with an input stream that is empty 30% of cycles and an output stream refused 40%
of cycles, both in one simulator launch per configuration; both dataflows (output- and
weight-stationary). The testbench's Checker compares
every command's cycles with `DatapathModel.command_cycles` (plus the stall cycles it
observed) and every result with numpy: exact, zero tolerance, because the datapath is bit-exact
by design.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from sim.units.systolic.datapath import Command, DatapathConfig, DatapathModel

Checker = pytest.importorskip("testbenches.tb_components", reason="needs cocotb").Checker
pytestmark = pytest.mark.skipif(shutil.which("iverilog") is None,
                                reason="Icarus Verilog not installed (apt-get install iverilog)")

CONFIGS = {
    "int8-4x4": DatapathConfig(rows=4, cols=4, mode="int8", max_m=16, max_n=16, max_k=16),
    "w4fp8-3x5": DatapathConfig(rows=3, cols=5, mode="w4fp8", max_m=12, max_n=12, max_k=12),
    "int8-1x3": DatapathConfig(rows=1, cols=3, mode="int8", max_m=5, max_n=7, max_k=6),
    "ws-w4fp8-3x5": DatapathConfig(rows=3, cols=5, mode="w4fp8", max_m=12, max_n=12,
                                   max_k=12, dataflow="ws"),
    "ws-int8-4x2": DatapathConfig(rows=4, cols=2, mode="int8", max_m=9, max_n=7, max_k=16,
                                  dataflow="ws"),
}


def _cases(cfg: DatapathConfig) -> list[dict]:
    m, n, k = cfg.max_m, cfg.max_n, cfg.max_k
    shapes = [("random-odd", m - 3, n - 1, k // 2 + 1, "random"),
              ("decode-m1", 1, n, k, "random"), ("k1", m, n - 2, 1, "random"),
              ("extreme", m, n, k, "extreme"), ("max-products", m - 1, 3, k, "max"),
              ("full", m, n, k, "random"), ("tiny", 1, 1, 1, "extreme")]
    return [{"name": name, "m": max(1, a), "n": max(1, b), "k": c, "seed": i, "kind": kind}
            for i, (name, a, b, c, kind) in enumerate(shapes)]


@pytest.fixture(scope="session")
def builds(tmp_path_factory):
    from testbenches.runner import build
    cache = tmp_path_factory.mktemp("rtl-cache")
    return {name: build(cfg, cache=cache) for name, cfg in CONFIGS.items()}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_gemms_bit_exact_and_cycle_exact(builds, name):
    """One simulator launch per configuration: the seven GEMMs at full rate, then again with
    30% empty input and 40% refused output (issue 18: batch a run's cases)."""
    from testbenches.runner import run_gemms
    cfg = CONFIGS[name]
    full = _cases(cfg)
    stalled = [{**c, "name": f"{c['name']}-stalled", "gap": 0.3, "backpressure": 0.4}
               for c in full]
    report = run_gemms(builds[name], full + stalled, seed=3)
    assert report["mismatches"] == [] and report["failed"] == 0
    assert [g["name"] for g in report["gemms"]] == [c["name"] for c in full + stalled]
    model = DatapathModel(cfg)
    for i, g in enumerate(report["gemms"]):
        assert g["match"] is True
        assert g["cycles"] == g["model_cycles"]
        for op, stalls in g["stalls"].items():   # the model, recomputed here, agrees too
            assert g["cycles"][op] == model.command_cycles(Command(op, g["m"], g["n"], g["k"]),
                                                           stalls)
        if i < len(full):
            assert sum(g["stalls"].values()) == 0
    assert sum(g["stalls"]["DRAIN_C"] for g in report["gemms"][len(full):]) > 0
    assert sum(g["stalls"]["LOAD_A"] for g in report["gemms"][len(full):]) > 0


def test_checker_flags_wrong_cycles_and_results():
    """The Checker is not vacuous: a wrong cycle count and a wrong value are both reported."""
    model = DatapathModel(CONFIGS["int8-1x3"])
    checker = Checker(model)
    a, b = np.ones((2, 2), dtype=np.int64), np.ones((2, 3), dtype=np.int64)
    checker.expect({"name": "g", "m": 2, "n": 3, "k": 2}, a, b)
    checker.on_command(Command("LOAD_A", 2, 3, 2), 4, 0)
    checker.on_command(Command("LOAD_B", 2, 3, 2), 7, 0)           # model: 6
    checker.on_command(Command("COMPUTE", 2, 3, 2), model.command_cycles(
        Command("COMPUTE", 2, 3, 2)), 0)
    for v in [2, 2, 2, 2, 2, 3]:                                    # last value wrong
        checker.on_beat(v)
    checker.on_command(Command("DRAIN_C", 2, 3, 2), 7, 0)
    assert len(checker.mismatches) == 2
    assert "LOAD_B took 7 cycles, model predicts 6" in checker.mismatches[0]
    assert "result differs" in checker.mismatches[1]
