"""CENT like for like (ASPLOS'25; REFERENCE.md; its public artifact Yufeng98/CENT): Llama2-7B,
13B and 70B at batch 1, 512 prompt + 3584 generated tokens, on 8, 20 and 32 GDDR6-AiM devices,
in both of CENT's mappings, next to CENT's own simulator and its GPU baseline.

Mappings. CENT's headline runs every layer tensor parallel across all devices (``tp``: pipeline
1); its other mapping pipelines the layers, one device per stage (``pp``). Both are the one
``cent`` preset with the device count set through its ``num_chips`` field and the mapping
through ``tensor_parallel`` / ``pipeline_parallel`` (`sim.api.load_system` overrides, as a
hardware file would set them): no copy of the preset per size. At batch 1 a pipeline has one
token in flight, so ``pp``'s latency is every stage in turn plus one CXL hop per boundary, as
CENT's own per-request latency is.

Figures compared: pdsim's end-to-end, prefill and decode times against CENT's simulator
(``processed_results.csv``), each against CENT's GPU baseline (``data/GPU_latency.csv``, whose
ratios are the published 6.32x / 4.65x / 3.18x), and the per-layer decode time at KV lengths
512 and 4096 against CENT's per-block PIM / CXL / accelerator split
(``simulation_results.csv``; `sim.studies.cent_data`). pdsim's ``a100`` and ``h100`` run 7B on
one GPU for reference, as before.

`cent_study` computes and touches no file; `write_cent` regenerates ``results/cent/``
(``pdsim reproduce cent``), each file through a temporary file and ``os.replace``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mappers.ir import OpKind, Phase, Precision
from mappers.models import load_model
from sim.api import load_system
from sim.engine import RunResult, Workload, simulate
from sim.presets import load_hardware
from sim.step import compile_step
from sim.studies import text_table, write_study
from sim.studies.cent_data import (CENT_BLOCK_MS, CENT_SIM_S, GPU_BASELINE_S, MAPPINGS, MODELS,
                                   PUBLISHED_SPEEDUP)
from sim.units.cid import ops as cid_ops

COMMAND = "pdsim reproduce cent"
MODEL = "llama2-7b"
GPUS = ("a100", "h100")
PROMPT, GEN, BATCH = 512, 3584, 1
DECODE_SAMPLE = 24       # simulated decode steps; the engine interpolates the rest (< 0.1%)
KV_LENGTHS = (512, 4096)

_ATTENTION = frozenset({OpKind.ATTN_SCORE, OpKind.ATTN_VALUE, OpKind.SOFTMAX, OpKind.KV_WRITE})
_LINK = frozenset({OpKind.ALL_REDUCE, OpKind.P2P})


def cent_system(devices: int, mapping: str):
    """The ``cent`` preset on ``devices`` devices in CENT's ``tp`` or ``pp`` mapping."""
    tp, pp = (devices, 1) if mapping == "tp" else (1, devices)
    return load_system("cent", tp=tp, pp=pp, overrides={"num_chips": devices})


def _workload() -> Workload:
    return Workload(batch=BATCH, prompt_tokens=PROMPT, gen_tokens=GEN, precision=Precision())


def _layer_split(model: str, system, keys: int) -> dict[str, float]:
    """Seconds of one layer of a decode step whose KV holds ``keys`` tokens, by CENT's parts:
    ``pim`` (ops on the AiM banks), ``link`` (all-reduces, and the pipeline hops spread over
    the layers), ``acc`` (the near-memory vector units), and ``attention`` (score, softmax,
    value, KV append, whatever their unit). Op costs, not the overlapped schedule."""
    cfg = load_model(model).config
    sched = compile_step(cfg, system, phase=Phase.DECODE, precision=Precision(), batch=1,
                         new_tokens=1, context=keys - 1)
    out = {"pim": 0.0, "link": 0.0, "acc": 0.0, "attention": 0.0}
    first = next(s.segment for s in sched.ops if s.segment.name == "layers")
    for s in sched.ops:
        if s.op.kind == OpKind.P2P:
            out["link"] += s.segment.repeat * s.cost.time_s / cfg.num_layers
        if s.segment is not first:
            continue
        t = s.cost.time_s
        part = "pim" if s.op.unit == "cid" else "link" if s.op.kind in _LINK else "acc"
        out[part] += t
        if s.op.kind in _ATTENTION:
            out["attention"] += t
    return out


