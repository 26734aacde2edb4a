"""Hardware as data: frozen, validated descriptions of units, memories, chips and systems.

Every quantity carries its unit in the field name (``freq_hz``, ``capacity_bytes``,
``bandwidth_bytes_per_s``). ``__post_init__`` checks each field and raises `ConfigError` with
the field name, the value and what is allowed; the YAML loader (`sim.presets`) goes through the
same constructors, so presets and users' files get the same checks.

The chip organisation follows LLMCompass and SPAD (arXiv 2510.08544): a chip is ``cores``
identical cores; a core has ``sublanes`` lanes, each with one systolic array and one vector
unit, sharing the core's L1; cores share an L2 and the off-chip memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sim.dtypes import check_dtype
from sim.errors import ConfigError

DATAFLOWS = ("os", "ws", "is")
MEMORY_TYPES = ("HBM2", "HBM2e", "HBM3", "HBM3e", "GDDR6", "GDDR6X", "GDDR7",
                "DDR4", "DDR5", "LPDDR5", "LPDDR5X")

RateTable = tuple[tuple[str, float], ...]


def _positive(value: float, name: str) -> None:
    if not value > 0:
        raise ConfigError(f"{name}: must be > 0, got {value!r}")


def _at_least_one(value: int, name: str) -> None:
    if value < 1:
        raise ConfigError(f"{name}: must be >= 1, got {value!r}")


def _fraction(value: float, name: str) -> None:
    if not 0 < value <= 1:
        raise ConfigError(f"{name}: must be in (0, 1], got {value!r}")


def _non_negative(value: float | None, name: str) -> None:
    if value is not None and value < 0:
        raise ConfigError(f"{name}: must be >= 0, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class SystolicArray:
    """An ``rows x cols`` array of multiply-accumulate processing elements (PEs).

    ``macs_per_cycle`` maps each supported operand dtype to MACs per PE per cycle (1 for the
    array's native format, 2 where the hardware packs two narrower operands, as FP8/INT8 on
    Hopper). A dtype absent from the table is not supported by the array.
    """

    rows: int
    cols: int
    dataflow: str = "os"
    macs_per_cycle: RateTable = (("fp16", 1.0),)

    def __post_init__(self) -> None:
        _at_least_one(self.rows, "rows")
        _at_least_one(self.cols, "cols")
        if self.dataflow not in DATAFLOWS:
            raise ConfigError(f"dataflow: unknown dataflow {self.dataflow!r} "
                              f"(allowed: {', '.join(DATAFLOWS)})")
        if not self.macs_per_cycle:
            raise ConfigError("macs_per_cycle: must list at least one dtype, e.g. {fp16: 1}")
        for dtype, rate in self.macs_per_cycle:
            check_dtype(dtype, f"macs_per_cycle.{dtype}")
            _positive(rate, f"macs_per_cycle.{dtype}")

    @property
    def dtypes(self) -> tuple[str, ...]:
        return tuple(d for d, _ in self.macs_per_cycle)

    def macs_per_pe_per_cycle(self, dtype: str) -> float:
        """MACs per PE per cycle for ``dtype``; `ConfigError` if the array lacks it."""
        for d, rate in self.macs_per_cycle:
            if d == dtype:
                return rate
        raise ConfigError(f"dtype: {dtype!r} is not supported by this systolic array "
                          f"(supported: {', '.join(self.dtypes)})")


@dataclass(frozen=True, slots=True, kw_only=True)
class VectorUnit:
    """A SIMD unit of ``width`` lanes; an FMA per lane per cycle is 2 FLOP."""

    width: int
    flops_per_lane_per_cycle: float = 2.0

    def __post_init__(self) -> None:
        _at_least_one(self.width, "width")
        _positive(self.flops_per_lane_per_cycle, "flops_per_lane_per_cycle")


@dataclass(frozen=True, slots=True, kw_only=True)
class SRAM:
    """One on-chip memory instance (an L1 per core, or a shared L2)."""

    capacity_bytes: int
    bandwidth_bytes_per_cycle: float

    def __post_init__(self) -> None:
        _at_least_one(self.capacity_bytes, "capacity_bytes")
        _positive(self.bandwidth_bytes_per_cycle, "bandwidth_bytes_per_cycle")


@dataclass(frozen=True, slots=True, kw_only=True)
class Memory:
    """Off-chip memory of one chip: all stacks or devices together.

    Bandwidth is derived, never given: ``bus_width_bits * pin_rate_bps / 8``.
    ``energy_pj_per_bit`` is the access energy from the bank to the chip's pins, if known.
    """

    type: str
    bus_width_bits: int
    pin_rate_bps: float
    capacity_bytes: int
    energy_pj_per_bit: float | None = None

    def __post_init__(self) -> None:
        if self.type not in MEMORY_TYPES:
            raise ConfigError(f"type: unknown memory type {self.type!r} "
                              f"(allowed: {', '.join(MEMORY_TYPES)})")
        _at_least_one(self.bus_width_bits, "bus_width_bits")
        _positive(self.pin_rate_bps, "pin_rate_bps")
        _at_least_one(self.capacity_bytes, "capacity_bytes")
        _non_negative(self.energy_pj_per_bit, "energy_pj_per_bit")

    @property
    def bandwidth_bytes_per_s(self) -> float:
        return self.bus_width_bits * self.pin_rate_bps / 8


@dataclass(frozen=True, slots=True, kw_only=True)
class Link:
    """A chip's interconnect port: bandwidth per direction and one-hop latency."""

    bandwidth_bytes_per_s: float
    latency_s: float
    energy_pj_per_bit: float | None = None

    def __post_init__(self) -> None:
        _positive(self.bandwidth_bytes_per_s, "bandwidth_bytes_per_s")
        _non_negative(self.latency_s, "latency_s")
        _non_negative(self.energy_pj_per_bit, "energy_pj_per_bit")


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryParallelism:
    """How much memory traffic one core keeps in flight (docs/chip-model.md).

    A core has at most ``outstanding`` line requests of ``line_bytes`` in flight; each returns
    after the unloaded latency of the level it comes from, so by Little's law one core sustains
    at most ``outstanding x line_bytes / latency`` bytes per second from that level. A chip's
    achievable bandwidth from L2 (DRAM) is the smaller of the level's own and the sum over its
    active cores.
    """

    outstanding: int
    line_bytes: int
    l2_latency_s: float
    dram_latency_s: float

    def __post_init__(self) -> None:
        _at_least_one(self.outstanding, "outstanding")
        _at_least_one(self.line_bytes, "line_bytes")
        _positive(self.l2_latency_s, "l2_latency_s")
        _positive(self.dram_latency_s, "dram_latency_s")
        if self.dram_latency_s < self.l2_latency_s:
            raise ConfigError(f"dram_latency_s: must be >= l2_latency_s ({self.l2_latency_s}), "
                              f"got {self.dram_latency_s} (a DRAM access passes through L2)")

    @property
    def l2_bytes_per_s(self) -> float:
        """Most bytes per second one core can pull from L2."""
        return self.outstanding * self.line_bytes / self.l2_latency_s

    @property
    def dram_bytes_per_s(self) -> float:
        """Most bytes per second one core can pull from DRAM."""
        return self.outstanding * self.line_bytes / self.dram_latency_s


