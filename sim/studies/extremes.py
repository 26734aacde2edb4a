"""HALO's analysis of architectural extremes (arXiv 2510.02675; REFERENCE.md): Llama2-7B at
batch 1, prompts of 1k to 32k tokens and 128 generated tokens, run entirely on the analog CiM
(``halo-all-cim``) and entirely on the HBM compute-in-DRAM (``halo-all-cid``), with HALO's
phase-aware mapping (``halo``: prefill GEMMs on CiM, decode GEMVs and attention on CiD) on the
same axes. The three presets are one package (halo-cid's host die and CiD stacks plus the
``halo-cim`` crossbars) and differ only in where ops are placed.

Every number comes from `sim.engine.simulate` with ``decode_sample`` (the engine's fast mode:
``DECODE_SAMPLE`` evenly spaced decode steps simulated, the rest interpolated in the context
length). The reasons are measured on the simulated steps: time by unit, the CiM reprogramming
time of each step (`sim.units.cim.cost.cim_op_result` of every op placed on ``cim``, repeats
included), and the CiD's weight re-streaming per prompt token.

Precision: W8A8 with an int8 KV cache, CHOSEN because ``halo-cim``'s crossbars are W8A8
natively (its YAML); HALO's precision is not public. The same dtypes run on every unit.

`extremes_study` computes and touches no file; `write_extremes` regenerates
``results/extremes/`` (``pdsim reproduce extremes``), each file through a temporary file and
``os.replace``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mappers.ir import Precision
from mappers.models import load_model
from sim.units.cim.cost import cim_op_result, slot_plan, slot_unit
from sim.engine import RunResult, Step, Workload, simulate
from sim.presets import load_hardware

from sim.studies import text_table, write_study

COMMAND = "pdsim reproduce extremes"
MODEL = "llama2-7b"
SYSTEMS = ("halo-all-cim", "halo-all-cid", "halo")
EXTREMES = SYSTEMS[:2]
PROMPTS = (1024, 2048, 4096, 8192, 16384, 32768)
GEN, BATCH = 128, 1
DECODE_SAMPLE = 8        # simulated decode steps of the 127; the engine interpolates the rest
PRECISION = Precision(weight="int8", activation="int8", kv="int8")  # chosen: halo-cim is W8A8


def _run(name: str, prompt: int) -> RunResult:
    system = load_hardware(name).system
    workload = Workload(batch=BATCH, prompt_tokens=prompt, gen_tokens=GEN, precision=PRECISION)
    return simulate(system, load_model(MODEL).config, workload, decode_sample=DECODE_SAMPLE)


def _by_unit(step: Step) -> dict[str, float]:
    """Seconds of a simulated step by the unit its ops ran on, repeats included."""
    out: dict[str, float] = {}
    for s in step.schedule.ops:
        out[s.op.unit] = out.get(s.op.unit, 0.0) + s.segment.repeat * s.cost.time_s
    return dict(sorted(out.items()))


def _cim_program(result: RunResult, step: Step) -> tuple[float, float]:
    """Seconds and joules of CiM reprogramming inside a simulated step (0 without CiM ops)."""
    system = result.system
    ops = [s for s in step.schedule.ops if s.op.unit == "cim"]
    if not ops:
        return 0.0, 0.0
    unit = slot_unit(system.chip.cim)
    plan = slot_plan(system, step.schedule.graph)
    seconds = joules = 0.0
    for s in ops:
        r = cim_op_result(s.op, unit, resident_weights_bytes=plan.resident_bytes(s.op))
        seconds += s.segment.repeat * r.program_s
        joules += s.segment.repeat * r.program_energy_j
    return seconds, joules


def _point(result: RunResult) -> dict[str, Any]:
    s = result.summary
    prefill = result.steps[0]
    first = result.steps[1]  # the first decode step is always simulated
    pre_prog_s, pre_prog_j = _cim_program(result, prefill)
    dec_prog_s, dec_prog_j = _cim_program(result, first)
    return {
        "prefill_s": s["ttft_s"],
        "prefill_energy_j": s["prefill_energy_j"],
        "decode_s": s["decode_time_s"],
        "decode_energy_j": s["decode_energy_j"],
        "tbt_mean_s": s["tbt_mean_s"],
        "prefill_by_unit_s": _by_unit(prefill),
        "first_decode_step_by_unit_s": _by_unit(first),
        "prefill_cim_program_s": pre_prog_s,
        "prefill_cim_program_j": pre_prog_j,
        "first_decode_step_s": first.time_s,
        "first_decode_step_cim_program_s": dec_prog_s,
        "first_decode_step_cim_program_j": dec_prog_j,
        "prefill_dram_bytes": s["prefill_dram_bytes"],
        "decode_dram_bytes": s["decode_dram_bytes"],
        "cim_weights_resident": s.get("cim_weights_resident"),
        "cim_crossbars_needed": s.get("cim_crossbars_needed"),
        "cim_crossbars": s.get("cim_crossbars"),
        "exceeds_max_positions": s["exceeds_max_positions"],
    }


def extremes_study() -> dict[str, Any]:
    """The study's numbers (JSON-serialisable): per system and prompt length, prefill and
    decode latency and energy, time by unit, CiM reprogramming; the winner of each phase."""
    runs = {name: {str(p): _point(_run(name, p)) for p in PROMPTS} for name in SYSTEMS}
    winners = {}
    for p in map(str, PROMPTS):
        a, b = (runs[n][p] for n in EXTREMES)
        winners[p] = {f"{phase}_{what}": EXTREMES[0] if a[key] < b[key] else EXTREMES[1]
                      for phase in ("prefill", "decode")
                      for what, key in (("latency", f"{phase}_s"),
                                        ("energy", f"{phase}_energy_j"))}
    unit = slot_unit(load_hardware("halo").system.chip.cim)
    model = load_model(MODEL).config
    return {
        "study": "extremes",
        "source": "HALO (arXiv 2510.02675), REFERENCE.md: fully-CiD vs fully analog-CiM; "
                  "hardware values chosen (HALO's table is not public), see the presets",
        "command": COMMAND,
        "workload": {"model": MODEL, "batch": BATCH, "prompt_tokens": list(PROMPTS),
                     "gen_tokens": GEN, "decode_steps": GEN - 1,
                     "weight_dtype": PRECISION.weight, "activation_dtype": PRECISION.activation,
                     "kv_dtype": PRECISION.kv, "decode_sample": DECODE_SAMPLE,
                     "max_positions": model.max_positions},
        "systems": {n: load_hardware(n).system.description for n in SYSTEMS},
        "cim": {"crossbars": unit.crossbars, "reads_per_token": unit.crossbar.input_cycles(8),
                "read_step_s": unit.crossbar.read_time_s,
                "write_parallel_crossbars": unit.write_parallel_crossbars},
        "runs": runs,
        "winners": winners,
    }


def write_extremes(out_dir: Path) -> list[Path]:
    """Regenerate ``results/extremes/``: ``extremes.json``, ``extremes.png``, ``README.md``."""
    return write_study(Path(out_dir), "extremes", extremes_study(), _plot, readme, sort_keys=True)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.4g} ms" if seconds < 1 else f"{seconds:.4g} s"


def readme(data: dict[str, Any]) -> str:
    """The results table and the reasons, from the numbers in ``data``."""
    runs, win = data["runs"], data["winners"]
    rows = []
    for p in map(str, PROMPTS):
        for n in SYSTEMS:
            r = runs[n][p]
            rows.append(f"| {int(p) // 1024}k | `{n}` | {_ms(r['prefill_s'])} | "
                        f"{r['prefill_energy_j']:.4g} J | {_ms(r['decode_s'])} | "
                        f"{r['decode_energy_j']:.4g} J |")
    table = "\n".join(rows)
    wrows = "\n".join(
        f"| {int(p) // 1024}k | `{w['prefill_latency']}` "
        f"({_ratio(runs, p, 'prefill_s')}) | `{w['prefill_energy']}` "
        f"({_ratio(runs, p, 'prefill_energy_j')}) | `{w['decode_latency']}` "
        f"({_ratio(runs, p, 'decode_s')}) | `{w['decode_energy']}` "
        f"({_ratio(runs, p, 'decode_energy_j')}) |"
        for p, w in win.items())
    lo, hi = str(PROMPTS[0]), str(PROMPTS[-1])
    cim, cid, halo = (runs[n] for n in SYSTEMS)
    step = cim[lo]
    need = step["cim_crossbars_needed"]
    cross = [p for p in map(str, PROMPTS) if win[p]["prefill_latency"] == "halo-all-cim"]
    cid_tok = {p: cid[p]["prefill_by_unit_s"].get("cid", 0.0) / int(p) for p in (lo, hi)}
    cid_dec_gemv = cid[lo]["first_decode_step_by_unit_s"].get("cid", 0.0)
    cim_pre_unit = {p: cim[p]["prefill_by_unit_s"] for p in (lo, hi)}
    halo_gap = max(abs(halo[p]["decode_s"] / cid[p]["decode_s"] - 1) for p in map(str, PROMPTS))
    halo_pre = {p: halo[p]["prefill_s"] / cim[p]["prefill_s"] for p in (lo, hi)}
    dec_cid = [p for p, x in win.items() if x["decode_latency"] == "halo-all-cid"]
    halo_best = [p for p in map(str, PROMPTS) if halo[p]["prefill_s"] <= cid[p]["prefill_s"]]
    w, c = data["workload"], data["cim"]
    header = (f"| prompt | system | prefill latency | prefill energy | decode latency "
              f"({w['decode_steps']} steps) | decode energy |\n|---|---|---|---|---|---|")
    halo_pre_gap = max(abs(v - 1) for v in halo_pre.values())
    per_tok = {n: {p: runs[n][p]["prefill_energy_j"] / int(p) for p in (lo, hi)}
               for n in EXTREMES}
    read_us = c["reads_per_token"] * c["read_step_s"] * 1e6
    pre_share = {p: cim[p]["prefill_cim_program_s"] / cim[p]["prefill_by_unit_s"]["cim"]
                 for p in (lo, hi)}
    return f"""# Architectural extremes: all analog CiM vs all CiD (HALO)

