"""cocotb test module of `rtl.SystolicDatapath` (the simulator imports it; not a pytest file).

The runner (`testbenches.runner`) passes, through the environment, the datapath configuration
(``PDSIM_TB_CONFIG``, JSON of `sim.units.systolic.datapath.DatapathConfig`), the GEMMs to run
(``PDSIM_TB_CASES``, a JSON list of ``{"name", "m", "n", "k", "seed", "kind"}``, optionally
with their own ``"gap"`` and ``"backpressure"``), the fraction of cycles with an empty input or
a refused output (``PDSIM_TB_GAP``, ``PDSIM_TB_BACKPRESSURE``: the defaults)
and where to write the per-GEMM report (``PDSIM_TB_RESULTS``). All GEMMs run back to back:
each is four commands (load A, load B, compute, drain C) issued as soon as the controller is
ready. The Checker compares every command's cycles with the model and every result with numpy.
"""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from sim.units.systolic.datapath import DatapathConfig, DatapathModel
from testbenches.operands import operands
from testbenches.tb_components import Checker, CommandDriver, StreamDriver, StreamMonitor


@cocotb.test()
async def gemms(dut):
    """Run every case of ``PDSIM_TB_CASES`` back to back and check cycles and results."""
    config = DatapathConfig(**json.loads(os.environ["PDSIM_TB_CONFIG"]))
    cases = json.loads(os.environ["PDSIM_TB_CASES"])
    layout = json.loads(os.environ["PDSIM_TB_CMD_FIELDS"])
    gap = float(os.environ.get("PDSIM_TB_GAP", "0"))
    backpressure = float(os.environ.get("PDSIM_TB_BACKPRESSURE", "0"))
    seed = int(os.environ.get("PDSIM_TB_SEED", "0"))
    model = DatapathModel(config)
    checker = Checker(model)

    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    data = StreamDriver(dut.clk, dut.data_in__valid, dut.data_in__payload, dut.data_in__ready,
                        gap=gap, rng=np.random.default_rng([seed, 1]))
    monitor = StreamMonitor(dut.clk, dut.c_out__valid, dut.c_out__payload, dut.c_out__ready,
                            checker.on_beat, backpressure=backpressure,
                            rng=np.random.default_rng([seed, 2]))
    driver = CommandDriver(dut, {k: tuple(v) for k, v in layout.items()}, [data, monitor],
                           checker.on_command)
    await ClockCycles(dut.clk, 2)
    await FallingEdge(dut.clk)
    dut.rst.value = 0

    cocotb.start_soon(data.run())
    cocotb.start_soon(monitor.run())
    # Cases run in phases of equal (gap, backpressure) (a case's own keys override the
    # run's), so full-rate and stalled runs share one simulator launch.
    phases: list[tuple[tuple[float, float], list[dict]]] = []
    for case in cases:
        key = (float(case.get("gap", gap)), float(case.get("backpressure", backpressure)))
        if not phases or phases[-1][0] != key:
            phases.append((key, []))
        phases[-1][1].append(case)
    for (data.gap, monitor.backpressure), group in phases:
        commands = []
        for case in group:
            a, b = operands(config.mode, case["m"], case["n"], case["k"],
                            np.random.default_rng(case["seed"]), case.get("kind", "random"))
            checker.expect(case, a, b)
            data.queue += [int(v) & 0xFF for v in a.reshape(-1)]
            data.queue += [int(v) & 0xFF for v in b.reshape(-1)]
            commands += model.program(case["m"], case["n"], case["k"])
        await driver.issue(commands)

    out = os.environ.get("PDSIM_TB_RESULTS")
    if out:
        with open(out, "w") as f:
            json.dump({"config": json.loads(os.environ["PDSIM_TB_CONFIG"]),
                       "gemms": checker.records, "mismatches": checker.mismatches}, f, indent=1)
    assert not checker.mismatches, "\n".join(checker.mismatches[:20])
