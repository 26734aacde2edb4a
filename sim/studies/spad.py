"""SPAD's chip-level study (arXiv 2510.08544, Table 3): its prefill and decode chips against
its modeled H100.

Workload (SPAD's chip-level evaluation): BLOOM-176B in FP16 over 8 chips in tensor parallel,
sequence length 1024. Prefill is batch 2 x 1024 tokens on an empty cache; decode is one step of
batch 64, one new token per sequence on a 1024-token KV cache. Performance is normalised to
``h100``: ``h100 time / chip time`` (higher is better).

`spad_chips` computes the numbers and touches no file; `sim.studies.spad_report` turns them
into the README and the plot; `sim.studies.spad_report.write_spad_chips` regenerates
``results/spad/`` (``pdsim reproduce spad-chips``), each file through a temporary file and
``os.replace``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from mappers.ir import Op, OpKind, Phase, Precision
from mappers.models import ModelConfig, load_model
from sim.step import COST_MODELS, compile_step
from mappers.schedule import StepSchedule
from sim.hardware import Chip, System
from sim.presets import load_hardware
from sim.costmodel import spad_cost_model
from sim.units.systolic.tile import map_gemm
from sim.studies import text_table


COMMAND = "pdsim reproduce spad-chips"
MODEL = "bloom-176b"
BASELINE = "h100"
CHIPS = ("h100", "spad-prefill", "spad-decode")
TP = 8
SEQ_LEN = 1024
PREFILL_BATCH = 2
DECODE_BATCH = 64
TOLERANCE = 0.08
PHASES = ("prefill", "decode")
#: The result field that holds each phase's time.
TIME_KEY = {"prefill": "prefill_time_s", "decode": "decode_step_time_s"}

#: SPAD Table 3, "normalized prefill / decode performance" (the modeled H100 is 1 / 1).
PUBLISHED = {"h100": {"prefill": 1.0, "decode": 1.0},
             "spad-prefill": {"prefill": 1.08, "decode": 0.80},
             "spad-decode": {"prefill": 0.69, "decode": 0.97}}

#: Groups of the time breakdown, in plotting order, by op kind.
GROUPS = {"gemm": "GEMMs (QKV, O, MLP, LM head)",
          "attention": "attention (score, softmax, value)",
          "all_reduce": "all-reduce",
          "other": "norms, elementwise, other"}
_GROUP_OF = {OpKind.GEMM: "gemm", OpKind.LM_HEAD: "gemm", OpKind.ATTN_SCORE: "attention",
             OpKind.SOFTMAX: "attention", OpKind.ATTN_VALUE: "attention",
             OpKind.ALL_REDUCE: "all_reduce"}


def spad_chips(detail: str = "tile") -> dict[str, Any]:
    """Times (seconds), normalised performance, time by op and op group, cost and TDP of the
    three chips at ``detail`` and, for comparison, at ``roofline``; with SPAD's published
    figures and what drives the differences (``analysis``). JSON-serialisable."""
    if detail not in COST_MODELS:
        raise ValueError(f"detail: unknown {detail!r} (allowed: {', '.join(COST_MODELS)})")
    model = load_model(MODEL).config
    systems = {name: dataclasses.replace(load_hardware(name).system, tensor_parallel=TP)
               for name in CHIPS}
    details = tuple(dict.fromkeys((detail, "roofline")))
    scheds = {d: {name: _steps(model, systems[name], d) for name in CHIPS} for d in details}
    results = {d: _figures(scheds[d]) for d in details}
    return {
        "study": "spad-chips",
        "source": "SPAD (arXiv 2510.08544), Table 3",
        "command": COMMAND,
        "detail": detail,
        "tolerance": TOLERANCE,
        "workload": {"model": MODEL, "precision": "fp16", "tensor_parallel": TP,
                     "prefill": {"batch": PREFILL_BATCH, "new_tokens": SEQ_LEN, "context": 0},
                     "decode": {"batch": DECODE_BATCH, "new_tokens": 1, "context": SEQ_LEN}},
        "groups": dict(GROUPS),
        "hardware": {name: _hardware(systems[name]) for name in CHIPS},
        "results": results,
        "analysis": _analysis(scheds[detail], systems, results[detail]),
        "cost": _cost(systems, results[detail]),
    }


def _steps(model: ModelConfig, system: System, detail: str) -> dict[str, StepSchedule]:
    p = Precision()
    return {
        "prefill": compile_step(model, system, phase=Phase.PREFILL, batch=PREFILL_BATCH,
                                new_tokens=SEQ_LEN, context=0, precision=p, detail=detail),
        "decode": compile_step(model, system, phase=Phase.DECODE, batch=DECODE_BATCH,
                               new_tokens=1, context=SEQ_LEN, precision=p, detail=detail),
    }


def _group(op: Op) -> str:
    return _GROUP_OF.get(op.kind, "other")


def _time_by(sched: StepSchedule, key: Callable[[Op], str]) -> dict[str, float]:
    """Seconds of the step in each ``key(op)``, repeats included."""
    out: dict[str, float] = {}
    for s in sched.ops:
        k = key(s.op)
        out[k] = out.get(k, 0.0) + s.segment.repeat * float(s.cost.time_s)
    return out


def _figures(scheds: dict[str, dict[str, StepSchedule]]) -> dict[str, Any]:
    base = scheds[BASELINE]
    out = {}
    for name, s in scheds.items():
        norm = {ph: float(base[ph].time_s / s[ph].time_s) for ph in PHASES}
        diff = {ph: abs(norm[ph] - PUBLISHED[name][ph]) for ph in PHASES}
        groups = {ph: _time_by(s[ph], _group) for ph in PHASES}
        out[name] = {
            "prefill_time_s": float(s["prefill"].time_s),
            "decode_step_time_s": float(s["decode"].time_s),
            "normalised": norm,
            "published": dict(PUBLISHED[name]),
            "abs_difference": diff,
            "within_tolerance": {ph: diff[ph] <= TOLERANCE for ph in PHASES},
            "time_by_group_s": {ph: {g: groups[ph].get(g, 0.0) for g in GROUPS}
                                for ph in PHASES},
            "time_by_op_s": {ph: _time_by(s[ph], lambda op: op.name) for ph in PHASES},
        }
    return out


def _hardware(system: System) -> dict[str, Any]:
    chip, link = system.chip, system.interconnect
    sa = chip.core.systolic_array
    return {"cores": chip.cores, "sublanes": chip.core.sublanes,
            "array": [sa.rows, sa.cols],
            "peak_fp16_flops": chip.peak_tensor_flops("fp16"),
            "memory_bandwidth_bytes_per_s": chip.memory.bandwidth_bytes_per_s,
            "l2_bandwidth_bytes_per_cycle": chip.l2.bandwidth_bytes_per_cycle,
            "l1_bytes_per_pe": chip.core.l1.capacity_bytes
            / (chip.core.sublanes * sa.rows * sa.cols),
            "l2_bytes_per_pe_cycle": chip.l2.bandwidth_bytes_per_cycle
            / (chip.arrays * sa.rows * sa.cols),
            "link_bandwidth_bytes_per_s": link.bandwidth_bytes_per_s,
            "link_latency_s": link.latency_s, "link_efficiency": chip.efficiency.link,
            "tensor_efficiency": chip.efficiency.tensor,
            "memory_efficiency": chip.efficiency.memory}


def _analysis(scheds: dict[str, dict[str, StepSchedule]], systems: dict[str, System],
              res: dict[str, Any]) -> dict[str, Any]:
    """The figures the README's "Modelling choices" cite, per chip and phase."""
    base = res[BASELINE]
    # one GEMM mapped on every chip: the prefill's biggest by FLOPs
    biggest = max((r.op for r in scheds[BASELINE]["prefill"].ops if r.op.kind == OpKind.GEMM),
                  key=lambda op: op.flops)
    out: dict[str, Any] = {}
    for name, s in scheds.items():
        chip, link = systems[name].chip, systems[name].interconnect
        bw_ratio = (chip.memory.bandwidth_bytes_per_s
                    / systems[BASELINE].chip.memory.bandwidth_bytes_per_s)
        peak = chip.peak_tensor_flops("fp16")
        a: dict[str, Any] = {"bandwidth_ratio": bw_ratio,
                             "peak_ratio": peak / systems[BASELINE].chip.peak_tensor_flops("fp16")}
        for ph in PHASES:
            sched, groups = s[ph], res[name]["time_by_group_s"][ph]
            ar, time = groups["all_reduce"], float(sched.time_s)
            count = sum(r.segment.repeat for r in sched.ops if r.op.kind == OpKind.ALL_REDUCE)
            hops = 2 * (TP - 1)  # ring all-reduce: 2 (p - 1) steps, each paying the latency
            gemm = [r for r in sched.ops if _group(r.op) == "gemm"]
            gemm_time = sum(r.segment.repeat * r.cost.time_s for r in gemm)
            ideal = sum(r.segment.repeat * r.op.flops for r in gemm) / peak
            a[ph] = {
                "allreduce_s": ar, "allreduce_share": ar / time, "allreduce_count": count,
                "allreduce_latency_share": count * hops * link.latency_s / ar,
                "normalised_without_allreduce":
                    (base[TIME_KEY[ph]] - base["time_by_group_s"][ph]["all_reduce"])
                    / (time - ar),
                "memory_bound_share": sched.total_time_where("memory") / time,
                "memory_bound_share_outside_allreduce":
                    sched.total_time_where("memory") / (time - ar),
                "gemm_time_s": float(gemm_time),
                "gemm_peak_fraction": float(ideal / gemm_time),
                **_gemm_detail(gemm, gemm_time, ideal, chip.tensor_freq_hz),
                "other_s": groups["other"], "other_share": groups["other"] / time,
            }
        a["largest_prefill_gemm"] = _gemm_mapping(chip, biggest)
        if bw_ratio != 1.0:
            # a two-part decode model (a bandwidth-independent part plus one that scales with
            # DRAM bandwidth) inverted for the bandwidth-independent share of H100's decode step
            pub = PUBLISHED[name]["decode"]
            a["decode_fixed_share_implied_by_published"] = ((1 / bw_ratio - 1 / pub)
                                                            / (1 / bw_ratio - 1))
        out[name] = a
    return out