Regenerate with `{data['command']}` (this folder: `extremes.json`, `extremes.png`, this
README).

Workload: {w['model']}, batch {w['batch']}, prompts of {', '.join(str(p) for p in PROMPTS)}
tokens, {w['gen_tokens']} generated tokens (the prefill gives the first, then
{w['decode_steps']} decode steps). W8A8 with an int8 KV cache (chosen: the `halo-cim` crossbars
are W8A8; HALO's precision is not public). Every figure is `sim.engine.simulate` on the preset
named; {w['decode_sample']} evenly spaced decode steps are simulated and the rest interpolated
in the context length (the engine's fast mode, below 0.1% error on the engine's own tests).
Prompts above {w['max_positions']} tokens exceed Llama2-7B's trained context; the costs are
extrapolated, as HALO studies long contexts.

The systems are one package: halo-cid's H100-class host die and 5 HBM3 CiD stacks (AttAcc's
per-bank PIM, power-limited) plus the `halo-cim` crossbars ({c['crossbars']} of 128x128,
ISAAC-sized), with every hardware value chosen and cited in the presets (HALO's table is not
public). They differ only in placement:

- `halo-all-cim`: every weight GEMM and the LM head of both phases on the analog CiM; attention
  on the host die's systolic arrays (a crossbar holds a static matrix; the KV cache changes
  every token), the vector ops on its vector units.
