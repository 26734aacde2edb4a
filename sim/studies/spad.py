"""SPAD's chip-level study (arXiv 2510.08544, Table 3): its prefill and decode chips against
its modeled H100.

Workload (SPAD's chip-level evaluation): BLOOM-176B in FP16 over 8 chips in tensor parallel,
sequence length 1024. Prefill is batch 2 x 1024 tokens on an empty cache; decode is one step of
batch 64, one new token per sequence on a 1024-token KV cache. Performance is normalised to
``h100``: ``h100 time / chip time`` (higher is better).

`spad_chips` computes the numbers and touches no file; `write_spad_chips` regenerates
``results/spad/`` (``pdsim reproduce spad-chips``), each file through a temporary file and
``os.replace``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mappers.ir import Op, OpKind, Phase, Precision
from mappers.models import ModelConfig, load_model
from mappers.pipeline import COST_MODELS, compile_step
from mappers.schedule import StepSchedule
from sim.hardware import Chip, System
from sim.presets import load_hardware
from sim.report import spad_cost_model

from . import write_study
from sim.tile import map_gemm

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
_KEY = {"prefill": "prefill_time_s", "decode": "decode_step_time_s"}  # time field per phase

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
                    (base[_KEY[ph]] - base["time_by_group_s"][ph]["all_reduce"]) / (time - ar),
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


def write_spad_chips(out_dir: Path) -> list[Path]:
    """Regenerate the study in ``out_dir``: ``README.md`` (tables and the modelling choices),
    ``spad_chips.png`` and ``spad_chips.json`` (every number). Each file is written to a
    temporary file in ``out_dir`` and renamed, so none is ever half-written. Returns the
    paths."""
    return write_study(Path(out_dir), "spad_chips", spad_chips("tile"), _plot, readme)


# ---------------------------------------------------------------- plot

_GROUP_COLORS = {"gemm": "tab:green", "attention": "tab:purple", "all_reduce": "tab:red",
                 "other": "tab:gray"}


def _plot(data: dict[str, Any], path: Path) -> None:
    """Top: normalised performance, pdsim (both details) against SPAD's Table 3. Bottom: time
    per step by op group, prefill and decode."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(11, 8.5), layout="constrained")
    try:
        _draw(fig, data)
        fig.savefig(path, format="png", dpi=110, metadata={"Software": None})
    finally:
        plt.close(fig)


def _draw(fig, data: dict[str, Any]) -> None:
    detail = data["detail"]
    r, rr = data["results"][detail], data["results"]["roofline"]
    axd = fig.subplot_mosaic([["norm", "norm"], ["prefill", "decode"]])
    ax = axd["norm"]
    cases = [(c, ph) for c in CHIPS if c != BASELINE for ph in PHASES]
    x = range(len(cases))
    bars = [(f"pdsim ({detail})", [r[c]["normalised"][ph] for c, ph in cases], "tab:blue", -1),
            ("pdsim (roofline)", [rr[c]["normalised"][ph] for c, ph in cases], "lightsteelblue",
             0),
            (f"SPAD Table 3 (+/- {TOLERANCE})", [PUBLISHED[c][ph] for c, ph in cases],
             "tab:orange", 1)]
    width = 0.26
    for label, values, color, pos in bars:
        xs = [i + pos * width for i in x]
        err = [TOLERANCE] * len(values) if label.startswith("SPAD") else None
        ax.bar(xs, values, width, color=color, label=label, yerr=err, capsize=3,
               error_kw={"elinewidth": 0.8, "ecolor": "black"})
        for xi, v in zip(xs, values):
            ax.text(xi, v + (TOLERANCE if err else 0) + 0.015,
                    f"{v:.2f}" if err else f"{v:.3f}", ha="center", va="bottom", fontsize=8)
    ax.axhline(1.0, color="black", ls="--", lw=1, label="h100 = 1")
    ax.set_xticks(list(x), [f"{c}\n{ph}" for c, ph in cases])
    ax.set_ylabel("performance vs h100 (h100 time / chip time)")
    ax.set_ylim(0, 1.6)
    ax.set_title("performance normalised to h100: pdsim against SPAD (arXiv 2510.08544) "
                 "Table 3")
    fig.suptitle(f"SPAD chips, BLOOM-176B, FP16, tensor parallel {TP}: prefill batch "
                 f"{PREFILL_BATCH} x {SEQ_LEN} tokens, decode batch {DECODE_BATCH} at context "
                 f"{SEQ_LEN}", fontsize=12)
    ax.legend(loc="upper center", ncol=4, fontsize=9, frameon=False)

    for ph in PHASES:
        ax = axd[ph]
        bottom = [0.0] * len(CHIPS)
        for g, label in GROUPS.items():
            ms = [r[c]["time_by_group_s"][ph][g] * 1e3 for c in CHIPS]
            ax.bar(range(len(CHIPS)), ms, 0.6, bottom=bottom, color=_GROUP_COLORS[g],
                   label=label)
            bottom = [b + v for b, v in zip(bottom, ms)]
        for i, total in enumerate(bottom):
            ax.text(i, total * 1.01, f"{total:.1f} ms", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(CHIPS)), CHIPS)
        ax.set_ylim(0, max(bottom) * 1.12)
        ax.set_ylabel(f"{ph} {'step ' if ph == 'decode' else ''}time (ms)")
        ax.set_title(f"{ph}: time by op group ({detail} detail)")
    handles, labels = axd["prefill"].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(GROUPS), fontsize=9,
               frameon=False)


