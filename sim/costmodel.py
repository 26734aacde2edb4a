"""SPAD's die-cost and TDP model (arXiv 2510.08544, Section 5 and Table 3), as pure functions.

SPAD prices and powers a chip from its die area and its off-chip memory:

- cost: $20k per 4 nm wafer (300 mm), 10% area overhead, GDDR7 at $3/GB, HBM at $9/GB;
- TDP: the H100's die power (700 W x 0.9 minus 5 HBM stacks x 30 W = 480 W) scaled by die area
  at equal power density, plus 30 W per HBM stack or 4.5 pJ/bit at peak bandwidth for GDDR7,
  plus 10% for voltage-regulator losses.

What reproduces Table 3 (checked in ``tests/sim/test_costmodel.py``):

- Die cost is the wafer cost over the standard dies-per-wafer estimate *with* its edge-loss
  term, not rounded down, with no yield model, on Table 3's die area as given:
  $301.4 / $187.4 / $315.1 for 784 / 520 / 814 mm2 (published $301 / $187 / $315). Applying the
  10% area overhead once more gives +12% on all three, and any yield model (Poisson or Murphy
  at 0.1 defects/cm2) +65% to +125%; without the edge term the costs come out 21-27% low.
  So SPAD's 10% area overhead is already inside Table 3's areas (it turns the area of the
  blocks into the die area): `die_area_mm2` applies it to a block area, `estimate` does not
  apply it to ``chip.area_mm2``.
- Memory cost counts capacity in GiB: 64 GiB x $3 = $192 and 80 GiB x $9 = $720 exactly
  (decimal GB would give $206 and $773).
- TDP with SPAD's stated 480 W H100 die power comes out 1% low on all three chips (589.7 /
  502.3 / 693.0 W against 596 / 507 / 700 W): 700 W x 0.9 is not 700 W / 1.1. Table 3 matches
  to 0.1% with ``reference_die_power_w = 700 / 1.1 - 150`` (486.4 W), the die power that makes
  the modeled H100 exactly 700 W; the default keeps the 480 W the paper states.

Money is in US dollars, power in watts, areas in mm2; every name carries its unit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sim.errors import ConfigError
from sim.hardware import MEMORY_TYPES, Chip, Memory

PriceTable = tuple[tuple[str, float], ...]

HBM_TYPES = tuple(t for t in MEMORY_TYPES if t.startswith("HBM"))


def _check(ok: bool, name: str, rule: str, value: object) -> None:
    if not ok:
        raise ConfigError(f"{name}: must be {rule}, got {value!r}")


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive(value: float, name: str) -> None:
    _check(_number(value) and math.isfinite(value) and value > 0, name, "> 0", value)


def _non_negative(value: float, name: str) -> None:
    _check(_number(value) and math.isfinite(value) and value >= 0, name, ">= 0", value)


def _table(value: Mapping[str, float] | PriceTable, name: str) -> PriceTable:
    """A per-memory-type table as sorted ``(type, value)`` pairs, each value >= 0."""
    pairs = tuple(value.items()) if isinstance(value, Mapping) else tuple(value)
    out = []
    for pair in pairs:
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise ConfigError(f"{name}: must map memory types to numbers, got {pair!r}")
        kind, number = pair
        if kind not in MEMORY_TYPES:
            raise ConfigError(f"{name}.{kind}: unknown memory type "
                              f"(allowed: {', '.join(MEMORY_TYPES)})")
        _non_negative(number, f"{name}.{kind}")
        out.append((kind, float(number)))
    if len({k for k, _ in out}) != len(out):
        raise ConfigError(f"{name}: a memory type is listed twice")
    return tuple(sorted(out))


@dataclass(frozen=True, slots=True, kw_only=True)
class CostModel:
    """Parameters of SPAD's cost and TDP model; the defaults are SPAD's (Section 5).

    ``process_nm`` is the node the wafer cost and the reference power density belong to;
    `estimate` refuses a chip on another node rather than price it as 4 nm.
    ``usd_per_gb`` and ``dram_pj_per_bit`` map memory types to $ per GiB of capacity and to
    pJ per bit moved; a mapping or ``(type, value)`` pairs are accepted and stored as pairs.
    SPAD prices only GDDR7 ($3/GB) and HBM ($9/GB, applied here to every HBM generation).
    ``dram_pj_per_bit`` is used for memories other than HBM (SPAD: GDDR7 at 4.5 pJ/bit);
    HBM is charged ``hbm_stack_power_w`` per stack of ``hbm_stack_bus_width_bits``.
    """

    process_nm: float = 4.0
    wafer_cost_usd: float = 20_000.0
    wafer_diameter_mm: float = 300.0
    area_overhead: float = 0.10
    usd_per_gb: PriceTable = (("GDDR7", 3.0), ("HBM2", 9.0), ("HBM2e", 9.0),
                              ("HBM3", 9.0), ("HBM3e", 9.0))
    reference_die_power_w: float = 480.0
    reference_die_area_mm2: float = 814.0
    hbm_stack_power_w: float = 30.0
    hbm_stack_bus_width_bits: int = 1024
    dram_pj_per_bit: PriceTable = (("GDDR7", 4.5),)
    regulator_overhead: float = 0.10

    def __post_init__(self) -> None:
        _positive(self.process_nm, "process_nm")
        _positive(self.wafer_cost_usd, "wafer_cost_usd")
        _positive(self.wafer_diameter_mm, "wafer_diameter_mm")
        _non_negative(self.area_overhead, "area_overhead")
        _positive(self.reference_die_power_w, "reference_die_power_w")
        _positive(self.reference_die_area_mm2, "reference_die_area_mm2")
        _non_negative(self.hbm_stack_power_w, "hbm_stack_power_w")
        _check(isinstance(self.hbm_stack_bus_width_bits, int)
               and not isinstance(self.hbm_stack_bus_width_bits, bool)
               and self.hbm_stack_bus_width_bits >= 1,
               "hbm_stack_bus_width_bits", "an integer >= 1", self.hbm_stack_bus_width_bits)
        _non_negative(self.regulator_overhead, "regulator_overhead")
        object.__setattr__(self, "usd_per_gb", _table(self.usd_per_gb, "usd_per_gb"))
        object.__setattr__(self, "dram_pj_per_bit",
                           _table(self.dram_pj_per_bit, "dram_pj_per_bit"))

    @property
    def die_power_density_w_per_mm2(self) -> float:
        """The reference die's power over its area (SPAD: H100, 480 W / 814 mm2)."""
        return self.reference_die_power_w / self.reference_die_area_mm2