def cent_softmax_s(tokens: int, heads: int, layers: int) -> float:
    """Softmax time per decode step by CENT's own latency formula (Yufeng98/CENT,
    cent_simulation/cent_power_calculator.py, ``Softmax_latency``): 32 channels' exponent and
    vector accelerators of 16 lanes over ``tokens x heads`` scores, then one reduction and a
    RISC-V pass per head, at 2 GHz. Its growth with ``tokens`` is exactly the growth of the
    ``Acc latency`` column of CENT's simulator (the study checks it)."""
    ch, lanes = 32.0, 16.0
    exp_cycles = ch * 1.0 + 11.0 + 1.0          # ACCEL_CYCLE["EXP"]
    vec_cycles = ch * 2.0 + 1.0 + 1.0           # ACCEL_CYCLE["VEC"]
    rv_cycles = 16.0 + 2.0 / 8 + 1.0            # RV_SFT_CYCLE_PIPELINE
    per_layer = (tokens * heads / lanes / ch * (exp_cycles + vec_cycles)
                 + heads * 1.0 + heads * rv_cycles)
    return layers * per_layer / 2e9


def _gpu(name: str) -> dict[str, Any]:
    result: RunResult = simulate(load_hardware(name).system, load_model(MODEL).config,
                                 _workload(), decode_sample=DECODE_SAMPLE)
    s = result.summary
    return {"description": result.system.description, "e2e_s": s["e2e_s"],
            "ttft_s": s["ttft_s"], "tbt_mean_s": s["tbt_mean_s"],
            "output_tokens_per_s": BATCH * GEN / s["e2e_s"],
            "energy_per_token_j": s["energy_j"] / (BATCH * GEN)}


def cent_study() -> dict[str, Any]:
    """The study's numbers (JSON-serialisable): for each model and mapping pdsim's and CENT's
    latencies, their ratio, the speed-ups over CENT's GPU baseline, and the per-layer decode
    split at two KV lengths; pdsim's GPUs on 7B; CENT's softmax formula."""
    runs: dict[str, Any] = {}
    for model, devices in MODELS:
        cfg = load_model(model).config
        for mapping in MAPPINGS:
            system = cent_system(devices, mapping)
            r = simulate(system, cfg, _workload(), decode_sample=DECODE_SAMPLE)
            s, cent = r.summary, CENT_SIM_S[(model, mapping)]
            decode_s = s["e2e_s"] - s["ttft_s"]
            layers = {}
            for keys in KV_LENGTHS:
                split = _layer_split(model, system, keys)
                pim, cxl, acc = CENT_BLOCK_MS[(model, mapping)][keys]
                layers[str(keys)] = {
                    "pdsim_s": split, "cent_s": {"pim": pim / 1e3, "link": cxl / 1e3,
                                                 "acc": acc / 1e3},
                    "cent_softmax_formula_s": cent_softmax_s(keys, cfg.num_heads, 1)}
            runs[f"{model}/{mapping}"] = {
                "model": model, "devices": devices, "mapping": mapping,
                "tensor_parallel": system.tensor_parallel,
                "pipeline_parallel": system.pipeline_parallel,
                "pdsim": {"e2e_s": s["e2e_s"], "prefill_s": s["ttft_s"], "decode_s": decode_s,
                          "energy_per_token_j": s["energy_j"] / (BATCH * GEN)},
                "cent_sim": cent,
                "pdsim_over_cent": {k: v / cent[k] for k, v in
                                    (("e2e", s["e2e_s"]), ("prefill", s["ttft_s"]),
                                     ("decode", decode_s))},
                "speedup_over_gpu_baseline": {
                    "pdsim": GPU_BASELINE_S[model] / s["e2e_s"],
                    "cent_sim": GPU_BASELINE_S[model] / cent["e2e"],
                    "published": PUBLISHED_SPEEDUP[model] if mapping == "tp" else None},
                "layer": layers,
            }
    gpus = {name: _gpu(name) for name in GPUS}
    head = runs[f"{MODEL}/tp"]["pdsim"]["e2e_s"]
    unit = load_hardware("cent").system.chip.cid
    probe = cid_ops.unit_gemv(unit, 4096, 4096, "fp16")
    return {
        "study": "cent",
        "source": "CENT (ASPLOS'25): REFERENCE.md; its simulator's figures from the public "
                  "artifact Yufeng98/CENT @8c79786 (sim/studies/cent_data.py)",
        "command": COMMAND,
        "workload": {"batch": BATCH, "prompt_tokens": PROMPT, "gen_tokens": GEN,
                     "precision": "fp16", "decode_sample": DECODE_SAMPLE},
        "runs": runs,
        "gpus": gpus,
        "speedup_over": {g: gpus[g]["e2e_s"] / head for g in GPUS},
        "published_speedup": PUBLISHED_SPEEDUP[MODEL],
        "gpu_baseline_s": GPU_BASELINE_S,
        "gemv_4096_internal_bandwidth_bytes_per_s": probe.internal_bandwidth_bytes_per_s,
    }