- `halo-all-cid`: every GEMM, the LM head, attention and KV writes of both phases on the CiD.
- `halo`: HALO's phase-aware mapping, prefill GEMMs on CiM, decode GEMVs and attention on CiD.

{header}
{table}

Winner of each phase between the extremes (the loser's figure over the winner's):

| prompt | prefill latency | prefill energy | decode latency | decode energy |
|---|---|---|---|---|
{wrows}

`extremes.png` plots the four quantities against the prompt length for the three systems.

## What the model gives, and why

**Decode: the CiD is faster {_where(dec_cid, 'CiM')}, by {_ratio(runs, lo, 'decode_s')} at 1k
and {_ratio(runs, hi, 'decode_s')} at 32k, and uses {_ratio(runs, lo, 'decode_energy_j')} less
energy at 1k.**
Llama2-7B needs {need / 1e6:.2f} M crossbars at W8, the chip has {step['cim_crossbars']}
({step['cim_crossbars'] / need:.2%} of the model), so no weight stays resident and the all-CiM
mapping reprograms every crossbar before every GEMM, every step (`sim/units/cim/cost.py`:
program-and-verify, {c['write_parallel_crossbars']} crossbars at a time, row by row). Of the
first decode step's {_ms(step['first_decode_step_s'])},
{_ms(step['first_decode_step_cim_program_s'])} is reprogramming, costing
{step['first_decode_step_cim_program_j']:.3g} J per token. One token then uses each programmed
crossbar for {c['reads_per_token']} bit-serial reads ({read_us:.2g} us). The CiD instead reads each
weight once per token inside the banks at the internal bandwidth: its GEMVs, attention and KV
writes take {_ms(cid_dec_gemv)} of the first decode step's
{_ms(cid[lo]['first_decode_step_s'])}.

