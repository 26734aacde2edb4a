"""README and picture of ``results/spad-cluster/`` (`sim.studies.spad_cluster`): every
sentence with a number is made from the study's data, so the README regenerates with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sim.studies import text_table
from sim.studies.spad_cluster import BASELINES, CLUSTERS, SLO_MULTIPLIERS

LABEL = {"h100-collocated": "H100, collocated (Sarathi)",
         "h100-splitwise": "H100 + H100, disaggregated (Splitwise)",
         "spad": "SPAD prefill + SPAD decode chips"}
COLOR = {"prefill": "tab:blue", "decode": "tab:orange", "collocated": "tab:gray"}


def plot(data: dict[str, Any], path: Path) -> None:
    """Per trace: each cluster's hardware cost split by pool (bars) and its TDP (dots)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    traces = list(data["traces"])
    fig, axes = plt.subplots(1, len(traces), figsize=(5.5 * len(traces), 4.2),
                             layout="constrained", squeeze=False)
    try:
        for ax, trace in zip(axes[0], traces):
            _draw(ax, data, trace)
        fig.savefig(path, format="png", dpi=110, metadata={"Software": None})
    finally:
        plt.close(fig)


def _draw(ax, data: dict[str, Any], trace: str) -> None:
    clusters = data["traces"][trace]["clusters"]
    price = {hw: c["cost_usd"] * data["tp"] for hw, c in data["chips"].items()}
    names = [n for n in CLUSTERS if clusters[n]["met"]]
    for x, name in enumerate(names):
        bottom = 0.0
        for g in clusters[name]["groups"]:
            height = g["count"] * price[g["hardware"]] / 1e3
            ax.bar(x, height, bottom=bottom, color=COLOR[g["role"]], edgecolor="black",
                   label=g["role"] if x == len(names) - 1 or g["role"] == "collocated" else None)
            ax.text(x, bottom + height / 2, f"{g['count']} x {g['hardware']}", ha="center",
                    va="center", fontsize=7)
            bottom += height
    ax.set_xticks(range(len(names)), [n.replace("-", "\n", 1) for n in names], fontsize=8)
    ax.set_ylabel("hardware cost (k$)")
    tdp = ax.twinx()
    tdp.plot(range(len(names)), [clusters[n]["tdp_w"] / 1e3 for n in names], "kD",
             label="TDP")
    tdp.set_ylabel("TDP (kW)")
    tdp.set_ylim(bottom=0)
    ax.set_title(f"{trace} at {data['rate_rps']:g} req/s, {data['model']}", fontsize=9)
    handles, labels = ax.get_legend_handles_labels()
    h2, l2 = tdp.get_legend_handles_labels()
    ax.legend(handles + h2, labels + l2, fontsize=7, loc="upper right")


def _size(c: dict[str, Any]) -> str:
    return " + ".join(f"{g['count']} {g['hardware']} ({g['role']})" for g in c["groups"])


