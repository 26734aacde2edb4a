"""SPAD's cost and TDP model against Table 3 (../shared/REFERENCE.md, SPAD section)."""

from __future__ import annotations

import dataclasses
import math

import pytest

from sim import costmodel
from sim.costmodel import CostModel, estimate
from sim.errors import ConfigError
from sim.presets import load_hardware
from sim.cli.report import describe, describe_text

# SPAD Table 3: die cost, memory cost ($), TDP (W), cost normalised to the modeled H100.
TABLE3 = {
    "spad-prefill": {"die": 301, "memory": 192, "tdp": 596, "norm_cost": 0.48},
    "spad-decode": {"die": 187, "memory": 720, "tdp": 507, "norm_cost": 0.88},
    "h100": {"die": 315, "memory": 720, "tdp": 700, "norm_cost": 1.0},
}


def chip(name):
    return load_hardware(name).system.chip


@pytest.mark.parametrize("name", TABLE3)
def test_cost_and_tdp_match_table3(name):
    pub = TABLE3[name]
    est, ref = estimate(chip(name)), estimate(chip("h100"))
    assert est.cost_usd / ref.cost_usd == pytest.approx(pub["norm_cost"], rel=0.05)
    assert est.tdp_w == pytest.approx(pub["tdp"], rel=0.05)
    # Tighter than the 5% asked: the die-cost formula reproduces Table 3 to 0.2%, memory cost
    # exactly, and the TDP with SPAD's stated 480 W is 1.1% low at worst.
    assert est.die_cost_usd == pytest.approx(pub["die"], rel=0.005)
    assert est.memory_cost_usd == pytest.approx(pub["memory"], abs=1e-9)
    assert est.tdp_w == pytest.approx(pub["tdp"], rel=0.012)
    assert est.tdp_w < pub["tdp"]


def test_h100_die_power_from_its_tdp_reproduces_table3_tdps():
    # 700 W / 1.1 - 5 x 30 W (486.4 W) instead of 700 W x 0.9 - 150 W (480 W).
    model = CostModel(reference_die_power_w=700 / 1.1 - 150)
    for name, pub in TABLE3.items():
        assert estimate(chip(name), model).tdp_w == pytest.approx(pub["tdp"], rel=0.001)


def test_formulas_by_hand():
    est = estimate(chip("spad-prefill"))
    assert est.dies_per_wafer == pytest.approx(
        math.pi * 300**2 / (4 * 784) - math.pi * 300 / math.sqrt(2 * 784))
    assert est.die_cost_usd == pytest.approx(20_000 / est.dies_per_wafer)
    assert est.memory_gib == 64
    assert est.memory_power_w == pytest.approx(4.5e-12 * 8 * 2048e9)   # 512 bits x 32 Gb/s
    assert est.die_power_w == pytest.approx(784 * 480 / 814)
    assert est.tdp_w == pytest.approx(1.1 * (est.die_power_w + est.memory_power_w))
    decode = chip("spad-decode")
    assert costmodel.hbm_stacks(decode.memory) == 5
    assert costmodel.memory_power_w(decode.memory) == 150
    assert costmodel.die_area_mm2(100.0) == pytest.approx(110.0)


def test_describe_reports_the_model():
    d = describe(load_hardware("spad-prefill").system)["spad_cost_model"]
    assert d["cost_vs_h100"] == pytest.approx(0.48, rel=0.05)
    assert d["tdp_vs_h100"] == pytest.approx(596 / 700, rel=0.01)
    assert d["cost_usd"] == pytest.approx(d["die_cost_usd"] + d["memory_cost_usd"])
    text = describe_text(load_hardware("spad-prefill").system)
    assert "$301 die + $192 memory = $493 (0.48 of h100)" in text
    assert "590 W = (462 W die + 74 W memory) x 1.1" in text
    assert describe(load_hardware("h100").system)["spad_cost_model"]["tdp_vs_h100"] == 1


def test_outside_the_model_is_none_with_a_reason():
    system = load_hardware("h100").system
    no_area = dataclasses.replace(system, chip=dataclasses.replace(system.chip, area_mm2=None))
    assert describe(no_area)["spad_cost_model"] is None
    assert "n/a (area_mm2:" in describe_text(no_area)
    a100 = load_hardware("a100").system           # 7 nm: not SPAD's 4 nm wafer and power
    assert describe(a100)["spad_cost_model"] is None
    with pytest.raises(ConfigError, match="process_nm"):
        estimate(a100.chip)
    ddr5 = dataclasses.replace(system.chip.memory, type="DDR5")
    with pytest.raises(ConfigError, match="memory.type: .*DDR5"):
        costmodel.memory_cost_usd(ddr5)
    with pytest.raises(ConfigError, match="energy_pj_per_bit"):
        costmodel.memory_power_w(dataclasses.replace(ddr5, energy_pj_per_bit=None))
    with pytest.raises(ConfigError, match="bus_width_bits"):
        costmodel.hbm_stacks(dataclasses.replace(system.chip.memory, bus_width_bits=1536))


@pytest.mark.parametrize("field, value", [
    ("wafer_cost_usd", -20_000), ("wafer_cost_usd", 0), ("wafer_diameter_mm", math.nan),
    ("area_overhead", -0.1), ("reference_die_power_w", 0), ("reference_die_area_mm2", -1),
    ("hbm_stack_power_w", -30), ("hbm_stack_bus_width_bits", 0), ("regulator_overhead", -0.1),
    ("process_nm", 0), ("usd_per_gb", {"GDDR7": -3}), ("usd_per_gb", {"SRAM": 3}),
    ("dram_pj_per_bit", {"GDDR7": -4.5}),
])
def test_validation_names_the_field(field, value):
    with pytest.raises(ConfigError, match=f"^{field}"):
        CostModel(**{field: value})


def test_parameters_are_keyword_only_and_frozen():
    with pytest.raises(TypeError):
        CostModel(20_000)                      # type: ignore[misc]
    model = CostModel(usd_per_gb={"GDDR7": 3, "HBM3": 9})
    assert model.usd_per_gb == (("GDDR7", 3.0), ("HBM3", 9.0))
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.wafer_cost_usd = 1               # type: ignore[misc]
    with pytest.raises(ConfigError, match="die_area_mm2"):
        costmodel.die_cost_usd(-1)
    with pytest.raises(ConfigError, match="fewer than one die"):
        costmodel.die_cost_usd(70_000)