# ---------------------------------------------------------------- README

def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def _pct(share: float) -> str:
    return f"{share * 100:.0f}%"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _results_table(res: dict[str, Any]) -> list[str]:
    head = ["chip", "prefill time", "decode step time"]
    for ph in PHASES:
        head += [f"{ph} vs h100", "SPAD", "abs. difference", f"within {TOLERANCE}"]
    lines = [_row(head), _row(["---"] + ["---:"] * (len(head) - 1))]
    for name in CHIPS:
        r = res[name]
        cells = [f"`{name}`", _ms(r["prefill_time_s"]), _ms(r["decode_step_time_s"])]
        for ph in PHASES:
            if name == BASELINE:
                cells += [f"{r['normalised'][ph]:.3f}", "1 (baseline)", "", ""]
            else:
                cells += [f"{r['normalised'][ph]:.3f}", f"{r['published'][ph]:.2f}",
                          f"{r['abs_difference'][ph]:.3f}",
                          "yes" if r["within_tolerance"][ph] else "**no**"]
        lines.append(_row(cells))
    return lines


def _verdict(res: dict[str, Any], detail: str) -> str:
    figs = [(res[n]["abs_difference"][ph], n, ph) for n in CHIPS if n != BASELINE
            for ph in PHASES]
    missed = [f"`{n}` {ph} ({d:.3f})" for d, n, ph in figs if d > TOLERANCE]
    worst = max(figs)
    if not missed:
        return (f"At {detail} detail all four of SPAD's figures are matched within "
                f"{TOLERANCE}; the largest difference is {worst[0]:.3f} (`{worst[1]}`, "
                f"{worst[2]}).")
    return (f"At {detail} detail {len(figs) - len(missed)} of SPAD's four figures are matched "
            f"within {TOLERANCE}; not within: {', '.join(missed)}.")


def _breakdown_table(res: dict[str, Any]) -> list[str]:
    lines = [_row(["chip", "phase", *GROUPS.values(), "total"]),
             _row(["---", "---"] + ["---:"] * (len(GROUPS) + 1))]
    for ph in PHASES:
        for name in CHIPS:
            by = res[name]["time_by_group_s"][ph]
            total = res[name][_KEY[ph]]
            lines.append(_row([f"`{name}`", ph] + [f"{_ms(by[g])} ({_pct(by[g] / total)})"
                                                   for g in GROUPS] + [_ms(total)]))
    return lines


