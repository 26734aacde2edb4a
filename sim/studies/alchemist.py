"""Alchemist (Huang et al., "Alchemist: Towards the Design of Efficient Online Continual
Learning System", arXiv 2503.01066, 2025) on pdsim: online LoRA training beside serving on one
``h100``, reusing the activations serving's prefills recorded (docs/serving.md, "Reusing
serving's activations"; docs/training.md).

Setup (fixed before any run, nothing tuned to the paper's figures; the paper's own setup
beyond its abstract is not in pdsim's references):

* Models ``MODELS`` (Llama-class), one ``h100`` instance (tp 1), vLLM batching, roofline
  step tables.
* Workloads over ``DURATION_S`` seconds: ShareGPT-like lengths (`sim.serving.sharegpt`,
  vLLM's published means) with Poisson arrivals at ``SHAREGPT_RATE``, and the Azure
  conversation trace's first ``DURATION_S`` seconds (its own arrivals and lengths).
* Training job ``TRAIN``: LoRA rank 16 on q and v, fp32 AdamW, steps of 2 x 512 tokens
  packed from the served prompts only (``data: served``: online learning on user feedback),
  a step starting once they fill it; training takes idle time and, under load, up to
  ``SHARE`` of the time (one chunk per layer).
* Configurations, each one run of the same serving simulator on the same requests:
  ``serving`` (no training), ``colocated`` (training without reuse), ``alchemist``
  (``reuse: activations``, samples offloaded over PCIe at ``PCIE_BYTES_PER_S`` to the host's
  default 250 GB, oldest dropped). ``separate``: the training-only chip of a separate
  training cluster (`sim.train.train_step`, no serving) training every served prompt (whole
  steps of them) at the full step's rate, beside the ``serving`` run.
* The reuse step, alone: with the records on the chip, and offloaded, read back over PCIe
  at ``PCIE_BYTES_PER_S`` layer by layer in backward order (`mappers.readback`: two layer
  buffers, each layer's transfer overlapping the backward of the layer before). The PCIe
  bandwidth (and, at ``PCIE_BYTES_PER_S``, the record size per token) at which the read-back
  eats exactly what skipping the forward saves is solved from that schedule
  (`mappers.readback.breakeven_transfer_s`).
* Memory (per chip, bytes): the step's by class (`mappers.train_memory`) for the separate
  trainer without and with full recomputation, and for Alchemist with the recorded
  activations kept on the chip or offloaded, reloaded layer by layer in backward order with
  ``RESIDENT_LAYERS`` layers on the chip (the one whose backward runs and the next loading).
  Tokens a step can hold: the chip's memory at the KV budget's 0.9 less the fixed state
  over the bytes per token (offloaded: also the host's 250 GB over the recorded bytes).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from mappers.readback import BUFFERS

COMMAND = "pdsim reproduce alchemist"
MODELS = ("llama2-7b", "llama3-8b")
HARDWARE = "h100"
SHAREGPT_RATE = 2.0
DURATION_S = 300.0
SEED = 0
SHARE = 0.2
#: PCIe 5.0 x16 (an H100 SXM's host link, 64 GB/s a direction) at 0.8 efficiency, rounded.
PCIE_BYTES_PER_S = 5.0e10
#: Layers of records on the chip while offloaded ones are read back: the one whose backward
#: runs and the next loading (double buffering).
RESIDENT_LAYERS = BUFFERS
TRAIN = {"batch": 2, "seq": 512, "lora_rank": 16, "lora_targets": ["q", "v"], "share": SHARE,
         "data": "served"}
WORKLOADS = ("sharegpt", "azure-conv")
CONFIGS = ("serving", "colocated", "alchemist")
#: The paper's headline figures (abstract; REFERENCE.md).
PAPER = {"recompute_share": [0.30, 0.42], "throughput_x": 1.72, "memory_saving": 0.47,
         "tokens_x": 2.0, "serving_latency": "negligible"}


def cluster(model: str, config: str) -> dict:
    """The cluster file (as data) of one configuration."""
    out: dict[str, Any] = {"model": model, "instances": [
        {"hardware": HARDWARE, "role": "collocated", "batching": "vllm"}]}
    if config == "colocated":
        out["training"] = dict(TRAIN)
    elif config == "alchemist":
        out["training"] = {**TRAIN, "reuse": "activations", "pcie_bytes_per_s": PCIE_BYTES_PER_S}
    return out


def serving_run(model: str, config: str, requests, tables: dict) -> dict[str, Any]:
    """One serving run's latency and training figures (seconds, tokens/s)."""
    from sim.serving.cluster import parse_cluster
    from sim.serving.run import serve

    import numpy as np

    res, s = serve(requests, parse_cluster(cluster(model, config), "alchemist study"), {},
                   tables=tables)
    row = {k: s[k] for k in ("completed", "requests", "ttft_p50_s", "ttft_p99_s", "tbt_p50_s",
                             "tbt_p99_s")}
    # Share of token gaps over 1.5x the median: the decode steps a prefill (or a training
    # chunk) held up; p99 lands on one side or the other of this share.
    tbts = np.concatenate([np.asarray(q.tbts, dtype=float) for q in res.sequences])
    row["tbt_slow_share"] = float((tbts > 1.5 * np.median(tbts)).mean()) if tbts.size else 0.0
    t = s.get("training")
    if t is not None:
        reuse = t.get("reuse", {})
        row.update(train_tokens=t["tokens"], train_tokens_per_s=t["tokens_per_s"],
                   train_busy_s=t["busy_s"], train_steps=t["steps"],
                   tokens_per_busy_s=t["tokens"] / t["busy_s"] if t["busy_s"] else 0.0,
                   split_samples=t["split_samples"],
                   reuse={k: reuse[k] for k in (
                       "reused_steps", "reused_tokens", "hedged_recomputes",
                       "recorded_sequences", "dropped_samples", "added_prefill_s",
                       "peak_sample_bytes")} if reuse else None)
    return row


