"""DRAM organisation, command timing and access energy as data, for the compute-in-DRAM model.

A `DramDevice` is one HBM stack or one GDDR device: its organisation (`DramOrg`), its timing
parameters in command-clock cycles (`DramTiming`) and its energy figures (`DramEnergy`).
Presets live in ``sim/presets/dram/*.yaml`` with a citation next to every value; users' files
go through the same loader and the same checks (`load_dram`).

Conventions (see docs/cid.md):

* A *pseudo-channel* (PC) is the unit with its own banks and data bus; a channel has
  ``pseudo_channels`` of them (1 for GDDR6). ``ranks`` are HBM3 stack IDs (SIDs): each PC holds
  ``ranks x bank_groups x banks_per_group`` banks, and banks of different ranks count as
  different bank groups for the ``_S`` / ``_L`` timing pairs.
* A *column* is one burst of ``burst_bytes`` on one PC; a row holds ``columns`` of them.
* Timing values are integers in cycles of ``tck_s`` (the command clock), as JEDEC tables and
  Ramulator give them. ``tCCD_AB`` is the delay between two lockstep PIM column commands
  (all-bank or same-bank MAC); AttAcc raises it from 4 to 6 cycles to stay within the HBM3
  power budget, which is how a power limit enters the model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


from sim.errors import ConfigError
from sim.schema import parse_yaml
from sim.shipped import Shelf

DRAM_TYPES = ("HBM3", "GDDR6", "GDDR6-AiM")

#: Where the MAC units sit (sim/units/cid/engine.py and docs/cid.md describe each).
PIM_MODES = ("bank", "bankgroup", "buffer", "aim")

#: Timing fields of `DramTiming`, in the order the Numba engine receives them.
TIMING_FIELDS = ("tBL", "tCL", "tCWL", "tRCD", "tRP", "tRAS", "tRC", "tCCD_S", "tCCD_L",
                 "tCCD_AB", "tRRD_S", "tRRD_L", "tFAW", "tWR", "tRTP", "tWTR", "tREFI", "tRFC")


def _at_least(value: int | float, low: int | float, name: str) -> None:
    if not value >= low:
        raise ConfigError(f"{name}: must be >= {low}, got {value!r}")


def _power_of_two(value: int, name: str) -> None:
    if value < 1 or value & (value - 1):
        raise ConfigError(f"{name}: must be a power of two (the bank layout interleaves by "
                          f"address bits), got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class DramOrg:
    """Organisation of one stack or device. Bandwidth and capacity are derived."""

    channels: int
    pseudo_channels: int = 1
    ranks: int = 1
    bank_groups: int
    banks_per_group: int
    rows: int
    columns: int
    burst_bytes: int
    pc_width_bits: int
    pin_rate_bps: float

    def __post_init__(self) -> None:
        for name in ("channels", "pseudo_channels", "ranks", "rows", "columns"):
            _at_least(getattr(self, name), 1, name)
        for name in ("bank_groups", "banks_per_group", "burst_bytes"):
            _power_of_two(getattr(self, name), name)
        _at_least(self.pc_width_bits, 1, "pc_width_bits")
        if not self.pin_rate_bps > 0:
            raise ConfigError(f"pin_rate_bps: must be > 0, got {self.pin_rate_bps!r}")

    @property
    def pcs(self) -> int:
        """Pseudo-channels in the stack or device (the independent command units)."""
        return self.channels * self.pseudo_channels

    @property
    def banks_per_pc(self) -> int:
        return self.ranks * self.bank_groups * self.banks_per_group

    @property
    def groups_per_pc(self) -> int:
        """Bank groups per PC, ranks included (each rank's groups are distinct)."""
        return self.ranks * self.bank_groups

    @property
    def row_bytes(self) -> int:
        return self.columns * self.burst_bytes

    @property
    def capacity_bytes(self) -> int:
        return self.pcs * self.banks_per_pc * self.rows * self.row_bytes

    @property
    def bandwidth_bytes_per_s(self) -> float:
        """External (pin) bandwidth of the whole stack or device."""
        return self.pcs * self.pc_width_bits * self.pin_rate_bps / 8


@dataclass(frozen=True, slots=True, kw_only=True)
class DramTiming:
    """Command timing in cycles of ``tck_s``; names as in JEDEC JESD238 / JESD250."""

    tck_s: float
    tBL: int
    tCL: int
    tCWL: int
    tRCD: int
    tRP: int
    tRAS: int
    tRC: int
    tCCD_S: int
    tCCD_L: int
    tCCD_AB: int
    tRRD_S: int
    tRRD_L: int
    tFAW: int
    tWR: int
    tRTP: int
    tWTR: int
    tREFI: int
    tRFC: int

    def __post_init__(self) -> None:
        if not self.tck_s > 0:
            raise ConfigError(f"tck_s: must be > 0, got {self.tck_s!r}")
        for name in TIMING_FIELDS:
            _at_least(getattr(self, name), 1, name)
        if self.tRAS < self.tRCD:
            raise ConfigError(f"tRAS: must be >= tRCD ({self.tRCD}), got {self.tRAS}")
        if self.tRC < self.tRAS:
            raise ConfigError(f"tRC: must be >= tRAS ({self.tRAS}), got {self.tRC}")
        if self.tCCD_L < self.tCCD_S:
            raise ConfigError(f"tCCD_L: must be >= tCCD_S ({self.tCCD_S}), got {self.tCCD_L}")
        if self.tCCD_S < self.tBL:
            raise ConfigError(f"tCCD_S: must be >= tBL ({self.tBL}) so bursts do not overlap "
                              f"on the data bus, got {self.tCCD_S}")
        if self.tRRD_L < self.tRRD_S:
            raise ConfigError(f"tRRD_L: must be >= tRRD_S ({self.tRRD_S}), got {self.tRRD_L}")
        if self.tREFI <= self.tRFC:
            raise ConfigError(f"tREFI: must be > tRFC ({self.tRFC}), got {self.tREFI}")

    def as_tuple(self) -> tuple[int, ...]:
        return tuple(int(getattr(self, n)) for n in TIMING_FIELDS)


@dataclass(frozen=True, slots=True, kw_only=True)
class DramEnergy:
    """Energy of moving data, in pJ per bit (AttAcc's breakdown of the HBM3 read path).

    ``act_pj_per_bit`` is charged on every bit of every activated row; ``read_pj_per_bit``
    on every bit read out of a bank's sense amplifiers; ``bank_group_pj_per_bit`` when the data
    leaves the bank for a bank-group bus; ``io_pj_per_bit`` when it travels to the die's I/O
    (HBM: bank group to I/O plus the TSVs to the buffer die; GDDR6: the DQ pins);
    ``offchip_pj_per_bit`` across the interposer (or PCIe/CXL) to a host. ``mac_pj_per_bit``
    is the PIM MAC unit's energy per operand bit it consumes; ``write_pj_per_bit`` for writes
    into a bank; ``refresh_pj`` per all-bank refresh command of one pseudo-channel.
    """

    act_pj_per_bit: float
    read_pj_per_bit: float
    write_pj_per_bit: float
    bank_group_pj_per_bit: float
    io_pj_per_bit: float
    offchip_pj_per_bit: float
    mac_pj_per_bit: float
    refresh_pj: float = 0.0

    def __post_init__(self) -> None:
        for name in ("act_pj_per_bit", "read_pj_per_bit", "write_pj_per_bit",
                     "bank_group_pj_per_bit", "io_pj_per_bit", "offchip_pj_per_bit",
                     "mac_pj_per_bit", "refresh_pj"):
            _at_least(getattr(self, name), 0, name)


@dataclass(frozen=True, slots=True, kw_only=True)
class DramDevice:
    """One HBM stack or GDDR device: organisation, timing and energy.

    ``global_buffer_bytes`` is the per-PC buffer that holds the broadcast input vector for PIM
    MACs (GDDR6-AiM's 2 KB global buffer; AttAcc's GEMV buffer); 0 means no PIM support.
    """

    name: str
    type: str
    org: DramOrg
    timing: DramTiming
    energy: DramEnergy
    global_buffer_bytes: int = 0
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("name: must not be empty")
        if self.type not in DRAM_TYPES:
            raise ConfigError(f"type: unknown DRAM type {self.type!r} "
                              f"(allowed: {', '.join(DRAM_TYPES)})")
        _at_least(self.global_buffer_bytes, 0, "global_buffer_bytes")
        # The burst must take tBL cycles on the pins: one check that ties org and timing.
        per_pc = self.org.pc_width_bits * self.org.pin_rate_bps / 8
        burst_s = self.org.burst_bytes / per_pc
        if abs(burst_s / (self.timing.tBL * self.timing.tck_s) - 1) > 0.01:
            raise ConfigError(
                f"timing.tBL: a {self.org.burst_bytes}-byte burst on {self.org.pc_width_bits} "
                f"pins at {self.org.pin_rate_bps:g} b/s takes {burst_s * 1e9:.3f} ns, but tBL x "
                f"tck_s is {self.timing.tBL * self.timing.tck_s * 1e9:.3f} ns")

    @property
    def pc_bandwidth_bytes_per_cycle(self) -> float:
        """External bandwidth of one pseudo-channel, bytes per command-clock cycle."""
        return self.org.burst_bytes / self.timing.tBL

    def with_timing(self, **changes: int | float) -> DramDevice:
        """A copy with some timing values changed (validated again)."""
        return replace(self, timing=replace(self.timing, **changes))


DRAM_PRESETS = Shelf(package="sim", folder="presets/dram", suffixes=(".yaml", ".yml"),
                     flag="--dram", noun="DRAM preset")


def dram_names() -> tuple[str, ...]:
    return DRAM_PRESETS.names()


def load_dram(spec: str) -> DramDevice:
    """Load a DRAM preset by name (``hbm3``) or a YAML file by path."""
    text, _ = DRAM_PRESETS.read(spec)
    return parse_dram(text, spec)


def parse_dram(text: str, where: str) -> DramDevice:
    return parse_yaml(DramDevice, text, where)