**Prefill: CiM is faster {_where(cross, 'CiD')}; it uses
{_energy_claim(win)}.** The CiD has little weight reuse across tokens: its MAC units
take one input vector per pass over an open row, so a prompt of L tokens streams all weights
L times; holding a few prompt tokens in the global buffer shares only the row activations
(multi-token GEMMs, docs/cid.md),
{_ms(cid_tok[lo])} of CiD time per prompt token at 1k and {_ms(cid_tok[hi])} at 32k (attention
grows with the context). The CiM pays the same reprogramming once per prefill and then streams
every token through each programmed crossbar group; its prefill time splits into
{_units(cim_pre_unit[lo])} at 1k and {_units(cim_pre_unit[hi])} at 32k, of which
{_ms(cim[lo]['prefill_cim_program_s'])} (1k) and {_ms(cim[hi]['prefill_cim_program_s'])} (32k)
is reprogramming: {pre_share[lo]:.0%} and {pre_share[hi]:.0%} of the CiM's time. That fixed
cost is why the CiD stays competitive on short prompts; as the prompt grows, the CiM's cost per
token ({c['reads_per_token']} reads, {read_us:.2g} us, per chip-full of programmed crossbars)
beats the CiD's per-token weight re-streaming. In energy, the CiD spends
{per_tok['halo-all-cid'][lo] * 1e3:.3g} mJ per prompt token at 1k
({per_tok['halo-all-cid'][hi] * 1e3:.3g} mJ at 32k: row activations and bank reads of every
weight, per token, plus attention), the CiM {per_tok['halo-all-cim'][lo] * 1e3:.3g} mJ
({per_tok['halo-all-cim'][hi] * 1e3:.3g} mJ at 32k: DAC drives, crossbar reads, ADC conversions
and shift-adds, its one reprogramming spread over the prompt, and attention on the host die).

**Phase-aware `halo` takes the CiM's prefill (within {halo_pre_gap:.2%}:
its prompt KV writes go to the CiD stacks instead of the host die's DMA, and in both they run
beside attention, off the critical path) and the CiD's decode
({'identical: the same placement' if halo_gap == 0 else f'within {halo_gap:.2%}'}).** So it
has the better decode at every length and the better prefill {_where(halo_best, 'all-CiD')},
and never reprograms in decode.

## What is approximate

- HALO's hardware table is not public: the crossbars are ISAAC-sized (ISCA 2016) with
  NeuroSim device figures, the CiD is AttAcc's HBM3-PIM, the host die is SPAD's modeled H100
  (every value chosen and cited in `sim/presets/cim/halo-cim.yaml` and `sim/presets/halo*.yaml`).
  The CiM's crossbar count sets the reprogramming per step; a chip that held the whole model
  would program it once at load (`cim_load_program_s` in the run summary) and its decode would
  be bound by the crossbar reads and the activation I/O instead.