def step_figures(model_name: str) -> dict[str, Any]:
    """The training step alone on one chip: times, recompute share, memory by class, tokens a
    step can hold (module docstring)."""
    from mappers.readback import breakeven_transfer_s
    from mappers.train import TrainSpec
    from sim.api import load_model, load_system
    from sim.serving.cluster import DEFAULT_PRECISION, MEMORY_UTILISATION
    from sim.serving.samples import HOST_BYTES_PER_CHIP
    from sim.train import train_step

    model, system = load_model(model_name), load_system(HARDWARE)
    prec = DEFAULT_PRECISION
    spec = TrainSpec(batch=TRAIN["batch"], seq=TRAIN["seq"], lora_rank=TRAIN["lora_rank"],
                     lora_targets=tuple(TRAIN["lora_targets"]))
    reuse = replace(spec, reuse="activations")
    runs = {name: train_step(system, model, s, precision=prec, detail="roofline",
                             pcie_bytes_per_s=pcie)
            for name, s, pcie in (("none", spec, None),
                                  ("full", replace(spec, recompute="full"), None),
                                  ("reuse", reuse, None), ("readback", reuse, PCIE_BYTES_PER_S))}
    none, pre = runs["none"].memory, runs["readback"].prefetch
    fixed = none.weights + none.gradients + none.optimizer
    memory = {"separate": none.as_dict(), "separate_recompute": runs["full"].memory.as_dict(),
              "alchemist_dram": runs["reuse"].memory.as_dict(),
              "alchemist_offloaded": runs["readback"].memory.as_dict()}
    room = MEMORY_UTILISATION * system.chip.memory.capacity_bytes - fixed
    tokens = spec.tokens
    per_token = {"separate": none.activations / tokens,
                 "separate_recompute": runs["full"].memory.activations / tokens,
                 "alchemist_offloaded": runs["readback"].memory.activations / tokens}
    max_tokens = {k: int(room // v) for k, v in per_token.items()}
    recorded_per_token = model.num_layers * pre.layer_bytes_per_token
    # Break-even: the per-layer transfer at which the read-back exposes exactly the time
    # skipping the forward saves; as a bandwidth, and as a record size at PCIE_BYTES_PER_S.
    x_even = breakeven_transfer_s(pre, runs["none"].time_s - runs["reuse"].time_s)
    layer_bytes = pre.layer_bytes_per_token * tokens
    readback = {"layer_transfer_s": pre.transfer_s(tokens), "layer_backward_s": pre.layer_s,
                "lead_s": pre.lead_s, "exposed_s": runs["readback"].readback_s,
                "bytes": pre.bytes(tokens),
                "breakeven_pcie_bytes_per_s": layer_bytes / x_even,
                "breakeven_record_bytes_per_token":
                    x_even * PCIE_BYTES_PER_S * model.num_layers / tokens}
    max_tokens["alchemist_offloaded"] = min(max_tokens["alchemist_offloaded"],
                                            int(HOST_BYTES_PER_CHIP // recorded_per_token))
    # Full fine-tuning, for its recompute share only (its fp32 AdamW state does not fit)
    full_ft = {k: train_step(system, model, replace(s, lora_rank=None), precision=prec,
                             detail="roofline").time_s
               for k, s in (("none", spec), ("reuse", replace(spec, reuse="activations")))}
    return {"step_s": {k: r.time_s for k, r in runs.items()},
            "full_ft_step_s": full_ft,
            "full_ft_recompute_share": 1 - full_ft["reuse"] / full_ft["none"],
            "tokens_per_s": {k: r.tokens_per_s for k, r in runs.items()},
            "flops": {k: r.flops for k, r in runs.items()},
            "recompute_share": 1 - runs["reuse"].time_s / runs["none"].time_s,
            "recompute_share_vs_full": 1 - runs["reuse"].time_s / runs["full"].time_s,
            "readback": readback, "memory": memory, "max_step_tokens": max_tokens,
            "record_bytes_per_token": recorded_per_token}


def alchemist() -> dict[str, Any]:
    """Every model, workload and configuration (module docstring)."""
    import numpy as np

    from sim.serving.run import requests_for

    out: dict[str, Any] = {"command": COMMAND, "paper": PAPER, "hardware": HARDWARE,
                           "duration_s": DURATION_S, "sharegpt_rate": SHAREGPT_RATE,
                           "share": SHARE, "train": TRAIN, "pcie_bytes_per_s": PCIE_BYTES_PER_S,
                           "resident_layers": RESIDENT_LAYERS, "workloads": {}, "models": {}}
    reqs = {"sharegpt": requests_for("sharegpt", rate=SHAREGPT_RATE, duration_s=DURATION_S,
                                     seed=SEED),
            "azure-conv": requests_for("azure-conv", rate=None, duration_s=DURATION_S)}
    for w, rs in reqs.items():
        out["workloads"][w] = {"requests": len(rs),
                               "mean_prompt_tokens": float(np.mean([r.prompt_tokens for r in rs])),
                               "mean_output_tokens": float(np.mean([r.output_tokens for r in rs]))}
    tables: dict = {}
    for model in MODELS:
        step = step_figures(model)
        runs = {w: {c: serving_run(model, c, rs, tables) for c in CONFIGS}
                for w, rs in reqs.items()}
        sep = step["tokens_per_s"]["none"]
        step_tokens = TRAIN["batch"] * TRAIN["seq"]
        for w, rows in runs.items():  # every served prompt, trained on a chip of its own
            tokens = sum(r.prompt_tokens for r in reqs[w]) // step_tokens * step_tokens
            rows["separate"] = {"train_tokens": tokens, "train_busy_s": tokens / sep,
                                "tokens_per_busy_s": sep}
        out["models"][model] = {"step": step, "runs": runs, "ratios": _ratios(step, runs)}
    return out


def _ratios(step: dict, runs: dict) -> dict[str, Any]:
    """pdsim's counterparts of the paper's headline figures."""
    mem = step["memory"]
    out: dict[str, Any] = {
        "recompute_share": step["recompute_share"],
        "step_x": step["step_s"]["none"] / step["step_s"]["reuse"],
        "step_x_readback": step["step_s"]["none"] / step["step_s"]["readback"],
        "memory_saving": 1 - mem["alchemist_offloaded"]["total"] / mem["separate"]["total"],
        "tokens_x": step["max_step_tokens"]["alchemist_offloaded"]
        / step["max_step_tokens"]["separate"]}
    for w, rows in runs.items():
        a, c, s = rows["alchemist"], rows["colocated"], rows["separate"]
        base = rows["serving"]
        out[w] = {"busy_x_separate": a["tokens_per_busy_s"] / s["tokens_per_busy_s"],
                  "busy_x_colocated": a["tokens_per_busy_s"] / c["tokens_per_busy_s"],
                  "tokens_x_colocated": a["train_tokens"] / c["train_tokens"],
                  "tokens_share_alchemist": a["train_tokens"] / s["train_tokens"],
                  "tokens_share_colocated": c["train_tokens"] / s["train_tokens"],
                  "ttft_p99_x": a["ttft_p99_s"] / base["ttft_p99_s"],
                  "tbt_p99_x": a["tbt_p99_s"] / base["tbt_p99_s"]}
    return out


def headline(data: dict[str, Any]) -> str:
    from sim.studies import text_table

    p = data["paper"]
    rows = [["recompute share of a step", f"{p['recompute_share'][0]:.0%}-"
             f"{p['recompute_share'][1]:.0%}"] + [f"{m['ratios']['recompute_share']:.0%}"
                                                  for m in data["models"].values()],
            ["training throughput (step, all reused, on chip)", f"up to {p['throughput_x']}x"]
            + [f"{m['ratios']['step_x']:.2f}x" for m in data["models"].values()],
            [f"  read back over PCIe at {data['pcie_bytes_per_s'] / 1e9:g} GB/s", ""]
            + [f"{m['ratios']['step_x_readback']:.2f}x" for m in data["models"].values()]]
    for w in WORKLOADS:
        rows.append([f"  {w}: tokens/busy s vs separate", ""]
                    + [f"{m['ratios'][w]['busy_x_separate']:.2f}x"
                       for m in data["models"].values()])
    rows += [["training memory saved", f"up to {p['memory_saving']:.0%}"]
             + [f"{m['ratios']['memory_saving']:.0%}" for m in data["models"].values()],
             ["training tokens a step holds", f"up to {p['tokens_x']:g}x"]
             + [f"{m['ratios']['tokens_x']:.2f}x" for m in data["models"].values()]]
    for w in WORKLOADS:
        rows.append([f"  {w}: TTFT / TBT p99 vs no training", "negligible"]
                    + [f"{m['ratios'][w]['ttft_p99_x']:.2f}x / {m['ratios'][w]['tbt_p99_x']:.2f}x"
                       for m in data["models"].values()])
    return text_table(["Alchemist", "paper"] + list(data["models"]), rows)


def write_alchemist(out_dir: Path) -> list[Path]:
    """Regenerate ``results/alchemist/`` (``pdsim reproduce alchemist``)."""
    from sim.studies import write_study
    from sim.studies.alchemist_report import plot, readme

    return write_study(Path(out_dir), "alchemist", alchemist(), plot, readme)