SPAD = CostModel()
"""SPAD's parameters as published."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CostEstimate:
    """What `estimate` returns for one chip: die and memory cost and power, and the TDP."""

    die_area_mm2: float
    dies_per_wafer: float
    die_cost_usd: float
    memory_gib: float
    memory_cost_usd: float
    die_power_w: float
    memory_power_w: float
    tdp_w: float

    @property
    def cost_usd(self) -> float:
        return self.die_cost_usd + self.memory_cost_usd


def die_area_mm2(block_area_mm2: float, model: CostModel = SPAD) -> float:
    """Die area from the summed area of the blocks: ``block_area_mm2 * (1 + area_overhead)``.

    SPAD's 10% overhead (wiring, I/O, whitespace). Table 3's die areas already include it, so
    `estimate` takes ``chip.area_mm2`` as the die area and does not call this.
    """
    _positive(block_area_mm2, "block_area_mm2")
    return block_area_mm2 * (1 + model.area_overhead)


def dies_per_wafer(die_area_mm2: float, model: CostModel = SPAD) -> float:
    """Gross dies per wafer, the standard estimate with the edge-loss term, not rounded down:

    ``pi d^2 / (4 A) - pi d / sqrt(2 A)`` for wafer diameter ``d`` and die area ``A``
    (e.g. Hennessy & Patterson, Computer Architecture, Section 1.6). The first term is the
    wafer area over the die area; the second the partial dies lost along the edge. No yield
    model: SPAD's Table 3 costs are reproduced without one (see the module docstring).
    """
    _positive(die_area_mm2, "die_area_mm2")
    d = model.wafer_diameter_mm
    n = math.pi * d * d / (4 * die_area_mm2) - math.pi * d / math.sqrt(2 * die_area_mm2)
    if n < 1:
        raise ConfigError(f"area_mm2: a {die_area_mm2:g} mm2 die gives fewer than one die per "
                          f"{d:g} mm wafer ({n:.2f})")
    return n


def die_cost_usd(die_area_mm2: float, model: CostModel = SPAD) -> float:
    """``wafer_cost_usd / dies_per_wafer(die_area_mm2)`` (SPAD: $20k per 4 nm wafer)."""
    return model.wafer_cost_usd / dies_per_wafer(die_area_mm2, model)


def memory_gib(memory: Memory) -> float:
    """Capacity in GiB (2**30 bytes): SPAD's "GB" in its $/GB, as 64 x $3 = $192 shows."""
    return memory.capacity_bytes / 2**30