@dataclass(frozen=True, slots=True, kw_only=True)
class Core:
    """``sublanes`` x (systolic array + vector unit), sharing an L1. ``memory_parallelism``,
    when given, bounds the bandwidth one core can draw from L2 and DRAM (Little's law); without
    it a core can take any share of either. ``accumulator_bytes``, when given, is a register
    file that holds a GEMM's output tile while it accumulates, so L1 holds only operand tiles;
    without it the accumulators take L1 space."""

    sublanes: int
    systolic_array: SystolicArray
    vector_unit: VectorUnit
    l1: SRAM
    memory_parallelism: MemoryParallelism | None = None
    accumulator_bytes: int | None = None

    def __post_init__(self) -> None:
        _at_least_one(self.sublanes, "sublanes")
        if self.accumulator_bytes is not None:
            _at_least_one(self.accumulator_bytes, "accumulator_bytes")


@dataclass(frozen=True, slots=True, kw_only=True)
class Efficiency:
    """Achievable fractions of peak for the roofline model, and a fixed cost per op.

    ``op_overhead_s`` stands for what a roofline does not see: kernel launch and the pipeline
    fill and drain around each op. It is added once per op instance.
    """

    tensor: float = 1.0
    vector: float = 1.0
    memory: float = 1.0
    link: float = 1.0
    op_overhead_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("tensor", "vector", "memory", "link"):
            _fraction(getattr(self, name), name)
        _non_negative(self.op_overhead_s, "op_overhead_s")


