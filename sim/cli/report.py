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
        *([("per core", f"L2 {si(chip.core.memory_parallelism.l2_bytes_per_s, 'B/s')}, DRAM "
                        f"{si(chip.core.memory_parallelism.dram_bytes_per_s, 'B/s')} "
                        f"(requests in flight / latency)")]
          if chip.core.memory_parallelism else []),
        ("ridge point (fp16)", f"{d['ridge_point_flop_per_byte'].get('fp16', math.nan):.0f} "
                               f"FLOP/B" if "fp16" in sa.dtypes else "n/a"),
        ("achievable", f"tensor {eff.tensor:.0%}, vector {eff.vector:.0%}, memory "
                       f"{eff.memory:.0%}, link {eff.link:.0%}, "
                       + (f"runtime {system.runtime}" if system.runtime
                          else f"{seconds(eff.op_overhead_s)} per op")),
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
    """The summary of a run as a table; every row names its scope: one request, the system
    (all its chips), or one chip (with pipeline stages, one chip of each stage, summed, as
    the per-chip keys are; docs/trace-format.md)."""
    s = {k: math.nan if v is None else v for k, v in summary.items()}  # JSON writes NaN as null
    # Traces written before the scoped keys existed lack them: show what they have.
    pp = s.get("pipeline_parallel", 1)
    chip = "per chip" if pp == 1 else f"{pp} chips, 1 per stage"
    system = f"system, {s['chips']} chip{'s' if s['chips'] > 1 else ''}"
    rows = [
        ("TTFT (per request)", seconds(s["ttft_s"])),
        ("TBT mean / p50 / p99 (per request)", " / ".join(seconds(s[k]) for k in
                                                          ("tbt_mean_s", "tbt_p50_s",
                                                           "tbt_p99_s"))),
        ("end-to-end (per request)", seconds(s["e2e_s"])),
        (f"output tokens/s ({system})", f"{s['output_tokens_per_s']:.1f}"),
        (f"prefill tokens/s ({system})", f"{s['prefill_tokens_per_s']:.0f}"),
    ]
    for phase in ("prefill", "decode"):
        dram_intensity = s.get(f"{phase}_intensity_flop_per_dram_byte", math.nan)
        logical = s.get(f"{phase}_intensity_flop_per_logical_byte",
                        s[f"{phase}_intensity_flop_per_byte"])
        rows += [
            (f"{phase} FLOPs ({chip})", si(s[f"{phase}_flops"], "FLOP")),
            (f"{phase} bytes ({chip})",
             f"DRAM {si(s[f'{phase}_dram_bytes'], 'B')}; logical "
             f"{si(s[f'{phase}_bytes'], 'B')} = {si(s[f'{phase}_weight_bytes'], 'B')} weights "
             f"+ {si(s[f'{phase}_act_bytes'], 'B')} act + {si(s[f'{phase}_kv_bytes'], 'B')} KV"),
            (f"{phase} intensity ({chip})",
             f"{_num(dram_intensity)} FLOP per DRAM byte ({_num(logical)} per logical byte), "
             f"{_pct(s[f'{phase}_memory_bound_fraction'])} of op time memory-bound" + (
                 f", {_pct(s[f'{phase}_write_bound_fraction'])} bound by CiM reprogramming"
                 if f"{phase}_write_bound_fraction" in s else "")),
            (f"{phase} energy ({chip})",
             _energy(s[f"{phase}_energy_j"], s.get(f"{phase}_static_energy_j_per_chip"))),
        ]
        busy = {k.rpartition("_busy_fraction_")[2]: v for k, v in s.items()
                if k.startswith(f"{phase}_busy_fraction_")}
        if busy:  # traces written before the concurrent scheduler have none
            # a fraction of time: the mean chip's, not a sum over the stages
            rows.append((f"{phase} unit busy (per chip)",
                         ", ".join(f"{u} {_pct(v)}" for u, v in busy.items())))
    rows += [
        (f"energy ({chip})", _energy(s["energy_j"], s.get("static_energy_j_per_chip"))),
    ]
    if "total_energy_j_per_system" in s:
        rows += [
            (f"energy ({system})", _energy(s["dynamic_energy_j_per_system"],
                                           s["static_energy_j_per_system"])),
            (f"energy per output token ({system})", _per_token(s)),
            ("static power (per chip)", _static(s["static_power_w_per_chip"])),
        ]
    else:
        rows.append((f"energy per output token ({chip})", si(s["energy_per_output_token_j"], "J")))
    rows += [
        ("memory (per chip)", f"{si(s['weight_bytes_per_chip'], 'B')} weights + "
                              f"{si(s['kv_cache_bytes_per_chip'], 'B')} KV of "
                              f"{si(s['memory_capacity_bytes'], 'B')}"),
        ("decode steps (per request)",
         f"{s['decode_steps']} ({s['decode_steps_simulated']} simulated)"),
    ]
    if "cim_weights_resident" in s:
        need = f"{s['cim_crossbars_needed']} crossbars needed of {s['cim_crossbars']}"
        rows.append(("CiM weights (per chip)",
                     f"resident ({need}): programmed once at load, "
                     f"{seconds(s['cim_load_program_s'])} and {si(s['cim_load_program_j'], 'J')}"
                     f", in no step" if s["cim_weights_resident"] else
                     f"not resident ({need}): reprogrammed before every op, every step"))
    return table(rows, title)