def _cluster_rows(t: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name in CLUSTERS:
        c = t["clusters"][name]
        if not c["met"]:
            rows.append([name, c["why"], *["-"] * 9])
            continue
        rows.append([name, _size(c), str(c["chips"]), f"${c['cost_usd']:,.0f}",
                     f"{c['tdp_w'] / 1e3:,.1f}",
                     *(f"{c['slowdown_' + k]:.2f}" for k in SLO_MULTIPLIERS),
                     ", ".join(f"{r} {u:.0%}" for r, u in c["utilisation_mean"].items()),
                     str(c["runs"])])
    return rows


def _saving_rows(data: dict[str, Any]) -> list[list[str]]:
    rows = []
    lo, hi = data["spad_reported_tdp_saving"]
    for trace, t in data["traces"].items():
        for b in BASELINES:
            s = t["spad_saving"].get(b)
            if s is None:
                rows.append([trace, b, "-", "-", "-", "-"])
                continue
            reported = t["spad_reported_cost_saving"] if b == "h100-splitwise" else None
            rows.append([trace, b, f"{s['cost_usd']:.0%}",
                         f"{reported:.0%}" if reported is not None else "-",
                         f"{s['tdp_w']:.0%}", f"{lo:.0%} to {hi:.0%}" if reported else "-"])
    return rows


def readme(data: dict[str, Any]) -> str:
    chips = data["chips"]
    chip_rows = [[hw, f"${c['cost_usd']:,.0f}", f"${c['published_cost_usd']:,}",
                  f"{c['tdp_w']:,.0f}"] for hw, c in chips.items()]
    slo = ", ".join(f"{k.replace('_p', ' P')} {v:g}x" for k, v in data["slo_multipliers"].items())
    traces = data["traces"]
    gbps = data["link"]["bandwidth_bytes_per_s"] / 1e9
    parts = [f"""# SPAD cluster study: the cheapest clusters meeting the SLOs, H100 vs SPAD chips

Regenerate with `{data['command']}` (code: `sim/studies/spad_cluster.py`, report:
`sim/studies/spad_cluster_report.py`). This README, `spad_cluster.png` and `spad_cluster.json`
are written by that command; nothing here is edited by hand.

SPAD (Zhang, Patel, Ning and Wentzlaff, "SPAD: Specialized Prefill and Decode Hardware for
Disaggregated LLM Inference", arXiv 2510.08544) sizes clusters of 8-chip machines for the
Azure LLM inference traces 2023 at 70 requests/s and reports that prefill-chip + decode-chip
clusters meet the same SLOs as modeled H100 clusters at 19% (conversation) to 41% (coding)
lower hardware cost and 2% to 17% lower TDP. pdsim repeats the exercise with its own serving
simulator (`sim/serving/`, docs/serving.md), its chip presets `h100`, `spad-prefill` and
`spad-decode`, and SPAD's cost and TDP model (`sim/costmodel.py`).

## Set-up

- Model {data['model']}, FP16, tensor parallel {data['tp']}: one instance per 8-chip
  machine. Step times from the {data['detail']} chip model through the step-time tables.
- Workload per trace: Poisson arrivals at {data['rate_rps']:g} requests/s for
  {data['duration_s']:g} s (seed {data['seed']}), prompt and output lengths drawn from the
  trace.
- SLOs (SPAD's, on each request's slowdown over the same request alone on one H100 machine,
  as SplitwiseSim measures them): {slo}. A request's TBT is the time from its first token
  to its last over its later tokens, so a wait for a decode slot counts.
- Clusters: `h100-collocated` (Sarathi-Serve chunked prefill, a {data['sarathi_budget']}-token
  budget); `h100-splitwise` (H100 prefill machines and H100 decode machines, vLLM batching in
  each, the KV cache handed over each machine's own {gbps:g} GB/s port); `spad` (the same
  with SPAD prefill-chip and decode-chip machines). Routing: least loaded.
- Sizing: `pdsim serve plan`'s search (`sim.serving.plan`) for the cheapest counts, at most
  {data['max_count']} machines a pool, that complete every request within every SLO.

Chip prices and TDP (SPAD's model as pdsim applies it; SPAD Table 3's die + memory cost
beside it):

{text_table(["chip", "cost", "SPAD Table 3", "TDP W"], chip_rows)}
"""]
    for trace, t in traces.items():
        u = t["unbatched_h100_s"]
        parts.append(f"""## {trace}

Slowdowns are the P90 and P99 over requests; "busy" is each pool's mean share of the run
spent in iterations; "runs" counts the planner's simulations.

{t['requests']} requests, mean prompt {t['prompt_tokens_mean']:,.0f} tokens, mean output
{t['output_tokens_mean']:,.0f}. Unbatched H100 machine: TTFT median {u['ttft_p50'] * 1e3:.1f} ms
(P90 {u['ttft_p90'] * 1e3:.1f} ms), TBT median {u['tbt_p50'] * 1e3:.2f} ms.

{text_table(["cluster", "machines", "chips", "cost", "TDP kW",
             *(k.replace("_p", " P") for k in SLO_MULTIPLIERS), "busy (mean)", "runs"],
            _cluster_rows(t))}
""")
    parts.append(f"""## SPAD's saving: pdsim against the paper

{text_table(["trace", "baseline", "pdsim cost saving", "SPAD reports", "pdsim TDP saving",
             "SPAD reports (TDP)"], _saving_rows(data))}

SPAD's figures are against its modeled H100 baseline clusters; the Splitwise-style
disaggregated H100 cluster is the like-for-like one (same design, other chips), so SPAD's
numbers stand beside that row.

{_discussion(data)}
""")
    return "\n".join(parts)


def _discussion(data: dict[str, Any]) -> str:
    traces = data["traces"]
    shares = []
    for trace, t in traces.items():
        c = t["clusters"]["spad"]
        if c["met"]:
            pre = c["counts"].get("prefill", 0)
            shares.append(f"{trace} {pre} of {c['machines']}")
    util = []
    for trace, t in traces.items():
        c = t["clusters"]["h100-splitwise"]
        if c["met"]:
            util.append(f"{trace} {c['utilisation_mean'].get('prefill', 0):.0%}")
    chips = data["chips"]
    pre_ratio = chips["spad-prefill"]["cost_usd"] / chips["h100"]["cost_usd"]
    dec_ratio = chips["spad-decode"]["cost_usd"] / chips["h100"]["cost_usd"]
    pre_speed = chips["h100"]["prefill_2048_s"] / chips["spad-prefill"]["prefill_2048_s"]
    dec_speed = chips["h100"]["decode_64x1024_s"] / chips["spad-decode"]["decode_64x1024_s"]
    return f"""### Why pdsim's savings differ

- **Where the machines go.** A SPAD prefill-chip machine costs {pre_ratio:.0%} of an H100
  machine and a decode-chip machine {dec_ratio:.0%}, so the saving is mostly the prefill
  pool's. Here the sized SPAD clusters are mostly prefill machines ({', '.join(shares)}),
  so the saving is close to the prefill chip's. With {data['model']}'s grouped-query KV
  cache one decode machine holds hundreds of sequences. A cluster that spends more of its
  budget on decode machines (a model with a larger KV cache a token, such as the BLOOM-176B
  of SPAD's chip study, needs more of them) saves less overall, since decode chips save
  less; SPAD's smaller savings point that way.
- **Prefill pools are sized by the tail, not the load.** The H100 prefill machines of the
  Splitwise cluster are busy only {', '.join(util)} of the time: the P99 TTFT slowdown (short
  prompts queued behind long ones) sets their number. The prefill chip's faster prefill
  shortens that queue, and its lower price does the rest.
- **Chip model.** Step times here use the roofline model with the presets' efficiencies: a
  prefill-chip machine prefills a 2048-token prompt {pre_speed:.2f}x as fast as an H100
  machine and a decode-chip machine runs a 64-sequence decode step at {dec_speed:.2f}x. SPAD
  used LLMCompass's tile-level simulation (for BLOOM-176B): 1.08x and 0.97x in its Table 3.
  The prefill chip gains a little more here, the decode chip loses nothing.
  `results/spad/` compares the chip models step by step.
- **Integer machines.** Pools of one to a few machines make each saving a ratio of small
  integers: one machine more or less moves it by tens of percent.
- **Collocated baseline.** With chunked prefill a short prompt shares each iteration with a
  2048-token chunk, so its TTFT slowdown is large unless each machine has little to do: the
  collocated clusters need far more machines than either disaggregated one, and SPAD's saving
  against them is the largest.
- **SLO and workload details.** Arrivals are Poisson at the paper's rate for
  {data['duration_s']:g} s, not the paper's exact schedule; the slowdown SLOs follow
  SplitwiseSim's definitions, each machine's KV hand-over port is its InfiniBand (one
  transfer at a time out of a prefill machine and into a decode machine), and the Sarathi
  budget is fixed, not searched. None of these was tuned to SPAD's result.
"""