def _cost_table(cost: dict[str, Any]) -> list[str]:
    lines = [_row(["chip", "die + memory cost", "cost vs h100", "TDP", "TDP vs h100",
                   "modeled cost vs h100", "modeled TDP",
                   "prefill perf. per cost vs h100", "decode perf. per cost vs h100"]),
             _row(["---"] + ["---:"] * 8)]
    for name in CHIPS:
        c = cost[name]
        money = (f"${c['die_cost_usd']:.0f} + ${c['memory_cost_usd']:.0f} = "
                 f"${c['cost_usd']:.0f}")
        lines.append(_row([f"`{name}`", money, f"{c['normalised_cost']:.3f}",
                           f"{c['tdp_w']:.0f} W", f"{c['normalised_tdp']:.3f}",
                           f"{c['modeled']['cost_vs_h100']:.3f}",
                           f"{c['modeled']['tdp_w']:.1f} W",
                           f"{c['performance_per_cost']['prefill']:.3f}",
                           f"{c['performance_per_cost']['decode']:.3f}"]))
    return lines


_P, _D, _H = "spad-prefill", "spad-decode", BASELINE


def _choices(data: dict[str, Any]) -> list[str]:
    """The "Modelling choices" bullets; every number in them is taken from ``data``."""
    return [_allreduce_note(data), _link_note(data), _decode_note(data), _gemm_note(data),
            _vector_note(data), _roofline_note(data), _context_note(data)]


def _without_allreduce(data: dict[str, Any], chip: str) -> str:
    a = data["analysis"][chip]
    return " / ".join(f"{a[ph]['normalised_without_allreduce']:.3f}" for ph in PHASES)


def _normalised(data: dict[str, Any], chip: str) -> str:
    r = data["results"][data["detail"]][chip]
    return " / ".join(f"{r['normalised'][ph]:.3f}" for ph in PHASES)


def _allreduce_note(data: dict[str, Any]) -> str:
    h, hw = data["analysis"][_H], data["hardware"][_H]
    return (
        f"- **The all-reduce takes the same time on every chip, which pulls every ratio "
        f"towards 1.** All three presets use one interconnect: "
        f"{hw['link_bandwidth_bytes_per_s'] / 1e9:.0f} GB/s per direction at "
        f"{_pct(hw['link_efficiency'])} link efficiency and {hw['link_latency_s'] * 1e6:.2f} us "
        f"per ring step (the H100's NVLink4 and LLMCompass's GA100 latency; SPAD's Table 3 "
        f"gives no interconnect for its chips, so pdsim assumes they keep the H100's). The "
        f"{h['prefill']['allreduce_count']} all-reduces of a step (two per layer) take "
        f"{_ms(h['prefill']['allreduce_s'])} in prefill and {_ms(h['decode']['allreduce_s'])} "
        f"in decode on every chip: {_pct(h['prefill']['allreduce_share'])} of the H100's "
        f"prefill and {_pct(h['decode']['allreduce_share'])} of its decode step. Without them "
        f"pdsim's prefill / decode figures would be {_without_allreduce(data, _P)} for the "
        f"prefill chip and {_without_allreduce(data, _D)} for the decode chip, instead of "
        f"{_normalised(data, _P)} and {_normalised(data, _D)}.")


def _link_note(data: dict[str, Any]) -> str:
    h, hw = data["analysis"][_H], data["hardware"][_H]
    return (
        f"- **Link latency dominates the decode all-reduce.** A ring all-reduce over {TP} "
        f"chips takes 2 x ({TP} - 1) = {2 * (TP - 1)} steps, each paying "
        f"{hw['link_latency_s'] * 1e6:.2f} us: {_pct(h['decode']['allreduce_latency_share'])} "
        f"of the decode all-reduce time and {_pct(h['prefill']['allreduce_latency_share'])} of "
        f"prefill's. The link's bandwidth, latency and efficiency are assumptions; a faster "
        f"link would shrink the part of the step no chip can speed up and move the figures "
        f"from the ones above towards the ones without the all-reduce.")


