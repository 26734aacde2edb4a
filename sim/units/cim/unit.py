"""The analog CiM unit as a chip's ``cim:`` section: its description (`CimSlot`), its
registration (`UNIT`, `sim.units.registry`), and what the simulator asks of it beyond costing
ops (``pdsim describe``, the run summary, the files a trace stores). The op costs are
`sim.units.cim.cost`, loaded on first use."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

from sim.errors import ConfigError
from sim.hardware import System, check_unit_ops
from sim.text import si
from sim.units.registry import UnitType

#: Op kinds an analog CiM unit can run: the weight GEMMs and the LM head (sim/units/cim/cost.py).
#: Attention is not among them: its operands (queries, the KV cache) change every token, and a
#: crossbar holds a static matrix that costs a program-and-verify write to change.
CIM_OP_KINDS = ("gemm", "lm_head")


@dataclass(frozen=True, slots=True, kw_only=True)
class CimSlot:
    """An analog compute-in-memory unit on the chip: ``unit`` names a CiM description (a
    preset in ``sim/presets/cim/`` such as ``halo-cim``, or a YAML path) that fixes the
    crossbars, their periphery and the path weights are programmed over (docs/cim.md).

    ``prefill_ops`` and ``decode_ops`` list the op kinds the placer puts on it in each phase
    (HALO's phase-aware mapping: prefill GEMMs only, the default). The weights it runs are
    programmed from the chip's memory; whether they stay resident across steps is decided per
    step by `sim.units.cim.residency.plan_weights` (docs/cim.md, "In the engine").
    """

    #: The residency plan (sim/units/cim/residency.py) counts every layer's weights on one chip's
    #: crossbars; a per-stage plan is not modelled (`sim.hardware.System` refuses pp > 1).
    pipeline_parallel_unsupported: ClassVar[str] = "per-stage crossbar residency is not modelled"

    unit: str
    prefill_ops: tuple[str, ...] = CIM_OP_KINDS
    decode_ops: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        from sim.units.cim.crossbar import load_cim  # reads a file; keep it off import
        check_unit_ops(self, CIM_OP_KINDS, "CiM unit")
        try:
            load_cim(self.unit)
        except ConfigError as exc:
            raise ConfigError(f"unit: {str(exc).removeprefix('--hw: ')}") from None


def referenced(slot: CimSlot) -> dict[str, str]:
    """Text of the CiM description file the slot names, keyed by field."""
    from sim.units.cim.crossbar import CIM_PRESETS

    return {"unit": CIM_PRESETS.read(slot.unit)[0]}


def describe(slot: CimSlot) -> dict[str, Any]:
    """Derived figures of the CiM unit, for ``pdsim describe --json``."""
    from sim.units.cim.cost import peak_macs_per_s  # the CiM model, on demand
    from sim.units.cim.residency import slot_unit

    unit = slot_unit(slot)
    xb = unit.crossbar
    return {"unit": unit.name, "source": slot.unit, "crossbars": unit.crossbars,
            "crossbar_rows": xb.rows, "crossbar_cols": xb.cols, "weight_bits": xb.weight_bits,
            "input_bits": xb.input_bits, "encoding": xb.encoding,
            "weight_capacity": unit.weight_capacity(),
            "weight_capacity_bytes": unit.weight_capacity() * xb.weight_bits // 8,
            "peak_macs_per_s": peak_macs_per_s(unit),
            "weight_load_bandwidth_bytes_per_s": unit.weight_load_bandwidth_bytes_per_s,
            "write_parallel_crossbars": unit.write_parallel_crossbars,
            "prefill_ops": list(slot.prefill_ops), "decode_ops": list(slot.decode_ops)}


def describe_rows(m: dict[str, Any]) -> list[tuple[str, str]]:
    """Rows of ``pdsim describe`` from `describe`'s figures."""
    return [
        ("analog CiM", f"{m['unit']}: {m['crossbars']} crossbars of {m['crossbar_rows']}x"
                       f"{m['crossbar_cols']}, {m['encoding']}, W{m['weight_bits']}"
                       f"A{m['input_bits']}"),
        ("CiM capacity", f"{m['weight_capacity'] / 1e6:.4g} M weights "
                         f"({si(m['weight_capacity_bytes'], 'B')}) resident at once"),
        ("CiM peak", f"{si(2 * m['peak_macs_per_s'], 'OP/s')} at W{m['weight_bits']}A"
                     f"{m['input_bits']}; weights programmed at "
                     f"{si(m['weight_load_bandwidth_bytes_per_s'], 'B/s')}, "
                     f"{m['write_parallel_crossbars']} crossbars at a time"),
        ("CiM runs", f"prefill: {', '.join(m['prefill_ops']) or 'nothing'}; decode: "
                     f"{', '.join(m['decode_ops']) or 'nothing'}"),
    ]


def summary(system: System, steps: Sequence[Any]) -> dict[str, float | int | bool]:
    """Run-summary figures of the chip's CiM unit, from the run's steps (``steps[0]`` the
    prefill, each with ``time_s``, ``write_bound_s`` and the prefill's ``schedule``).

    Weight residency (`sim.units.cim.residency.slot_plan`, the same for every step): resident
    weights are programmed once at load, before the first request; that time and energy are
    reported here and are in no step. Weights that do not fit are programmed before every op
    instance of every step, inside the steps' costs, and the load figures are 0. Per phase, the
    fraction of time in ops bound by reprogramming crossbars (bound ``write``)."""
    slot = system.chip.cim
    if not (slot.prefill_ops or slot.decode_ops):
        return {}
    from sim.units.cim.residency import slot_plan  # the CiM model, only for chips with one

    plan = slot_plan(system, steps[0].schedule.graph)
    out: dict[str, float | int | bool] = {
        "cim_weights_resident": plan.resident,
        "cim_crossbars_needed": plan.crossbars_needed,
        "cim_crossbars": plan.crossbars,
        "cim_load_program_s": plan.initial_program_s if plan.resident else 0.0,
        "cim_load_program_j": plan.initial_program_j if plan.resident else 0.0}
    for phase, group in (("prefill", steps[:1]), ("decode", steps[1:])):
        # A share of op time, as the memory-bound fraction (sim/engine.py).
        time = sum(s.op_s for s in group)
        out[f"{phase}_write_bound_fraction"] = (
            sum(s.write_bound_s for s in group) / time if time else math.nan)
    return out


UNIT = UnitType(key="cim", schema=CimSlot, op_kinds=CIM_OP_KINDS, noun="CiM unit",
                cost="sim.units.cim.residency:cim_step_cost",
                describe="sim.units.cim.unit:describe",
                describe_rows="sim.units.cim.unit:describe_rows",
                referenced="sim.units.cim.unit:referenced",
                summary="sim.units.cim.unit:summary",
                # activations to and from the crossbars' buffers (mappers/transfers.py)
                links=(("cim_io", "sim.units.cim.link:cim_io_step_cost"),))
