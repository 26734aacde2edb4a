"""``results/alchemist/``'s plot and README (`sim.studies.alchemist` computes the numbers)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from sim.studies import text_table
from sim.studies.alchemist import COMMAND, CONFIGS, WORKLOADS, headline

_MEMORY = ("separate", "separate_recompute", "alchemist_dram", "alchemist_offloaded")
_LABEL = {"separate": "separate trainer", "separate_recompute": "separate, full recompute",
          "alchemist_dram": "Alchemist, kept on chip",
          "alchemist_offloaded": "Alchemist, offloaded",
          "serving": "serving only", "colocated": "co-located, no reuse",
          "alchemist": "co-located + reuse (Alchemist), read all back",
          "alchemist-auto": "co-located + reuse, auto read/recompute"}


def plot(data: dict[str, Any], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    cases = [(m, w) for m in data["models"] for w in WORKLOADS]
    x = np.arange(len(cases))
    labels = [f"{m}\n{w}" for m, w in cases]
    ax = axes[0, 0]
    for k, cfg in enumerate(("separate", "colocated", "alchemist", "alchemist-auto")):
        ax.bar(x + (k - 1.5) * 0.2, [data["models"][m]["runs"][w][cfg]["tokens_per_busy_s"]
                                     for m, w in cases], 0.2,
               label=_LABEL[cfg] if cfg != "separate" else "separate training cluster")
    ax.set_title("training tokens per second of training")
    ax.set_xticks(x, labels, fontsize=8)
    _legend_above_bars(ax)
    ax = axes[0, 1]
    models = list(data["models"])
    for j, model in enumerate(models):
        mem = data["models"][model]["step"]["memory"]
        bottom = np.zeros(len(_MEMORY))
        for cls, colour in (("weights", "tab:gray"), ("gradients", "tab:blue"),
                            ("optimizer", "tab:orange"), ("activations", "tab:red")):
            v = np.array([mem[c][cls] / 1e9 for c in _MEMORY])
            ax.bar(np.arange(len(_MEMORY)) + j * 0.4, v, 0.38, bottom=bottom, color=colour,
                   label=cls if j == 0 else None, alpha=1 - 0.35 * j)
            bottom += v
    ax.set_xticks(np.arange(len(_MEMORY)) + 0.2, [_LABEL[c].replace(", ", ",\n") for c in _MEMORY],
                  fontsize=7)
    ax.set_title(f"training memory per chip, GB ({' left, '.join(models)} right)")
    ax.legend(fontsize=8)
    for ax, metric, title in ((axes[1, 0], "ttft", "TTFT"), (axes[1, 1], "tbt", "TBT")):
        for k, cfg in enumerate(CONFIGS):
            at = x + (k - 1.5) * 0.2
            ax.bar(at, [1e3 * data["models"][m]["runs"][w][cfg][f"{metric}_p99_s"]
                        for m, w in cases], 0.2, label=_LABEL[cfg])
            ax.plot(at, [1e3 * data["models"][m]["runs"][w][cfg][f"{metric}_p50_s"]
                         for m, w in cases], "k_", ms=8)
        ax.set_title(f"{title} p99 (bars) and p50 (ticks), ms")
        ax.set_xticks(x, labels, fontsize=8)
        _legend_above_bars(ax)
    fig.suptitle("Alchemist on one h100: online LoRA training beside serving")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


def _legend_above_bars(ax) -> None:
    """A two-column legend in headroom added above the tallest bar (so it hides no bar)."""
    ax.set_ylim(0, ax.get_ylim()[1] * 1.4)
    ax.legend(fontsize=8, ncol=2, loc="upper left")


def _fill(text: str, first: str = "", rest: str = "") -> str:
    return textwrap.fill(" ".join(text.split()), 92, initial_indent=first,
                         subsequent_indent=rest)


def _runs_table(runs: dict[str, Any]) -> str:
    rows = []
    for cfg in (*CONFIGS, "separate"):
        r = runs[cfg]
        reuse = r.get("reuse") or {}
        lat = ([f"{1e3 * r[k]:.2f}" for k in ("ttft_p50_s", "ttft_p99_s", "tbt_p50_s",
                                              "tbt_p99_s")] if cfg != "separate"
               else ["(serving only)"] + [""] * 3)
        rows.append([_LABEL.get(cfg, "separate training cluster"), *lat,
                     f"{r.get('train_tokens', 0):,}", f"{r.get('train_busy_s', 0):.2f}",
                     f"{r.get('tokens_per_busy_s', 0):,.0f}",
                     f"{reuse.get('reused_tokens', 0):,}", f"{reuse.get('hedged_recomputes', 0)}",
                     f"{reuse.get('dropped_samples', 0)}"])
    return text_table(["configuration", "TTFT p50 ms", "p99", "TBT p50 ms", "p99",
                       "trained tokens", "training s", "tokens / training s",
                       "reused tokens", "hedged", "dropped"], rows)


def _step_table(data: dict[str, Any]) -> str:
    rows = []
    for model, m in data["models"].items():
        st, mem = m["step"], m["step"]["memory"]
        rows.append([model, f"{1e3 * st['step_s']['none']:.1f}",
                     f"{1e3 * st['step_s']['full']:.1f}", f"{1e3 * st['step_s']['reuse']:.1f}",
                     f"{st['recompute_share']:.0%}", f"{st['recompute_share_vs_full']:.0%}",
                     f"{st['full_ft_recompute_share']:.0%}"]
                    + [f"{mem[c]['total'] / 1e9:.2f} ({mem[c]['activations'] / 1e9:.2f})"
                       for c in _MEMORY]
                    + [f"{st['max_step_tokens'][c]:,}" for c in
                       ("separate", "separate_recompute", "alchemist_offloaded")])
    return text_table(["model", "step ms", "recompute ms", "reuse ms", "skipped",
                       "vs recompute", "full FT skipped"]
                      + [f"{_LABEL[c]} GB (act.)" for c in _MEMORY]
                      + ["max tokens: separate", "recompute", "offloaded"], rows)


def _readback_table(data: dict[str, Any]) -> str:
    rows = []
    for model, m in data["models"].items():
        st, rb = m["step"], m["step"]["readback"]
        rows.append([model, f"{1e3 * st['step_s']['none']:.1f}",
                     f"{1e3 * st['step_s']['reuse']:.1f}",
                     f"{1e3 * st['step_s']['readback']:.1f}", f"{rb['bytes'] / 1e9:.2f}",
                     f"{1e3 * rb['layer_transfer_s']:.3f} / {1e3 * rb['layer_backward_s']:.3f}",
                     f"{1e3 * rb['exposed_s']:.1f}",
                     f"{rb['breakeven_pcie_bytes_per_s'] / 1e9:.1f}",
                     f"{rb['breakeven_record_bytes_per_token'] / 1e6:.2f}"
                     f" (of {st['record_bytes_per_token'] / 1e6:.2f})"])
        auto = rb["auto"]
        rows.append([f"  auto: {auto['layers_read_back']} of {auto['layers']} read back", "",
                     "", f"{1e3 * st['step_s']['readback_auto']:.1f}",
                     f"{auto['bytes'] / 1e9:.2f}",
                     f"forward {1e3 * auto['layer_forward_s']:.3f}",
                     f"{1e3 * auto['exposed_s']:.1f}", "",
                     f"recorded {auto['record_bytes_per_token'] / 1e6:.2f}"])
    return text_table(["model", "step ms", "reuse on chip ms", "reuse read back ms",
                       "GB read back", "a layer: transfer / backward ms", "exposed ms",
                       "break-even GB/s", "break-even MB a token"], rows)


def _throughput(data: dict[str, Any]) -> str:
    """The throughput bullet, its wording following the sign of the read-back's effect."""
    m7 = next(iter(data["models"].values()))
    st, r7, rb = m7["step"], m7["ratios"], m7["step"]["readback"]
    sg, az = (m7["runs"][k]["alchemist"]["reuse"] for k in WORKLOADS)
    gbs = data["pcie_bytes_per_s"] / 1e9
    tokens = data["train"]["batch"] * data["train"]["seq"]
    fwd = (st["flops"]["none"]["forward"] - st["flops"]["reuse"]["forward"]) / tokens
    saved = (st["step_s"]["none"] - st["step_s"]["reuse"]) / tokens
    back = st["record_bytes_per_token"] / data["pcie_bytes_per_s"]
    why = (f"skipping the forward saves {fwd / 1e9:.1f} GFLOP a token, "
           f"{1e6 * saved:.0f} us a token on the chip, while the records cost "
           f"{st['record_bytes_per_token'] / 1e6:.2f} MB a token, {1e6 * back:.0f} us a token "
           f"at {gbs:g} GB/s; per layer of a {tokens}-token step the transfer takes "
           f"{1e3 * rb['layer_transfer_s']:.2f} ms against {1e3 * rb['layer_backward_s']:.2f}"
           f" ms of backward")
    if r7["step_x_readback"] < 1:
        verdict = (f"With the records read back over PCIe at {gbs:g} GB/s the reuse step is "
                   f"slower than recomputing ({r7['step_x_readback']:.2f}x): {why}, so the "
                   f"link, not the chip, sets the step and "
                   f"{1e3 * rb['exposed_s']:.1f} ms of transfer is exposed. Reuse breaks even "
                   f"at {rb['breakeven_pcie_bytes_per_s'] / 1e9:.0f} GB/s, or at {gbs:g} GB/s "
                   f"with records of {rb['breakeven_record_bytes_per_token'] / 1e6:.2f} MB a "
                   f"token (table below).")
    else:
        verdict = (f"Read back over PCIe at {gbs:g} GB/s it keeps {r7['step_x_readback']:.2f}x"
                   f" ({why}; {1e3 * rb['exposed_s']:.1f} ms of transfer exposed); it would "
                   f"fall to 1x at {rb['breakeven_pcie_bytes_per_s'] / 1e9:.0f} GB/s.")
    auto = rb["auto"]
    n, layers, xa = auto["layers_read_back"], auto["layers"], r7["step_x_readback_auto"]
    f, c, x = auto["layer_forward_s"], rb["layer_backward_s"], rb["layer_transfer_s"]
    if n == layers:
        mix = "reads every layer back: recomputing none would be faster"
    elif n == 0:
        mix = "reads no layer back: it recomputes every layer's forward from its recorded input"
    else:
        whose = ("the one whose transfer hides under the work before it" if n == 1
                 else "those whose transfers hide under the work before them")
        mix = (f"reads {n} of {layers} layers back ({whose}) and "
               f"recomputes the other {layers - n} from their recorded input")
    # Reading every other layer back pays when a read layer's transfer fits under the
    # recomputed layer's forward and backward before it plus the forward it saves.
    alternate = 2 * f + c
    pays = "under" if x < alternate else "over"
    gain = ("slower than" if xa < 1 else "no faster than" if xa < 1.005
            else "faster than")
    beside = ", ".join(f"{r7[w]['busy_x_separate_auto']:.2f}x ({name})"
                       for w, name in zip(WORKLOADS, ("ShareGPT", "Azure")))
    mixed = (f"The per-layer policy a real system would use (`readback: auto`, "
             f"`mappers.readback_mix`) {mix}: {xa:.2f}x, {gain} recomputing everything, "
             f"{beside} per second of training beside serving over the separate trainer, "
             f"recording "
             f"{auto['record_bytes_per_token'] / 1e6:.2f} MB a token instead of "
             f"{st['record_bytes_per_token'] / 1e6:.2f}. Reading every other layer back "
             f"pays when a layer's transfer is under its own forward plus the recomputed "
             f"layer's forward and backward before it: {1e3 * x:.2f} ms is {pays} "
             f"{1e3 * alternate:.2f} ms here.")
    busy = [r7[w]["busy_x_separate"] for w in WORKLOADS]
    if min(busy) > r7["step_x_readback"]:
        served = (f"Beside serving the figure is above the read-back step's because hedging "
                  f"recomputes late samples ({sg['hedged_recomputes']} on ShareGPT, "
                  f"{az['hedged_recomputes']} on Azure: a step starts the moment the prefill "
                  f"that completes it ends, its offload still on the link) and a step reading "
                  f"fewer tokens back exposes less than its share of the transfer (once a "
                  f"layer's transfer is under its backward, only the first one shows).")
    else:
        served = (f"Beside serving the figure stays under the read-back step's: hedging "
                  f"recomputes late samples ({sg['hedged_recomputes']} on ShareGPT, "
                  f"{az['hedged_recomputes']} on Azure) at the full step's rate.")
    return f"""**Training throughput: {r7['step_x']:.2f}x for a step whose tokens are all reused
        with their records on the chip (the bound), {r7['step_x_readback']:.2f}x read back
        from the host, {busy[0]:.2f}x (ShareGPT) and {busy[1]:.2f}x (Azure) per second of
        training beside serving over the separate trainer, against up to 1.72x.** {verdict}
        {served} {mixed} Per second of wall time both co-located jobs train what the served prompts
        supply; the separate cluster trains all of it on a chip of its own, while the
        co-located jobs train {r7['azure-conv']['tokens_share_colocated']:.0%} (no reuse) and
        {r7['azure-conv']['tokens_share_alchemist']:.0%} (Alchemist) of Azure's long prompts
        within their share of the serving chip (Alchemist dropped {az['dropped_samples']}
        samples when the host's 250 GB filled)."""