def _gemm_mapping(chip: Chip, op: Op) -> dict[str, Any]:
    """The tile mapping of GEMM ``op`` on ``chip``: its L1 tile ``m x n x k`` and the share of
    each output-stationary fold (``k + rows + cols - 2`` cycles, SCALE-Sim's convention) that
    does useful MACs (None for other dataflows)."""
    m, n, k = op.dims
    g = map_gemm(chip, op.dtype, 1, m, n, k)
    sa = chip.core.systolic_array
    fold = g.tile[2] + sa.rows + sa.cols - 2 if sa.dataflow == "os" else None
    return {"op": op.name, "dims": [m, n, k], "tile": list(g.tile), "fold_cycles": fold,
            "fold_useful_share": g.tile[2] / fold if fold else None}


def _gemm_detail(gemm: list, gemm_time: float, ideal: float, freq_hz: float
                 ) -> dict[str, float | None]:
    """Where GEMM time goes beyond the ideal (every PE busy): array cycles lost to filling and
    draining folds, waits on L2 -> L1 loads in GEMMs DRAM does not bound, and GEMMs DRAM does
    bound. Tile detail only (the roofline charges no cycles: None)."""
    if any(r.cost.cycles != r.cost.cycles for r in gemm):
        return {"gemm_fold_efficiency": None, "gemm_l2_stall_share": None,
                "gemm_dram_bound_share": None}
    busy = sum(r.segment.repeat * r.cost.compute_s for r in gemm)
    l2 = sum(r.segment.repeat * r.cost.stall_cycles for r in gemm if r.cost.bound == "compute")
    dram = sum(r.segment.repeat * r.cost.time_s for r in gemm if r.cost.bound == "memory")
    return {"gemm_fold_efficiency": float(ideal / busy),
            "gemm_l2_stall_share": float(l2 / freq_hz / gemm_time),
            "gemm_dram_bound_share": float(dram / gemm_time)}


