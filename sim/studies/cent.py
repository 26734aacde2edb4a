"""CENT's headline workload (ASPLOS'25; REFERENCE.md): Llama2-7B at batch 1, 512 prompt tokens
and 3584 generated, on 8 GDDR6-AiM devices, against the ``a100`` and ``h100`` presets.

Parallelism: CENT pipelines Llama2-7B's 32 layers over its 8 devices (4 layers each; its
power calculator maps transformer blocks to channel groups of devices). At batch 1 a pipeline
has one token in flight, so a token's latency is every stage run in turn, each on its own
device's 32 channels, plus one device-to-device hop of the hidden state per stage boundary (7
per forward pass). The ``cent`` preset says so (``pipeline_parallel: 8``; one device = one
pdsim chip, everything placed on the AiM banks and the near-memory units) and
`sim.engine.simulate` charges the stages and the hops (``p2p`` ops on the preset's CXL link);
this study reads the engine's figures as they are. The GPUs run the model on one chip (tensor
parallel 1: 7B fits), as CENT's batch-1 baseline.

`cent_study` computes and touches no file; `write_cent` regenerates ``results/cent/``
(``pdsim reproduce cent``), each file through a temporary file and ``os.replace``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mappers.ir import OpKind, Precision
from mappers.models import load_model
from sim.engine import RunResult, Workload, simulate
from sim.units.cid import ops as cid_ops
from sim.presets import load_hardware

from sim.studies import text_table, write_study

COMMAND = "pdsim reproduce cent"
MODEL = "llama2-7b"
SYSTEMS = ("cent", "a100", "h100")
PROMPT, GEN, BATCH = 512, 3584, 1
DECODE_SAMPLE = 48       # simulated decode steps; the engine interpolates the rest (< 0.1%)

#: REFERENCE.md (CENT): batch-1 latency speed-up over its GPU baseline for Llama2-7B. The
#: baseline GPU system is not in REFERENCE.md.
PUBLISHED_SPEEDUP = 6.32

_GROUP = {OpKind.GEMM: "GEMV / GEMM", OpKind.LM_HEAD: "GEMV / GEMM",
          OpKind.ATTN_SCORE: "attention", OpKind.ATTN_VALUE: "attention",
          OpKind.SOFTMAX: "attention", OpKind.KV_WRITE: "KV append",
          OpKind.P2P: "pipeline hops (CXL)"}


def _run(name: str) -> RunResult:
    system = load_hardware(name).system
    workload = Workload(batch=BATCH, prompt_tokens=PROMPT, gen_tokens=GEN,
                        precision=Precision())
    return simulate(system, load_model(MODEL).config, workload, decode_sample=DECODE_SAMPLE)


def _decode_breakdown(result: RunResult) -> dict[str, float]:
    """Seconds of the last simulated decode step by op group, repeats included."""
    step = [s for s in result.steps[1:] if s.schedule is not None][-1]
    out: dict[str, float] = {}
    for s in step.schedule.ops:
        group = _GROUP.get(s.op.kind, "norms, RoPE, activations (vector units)")
        out[group] = out.get(group, 0.0) + s.segment.repeat * s.cost.time_s
    return out


def _hop_seconds(result: RunResult) -> float:
    """Seconds the engine charged to pipeline hops (``p2p`` ops) over the run: the prefill's
    and every decode step's, interpolated steps at their neighbours' (constant) figure."""
    def hops(step) -> float:
        return sum(s.segment.repeat * s.cost.time_s for s in step.schedule.ops
                   if s.op.kind == OpKind.P2P)

    decode = [s for s in result.steps[1:] if s.schedule is not None]
    per_decode_step = hops(decode[0]) if decode else 0.0  # one token: the same every step
    return hops(result.steps[0]) + per_decode_step * (len(result.steps) - 1)


def cent_softmax_s(tokens: int, heads: int, layers: int) -> float:
    """Softmax time per decode step by CENT's own latency formula (Yufeng98/CENT,
    cent_simulation/cent_power_calculator.py, ``Softmax_latency``): 32 channels' exponent and
    vector accelerators of 16 lanes over ``tokens x heads`` scores, then one reduction and a
    RISC-V pass per head, at 2 GHz; for comparison with pdsim's lane-throughput model."""
    ch, lanes = 32.0, 16.0
    exp_cycles = ch * 1.0 + 11.0 + 1.0          # ACCEL_CYCLE["EXP"]
    vec_cycles = ch * 2.0 + 1.0 + 1.0           # ACCEL_CYCLE["VEC"]
    rv_cycles = 16.0 + 2.0 / 8 + 1.0            # RV_SFT_CYCLE_PIPELINE
    per_layer = (tokens * heads / lanes / ch * (exp_cycles + vec_cycles)
                 + heads * 1.0 + heads * rv_cycles)
    return layers * per_layer / 2e9


