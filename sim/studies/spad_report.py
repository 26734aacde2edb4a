"""The report of SPAD's chip-level study (`sim.studies.spad`): the README text (result tables,
verdicts, time breakdown, cost, and the "Modelling choices" notes) and the plot, both pure
functions of `spad_chips`'s result: every number in them is taken from it. `write_spad_chips`
writes them to ``results/spad/``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sim.studies import write_study
from sim.studies.spad import (BASELINE, CHIPS, COMMAND, DECODE_BATCH, GROUPS, PHASES,
                              PREFILL_BATCH, PUBLISHED, SEQ_LEN, TIME_KEY, TOLERANCE, TP,
                              spad_chips)
from sim.studies.spad import headline  # noqa: F401 (`pdsim reproduce` looks for it here)


# ---------------------------------------------------------------- plot

_GROUP_COLORS = {"gemm": "tab:green", "attention": "tab:purple", "all_reduce": "tab:red",
                 "other": "tab:gray"}


def plot(data: dict[str, Any], path: Path) -> None:
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
            total = res[name][TIME_KEY[ph]]
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
            _vector_note(data), _roofline_note(data), _context_note(data),
            _overlap_note(data)]


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


def _overlap_note(data: dict[str, Any]) -> str:
    res = data["results"][data["detail"]]
    hidden = {c: res[c]["time_by_op_s"]["prefill"]["kv_write"] for c in CHIPS}
    return (
        "- **Units overlap only where the dataflow lets them.** The scheduler gives the arrays, "
        "vector units, DMA engines and link a timeline each (`mappers/schedule.py`). On these "
        "chips every op reads the one before it, except in prefill, where attention reads K "
        "and V straight from the QKV projection and the cache write runs on the DMA engines "
        "beside it: " + " / ".join(_ms(hidden[c]) for c in CHIPS) + " (" + " / ".join(CHIPS)
        + ") of busy time off the critical path. The breakdown above counts busy time, so a "
        "prefill's groups add up to that much more than its total; decode is one chain.")


def readme(data: dict[str, Any]) -> str:
    """The study's README.md text, generated from ``spad_chips``'s result."""
    detail, res, w = data["detail"], data["results"], data["workload"]
    intro = (f"Regenerate with `{COMMAND}` (code: `sim/studies/spad.py`, report: "
             "`sim/studies/spad_report.py`). This README, "
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


def write_spad_chips(out_dir: Path) -> list[Path]:
    """Regenerate the study in ``out_dir``: ``README.md`` (tables and the modelling choices),
    ``spad_chips.png`` and ``spad_chips.json`` (every number). Each file is written to a
    temporary file in ``out_dir`` and renamed, so none is ever half-written. Returns the
    paths."""
    return write_study(Path(out_dir), "spad_chips", spad_chips("tile"), plot, readme)