def _cost(systems: dict[str, System], res: dict[str, Any]) -> dict[str, Any]:
    base = systems[BASELINE].chip
    out = {}
    for name, system in systems.items():
        chip = system.chip
        cost = chip.die_cost_usd + chip.memory_cost_usd
        norm_cost = cost / (base.die_cost_usd + base.memory_cost_usd)
        out[name] = {"die_cost_usd": chip.die_cost_usd, "memory_cost_usd": chip.memory_cost_usd,
                     "cost_usd": cost, "tdp_w": chip.tdp_w, "normalised_cost": norm_cost,
                     "normalised_tdp": chip.tdp_w / base.tdp_w,
                     "performance_per_cost": {ph: res[name]["normalised"][ph] / norm_cost
                                              for ph in PHASES},
                     "modeled": spad_cost_model(chip)}
    return out


def headline(data: dict[str, Any]) -> str:
    """Normalised performance against H100, pdsim's and SPAD's, at the study's detail."""
    res, tol = data["results"][data["detail"]], data["tolerance"]
    rows = [[chip] + [f"{r['normalised'][ph]:.2f} vs {r['published'][ph]:.2f}"
                      for ph in PHASES]
            + ["yes" if all(r["within_tolerance"].values()) else "no"]
            for chip, r in res.items()]
    return text_table(["chip", "prefill (pdsim vs SPAD)", "decode (pdsim vs SPAD)",
                       f"within {tol:g}"], rows)