def cent_study() -> dict[str, Any]:
    """The study's numbers (JSON-serialisable): per system end-to-end latency, tokens/s,
    energy per token, TTFT and TBT, decode time by op group; CENT's pipeline hops (inside
    the engine's figures); the speed-ups against CENT's published 6.32x."""
    model = load_model(MODEL).config
    systems: dict[str, Any] = {}
    for name in SYSTEMS:
        result = _run(name)
        s = result.summary
        e2e, energy = s["e2e_s"], s["energy_j"]
        systems[name] = {
            "description": result.system.description,
            "ttft_s": s["ttft_s"],
            "tbt_mean_s": s["tbt_mean_s"],
            "tbt_first_s": result.steps[1].time_s,
            "tbt_last_s": result.steps[-1].time_s,
            "pipeline_stages": result.system.pipeline_parallel,
            "pipeline_hops_s": _hop_seconds(result),
            "e2e_s": e2e,
            "output_tokens_per_s": BATCH * GEN / e2e,
            "energy_j": energy,
            "energy_per_token_j": energy / (BATCH * GEN),
            "decode_breakdown_s": _decode_breakdown(result),
            "decode_memory_bound_fraction": s["decode_memory_bound_fraction"],
        }
    cent = systems["cent"]
    speedups = {g: systems[g]["e2e_s"] / cent["e2e_s"] for g in ("a100", "h100")}
    unit = load_hardware("cent").system.chip.cid
    device = cid_ops.unit_device(unit)
    probe = cid_ops.unit_gemv(unit, 4096, 4096, "fp16")
    last_ctx = PROMPT + GEN - 1
    attention_last = cent["decode_breakdown_s"].get("attention", 0.0)
    aim = {"gemv_4096_internal_bandwidth_bytes_per_s": probe.internal_bandwidth_bytes_per_s,
           "cent_formula_softmax_last_step_s": cent_softmax_s(last_ctx, model.num_heads,
                                                              model.num_layers),
           "pdsim_attention_last_step_s": attention_last,
           "peak_internal_bandwidth_bytes_per_s":
               cid_ops.peak_internal_bytes_per_s(device, unit.mode),
           "refresh_fraction": device.timing.tRFC / device.timing.tREFI}
    return {
        "study": "cent",
        "source": "CENT (ASPLOS'25), REFERENCE.md; Yufeng98/CENT simulator figures in the "
                  "dram preset",
        "command": COMMAND,
        "workload": {"model": MODEL, "batch": BATCH, "prompt_tokens": PROMPT,
                     "gen_tokens": GEN, "precision": "fp16", "decode_sample": DECODE_SAMPLE,
                     "cent_devices": load_hardware("cent").system.pipeline_parallel,
                     "cent_parallelism": "pipeline (layers)",
                     "gpu_parallelism": "one GPU (tensor parallel 1)"},
        "systems": systems,
        "speedup_over": speedups,
        "aim_device": aim,
        "published_speedup": PUBLISHED_SPEEDUP,
    }