- Programming is not overlapped with computing (it would need spare crossbars), and the
  CiM's on-chip buffers and network are not modelled (docs/cim.md).
- The CiD's MAC units multiply one input vector per column command (AttAcc-style per-bank
  MACs), so a prefill streams the weights out of the banks once per token; only the row
  activations are shared by the tokens the global buffer holds (docs/cid.md). A CiD whose
  units multiplied each weight burst by several vectors would reuse the reads themselves.
- Energies are dynamic only (no leakage or standby power), as in the other studies.
"""


def _where(good: list[str], other: str) -> str:
    """'at every prompt length', or which lengths are good and where ``other`` wins."""
    if len(good) == len(PROMPTS):
        return "at every prompt length"
    k = [f"{int(p) // 1024}k" for p in good]
    rest = [f"{p // 1024}k" for p in PROMPTS if str(p) not in good]
    return (f"at {', '.join(k) or 'no length'} (the {other} mapping is faster at "
            f"{', '.join(rest)})")


def _energy_claim(win: dict[str, dict[str, str]]) -> str:
    cim = [p for p, w in win.items() if w["prefill_energy"] == "halo-all-cim"]
    if len(cim) == len(win):
        return "less energy than the CiD at every prompt length"
    where = ", ".join(f"{int(p) // 1024}k" for p in cim) or "no length"
    return f"less energy than the CiD at {where}"


def _ratio(runs: dict[str, Any], p: str, key: str) -> str:
    a, b = (runs[n][p][key] for n in EXTREMES)
    return f"{max(a, b) / min(a, b):.3g}x"


def _units(by_unit: dict[str, float]) -> str:
    total = sum(by_unit.values())
    top = sorted(by_unit.items(), key=lambda kv: -kv[1])[:3]
    return ", ".join(f"{u} {t / total:.0%}" for u, t in top)


def _plot(data: dict[str, Any], path: Path) -> None:
    """Prefill and decode latency (top) and energy (bottom) against the prompt length."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = data["runs"]
    styles = {"halo-all-cim": ("tab:blue", "o-"), "halo-all-cid": ("tab:orange", "s-"),
              "halo": ("tab:green", "x--")}
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), layout="constrained")
    try:
        panels = ((axes[0, 0], "prefill_s", "prefill latency (s)"),
                  (axes[0, 1], "decode_s", f"decode latency, {GEN - 1} steps (s)"),
                  (axes[1, 0], "prefill_energy_j", "prefill energy (J)"),
                  (axes[1, 1], "decode_energy_j", "decode energy (J)"))
        for ax, key, label in panels:
            for n in SYSTEMS:
                color, style = styles[n]
                ax.plot(PROMPTS, [runs[n][str(p)][key] for p in PROMPTS], style, color=color,
                        label=n)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xticks(PROMPTS, [f"{p // 1024}k" for p in PROMPTS])
            ax.set_xlabel("prompt tokens")
            ax.set_ylabel(label)
            ax.grid(True, which="both", alpha=0.3)
        axes[0, 0].legend()
        fig.suptitle(f"{MODEL}, batch {BATCH}, {GEN} generated tokens, W8A8 KV8: all CiM vs all "
                     f"CiD vs phase-aware HALO ({data['command']})", fontsize=10)
        fig.savefig(path, format="png", dpi=110, metadata={"Software": None})
    finally:
        plt.close(fig)


def headline(data: dict[str, Any]) -> str:
    """Which mapping wins each phase's latency and energy, prompt length by prompt length."""
    winners = data["winners"]
    keys = ("prefill_latency", "prefill_energy", "decode_latency", "decode_energy")
    rows = [[p] + [winners[p][k] for k in keys] for p in sorted(winners, key=int)]
    return text_table(["prompt", *(k.replace("_", " ") for k in keys)], rows)