def _chunks(m: dict[str, Any]) -> str:
    """Whether reuse lengthens or shortens training's chunks, from the step times."""
    st = m["step"]["step_s"]
    if st["readback"] > st["none"]:
        return (", and under reuse a chunk is longer than without (the step reading its records "
                "back takes longer than recomputing, and a chunk is a fixed share of it)")
    return ", shorter under reuse (a chunk is a fixed share of a shorter step)"


def readme(data: dict[str, Any]) -> str:
    t = data["train"]
    w = data["workloads"]
    m7 = next(iter(data["models"].values()))
    r7 = m7["ratios"]
    sg, az = (m7["runs"][k]["alchemist"]["reuse"] for k in WORKLOADS)
    mem = m7["step"]["memory"]
    lo, hi = data["paper"]["recompute_share"]
    between = ("the paper's range lies between pdsim's two fine-tuning modes"
               if m7["step"]["full_ft_recompute_share"] < lo and r7["recompute_share"] > hi
               else "against the paper's range above")
    def _slow(model: str) -> str:
        return f"{data['models'][model]['runs']['sharegpt']['serving']['tbt_slow_share']:.2%}"

    def _p99_over_p50(model: str) -> str:
        run = data["models"][model]["runs"]["sharegpt"]["serving"]
        return f"{run['tbt_p99_s'] / run['tbt_p50_s']:.2f}x"

    setup = f"""Setup (fixed before any run, nothing tuned to the paper; the paper's own setup
        beyond its abstract is not in pdsim's references): {', '.join(data['models'])} on one
        `{data['hardware']}` (tp 1, vLLM batching, roofline step tables). Workloads of
        {data['duration_s']:g} s: ShareGPT-like lengths (`sim.serving.sharegpt`: vLLM's
        published means, 161.31 prompt and 337.99 output tokens; this draw
        {w['sharegpt']['mean_prompt_tokens']:.0f} and {w['sharegpt']['mean_output_tokens']:.0f})
        at {data['sharegpt_rate']:g} requests/s (Poisson), and the Azure conversation trace's
        first {data['duration_s']:g} s ({w['azure-conv']['requests']} requests, mean prompt
        {w['azure-conv']['mean_prompt_tokens']:.0f} tokens). Training: LoRA rank
        {t['lora_rank']} on {'/'.join(t['lora_targets'])}, fp32 AdamW, steps of {t['batch']} x
        {t['seq']} tokens packed from the served prompts only (`data: served`), in idle time
        and up to {data['share']:.0%} of the time under load. Alchemist records every prefill
        and offloads it over PCIe at {data['pcie_bytes_per_s'] / 1e9:g} GB/s to 250 GB of host
        memory (oldest dropped when full). The separate training cluster is a chip of its own
        training every served prompt at `pdsim train`'s full-step rate; its serving cluster is
        the `serving only` run."""
    bullets = [
        f"""**Recomputation share: {r7['recompute_share']:.0%} of a LoRA step against
        30-42%.** pdsim's reuse step drops the embedding's and every layer's forward
        (docs/training.md); under LoRA the backward through the frozen base GEMMs is `dX`
        only, one forward's worth, so the forward is about half of the step. Under full
        fine-tuning the backward is twice the forward, and the AdamW update over every
        parameter (28 B of DRAM traffic each) dominates a {t['batch']} x {t['seq']}-token
        step, so the share falls to {m7['step']['full_ft_recompute_share']:.0%}
        ({between}). A measured step also pays costs pdsim does not model (launches, the data
        loader, framework bookkeeping), which dilute the share.""",
        _throughput(data),
        f"""**Training memory: {r7['memory_saving']:.0%} less than the separate trainer,
        against up to 47%.** Offloading leaves {data['resident_layers']} layers of recorded
        activations on the chip: activations fall from
        {mem['separate']['activations'] / 1e9:.2f} GB to
        {mem['alchemist_offloaded']['activations'] / 1e9:.2f} GB, but with LoRA the frozen
        base weights ({mem['separate']['weights'] / 1e9:.1f} GB) dominate a {t['batch']} x
        {t['seq']}-token step's total. Larger steps or longer sequences move the figure
        towards the activations' saving; the paper's step sizes are not known here.
        Without offloading (kept on chip) the recorded activations are the separate trainer's
        own, so nothing is saved.""",
        f"""**Training tokens a step can hold: {r7['tokens_x']:.1f}x against up to 2x.** With
        the chip's memory less the fixed state over the bytes per token, the offloaded step is
        bounded by the host's 250 GB of recorded activations
        ({m7['step']['record_bytes_per_token'] / 1e6:.2f} MB a token), the separate trainer by
        all its layers' activations on the chip. A separate trainer that recomputes holds more
        than either (table below): the paper's comparison point is not stated.""",
        f"""**Serving latency: TTFT p99 {r7['sharegpt']['ttft_p99_x']:.2f}x (ShareGPT) and
        {r7['azure-conv']['ttft_p99_x']:.2f}x (Azure), TBT p99
        {r7['sharegpt']['tbt_p99_x']:.2f}x and {r7['azure-conv']['tbt_p99_x']:.2f}x over
        serving alone, against negligible.** Most of it is training's chunks run between
        serving iterations (the co-located run without reuse shows it too){_chunks(m7)}; the
        recording adds
        {az['added_prefill_s']:.2f} s to Azure's prefill iterations over the run, writing
        {m7['step']['record_bytes_per_token'] / 1e6:.2f} MB a prompt token at the chip's DRAM
        bandwidth. On ShareGPT at 2 requests/s, TBT p99 sits near the share of token gaps a
        prefill holds up (vLLM batching runs a waiting prefill before the next decode step;
        gaps over 1.5x the median, serving only: {', '.join(
            f"{m} {_slow(m)}" for m in data['models'])}), so p99 lands on a plain decode step
        when that share is under 1% and on a step with a prefill when it is over: TBT p99 over
        p50 serving alone, {', '.join(f"{m} {_p99_over_p50(m)}" for m in data['models'])}.""",
    ]
    limits = """Not modelled: a trainer that re-chooses, step by step, which layers to read
        back (`readback: auto` chooses once per model and chip, for a full step of reused
        tokens), the samples' DRAM before their offload ends, a sample's attention context
        across a split between steps, data-parallel gradient exchange between instances, and
        the paper's own models, GPUs and step sizes (not in pdsim's references)."""
    gbs = f"{data['pcie_bytes_per_s'] / 1e9:g} GB/s"
    readback_intro = f"""Each layer's records come back over PCIe at {gbs} into two layer
        buffers, overlapping the backward of the layer before (`mappers.readback`; the first
        transfers overlap the head's forward and backward). `break-even`: the PCIe bandwidth,
        or at {gbs} the record size a token, at which the read-back exposes exactly the time
        skipping the forward saves. `auto` rows: the mix of read-back and recomputed layers
        (`mappers.readback_mix`; a recomputed layer's forward time in the transfer column, its
        recorded input the only bytes it reads back)."""
    per_model = "\n\n".join(
        f"### {model}: {wk}\n\n```\n{_runs_table(m['runs'][wk])}\n```"
        for model, m in data["models"].items() for wk in WORKLOADS)
    return f"""# Alchemist: training on serving's activations (regenerated by `{COMMAND}`)

Huang, Liu, Gunawi, Li and Hwang, "Alchemist: Towards the Design of Efficient Online Continual
Learning System", arXiv 2503.01066 (2025). Every number comes from `alchemist.json`; the setup
is in `sim/studies/alchemist.py`, the mechanisms in `sim/serving/training.py`,
`sim/serving/samples.py` and docs/serving.md ("Reusing serving's activations").

{_fill(setup)}

## pdsim beside the paper

```
{headline(data)}
```

![training throughput, memory, TTFT and TBT](alchemist.png)

## Differences, from the model

{chr(10).join(_fill(b, "* ", "  ") for b in bullets)}

{_fill(limits)}

## The training step alone (one chip)

`skipped`: share of the LoRA step's time the reuse step saves (`vs recompute`: against a step
with full recomputation; `full FT`: under full fine-tuning). Memory in GB (activations in
brackets); `max tokens`: the largest step that fits (module docstring).

```
{_step_table(data)}
```

## Reading the records back (one chip, records offloaded)

{_fill(readback_intro)}

```
{_readback_table(data)}
```

## Every run

{per_model}
"""