def write_cent(out_dir: Path) -> list[Path]:
    """Regenerate ``results/cent/``: ``cent.json``, ``cent.png`` and ``README.md``."""
    return write_study(Path(out_dir), "cent", cent_study(), _plot, readme, sort_keys=True)


def readme(data: dict[str, Any]) -> str:
    """The results table and the discussion, from the numbers in ``data``."""
    sy = data["systems"]
    rows = "\n".join(
        f"| `{n}` | {sy[n]['e2e_s']:.2f} s | {sy[n]['output_tokens_per_s']:.1f} | "
        f"{sy[n]['energy_per_token_j']:.3f} J | {sy[n]['ttft_s'] * 1e3:.1f} ms | "
        f"{sy[n]['tbt_first_s'] * 1e3:.3f} / {sy[n]['tbt_last_s'] * 1e3:.3f} ms |"
        for n in SYSTEMS)
    c = sy["cent"]
    br = "\n".join(f"| {g} | {t * 1e3:.3f} ms | {t / sum(c['decode_breakdown_s'].values()):.0%} |"
                   for g, t in sorted(c["decode_breakdown_s"].items(), key=lambda kv: -kv[1]))
    sp = data["speedup_over"]
    aim = data["aim_device"]
    return f"""# CENT: Llama2-7B decode on GDDR6-AiM devices

Regenerate with `{data['command']}` (this folder: `cent.json`, `cent.png`, this README).

Workload (CENT's, REFERENCE.md): Llama2-7B, batch 1, {PROMPT} prompt tokens, {GEN} generated,
fp16 weights, activations and KV cache. `{DECODE_SAMPLE}` evenly spaced decode steps are
simulated and the rest interpolated (the engine's fast mode; its error is below 0.1%).

| system | end-to-end | output tokens/s | energy / token | TTFT | TBT first / last |
|---|---|---|---|---|---|
{rows}

`cent` is {sp['a100']:.2f}x faster end to end than `a100` and {sp['h100']:.2f}x faster than
`h100` here. CENT reports {data['published_speedup']}x over its GPU baseline for Llama2-7B at
batch 1 (REFERENCE.md; the baseline system is not given there).

## Parallelism

CENT pipelines the 32 layers over 8 devices (4 layers per device). At batch 1 only one token is
in flight, so the latency is every stage in turn, each on its device's 32 channels, plus one hop
of the hidden state per stage boundary: 7 hops per forward pass over the preset's CXL link
({c['pipeline_hops_s'] * 1e3:.2f} ms in total here). The pdsim `cent` preset says exactly that
(`pipeline_parallel: {c['pipeline_stages']}`; each chip is one device whose matrix products and
attention run on the AiM banks and whose other ops run on the near-memory vector units), and
`sim.engine.simulate` charges the stages and the hops (`p2p` ops on the link), so `pdsim run
--hw cent` gives these figures; each device's capacity is checked against its own stage's
weights and KV cache. Micro-batch overlap (several batches in flight) is not modelled; at
batch 1 there is none. The GPUs run the whole model on one chip (tensor parallel 1; 7B fits
in 80 GB).

## Where `cent`'s decode step goes (last simulated step)

| op group | time | share |
|---|---|---|
{br}

## Against CENT's figures, and why they differ

- Matrix products on AiM are costed by the command-level engine (`sim/units/cid/engine.py`): all-bank MACs
  every tCCD_AB = 1 ns (CENT's tCCDL), row switches (tRCD + tRP + tRTP per 2 KB row) and
  refresh (tRFC / tREFI = {aim['refresh_fraction']:.1%}) included, so a 4096 x 4096 GEMV
  streams at {aim['gemv_4096_internal_bandwidth_bytes_per_s'] / 1e12:.2f} TB/s per device of the
  {aim['peak_internal_bandwidth_bytes_per_s'] / 1e12:.2f} TB/s peak
  (`pdsim cid --op gemv --rows 4096 --cols 4096 --hw cent`).
- The input-vector broadcast into each channel's 2 KB global buffer and the per-row result
  read-out are charged on the channel's bus; CENT overlaps some of this, so pdsim is slower.
- Prefill runs on the PIM too (CENT's design), one GEMV per prompt token re-streaming the
  weights: TTFT is {c['ttft_s'] * 1e3:.0f} ms, a sizeable part of end to end; CENT's own
  prompt handling is not in REFERENCE.md.
- The vector work (norms, RoPE, softmax, SiLU) runs on the `cent` chip's 32 x 16-lane vector
  units at 2 GHz (CENT's PNM accelerator count and lanes) at full lane throughput; RISC-V
  dispatch is not modelled. CENT's own latency formula for its softmax (exponent and vector
  accelerators in a pipeline over the 32 channels, a RISC-V pass per head) gives
  {aim['cent_formula_softmax_last_step_s'] * 1e3:.3f} ms per step at the last context, against
  {aim['pdsim_attention_last_step_s'] * 1e3:.3f} ms for all of pdsim's attention there: pdsim's
  `cent` decode is optimistic on softmax by about that difference.
- Energy: AiM MACs at CENT's power-calculator figures (3 x read power per all-bank MAC),
  activates at 2.95 nJ per bank, DQ at 5.5 pJ/bit, CXL at 4.4 pJ/bit; no static or standby
  power, and the 7 idle devices of the pipeline are not charged, so energy per token is a
  dynamic-energy lower bound. The GPUs' energy is their presets' pJ/FLOP and pJ/bit.
- The GPU baselines are pdsim's `a100` and `h100` presets (tile-level model, 85% of peak
  bandwidth); CENT's GPU baseline and its measured times are not in REFERENCE.md, so the
  speed-up is compared, not the absolute latencies.
"""