def memory_cost_usd(memory: Memory, model: CostModel = SPAD) -> float:
    """``memory_gib * usd_per_gb[memory.type]`` (SPAD: GDDR7 $3/GB, HBM $9/GB)."""
    prices = dict(model.usd_per_gb)
    if memory.type not in prices:
        raise ConfigError(f"memory.type: the cost model has no $/GB for {memory.type} "
                          f"(priced: {', '.join(prices) or 'none'})")
    return memory_gib(memory) * prices[memory.type]


def hbm_stacks(memory: Memory, model: CostModel = SPAD) -> int:
    """HBM stacks: ``bus_width_bits / hbm_stack_bus_width_bits`` (1024 bits per stack)."""
    stacks, rest = divmod(memory.bus_width_bits, model.hbm_stack_bus_width_bits)
    if memory.type not in HBM_TYPES or rest or not stacks:
        raise ConfigError(f"memory.bus_width_bits: an {memory.type} bus must be a whole number "
                          f"of {model.hbm_stack_bus_width_bits}-bit stacks, got "
                          f"{memory.bus_width_bits}")
    return stacks


def memory_power_w(memory: Memory, model: CostModel = SPAD) -> float:
    """Off-chip memory power at full load.

    HBM: ``hbm_stacks * hbm_stack_power_w`` (SPAD: 30 W per stack). Other memories:
    ``pJ/bit * 1e-12 * 8 * bandwidth_bytes_per_s`` at peak bandwidth, with the pJ/bit from
    ``model.dram_pj_per_bit`` (SPAD: GDDR7 4.5 pJ/bit) or else the chip's own
    ``memory.energy_pj_per_bit``.
    """
    if memory.type in HBM_TYPES:
        return hbm_stacks(memory, model) * model.hbm_stack_power_w
    pj = dict(model.dram_pj_per_bit).get(memory.type, memory.energy_pj_per_bit)
    if pj is None:
        raise ConfigError(f"memory.energy_pj_per_bit: needed for the power of {memory.type} "
                          f"memory (the cost model lists "
                          f"{', '.join(k for k, _ in model.dram_pj_per_bit) or 'none'})")
    return pj * 1e-12 * 8 * memory.bandwidth_bytes_per_s


def die_power_w(die_area_mm2: float, model: CostModel = SPAD) -> float:
    """``die_area_mm2 * reference_die_power_w / reference_die_area_mm2``: equal power density
    (SPAD: the H100's 480 W die power over its 814 mm2)."""
    _positive(die_area_mm2, "die_area_mm2")
    return die_area_mm2 * model.die_power_density_w_per_mm2


def tdp_w(die_power_w: float, memory_power_w: float, model: CostModel = SPAD) -> float:
    """``(die_power_w + memory_power_w) * (1 + regulator_overhead)`` (SPAD: 10% regulator
    losses)."""
    return (die_power_w + memory_power_w) * (1 + model.regulator_overhead)