def _energy(dynamic: float, static: float | None) -> str:
    """``dynamic + static = total``; the dynamic part alone where static power is unknown."""
    if static is None:  # a trace written before static energy was modelled
        return f"{si(dynamic, 'J')} (dynamic only)"
    if math.isnan(static):
        return f"{si(dynamic, 'J')} dynamic + n/a static (no TDP for this chip)"
    return (f"{si(dynamic, 'J')} dynamic + {si(static, 'J')} static = "
            f"{si(dynamic + static, 'J')}")


def _per_token(s: dict[str, Any]) -> str:
    total = s["total_energy_per_output_token_j_per_system"]
    if math.isnan(s["static_power_w_per_chip"]):  # dynamic only, scaled to the system
        return (f"{si(s['energy_per_output_token_j'] * s['tensor_parallel'], 'J')} "
                f"(dynamic only: no TDP for this chip)")
    return f"{si(total, 'J')} (dynamic + static)"


def _static(watts: float) -> str:
    if math.isnan(watts):
        return "n/a: the chip has no tdp_w and is outside the TDP model (sim/costmodel.py)"
    return (f"{watts:.1f} W: {costmodel.IDLE_FRACTION_OF_TDP:.1%} of the "
            f"{watts / costmodel.IDLE_FRACTION_OF_TDP:.0f} W TDP (measured GH100 idle share; "
            f"a model choice)")


def gemm_text(g: dict[str, Any]) -> str:
    """``pdsim gemm``'s result (the dict its ``--json`` prints) as a table: one array
    (``rows`` in ``g``) or a whole chip (``hw`` in ``g``)."""
    shape = f"C[{g['m']}x{g['n']}] = A[{g['m']}x{g['k']}] @ B[{g['k']}x{g['n']}]"
    cycles = (f"{_count(g['cycles'])} = {_count(g['compute_cycles'])} computing + "
              f"{_count(g['stall_cycles'])} stalled")
    if "hw" in g:
        m, n, k = g["l1_tile_mnk"]
        return table([
            ("time", f"{seconds(g['time_s'])} ({cycles} cycles)"),
            ("utilisation", f"{g['utilization']:.1%} of the chip's peak {g['dtype']} MACs"),
            ("DRAM traffic", si(g["dram_bytes"], "B")),
            ("L2 -> L1 traffic", si(g["l2_to_l1_bytes"], "B")),
            ("L1 tile (M x N x K)", f"{m} x {n} x {k}"),
            ("split over sublanes", f"along {g['sublane_split'].upper()}"),
            ("L2 loop order", "M: blocks of A rows stay in L2, B streams"
             if g["l2_loop_order"] == "m" else "N: blocks of B columns stay in L2, A streams"),
        ], f"{shape}, {g['dtype']}, mapped onto {g['hw']}")

    def abc(words: dict[str, int]) -> str:
        return " / ".join(_count(words[x]) for x in "ABC")
    return table([
        ("cycles", cycles),
        ("folds", f"{_count(g['folds'])} of {_count(g['cycles_per_fold'])} cycles"),
        ("utilisation", f"{g['utilization']:.1%} of the array's peak MACs"),
        ("SRAM reads / writes", f"{_count(g['sram_reads'])} / {_count(g['sram_writes'])} words"),
        ("SRAM words (A / B / C)", abc(g["sram_words"])),
        ("next-level words (A / B / C)", abc(g["next_level_words"])),
    ], f"{shape} on one {g['rows']}x{g['cols']} array ({g['dataflow']} dataflow)")


def _count(value: float) -> str:
    """A count with thousands separators; a fractional one (averaged cycles) to 6 digits."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.6g}"


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