def _plot(data: dict[str, Any], path: Path) -> None:
    """Left: end-to-end latency; middle: energy per token; right: decode-step time."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sy = data["systems"]
    fig, axes = plt.subplots(1, 3, figsize=(12, 4), layout="constrained")
    try:
        colors = ["tab:green", "tab:blue", "tab:orange"]
        for ax, key, label in ((axes[0], "e2e_s", "end-to-end latency (s)"),
                               (axes[1], "energy_per_token_j", "energy per output token (J)")):
            values = [sy[n][key] for n in SYSTEMS]
            ax.bar(SYSTEMS, values, color=colors)
            for i, v in enumerate(values):
                ax.text(i, v, f"{v:.3g}", ha="center", va="bottom", fontsize=9)
            ax.set_ylabel(label)
        ax = axes[2]
        for n, col in zip(SYSTEMS, colors):
            ax.plot([PROMPT, PROMPT + GEN - 1],
                    [sy[n]["tbt_first_s"] * 1e3, sy[n]["tbt_last_s"] * 1e3], "o-", color=col,
                    label=n)
        ax.set_xlabel("context (tokens)")
        ax.set_ylabel("decode step time (ms)")
        ax.set_yscale("log")
        ax.legend()
        fig.suptitle(f"Llama2-7B, batch 1, {PROMPT} + {GEN} tokens: CENT (8 GDDR6-AiM devices, "
                     f"pipelined) vs GPUs ({data['command']})", fontsize=10)
        fig.savefig(path, format="png", dpi=110, metadata={"Software": None})
    finally:
        plt.close(fig)


def headline(data: dict[str, Any]) -> str:
    """Each system's latency, throughput and dynamic energy per token, and CENT's speed-up
    over each GPU against the published figure."""
    systems, pub = data["systems"], data["published_speedup"]
    rows = [[name, f"{s['e2e_s']:.3g} s", f"{s['output_tokens_per_s']:.4g}",
             f"{s['energy_per_token_j']:.3g} J",
             f"{data['speedup_over'][name]:.2f}x (published {pub:g}x)"
             if name in data["speedup_over"] else "-"]
            for name, s in sorted(systems.items())]
    return text_table(["system", "end-to-end", "tokens/s", "dynamic energy/token",
                       "CENT's speed-up over it"], rows)