@dataclass(frozen=True, slots=True, kw_only=True)
class Energy:
    """Dynamic energy of on-chip compute, per FLOP. DRAM and link energy sit on those parts."""

    tensor_pj_per_flop: float
    vector_pj_per_flop: float

    def __post_init__(self) -> None:
        _non_negative(self.tensor_pj_per_flop, "tensor_pj_per_flop")
        _non_negative(self.vector_pj_per_flop, "vector_pj_per_flop")


class Units(Mapping):
    """The memory-side units of a chip (a compute-in-DRAM unit, an analog CiM unit, ...), keyed
    by the name each unit type registers under (`sim.units.registry`), in registry order.

    Immutable and hashable like the rest of a `System`. Each value is the unit type's own frozen
    description; the compiler reads only its ``decode_ops`` and ``prefill_ops`` (the op kind
    names it takes in each phase) and, for the capacity check, an optional ``holds``.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, Any]] = ()) -> None:
        object.__setattr__(self, "_items", tuple(items))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Units is immutable")

    def __getitem__(self, key: str) -> Any:
        for name, desc in self._items:
            if name == key:
                return desc
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(self._items)

    def __reduce__(self) -> tuple:
        # Pickle (sweeps send systems to worker processes) and copy rebuild through __init__.
        return (Units, (self._items,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Units) and self._items == other._items

    def __repr__(self) -> str:
        return f"Units({dict(self._items)!r})"


def check_unit_ops(desc: Any, allowed: tuple[str, ...], noun: str) -> None:
    """Refuse a unit description whose ``decode_ops``/``prefill_ops`` name an op kind the unit
    type cannot run (not in ``allowed``) or list one twice; ``noun`` names the unit in errors
    (``CiM unit``)."""
    for name in ("decode_ops", "prefill_ops"):
        kinds = getattr(desc, name)
        for kind in kinds:
            if kind not in allowed:
                raise ConfigError(f"{name}: {kind!r} cannot run on a {noun} "
                                  f"(allowed: {', '.join(allowed)})")
        if len(set(kinds)) != len(kinds):
            raise ConfigError(f"{name}: lists an op kind twice, got {list(kinds)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Chip:
    """One accelerator die with its memory. Costs in US dollars, power in watts.

    ``units`` holds the chip's memory-side units, each written in YAML as its own section of the
    chip under the key its type registers (``cid:`` a compute-in-DRAM unit, ``cim:`` an analog
    compute-in-memory unit; `sim.units.registry`). The placer puts on a unit the op kinds it
    lists for the step's phase; an op kind goes to at most one of them per phase.
    """

    name: str
    cores: int
    core: Core
    tensor_freq_hz: float
    vector_freq_hz: float
    l2: SRAM
    memory: Memory
    efficiency: Efficiency = field(default_factory=Efficiency)
    energy: Energy | None = None
    process_nm: float | None = None
    area_mm2: float | None = None
    tdp_w: float | None = None
    die_cost_usd: float | None = None
    memory_cost_usd: float | None = None
    # The schema builder reads these sections from the chip's YAML through the registry, found
    # by name so that this module (which the compiler imports) depends on no unit model.
    units: Units = field(default_factory=Units,
                         metadata={"sections": "sim.units.registry:sections"})

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("name: must not be empty")
        if not isinstance(self.units, Units):
            object.__setattr__(self, "units", Units(dict(self.units).items()))
        for phase in ("prefill_ops", "decode_ops"):
            taken: dict[str, str] = {}
            for unit, desc in self.units.items():
                both = sorted(k for k in getattr(desc, phase) if k in taken)
                if both:
                    raise ConfigError(f"{unit}.{phase}: {', '.join(both)} also in "
                                      f"{taken[both[0]]}.{phase}; an op kind runs on one unit "
                                      f"per phase")
                taken.update((k, unit) for k in getattr(desc, phase))
        _at_least_one(self.cores, "cores")
        _positive(self.tensor_freq_hz, "tensor_freq_hz")
        _positive(self.vector_freq_hz, "vector_freq_hz")
        for name in ("process_nm", "area_mm2", "tdp_w"):
            value = getattr(self, name)
            if value is not None:
                _positive(value, name)
        _non_negative(self.die_cost_usd, "die_cost_usd")
        _non_negative(self.memory_cost_usd, "memory_cost_usd")

    # Accessors for the two shipped memory-side units, which many call sites name.
    @property
    def cid(self) -> Any:
        """The compute-in-DRAM unit (`sim.units.cid.unit.CidUnit`), or None."""
        return self.units.get("cid")

    @property
    def cim(self) -> Any:
        """The analog CiM unit (`sim.units.cim.unit.CimSlot`), or None."""
        return self.units.get("cim")

    @property
    def arrays(self) -> int:
        """Systolic arrays (and vector units) on the chip."""
        return self.cores * self.core.sublanes

    def peak_tensor_flops(self, dtype: str) -> float:
        """Peak dense FLOP/s of all systolic arrays for ``dtype`` (a MAC is 2 FLOP)."""
        sa = self.core.systolic_array
        return (self.arrays * sa.rows * sa.cols * 2 * sa.macs_per_pe_per_cycle(dtype)
                * self.tensor_freq_hz)

    @property
    def peak_vector_flops(self) -> float:
        """Peak FLOP/s of all vector units."""
        vu = self.core.vector_unit
        return self.arrays * vu.width * vu.flops_per_lane_per_cycle * self.vector_freq_hz

    @property
    def cost_usd(self) -> float | None:
        if self.die_cost_usd is None or self.memory_cost_usd is None:
            return None
        return self.die_cost_usd + self.memory_cost_usd


@dataclass(frozen=True, slots=True, kw_only=True)
class System:
    """``num_chips`` identical chips. A model's layers are split into ``pipeline_parallel``
    contiguous stages, one per group of ``tensor_parallel`` chips that shard each layer
    (docs/hardware-yaml.md, "Parallelism"); stages pass the step's activations to the next one
    over ``interconnect``. ``runtime`` names the software stack the chips run under (a preset
    in ``sim/presets/runtime/`` or a YAML path; `sim.runtime`, which checks the name where
    systems are loaded); without one each op pays the chip's ``efficiency.op_overhead_s``.
    ``mapping`` names the default mapping policy (`mappers.mapping`; ``--mapping`` overrides
    it, and the name is checked where systems load); None keeps the units' own op lists."""

    name: str
    chip: Chip
    description: str = ""
    num_chips: int = 1
    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    interconnect: Link | None = None
    runtime: str | None = None
    mapping: str | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("name: must not be empty")
        if self.runtime is not None and not self.runtime:
            raise ConfigError("runtime: must not be empty (omit it for no runtime)")
        _at_least_one(self.num_chips, "num_chips")
        _at_least_one(self.tensor_parallel, "tensor_parallel")
        if self.tensor_parallel > self.num_chips:
            raise ConfigError(f"tensor_parallel: must be <= num_chips ({self.num_chips}), "
                              f"got {self.tensor_parallel}")
        _at_least_one(self.pipeline_parallel, "pipeline_parallel")
        if self.tensor_parallel * self.pipeline_parallel > self.num_chips:
            raise ConfigError(f"pipeline_parallel: tensor_parallel x pipeline_parallel must be "
                              f"<= num_chips ({self.num_chips}), got {self.tensor_parallel} x "
                              f"{self.pipeline_parallel}")
        if self.tensor_parallel > 1 and self.interconnect is None:
            raise ConfigError("interconnect: required when tensor_parallel > 1")
        if self.pipeline_parallel > 1 and self.interconnect is None:
            raise ConfigError("interconnect: required when pipeline_parallel > 1")
        for unit, desc in self.chip.units.items():
            # A unit type whose model cannot split its state over pipeline stages says why in
            # the class attribute ``pipeline_parallel_unsupported`` (the CiM unit's residency
            # plan counts every layer's weights on one chip's crossbars).
            why = getattr(type(desc), "pipeline_parallel_unsupported", "")
            if self.pipeline_parallel > 1 and why:
                raise ConfigError(f"pipeline_parallel: must be 1 for a chip with a {unit} unit "
                                  f"({why}), got {self.pipeline_parallel}")