def estimate(chip: Chip, model: CostModel = SPAD) -> CostEstimate:
    """Modeled cost and TDP of ``chip`` from its die area (``chip.area_mm2``, taken as the
    final die area) and its memory. `ConfigError` when the chip has no area or its memory is
    outside the model (another process node, no price, no energy figure, a partial HBM
    stack). A chip without ``process_nm`` is taken to be on the model's node."""
    if chip.area_mm2 is None:
        raise ConfigError("area_mm2: the cost model needs the chip's die area")
    if chip.process_nm is not None and chip.process_nm != model.process_nm:
        raise ConfigError(f"process_nm: the cost model's wafer cost and power density are for "
                          f"{model.process_nm:g} nm, the chip is {chip.process_nm:g} nm")
    area = chip.area_mm2
    die_w = die_power_w(area, model)
    mem_w = memory_power_w(chip.memory, model)
    return CostEstimate(
        die_area_mm2=area,
        dies_per_wafer=dies_per_wafer(area, model),
        die_cost_usd=die_cost_usd(area, model),
        memory_gib=memory_gib(chip.memory),
        memory_cost_usd=memory_cost_usd(chip.memory, model),
        die_power_w=die_w,
        memory_power_w=mem_w,
        tdp_w=tdp_w(die_w, mem_w, model),
    )


#: Static (idle + leakage) power as a fraction of TDP, a model choice. The figure is a
#: published reading of a loaded but idle GH100 board: an H200 SXM (the H100's die, same 700 W
#: TDP) draws 80.3 W with a vLLM server holding its model and no request in flight, against
#: 592.8 W under load (Serial Alice GPU energy benchmark, 2026,
#: api.serialalice.pt/alice-benchmark); 80.3 / 700 = 11.5%. It agrees with the CUDA-context
#: step measured on H100 and A100 (+26-50 W over a bare idle board, Vadari, "The Model Parking
#: Tax", arXiv 2605.23918). Idle power is a floor for static power at load (leakage grows with
#: temperature and voltage, and clocks stay up between kernels), so static energy is if
#: anything underestimated; the same fraction is applied to every chip for want of a
#: per-chip measurement.
IDLE_FRACTION_OF_TDP = 80.3 / 700


def static_power_w(chip: Chip, model: CostModel = SPAD) -> float | None:
    """Static power of one chip in watts, drawn whenever it is on, busy or not:
    ``IDLE_FRACTION_OF_TDP`` x its TDP. The TDP is the chip's own ``tdp_w`` (a datasheet or
    paper figure) when given, else SPAD's modeled TDP (`estimate`); None when neither exists
    (no ``tdp_w`` and a chip outside the cost model)."""
    if chip.tdp_w is not None:
        return IDLE_FRACTION_OF_TDP * chip.tdp_w
    try:
        return IDLE_FRACTION_OF_TDP * estimate(chip, model).tdp_w
    except ConfigError:
        return None


@lru_cache(maxsize=1)
def _h100_estimate() -> CostEstimate:
    from sim.presets import load_hardware  # the reference chip's preset, read on first use

    return estimate(load_hardware("h100").system.chip)


def spad_cost_model(chip: Chip) -> dict[str, Any] | None:
    """SPAD's cost and TDP model applied to ``chip``, with cost and TDP
    relative to the ``h100`` preset under the same model; None where the model does not apply
    (no die area, another process node, a memory type it has no price or energy figure for)."""
    try:
        est = estimate(chip)
    except ConfigError:
        return None
    ref = _h100_estimate()
    return {
        "die_cost_usd": est.die_cost_usd,
        "memory_cost_usd": est.memory_cost_usd,
        "cost_usd": est.cost_usd,
        "dies_per_wafer": est.dies_per_wafer,
        "die_power_w": est.die_power_w,
        "memory_power_w": est.memory_power_w,
        "tdp_w": est.tdp_w,
        "cost_vs_h100": est.cost_usd / ref.cost_usd,
        "tdp_vs_h100": est.tdp_w / ref.tdp_w,
    }