def _decode_note(data: dict[str, Any]) -> str:
    an, hw = data["analysis"], data["hardware"]
    r = data["results"][data["detail"]]
    got, pub = r[_P]["normalised"]["decode"], PUBLISHED[_P]["decode"]
    return (
        f"- **Decode follows DRAM bandwidth.** Outside the all-reduce, "
        f"{an[_H]['decode']['memory_bound_share_outside_allreduce'] * 100:.1f}% of the H100's "
        f"decode step is in memory-bound ops (GEMVs over the weights, attention over the KV "
        f"cache). The decode chip keeps the H100's HBM3 "
        f"({hw[_D]['memory_bandwidth_bytes_per_s'] / 1e9:.0f} GB/s), so its decode step runs "
        f"at {r[_D]['normalised']['decode']:.3f} of the H100's speed (SPAD: "
        f"{PUBLISHED[_D]['decode']:.2f}): its smaller arrays and vector units do not matter "
        f"while DRAM sets the pace. The prefill chip's GDDR7 has "
        f"{hw[_P]['memory_bandwidth_bytes_per_s'] / 1e9:.0f} / "
        f"{hw[_H]['memory_bandwidth_bytes_per_s'] / 1e9:.0f} = "
        f"{an[_P]['bandwidth_ratio']:.3f} of the bandwidth; without the all-reduce pdsim's "
        f"decode ratio is {an[_P]['decode']['normalised_without_allreduce']:.3f}, and the "
        f"all-reduce lifts it to {got:.3f}. In a two-part model (a part independent of DRAM "
        f"bandwidth plus a part that scales with it) SPAD's {pub:.2f} needs "
        f"{_pct(an[_P]['decode_fixed_share_implied_by_published'])} of the H100's decode step "
        f"to be bandwidth-independent; in pdsim that part is the all-reduce, "
        f"{_pct(an[_H]['decode']['allreduce_share'])}. Under that model this gap is what puts "
        f"pdsim's figure {abs(got - pub):.3f} {'below' if got < pub else 'above'} SPAD's; "
        f"SPAD publishes no breakdown of its decode step, so which of its costs is larger is "
        f"not known here.")


def _gemm_note(data: dict[str, Any]) -> str:
    an, hw = data["analysis"], data["hardware"]
    a = {c: an[c]["prefill"] for c in CHIPS}
    g = {c: an[c]["largest_prefill_gemm"] for c in CHIPS}
    order = (_P, _H, _D)

    def each(fmt: Callable[[str], str]) -> str:
        return " / ".join(fmt(c) for c in order)

    def array(c: str) -> str:
        return "x".join(map(str, hw[c]["array"]))

    def fold_factor(c: str) -> float:
        return a[c]["gemm_fold_efficiency"] / a[_H]["gemm_fold_efficiency"]

    def l2_factor(c: str) -> float:
        return (1 - a[c]["gemm_l2_stall_share"]) / (1 - a[_H]["gemm_l2_stall_share"])

    return (
        f"- **Prefill GEMMs: array fill and drain, then L2 stalls, set the pace, not the "
        f"peak.** The prefill chip has {an[_P]['peak_ratio']:.2f}x the H100's FP16 peak and "
        f"the decode chip {an[_D]['peak_ratio']:.2f}x, but prefill GEMMs run "
        f"{a[_H]['gemm_time_s'] / a[_P]['gemm_time_s']:.2f}x and "
        f"{a[_H]['gemm_time_s'] / a[_D]['gemm_time_s']:.2f}x as fast as on the H100. An "
        f"output-stationary fold takes k + R + C - 2 cycles (SCALE-Sim's convention), so an "
        f"array pays R + C - 2 fill and drain cycles per fold: "
        + each(lambda c: f"{sum(hw[c]['array']) - 2} on the {array(c)}")
        + " arrays of the prefill chip / H100 / decode chip. The prefill chip also has the "
        "least L1 per PE ("
        + each(lambda c: f"{hw[c]['l1_bytes_per_pe']:.0f}")
        + " B), so its mapping search settles on shorter k-steps: the biggest prefill GEMM "
        f"({g[_H]['op']}, m x n x k = {'x'.join(map(str, g[_H]['dims']))}) maps to L1 tiles of "
        + each(lambda c: f"{'x'.join(map(str, g[c]['tile']))}")
        + ", which keeps the arrays doing useful MACs for "
        + each(lambda c: _pct(g[c]["fold_useful_share"]))
        + " of each fold. Over all prefill GEMMs the arrays do useful MACs in "
        + each(lambda c: _pct(a[c]["gemm_fold_efficiency"]))
        + " of their busy cycles, and they wait on L2 -> L1 loads for "
        + each(lambda c: _pct(a[c]["gemm_l2_stall_share"]))
        + " of the GEMM time (SPAD does not publish L2 bandwidth; the SPAD presets assume the "
        f"H100's {hw[_H]['l2_bandwidth_bytes_per_cycle']:.0f} B/cycle, which is "
        + each(lambda c: f"{hw[c]['l2_bytes_per_pe_cycle']:.4f}")
        + " B per PE-cycle). Against the H100, fill and drain scale the prefill chip's GEMM "
        f"speed by {fold_factor(_P):.2f} and the decode chip's by {fold_factor(_D):.2f}; L2 "
        f"stalls by {l2_factor(_P):.2f} and {l2_factor(_D):.2f}. Prefill GEMMs reach "
        + each(lambda c: _pct(a[c]["gemm_peak_fraction"]))
        + " of FP16 peak.")


