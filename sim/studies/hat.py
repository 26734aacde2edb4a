"""HAT (Xie et al., "A Novel Hat-Shaped Device-Cloud Collaborative Inference Framework for
Large Language Models", arXiv 2503.18989, 2025) on pdsim: 30 Jetson devices sharing an 8-GPU
A6000 server through U-shaped splits with speculative decoding and prompt chunking
(`sim.hat`; docs/edge.md, "HAT").

From the paper's abstract: 30 NVIDIA Jetson devices, one server with 8 NVIDIA A6000 GPUs,
TTFT 41-54% and TBT 41-77% lower than the baselines. Everything else below is a CHOSEN
parameter, fixed before running and not tuned to the paper (its setup section could not be
read here): which Jetsons (15 AGX Orin 64 GB + 15 Orin NX 16 GB), the WAN (the shipped `wan`
preset, 100 Mb/s and 20 ms one way, and a 1 Gb/s variant), k = m = 2 layers on the device,
a one-layer adapter, the device-only model (TinyLlama-1.1B), gamma = 4 drafts a round,
acceptance 0.8 per drafted token (the i.i.d. model of `sim.speculative`), the requests (each
device runs `REQUESTS` requests back to back, prompt and output lengths drawn from the Azure
conversation trace, capped), fp16 throughout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sim.studies import text_table, write_study

COMMAND = "pdsim reproduce hat"
MODELS = ("llama2-7b", "llama2-13b")
#: Device-only baseline: a small Llama-2-architecture model whole on each device (the paper's
#: "device-only small model"; TinyLlama-1.1B, Llama 2's layer structure and tokenizer at 1.1B).
DEVICE_MODEL = "tinyllama-1.1b"
DEVICES = ("jetson-agx-orin-64gb",) * 15 + ("jetson-orin-nx-16gb",) * 15
CLOUD, CLOUD_GPUS = "a6000", 8
NETS = {"wan-100M": {"bandwidth_bytes_per_s": 12.5e6, "latency_s": 0.02},
        "wan-1G": {"bandwidth_bytes_per_s": 125e6, "latency_s": 0.02}}
K, M, ADAPTER, GAMMA, ACCEPT = 2, 2, 1, 4, 0.8
REQUESTS, MAX_PROMPT, MAX_GEN, SEED = 4, 2048, 256, 0
MODES = ("hat", "hat-nochunk", "ushape", "cloud", "device")
LABELS = {"hat": "HAT", "hat-nochunk": "HAT, one chunk", "ushape": "U-shape (no chunks, no spec.)",
          "cloud": "cloud-only", "device": f"device-only ({DEVICE_MODEL})"}
BASELINES = ("ushape", "cloud", "device")
#: The paper's headline: reductions of HAT against its baselines (abstract).
PAPER = {"ttft_reduction": [0.41, 0.54], "tbt_reduction": [0.41, 0.77]}


def jobs(n_devices: int = len(DEVICES)):
    """Every device's requests: lengths from azure-conv (prompt <= `MAX_PROMPT`, output <=
    `MAX_GEN`), first start uniform in [0, 2) s, seeded."""
    from sim.hat import Job
    from sim.serving.workload import load_trace

    trace = load_trace("azure-conv")
    rng = np.random.default_rng(SEED)
    pick = rng.integers(len(trace), size=(n_devices, REQUESTS))
    starts = rng.uniform(0.0, 2.0, size=n_devices)
    return [Job(d, float(starts[d]), min(trace[i].prompt_tokens, MAX_PROMPT),
                min(trace[i].output_tokens, MAX_GEN))
            for d in range(n_devices) for i in pick[d]]


def setup(model: str, net: str):
    from mappers.hat import UShape
    from mappers.models import load_model
    from sim.edge import NetLink
    from sim.hat import HatSetup
    from sim.presets import load_hardware

    cfg = load_model(model).config
    return HatSetup(model=cfg, devices=tuple(load_hardware(d).system for d in DEVICES),
                    cloud=load_hardware(CLOUD).system, cloud_gpus=CLOUD_GPUS,
                    link=NetLink(name=net, **NETS[net]),
                    split=UShape(num_layers=cfg.num_layers, first=K, last=M, adapter=ADAPTER),
                    gamma=GAMMA, accept=ACCEPT, seed=SEED,
                    device_model=load_model(DEVICE_MODEL).config)


def _params(model: str) -> dict[str, int]:
    from mappers.models import load_model

    return load_model(model).config.parameter_counts()


def _draft_params(model: str) -> int:
    """Weights one HAT draft step reads on the device: k + m + adapter layers and the LM head
    (the embedding reads one row)."""
    c = _params(model)
    return (K + M + ADAPTER) * c["per_layer"] + c["final_norm"] + (c["lm_head"] or
                                                                   c["embedding"])


def _summary(outs) -> dict[str, Any]:
    ttft = np.array([o.ttft_s for o in outs])
    tbt = np.array([o.tbt_s for o in outs if o.job.gen > 1])
    kinds = ("device", "transfer", "waiting", "cloud")
    return {"ttft_mean_s": float(ttft.mean()), "ttft_p90_s": float(np.percentile(ttft, 90)),
            "tbt_mean_s": float(tbt.mean()), "tbt_p90_s": float(np.percentile(tbt, 90)),
            "ttft_split_s": {k: float(np.mean([o.ttft_split[k] for o in outs])) for k in kinds},
            "tbt_split_s": {k: float(np.mean([o.tbt_split[k] for o in outs if o.tbt_split]))
                            for k in kinds},
            "uplink_mb_per_request": float(np.mean([o.uplink_bytes for o in outs]) / 1e6),
            "chunks": sorted({o.chunk for o in outs})}


def hat() -> dict[str, Any]:
    """Every model, link and mode (module docstring)."""
    from sim.hat import Runner

    js = jobs()
    out: dict[str, Any] = {
        "command": COMMAND, "paper": PAPER, "devices": list(DEVICES), "cloud": CLOUD,
        "cloud_gpus": CLOUD_GPUS, "nets": NETS, "k": K, "m": M, "adapter_layers": ADAPTER,
        "gamma": GAMMA, "accept": ACCEPT, "device_model": DEVICE_MODEL,
        "device_model_params": _params(DEVICE_MODEL)["total"],
        "draft_step_params": {m: _draft_params(m) for m in MODELS},
        "requests": len(js), "prompt_mean": float(np.mean([j.prompt for j in js])),
        "gen_mean": float(np.mean([j.gen for j in js])), "runs": {}}
    for model in MODELS:
        for net in NETS:
            s = setup(model, net)
            rows = {}
            for mode in MODES:
                runner = Runner(s, mode)
                rows[mode] = _summary(runner.run(js))
                rows[mode]["makespan_s"] = runner.makespan_s
                rows[mode]["cloud_utilisation"] = float(np.mean(
                    [i.busy_s for i in runner.instances]) / runner.makespan_s) \
                    if mode != "device" else 0.0
            base = rows["hat"]
            rows["reduction"] = {b: {"ttft": 1 - base["ttft_mean_s"] / rows[b]["ttft_mean_s"],
                                     "tbt": 1 - base["tbt_mean_s"] / rows[b]["tbt_mean_s"]}
                                 for b in BASELINES}
            out["runs"][f"{model} {net}"] = rows
    # the (k, m) planner for the mean request on each device type (100 Mb/s)
    from sim.hat import plan_split

    prompt, gen = round(out["prompt_mean"]), round(out["gen_mean"])
    out["planner"] = {"prompt": prompt, "gen": gen, "choices": {}}
    for model in MODELS:
        s = setup(model, "wan-100M")
        for hw in sorted(set(DEVICES)):
            split, e2e = plan_split(s, DEVICES.index(hw), prompt, gen)
            out["planner"]["choices"][f"{model} {hw}"] = {"k": split.first, "m": split.last,
                                                          "e2e_s": e2e}
    return out


def headline(data: dict[str, Any]) -> str:
    rows = []
    for key, r in data["runs"].items():
        for b in BASELINES:
            red = r["reduction"][b]
            rows.append([key, LABELS[b], f"{100 * red['ttft']:+.0f}%",
                         f"{100 * red['tbt']:+.0f}%"])
    p = data["paper"]
    rows.append(["paper", "its baselines",
                 f"{100 * p['ttft_reduction'][0]:.0f}..{100 * p['ttft_reduction'][1]:.0f}%",
                 f"{100 * p['tbt_reduction'][0]:.0f}..{100 * p['tbt_reduction'][1]:.0f}%"])
    return text_table(["run", "HAT vs", "TTFT reduction", "TBT reduction"], rows)


def write_hat(out_dir: Path) -> list[Path]:
    """Regenerate ``results/hat/`` (``pdsim reproduce hat``)."""
    from sim.studies.hat_report import plot, readme

    return write_study(Path(out_dir), "hat", hat(), plot, readme)


__all__ = ["COMMAND", "headline", "hat", "write_hat"]
