"""The HALO package preset (sim/presets/halo-package.yaml): its CiM count is the area-budget
arithmetic its comments state, from ISAAC's published tile, and every mapping runs on it.

References: ISAAC (ISCA 2016) tile = 12 IMAs x 8 crossbars in 0.372 mm^2; the budget of
400 mm^2 the preset chooses; 128 x 128 crossbars at 8-bit weights in 2-bit differential cells
hold 128 x 128 / 8 = 2,048 weights each."""

from __future__ import annotations

import dataclasses
import math

import pytest

from mappers.ir import Precision
from mappers.mapping import POLICIES
from mappers.models import load_model
from sim.engine import Workload, simulate
from sim.presets import load_hardware
from sim.units.cim.crossbar import load_cim

ISAAC_TILE_MM2, ISAAC_TILE_XBARS, BUDGET_MM2 = 0.372, 96, 400


def test_crossbar_count_is_the_area_budget_in_whole_imas():
    cim = load_cim("halo-package-cim").unit
    imas = math.floor(BUDGET_MM2 * ISAAC_TILE_XBARS / ISAAC_TILE_MM2 / 8)
    assert cim.crossbars == imas * 8 == 103224
    assert cim.write_parallel_crossbars == imas
    # the resident fraction the comments state for llama2-7b's GEMM weights + LM head
    held = cim.crossbars * 2048
    gemm_weights = 6_476_267_520 + 131_072_000
    assert held / gemm_weights == pytest.approx(0.032, abs=5e-4)


def test_the_package_defaults_to_phase_aware_and_runs_every_mapping():
    system = load_hardware("halo-package").system
    assert system.mapping == "phase-aware" and system.chip.cores == 16
    model = load_model("llama2-7b").config
    work = Workload(prompt_tokens=256, gen_tokens=4,
                    precision=Precision(weight="int8", activation="int8", kv="int8"))
    times = {n: simulate(dataclasses.replace(system, mapping=n), model, work).summary["e2e_s"]
             for n in POLICIES}
    assert all(t > 0 for t in times.values()) and len(set(times.values())) == len(times)