def _vector_note(data: dict[str, Any]) -> str:
    a = {c: data["analysis"][c]["prefill"] for c in CHIPS}
    return (
        f"- **Vector ops follow DRAM bandwidth too.** Norms, residual adds, GELU, the "
        f"embedding and the KV-cache write are charged all their activations in DRAM (pdsim "
        f"fuses nothing across ops), so in prefill they take {_ms(a[_P]['other_s'])} on the "
        f"prefill chip against {_ms(a[_H]['other_s'])} on the H100 "
        f"({a[_P]['other_s'] / a[_H]['other_s']:.2f}x, against a bandwidth ratio of "
        f"{1 / data['analysis'][_P]['bandwidth_ratio']:.2f}x): "
        f"{_pct(a[_P]['other_share'])} of the prefill chip's prefill time.")


def _roofline_note(data: dict[str, Any]) -> str:
    detail, hw, an = data["detail"], data["hardware"][_H], data["analysis"]
    r, rr = data["results"][detail], data["results"]["roofline"]

    def compare(c: str, what: str) -> str:
        dt = r[c]["abs_difference"]["prefill"]
        dr = rr[c]["abs_difference"]["prefill"]
        return (f"{'closer to' if dt < dr else 'further from'} SPAD's figure for {what} "
                f"({dt:.3f} against {dr:.3f})")

    gap = max(abs(r[c]["normalised"]["decode"] - rr[c]["normalised"]["decode"]) for c in CHIPS)
    return (
        f"- **{detail.capitalize()} against roofline.** The roofline charges every op "
        f"max(FLOPs / (peak x {_pct(hw['tensor_efficiency'])}), bytes / (bandwidth x "
        f"{_pct(hw['memory_efficiency'])})), so its prefill GEMMs scale with peak: it gives "
        f"{rr[_P]['normalised']['prefill']:.3f} for the prefill chip's prefill (SPAD "
        f"{PUBLISHED[_P]['prefill']:.2f}) and {rr[_D]['normalised']['prefill']:.3f} for the "
        f"decode chip's (SPAD {PUBLISHED[_D]['prefill']:.2f}). The {detail} model's "
        f"{r[_P]['normalised']['prefill']:.3f} and {r[_D]['normalised']['prefill']:.3f} are "
        f"{compare(_P, 'the prefill chip')} and {compare(_D, 'the decode chip')}: its arrays "
        f"are busier on the decode chip than on the H100 "
        f"({_pct(an[_D]['prefill']['gemm_fold_efficiency'])} against "
        f"{_pct(an[_H]['prefill']['gemm_fold_efficiency'])} of busy cycles useful, above), "
        f"which the roofline's single efficiency cannot show. In decode the two details agree "
        f"within {gap:.1e}, since both charge DRAM the same way.")