def write_cent(out_dir: Path) -> list[Path]:
    """Regenerate ``results/cent/``: ``cent.json``, ``cent.png`` and ``README.md``."""
    return write_study(Path(out_dir), "cent", cent_study(), _plot, readme, sort_keys=True)


def _ordered(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs in model, then mapping order (the JSON sorts its keys)."""
    return [data["runs"][f"{m}/{mp}"] for m, _ in MODELS for mp in MAPPINGS]


def _slope(run: dict[str, Any], side: str, part: str) -> float:
    """Growth (s) of one layer's ``part`` from a KV length of 512 to 4096 tokens."""
    a, b = (run["layer"][str(k)][side][part] for k in KV_LENGTHS)
    return b - a


def readme(data: dict[str, Any]) -> str:
    """The results tables and the discussion, from the numbers in ``data``."""
    runs = data["runs"]
    rows = []
    for r in _ordered(data):
        p, c, sp = r["pdsim"], r["cent_sim"], r["speedup_over_gpu_baseline"]
        pub = f"{sp['published']:.2f}x" if sp["published"] else "-"
        rows.append(f"| {r['model']} | {r['devices']} | {r['mapping']} "
                    f"(tp {r['tensor_parallel']}, pp {r['pipeline_parallel']}) | "
                    f"{p['e2e_s']:.2f} s | {c['e2e']:.2f} s | {r['pdsim_over_cent']['e2e']:.2f} | "
                    f"{p['prefill_s']:.3f} / {c['prefill']:.3f} s | "
                    f"{sp['pdsim']:.2f}x | {sp['cent_sim']:.2f}x | {pub} |")
    layer_rows = []
    for r in _ordered(data):
        lo, hi = (r["layer"][str(k)] for k in KV_LENGTHS)
        layer_rows.append(
            f"| {r['model']} {r['mapping']} | "
            + " | ".join(f"{lo[side][part] * 1e6:.1f} -> {hi[side][part] * 1e6:.1f}"
                         for part in ("pim", "link", "acc") for side in ("pdsim_s", "cent_s"))
            + f" | {lo['pdsim_s']['attention'] * 1e6:.2f} -> "
            f"{hi['pdsim_s']['attention'] * 1e6:.2f} |")
    r7 = runs[f"{MODEL}/tp"]
    r7p = runs[f"{MODEL}/pp"]
    grow = {name: (_slope(r, "cent_s", "pim") + _slope(r, "cent_s", "acc")) * 1e6
            for name, r in (("tp", r7), ("pp", r7p))}
    pim = {f"{side}_{name}": _slope(r, side, "pim") * 1e6 for side in ("cent_s", "pdsim_s")
           for name, r in (("tp", r7), ("pp", r7p))}
    e2e = [r["pdsim_over_cent"]["e2e"] for r in _ordered(data)]
    pre = [1 / r["pdsim_over_cent"]["prefill"] for r in _ordered(data)]
    header = ("| model | devices | mapping | pdsim | CENT sim | pdsim / CENT | "
              "prefill pdsim / CENT | pdsim vs GPU baseline | CENT sim vs GPU baseline | "
              "published |")
    acc_formula = _slope(r7, "cent_s", "acc")
    formula = (r7["layer"]["4096"]["cent_softmax_formula_s"]
               - r7["layer"]["512"]["cent_softmax_formula_s"])
    g = data["gpus"]
    gpu_rows = "\n".join(f"| `{n}` | {g[n]['e2e_s']:.2f} s | {g[n]['output_tokens_per_s']:.1f} | "
                          f"{g[n]['ttft_s'] * 1e3:.1f} ms | {data['speedup_over'][n]:.2f}x |"
                          for n in GPUS)
    base = data["gpu_baseline_s"]
    return f"""# CENT like for like: Llama2-7B / 13B / 70B on GDDR6-AiM devices, both mappings

Regenerate with `{data['command']}` (this folder: `cent.json`, `cent.png`, this README; under
a minute). CENT's own figures are copied from its public artifact (Yufeng98/CENT @8c79786:
`cent_simulation/processed_results.csv`, `simulation_results.csv`, `data/GPU_latency.csv`) into
`sim/studies/cent_data.py`; REFERENCE.md gives the published ratios.

Workload (CENT's): batch 1, {PROMPT} prompt + {GEN} generated tokens, fp16. Devices: 8 / 20 /
32 for 7B / 13B / 70B. Mappings: `tp` = every layer tensor parallel across all devices
(CENT's headline, pipeline 1); `pp` = layers pipelined, one device per stage (one token in
flight at batch 1). Both are the one `cent` preset with its `num_chips` field set to the
device count and `tensor_parallel` / `pipeline_parallel` to the mapping
(`sim.studies.cent.cent_system`, i.e. `sim.api.load_system("cent", tp=..., pp=...,
overrides={{"num_chips": N}})`). {DECODE_SAMPLE} decode steps are simulated per run and the rest
interpolated.

## End to end, against CENT's simulator and its GPU baseline

{header}
|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

"GPU baseline" is CENT's own (`data/GPU_latency.csv`: {base['llama2-7b']} s, {base['llama2-13b']} s,
{base['llama2-70b']} s end to end); its ratio to CENT's simulator is the published 6.32x /
4.65x / 3.18x exactly, so the published ratios are CENT-sim figures and the like-for-like
comparison is the "pdsim / CENT" column. pdsim is {1 / max(e2e):.1f}-{1 / min(e2e):.1f}x faster than
CENT's simulator on the same mapping and device count; the split below says where.

## One layer of a decode step, KV length 512 -> 4096 (us)

pdsim: op costs of one layer (`pim` = ops on the AiM banks, `link` = all-reduces and the
pipeline hops spread over the layers, `acc` = the near-memory vector units). CENT: its
simulator's per-block `PIM latency`, `CXL latency`, `Acc latency`. Last column: pdsim's
attention ops (score, softmax, value, KV append).

| run | PIM pdsim | PIM CENT | link pdsim | CXL CENT | acc pdsim | Acc CENT | pdsim attention |
|---|---|---|---|---|---|---|---|
{chr(10).join(layer_rows)}

## The attention-versus-context difference, explained

CENT's block time grows by {grow['tp']:.1f} us (7B, `tp`) and {grow['pp']:.1f} us (7B, `pp`)
from 512 to 4096 tokens; pdsim's by {_slope(r7, 'pdsim_s', 'attention') * 1e6:.1f} us and
{_slope(r7p, 'pdsim_s', 'attention') * 1e6:.1f} us. Two parts:

- **Softmax on the near-memory accelerators (CENT's `Acc`): explained exactly.** CENT's `Acc`
  column grows by {acc_formula * 1e6:.2f} us per block; CENT's own softmax latency formula
  (`cent_power_calculator.py`, `Softmax_latency`: `tokens x heads / 16 lanes / 32 channels x
  (EXP (32 + 12) + VEC (64 + 2) cycles)` at 2 GHz) grows by {formula * 1e6:.2f} us: the same
  figure (13B and 70B too: {_slope(runs['llama2-13b/tp'], 'cent_s', 'acc') * 1e6:.2f} and
  {_slope(runs['llama2-70b/tp'], 'cent_s', 'acc') * 1e6:.2f} us). In that formula each
  16-lane exponent or vector operation costs a pipeline of ~3 cycles per channel (32 + 12 and
  64 + 2 cycles), about 0.2 cycles per score on a device; pdsim's `cent` vector units run
  softmax at full lane throughput (32 x 16 lanes x 2 FLOP per cycle, 5 FLOP per score), about
  0.005 cycles per score: ~44x cheaper. Not changed here: pdsim has no pipeline-latency model
  of a vector op, and setting the lane count or FLOP rate to hit CENT's figure would be tuning.
  The difference is stated, with its size.
- **The softmax's trips through the banks (CENT's `PIM`): located, sized, not timed here.**
  CENT's `PIM` column grows by {pim['cent_s_tp']:.1f} us (`tp`) and {pim['cent_s_pp']:.1f} us
  (`pp`); pdsim's by {pim['pdsim_s_tp']:.1f} and {pim['pdsim_s_pp']:.1f} us. pdsim's attention is
  fused: each KV head's K and V stream as a GEMV at the all-bank MAC rate
  (`sim/units/cid/ops.py`, `attention`) and the scores stay in the near-memory unit. CENT's
  decode trace (`Llama.py`, `trace_only`, `trace_softmax`) sends every head's score vector
  through the banks six times per layer: stored into one bank per head
  (`store_for_EWMUL_score_only_trace`, burst by burst, `W_MEM`) with a vector of 1/sqrt(d),
  scaled there by an `EWMUL` pass, read back (`R_MEM`) for the exponent, stored again with the
  broadcast reciprocal of the sum, scaled by a second `EWMUL`, and read back for the value
  GEMV, which re-broadcasts the probabilities into the global buffers per 1 KB row. With 7B's
  32 heads on four banks of each of eight channels, that is `6 x 4 x keys / 16` = 1.5 bursts
  per key per channel, {1.5 * (KV_LENGTHS[1] - KV_LENGTHS[0]):.0f} more 32-byte bursts per channel
  from 512 to 4096 keys (at least {1.5 * (KV_LENGTHS[1] - KV_LENGTHS[0]) / 1e3:.1f} us on a
  32 GB/s x16 channel), plus two `EWMUL` passes of `4 x keys / 16` commands: a lower bound on
  a first share of CENT's PIM slope; the rest comes from its score layout (one token per
  bank, a query re-broadcast and a per-head result read-out per row of eight heads) and the
  command timing of its AiM simulator. pdsim does not model these moves (a fused kernel would
  not make them), so its attention is optimistic against CENT's mapping by about that
  difference; timing CENT's command stream itself needs its AiM simulator run.
- **The rest of the gap** is the weight GEMVs (pdsim's `pim` at 512 tokens is
  {r7['layer']['512']['pdsim_s']['pim'] * 1e6:.1f} us per 7B layer against CENT's
  {r7['layer']['512']['cent_s']['pim'] * 1e6:.1f} us on 8 devices): pdsim's command-level engine
  streams a 4096 x 4096 GEMV at {data['gemv_4096_internal_bandwidth_bytes_per_s'] / 1e12:.2f}
  TB/s per device, while CENT's trace adds the input broadcast per 1 KB row, a bias write and
  a read-out per output column per bank, and in `tp` it simulates 32 channels carrying each
  layer's share (`channel_multi_transformer_block_required`). pdsim's `tp` all-reduce (a ring
  over the CXL link, {r7['layer']['512']['pdsim_s']['link'] * 1e6:.1f} us per layer) is slower
  than CENT's CXL figure ({r7['layer']['512']['cent_s']['link'] * 1e6:.1f} us).

## Other differences from CENT's model

- Prefill runs on the PIM (CENT's design): its GEMMs hold up to 4 prompt tokens in the
  2 KB global buffer a pass (multi-token GEMMs, docs/cid.md), attention one query at a
  time; CENT's prefill is
  {min(pre):.1f}-{max(pre):.1f}x pdsim's, for the same reasons as decode.
- Uneven splits: 13B's MLP width 13824 over 20 devices is 692 columns on the busiest device
  (ceil), as CENT's `matrix_col_per_bank` rounds up; 40 heads are 2 per device.
- Energy: AiM MACs at CENT's power-calculator figures, no standby power, idle pipeline devices
  not charged: a dynamic-energy lower bound (`cent.json`).
- Micro-batching: CENT's `pp` rows also report throughput with several requests in flight;
  pdsim runs one, so only latency is compared.

## pdsim's own GPUs (Llama2-7B, one GPU)

| system | end-to-end | output tokens/s | TTFT | CENT `tp` (pdsim) speed-up over it |
|---|---|---|---|---|
{gpu_rows}

These are pdsim's `a100` and `h100` presets (tile-level model), not CENT's GPU baseline
(whose system the artifact does not describe beyond `data/GPU_*.csv`); CENT's published
{data['published_speedup']}x is against that baseline.
"""


def _plot(data: dict[str, Any], path: Path) -> None:
    """Left: end-to-end latency, pdsim against CENT's simulator, per model and mapping;
    right: one decode layer's growth from 512 to 4096 tokens by part."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = _ordered(data)
    labels = [f"{r['model'].split('-')[1]} {r['mapping']}" for r in runs]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), layout="constrained")
    try:
        x = range(len(runs))
        ax = axes[0]
        ax.bar([i - 0.2 for i in x], [r["pdsim"]["e2e_s"] for r in runs], 0.4, label="pdsim")
        ax.bar([i + 0.2 for i in x], [r["cent_sim"]["e2e"] for r in runs], 0.4,
               label="CENT simulator")
        ax.set_xticks(list(x), labels)
        ax.set_ylabel("end-to-end latency (s)")
        ax.set_yscale("log")
        ax.legend()
        ax = axes[1]
        for side, off, name in (("pdsim_s", -0.2, "pdsim"), ("cent_s", 0.2, "CENT")):
            bottom = [0.0] * len(runs)
            for part, color in (("pim", "tab:green"), ("acc", "tab:red")):
                v = [_slope(r, side, part) * 1e6 for r in runs]
                ax.bar([i + off for i in x], v, 0.4, bottom=bottom, color=color,
                       alpha=1.0 if name == "pdsim" else 0.5,
                       label=f"{name} {part}")
                bottom = [b + w for b, w in zip(bottom, v)]
        ax.set_xticks(list(x), labels)
        ax.set_ylabel("one layer's growth, 512 -> 4096 tokens (us)")
        ax.legend(fontsize=8)
        fig.suptitle(f"CENT like for like, batch 1, {PROMPT} + {GEN} tokens "
                     f"({data['command']})", fontsize=10)
        fig.savefig(path, format="png", dpi=110, metadata={"Software": None})
    finally:
        plt.close(fig)


def headline(data: dict[str, Any]) -> str:
    """Per model and mapping: pdsim's and CENT's end-to-end latency and their speed-ups over
    CENT's GPU baseline; then CENT's speed-up over pdsim's GPUs for 7B."""
    rows = [[f"{r['model']} {r['mapping']} ({r['devices']} dev)",
             f"{r['pdsim']['e2e_s']:.3g} s", f"{r['cent_sim']['e2e']:.3g} s",
             f"{r['speedup_over_gpu_baseline']['pdsim']:.2f}x",
             f"{r['speedup_over_gpu_baseline']['cent_sim']:.2f}x"]
            for r in _ordered(data)]
    pub = data["published_speedup"]
    gpus = [[name, f"{data['gpus'][name]['e2e_s']:.3g} s",
             f"{data['speedup_over'][name]:.2f}x (published {pub:g}x)"]
            for name in GPUS]
    return (text_table(["run", "pdsim", "CENT sim", "pdsim vs GPU baseline",
                        "CENT vs GPU baseline"], rows) + "\n\n"
            + text_table(["GPU (pdsim)", "end-to-end", "CENT's speed-up over it"], gpus))
