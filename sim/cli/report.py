"""Human-readable text for the CLI: unit formatting and the summary tables."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sim import costmodel
from sim.costmodel import spad_cost_model
from sim.errors import ConfigError
from sim.hardware import Chip, System
from sim.schema import to_dict
from sim.units.registry import unit_types
from sim.text import seconds, si, table  # noqa: F401 (re-exported for the CLI)


def describe(system: System) -> dict[str, Any]:
    """Derived figures of a system, for ``pdsim describe --json``."""
    chip = system.chip
    sa = chip.core.systolic_array
    bw = chip.memory.bandwidth_bytes_per_s
    peaks = {d: chip.peak_tensor_flops(d) for d in sa.dtypes}
    return {
        "name": system.name,
        "description": system.description,
        "arrays": chip.arrays,
        "peak_tensor_flops": peaks,
        "peak_vector_flops": chip.peak_vector_flops,
        "memory_bandwidth_bytes_per_s": bw,
        "memory_capacity_bytes": chip.memory.capacity_bytes,
        "ridge_point_flop_per_byte": {d: p / bw for d, p in peaks.items()},
        "l1_bytes_per_core": chip.core.l1.capacity_bytes,
        "l2_bytes": chip.l2.capacity_bytes,
        "die_cost_usd": chip.die_cost_usd,
        "memory_cost_usd": chip.memory_cost_usd,
        "cost_usd": chip.cost_usd,
        "tdp_w": chip.tdp_w,
        "area_mm2": chip.area_mm2,
        "spad_cost_model": spad_cost_model(chip),
        "num_chips": system.num_chips,
        "tensor_parallel": system.tensor_parallel,
        "pipeline_parallel": system.pipeline_parallel,
        "interconnect_bandwidth_bytes_per_s": (system.interconnect.bandwidth_bytes_per_s
                                               if system.interconnect else None),
        **describe_units(system),
        "config": to_dict(system),
    }


def describe_units(system: System) -> dict[str, dict[str, Any] | None]:
    """Derived figures of the chip's memory-side units, under each registered type's key
    (None where the chip has no unit of that type), from each type's ``describe`` model
    (`sim.units.registry`)."""
    out: dict[str, dict[str, Any] | None] = {}
    for key, kind in unit_types().items():
        desc = system.chip.units.get(key)
        fn = kind.model("describe")
        out[key] = None if desc is None else (fn(desc) if fn is not None else to_dict(desc))
    return out


def _modeled_rows(chip: Chip, m: dict[str, Any] | None) -> list[tuple[str, str]]:
    if m is None:
        try:
            costmodel.estimate(chip)
            reason = "not modeled"
        except ConfigError as exc:
            reason = str(exc)
        return [("modeled cost/TDP", f"n/a ({reason})")]
    factor = 1 + costmodel.SPAD.regulator_overhead
    return [
        ("modeled cost", f"${m['die_cost_usd']:,.0f} die + ${m['memory_cost_usd']:,.0f} memory "
                         f"= ${m['cost_usd']:,.0f} ({m['cost_vs_h100']:.2f} of h100)"),
        ("modeled TDP", f"{m['tdp_w']:.0f} W = ({m['die_power_w']:.0f} W die + "
                        f"{m['memory_power_w']:.0f} W memory) x {factor:g} "
                        f"({m['tdp_vs_h100']:.2f} of h100)"),
    ]


def describe_text(system: System) -> str:
    d = describe(system)
    chip = system.chip
    sa, vu, mem = chip.core.systolic_array, chip.core.vector_unit, chip.memory
    eff = chip.efficiency
    money = ("n/a" if chip.cost_usd is None else
             f"${chip.die_cost_usd:,.0f} die + ${chip.memory_cost_usd:,.0f} memory "
             f"= ${chip.cost_usd:,.0f}")
    rows = [
        ("organisation", f"{chip.cores} cores x {chip.core.sublanes} sublanes = {chip.arrays} "
                         f"arrays of {sa.rows}x{sa.cols} ({sa.dataflow}), vector width "
                         f"{vu.width}"),
        ("clocks", f"tensor {si(chip.tensor_freq_hz, 'Hz')}, vector "
                   f"{si(chip.vector_freq_hz, 'Hz')}"),
        *[(f"peak tensor {dt}", si(v, "FLOP/s")) for dt, v in d["peak_tensor_flops"].items()],
        ("peak vector", si(d["peak_vector_flops"], "FLOP/s")),
        ("memory", f"{mem.type}, {mem.bus_width_bits}-bit x {si(mem.pin_rate_bps, 'b/s')} "
                   f"= {si(d['memory_bandwidth_bytes_per_s'], 'B/s')}, "
                   f"{mem.capacity_bytes / 2**30:.0f} GiB"),
        ("on-chip", f"L1 {chip.core.l1.capacity_bytes // 1024} KiB per core, "
                    f"L2 {chip.l2.capacity_bytes / 2**20:g} MiB"),
        ("ridge point (fp16)", f"{d['ridge_point_flop_per_byte'].get('fp16', math.nan):.0f} "
                               f"FLOP/B" if "fp16" in sa.dtypes else "n/a"),
        ("achievable", f"tensor {eff.tensor:.0%}, vector {eff.vector:.0%}, memory "
                       f"{eff.memory:.0%}, link {eff.link:.0%}, "
                       f"{seconds(eff.op_overhead_s)} per op"),
        ("die", f"{_num(chip.area_mm2)} mm2 at {_num(chip.process_nm)} nm, TDP "
                f"{_num(chip.tdp_w)} W"),
        ("cost", money),
        *_modeled_rows(chip, d["spad_cost_model"]),
        ("system", f"{system.num_chips} chips, tensor parallel {system.tensor_parallel}"
                   + (f", pipeline parallel {system.pipeline_parallel}"
                      if system.pipeline_parallel > 1 else "")
                   + (f", interconnect {si(system.interconnect.bandwidth_bytes_per_s, 'B/s')}"
                      f" per direction, {seconds(system.interconnect.latency_s)}"
                      if system.interconnect else "")),
    ]
    for key, kind in unit_types().items():
        rows_of = kind.model("describe_rows")
        if d.get(key) is not None and rows_of is not None:
            rows += rows_of(d[key])
    return table(rows, f"{system.name}: {system.description}")


def summary_text(summary: dict[str, Any], title: str) -> str:
    s = summary
    rows = [
        ("TTFT", seconds(s["ttft_s"])),
        ("TBT mean / p50 / p99", " / ".join(seconds(s[k]) for k in
                                            ("tbt_mean_s", "tbt_p50_s", "tbt_p99_s"))),
        ("end-to-end", seconds(s["e2e_s"])),
        ("output tokens/s", f"{s['output_tokens_per_s']:.1f}"),
        ("prefill tokens/s", f"{s['prefill_tokens_per_s']:.0f}"),
    ]
    for phase in ("prefill", "decode"):
        rows += [
            (f"{phase} FLOPs", si(s[f"{phase}_flops"], "FLOP")),
            (f"{phase} bytes (w/act/kv)",
             f"{si(s[f'{phase}_bytes'], 'B')} ({si(s[f'{phase}_weight_bytes'], 'B')} / "
             f"{si(s[f'{phase}_act_bytes'], 'B')} / {si(s[f'{phase}_kv_bytes'], 'B')}); "
             f"DRAM {si(s[f'{phase}_dram_bytes'], 'B')}"),
            (f"{phase} intensity", f"{_num(s[f'{phase}_intensity_flop_per_byte'])} FLOP/B, "
                                   f"{_pct(s[f'{phase}_memory_bound_fraction'])} of time "
                                   f"memory-bound" + (
                                       f", {_pct(s[f'{phase}_write_bound_fraction'])} bound "
                                       f"by CiM reprogramming"
                                       if f"{phase}_write_bound_fraction" in s else "")),
            (f"{phase} energy", si(s[f"{phase}_energy_j"], "J")),
        ]
    rows += [
        ("energy per output token", si(s["energy_per_output_token_j"], "J")),
        ("memory per chip", f"{si(s['weight_bytes_per_chip'], 'B')} weights + "
                            f"{si(s['kv_cache_bytes_per_chip'], 'B')} KV of "
                            f"{si(s['memory_capacity_bytes'], 'B')}"),
        ("decode steps", f"{s['decode_steps']} ({s['decode_steps_simulated']} simulated)"),
    ]
    if "cim_weights_resident" in s:
        need = f"{s['cim_crossbars_needed']} crossbars needed of {s['cim_crossbars']}"
        rows.append(("CiM weights",
                     f"resident ({need}): programmed once at load, "
                     f"{seconds(s['cim_load_program_s'])} and {si(s['cim_load_program_j'], 'J')}"
                     f", in no step" if s["cim_weights_resident"] else
                     f"not resident ({need}): reprogrammed before every op, every step"))
    return table(rows, title)


def ops_text(ops: np.ndarray, step: int) -> str:
    """The ops of one step of a trace, one line each."""
    sel = ops[ops["step"] == step]
    lines = [f"{'op':<16}{'kind':<12}{'unit':<8}{'x':>4}  {'dims':<28}{'time':>11}"
             f"{'FLOPs':>12}{'bytes':>12}  bound"]
    for r in sel:
        dims = "x".join(str(int(v)) for v in r["dims"] if v)
        moved = int(r["weight_bytes"] + r["act_bytes"] + r["kv_bytes"] + r["comm_bytes"])
        lines.append(f"{r['op'].decode():<16}{r['kind'].decode():<12}{r['unit'].decode():<8}"
                     f"{int(r['repeat']):>4}  {dims:<28}{seconds(float(r['time_s'])):>11}"
                     f"{si(int(r['flops']), ''):>12}{si(moved, 'B'):>12}  "
                     f"{r['bound'].decode()}")
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.4g}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.0%}"