def _context_note(data: dict[str, Any]) -> str:
    r = data["results"][data["detail"]][_H]
    attn = r["time_by_group_s"]["decode"]["attention"] / r["decode_step_time_s"]
    return (
        f"- **One decode step at context {SEQ_LEN}.** SPAD gives one sequence length for both "
        f"phases; pdsim times the decode step that runs with {SEQ_LEN} tokens already cached "
        f"(batch {DECODE_BATCH}). Attention over the cache is {_pct(attn)} of the H100's "
        f"decode step, so a longer context, or a mean over a whole generation, would weigh it "
        f"more.")


def readme(data: dict[str, Any]) -> str:
    """The study's README.md text, generated from ``spad_chips``'s result."""
    detail, res, w = data["detail"], data["results"], data["workload"]
    intro = (f"Regenerate with `{COMMAND}` (code: `sim/studies/spad.py`). This README, "
             "`spad_chips.png` and `spad_chips.json` are written by that command; the numbers "
             "are regenerated, never edited by hand.")
    about = ("SPAD (arXiv 2510.08544) designs a prefill chip (bigger arrays, cheaper GDDR7) "
             "and a decode chip (less compute, the H100's HBM3) and reports their performance "
             "normalised to a modeled H100 in its Table 3. pdsim reproduces that comparison "
             "with its presets `h100`, `spad-prefill` and `spad-decode` (`sim/presets/`, built "
             "from the same table).")
    workload = [
        (f"- {w['model']}, FP16 weights, activations and KV cache, tensor parallel "
         f"{w['tensor_parallel']} (Megatron-style sharding, one ring all-reduce after attention "
         f"and one after the MLP in every layer); times are per chip, the {TP} chips in "
         f"lockstep."),
        (f"- Prefill: batch {w['prefill']['batch']} x {w['prefill']['new_tokens']} tokens on "
         f"an empty cache. Decode: one step of batch {w['decode']['batch']}, one new token per "
         f"sequence on a {w['decode']['context']}-token KV cache."),
        (f"- Performance vs h100 = h100 time / chip time (higher is better). Agreement band: "
         f"{TOLERANCE} absolute."),
    ]
    breakdown = ("Time per step by op group (share of the step in brackets). Per op: "
                 "`spad_chips.json`, `results.<detail>.<chip>.time_by_op_s`.")
    cost = ("Cost and TDP columns come from the presets (SPAD Table 3: die + memory cost, TDP). "
            "The modeled columns recompute them with SPAD's cost and TDP model "
            "(`sim/costmodel.py`: wafer cost over dies per wafer, memory $/GB, area-scaled die "
            "power plus memory power, x1.1 for regulators; `pdsim describe` shows the terms); "
            "the targets are 0.48 / 0.88 of the H100's cost and 596 / 507 W, within 5%. "
            f"Performance per cost is the {detail} normalised performance divided by the "
            "normalised cost.")
    choices = ("What drives each difference from SPAD's figures, with numbers from this run "
               f"({detail} detail unless stated; `analysis` in `spad_chips.json`):")
    lines = [
        "# SPAD chip-level study: BLOOM-176B on SPAD's prefill and decode chips", "",
        intro, "", about, "",
        "## Workload", "", *workload, "",
        f"## Result ({detail} detail)", "", *_results_table(res[detail]), "",
        _verdict(res[detail], detail), "",
        "![normalised performance and time breakdown](spad_chips.png)", "",
        "## Roofline detail, for comparison", "", *_results_table(res["roofline"]), "",
        _verdict(res["roofline"], "roofline"), "",
        f"## Where the time goes ({detail} detail)", "", breakdown, "",
        *_breakdown_table(res[detail]), "",
        "## Cost and power", "", cost, "", *_cost_table(data["cost"]), "",
        "## Modelling choices", "", choices, "", *_choices(data), "",
    ]
    return "\n".join(lines)
