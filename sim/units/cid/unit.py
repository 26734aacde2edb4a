"""The compute-in-DRAM unit as a chip's ``cid:`` section: its description (`CidUnit`), its
registration (`UNIT`, `sim.units.registry`), and what the simulator asks of it beyond costing
ops (capacity, ``pdsim describe``, the files a trace stores). The op costs are
`sim.units.cid.ops`; this module stays light (the timing engine loads on first use)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sim.errors import ConfigError
from sim.hardware import check_unit_ops
from sim.text import si
from sim.units.registry import UnitType

#: Op kinds a compute-in-DRAM unit can run (sim/units/cid/ops.py costs each).
CID_OP_KINDS = ("gemm", "lm_head", "attn_score", "attn_value", "kv_write")
CID_HOLDS = ("weights", "kv")


@dataclass(frozen=True, slots=True, kw_only=True)
class CidUnit:
    """Compute-in-DRAM beside (or instead of) a chip's own memory: ``stacks`` HBM stacks or
    GDDR devices of the DRAM described by ``dram`` (a preset in ``sim/presets/dram/`` or a YAML
    path), with MAC units placed as ``mode`` says (docs/cid.md).

    ``decode_ops`` and ``prefill_ops`` list the op kinds the placer puts on this unit in each
    phase; everything else stays on the chip. ``holds`` says what lives in these stacks
    (``weights``, ``kv``), for the capacity check. ``tccd_ab`` overrides the DRAM preset's
    all-bank MAC delay (AttAcc's power limit: 6 cycles, 4 without it).
    """

    dram: str
    stacks: int = 1
    mode: str = "bank"
    tccd_ab: int | None = None
    decode_ops: tuple[str, ...] = CID_OP_KINDS
    prefill_ops: tuple[str, ...] = ()
    holds: tuple[str, ...] = CID_HOLDS

    def __post_init__(self) -> None:
        from sim.units.cid.dram import PIM_MODES, load_dram  # reads files; keep it off import
        if self.stacks < 1:
            raise ConfigError(f"stacks: must be >= 1, got {self.stacks!r}")
        if self.mode not in PIM_MODES:
            raise ConfigError(f"mode: unknown PIM mode {self.mode!r} "
                              f"(allowed: {', '.join(PIM_MODES)})")
        if self.tccd_ab is not None and self.tccd_ab < 1:
            raise ConfigError(f"tccd_ab: must be >= 1, got {self.tccd_ab!r}")
        check_unit_ops(self, CID_OP_KINDS, "CiD unit")
        if len(set(self.holds)) != len(self.holds):
            raise ConfigError(f"holds: lists an entry twice, got {list(self.holds)}")
        for what in self.holds:
            if what not in CID_HOLDS:
                raise ConfigError(f"holds: unknown {what!r} (allowed: {', '.join(CID_HOLDS)})")
        try:
            device = load_dram(self.dram)
        except ConfigError as exc:
            raise ConfigError(f"dram: {exc}") from None
        if self.mode == "aim" and device.global_buffer_bytes == 0:
            raise ConfigError(f"mode: 'aim' needs a DRAM with a global buffer; {self.dram} has "
                              f"global_buffer_bytes 0")


def capacity(unit: CidUnit) -> tuple[int, str, str]:
    """Bytes the unit's stacks hold, how to name them and what to change when they are too
    small, for the capacity check's message."""
    from sim.units.cid.ops import unit_device  # numba-backed; loaded on use

    return (unit_device(unit).org.capacity_bytes * unit.stacks,
            f"{unit.stacks} x {unit.dram}", "add stacks")


def referenced(unit: CidUnit) -> dict[str, str]:
    """Text of the DRAM file the unit names, keyed by field."""
    from sim.units.cid.dram import DRAM_PRESETS

    return {"dram": DRAM_PRESETS.read(unit.dram)[0]}


def describe(unit: CidUnit) -> dict[str, Any]:
    """Derived figures of the unit, for ``pdsim describe --json``."""
    from sim.units.cid.ops import peak_internal_bytes_per_s, unit_device  # numba-backed

    device = unit_device(unit)
    external = device.org.bandwidth_bytes_per_s * unit.stacks
    peak = peak_internal_bytes_per_s(device, unit.mode) * unit.stacks
    return {"dram": device.name, "type": device.type, "stacks": unit.stacks, "mode": unit.mode,
            "tCCD_AB": device.timing.tCCD_AB,
            "capacity_bytes": device.org.capacity_bytes * unit.stacks,
            "external_bandwidth_bytes_per_s": external,
            "peak_internal_bandwidth_bytes_per_s": peak,
            "decode_ops": list(unit.decode_ops), "prefill_ops": list(unit.prefill_ops),
            "holds": list(unit.holds)}


def describe_rows(c: dict[str, Any]) -> list[tuple[str, str]]:
    """Rows of ``pdsim describe`` from `describe`'s figures."""
    peak, pins = c["peak_internal_bandwidth_bytes_per_s"], c["external_bandwidth_bytes_per_s"]
    return [
        ("compute-in-DRAM", f"{c['stacks']} x {c['dram']} ({c['type']}), {c['mode']} mode, "
                            f"tCCD_AB {c['tCCD_AB']}, {c['capacity_bytes'] / 2**30:.0f} GiB"),
        ("CiD bandwidth", f"internal peak {si(peak, 'B/s')} = {peak / pins:.2f}x the pins' "
                          f"{si(pins, 'B/s')}"),
        ("CiD runs", f"decode: {', '.join(c['decode_ops']) or 'nothing'}; prefill: "
                     f"{', '.join(c['prefill_ops']) or 'nothing'}; holds "
                     f"{' and '.join(c['holds']) or 'nothing'}"),
    ]


UNIT = UnitType(key="cid", schema=CidUnit, op_kinds=CID_OP_KINDS, noun="CiD unit",
                cost="sim.units.cid.ops:cid_step_cost",
                capacity="sim.units.cid.unit:capacity",
                describe="sim.units.cid.unit:describe",
                describe_rows="sim.units.cid.unit:describe_rows",
                referenced="sim.units.cid.unit:referenced", dram_audit=True,
                op_only=True)  # a CiD op's cost is a function of the op alone
