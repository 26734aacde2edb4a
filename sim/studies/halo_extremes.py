"""HALO's analysis of architectural extremes (arXiv 2510.02675; ../shared/REFERENCE.md: "fully
CiD vs fully analog CiM"), as mappings of the one HALO package (`sim.studies.halo`): llama2-7b,
batch 1, prompts of 1k to 32k tokens, 128 generated tokens, under ``all-cim`` (every GEMM of
both phases on the crossbars), ``all-pim`` (everything on the CiD) and ``phase-aware``.

The reasons are measured on the simulated steps: the CiM reprogramming time of each step
(`sim.units.cim.cost.cim_op_result` of every op placed on ``cim``, repeats included). Pure:
`extremes` computes; `section` is the README's section, made from those numbers.
"""

from __future__ import annotations

from typing import Any

from mappers.mapping import apply_mapping
from mappers.models import load_model
from sim.engine import RunResult, Step, Workload, simulate
from sim.hardware import System
from sim.units.cim.cost import cim_op_result
from sim.units.cim.residency import slot_plan, slot_unit

from sim.studies import text_table

MODEL = "llama2-7b"
PROMPTS = (1024, 2048, 4096, 8192, 16384, 32768)
GEN, BATCH = 128, 1
#: The two extremes, then the phase-aware mapping that takes one phase from each.
MAPPINGS = ("all-cim", "all-pim", "phase-aware")
EXTREMES = MAPPINGS[:2]
#: What the winners table compares: its column -> the run's key.
WINNER_KEYS = {"prefill_latency": "prefill_s", "prefill_energy": "prefill_energy_j",
               "decode_latency": "decode_s", "decode_energy": "decode_energy_j"}


def _cim_program_s(result: RunResult, step: Step) -> float:
    """Seconds of CiM reprogramming inside a simulated step (0 without CiM ops)."""
    ops = [s for s in step.schedule.ops if s.op.unit == "cim"]
    if not ops:
        return 0.0
    unit = slot_unit(result.system.chip.cim)
    plan = slot_plan(result.system, step.schedule.graph)
    return sum(s.segment.repeat
               * cim_op_result(s.op, unit, resident_weights_bytes=plan.resident_bytes(s.op)
                               ).program_s for s in ops)


def _point(result: RunResult) -> dict[str, float]:
    s, prefill, first = result.summary, result.steps[0], result.steps[1]
    return {"prefill_s": s["ttft_s"], "prefill_energy_j": s["prefill_energy_j"],
            "decode_s": s["decode_time_s"], "decode_energy_j": s["decode_energy_j"],
            "prefill_cim_program_s": _cim_program_s(result, prefill),
            "first_decode_step_s": first.time_s,
            "first_decode_step_cim_program_s": _cim_program_s(result, first)}


def extremes(system: System, precision, decode_sample: int) -> dict[str, Any]:
    """Per mapping and prompt length: prefill and decode latency and energy, CiM
    reprogramming seconds; per prompt, the extreme that wins each phase's latency and energy."""
    model = load_model(MODEL).config
    runs: dict[str, dict[str, Any]] = {}
    for m in MAPPINGS:
        mapped = apply_mapping(system, m)
        runs[m] = {str(p): _point(simulate(mapped, model, Workload(
            batch=BATCH, prompt_tokens=p, gen_tokens=GEN, precision=precision),
            decode_sample=decode_sample)) for p in PROMPTS}
    winners = {}
    for p in map(str, PROMPTS):
        a, b = (runs[m][p] for m in EXTREMES)
        winners[p] = {k: EXTREMES[0] if a[key] < b[key] else EXTREMES[1]
                      for k, key in WINNER_KEYS.items()}
    return {"model": MODEL, "batch": BATCH, "gen": GEN, "prompts": list(PROMPTS),
            "max_positions": model.max_positions, "mappings": list(MAPPINGS), "runs": runs,
            "winners": winners}


def _t(seconds: float) -> str:
    return f"{seconds * 1e3:.4g} ms" if seconds < 1 else f"{seconds:.4g} s"


def _ratio(runs: dict[str, Any], p: str, key: str) -> str:
    a, b = (runs[m][p][key] for m in EXTREMES)
    return f"{max(a, b) / min(a, b):.3g}x"


def _lengths(ps: list[str]) -> str:
    if len(ps) == len(PROMPTS):
        return "at every prompt length"
    return f"at {', '.join(f'{int(p) // 1024}k' for p in ps) or 'no prompt length'}"


def section(data: dict[str, Any]) -> str:
    """The README section: the table, the winner of each phase, and why."""
    runs, win = data["runs"], data["winners"]
    ps = list(map(str, data["prompts"]))
    rows = [[f"{int(p) // 1024}k", m, _t(runs[m][p]["prefill_s"]),
             f"{runs[m][p]['prefill_energy_j']:.4g} J", _t(runs[m][p]["decode_s"]),
             f"{runs[m][p]['decode_energy_j']:.4g} J"] for p in ps for m in MAPPINGS]
    table = text_table(["prompt", "mapping", "prefill", "prefill energy",
                        f"decode ({data['gen'] - 1} steps)", "decode energy"], rows)
    wrows = [[f"{int(p) // 1024}k", *(f"{w[k]} ({_ratio(runs, p, key)})"
                                      for k, key in WINNER_KEYS.items())]
             for p, w in win.items()]
    wtable = text_table(["prompt", *(k.replace("_", " ") for k in WINNER_KEYS)], wrows)
    cim, cid, pa = (runs[m] for m in MAPPINGS)
    lo, hi = ps[0], ps[-1]
    cim_pre = [p for p in ps if win[p]["prefill_latency"] == "all-cim"]
    cid_dec = [p for p in ps if win[p]["decode_latency"] == "all-pim"]
    prog = {p: cim[p]["first_decode_step_cim_program_s"] / cim[p]["first_decode_step_s"]
            for p in ps}
    pre_prog = {p: cim[p]["prefill_cim_program_s"] / cim[p]["prefill_s"] for p in (lo, hi)}
    dec_gap = max(abs(pa[p]["decode_s"] / cid[p]["decode_s"] - 1) for p in ps)
    pre_gap = max(abs(pa[p]["prefill_s"] / cim[p]["prefill_s"] - 1) for p in ps)
    past = [f"{int(p) // 1024}k" for p in ps if int(p) + data["gen"] > data["max_positions"]]
    return f"""## The extremes: all analog CiM against all CiD, phase by phase

HALO's analysis of architectural extremes, as two more mappings of the same package (this
section replaces the former `results/extremes/` study and its `halo-all-cim` /
`halo-all-cid` presets): {data['model']}, batch {data['batch']}, {data['gen']} generated
tokens, prompts {', '.join(f'{int(p) // 1024}k' for p in ps)} (at {', '.join(past) or 'none'}
the context passes the model's {data['max_positions']} trained positions: the costs are
extrapolated, as HALO studies long contexts).

{table}

Winner of each phase between the two extremes (the loser's figure over the winner's):

{wtable}

- **Decode: the CiD is faster {_lengths(cid_dec)}** ({_ratio(runs, lo, 'decode_s')} at
  {int(lo) // 1024}k, {_ratio(runs, hi, 'decode_s')} at {int(hi) // 1024}k). The crossbars hold
  a few percent of the weights, so all-cim reprograms them before every GEMM of every step:
  reprogramming is {min(prog.values()):.0%} to {max(prog.values()):.0%} of its first decode
  step. The CiD reads each weight once per token inside the banks.
- **Prefill: the CiM is faster {_lengths(cim_pre)}.** The CiD's per-bank MAC units hold one
  input vector, so a prompt of L tokens re-streams every weight L times; the CiM pays its
  reprogramming once per prefill ({pre_prog[lo]:.0%} of its prefill at {int(lo) // 1024}k,
  {pre_prog[hi]:.0%} at {int(hi) // 1024}k) and then streams every token through each
  programmed crossbar group.
- **Phase-aware takes the CiM's prefill (within {pre_gap:.2%}) and the CiD's decode
  ({'identical' if dec_gap == 0 else f'within {dec_gap:.2%}'})**: the better decode at every
  length, and never a reprogramming in decode.
"""


def plot_axes(data: dict[str, Any], axes) -> None:
    """Prefill and decode latency against the prompt length, one line per mapping, on two
    matplotlib axes."""
    runs = data["runs"]
    for ax, key, label in zip(axes, ("prefill_s", "decode_s"),
                              ("prefill s", f"decode s ({data['gen'] - 1} steps)")):
        for m, style in zip(MAPPINGS, ("o-", "s-", "x--")):
            ax.plot(data["prompts"], [runs[m][str(p)][key] for p in data["prompts"]], style,
                    label=m)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(data["prompts"], [f"{p // 1024}k" for p in data["prompts"]])
        ax.set_xlabel(f"prompt tokens ({data['model']}, batch {data['batch']})")
        ax.set_ylabel(label)
        ax.set_title(f"extremes: {label.split()[0]}", fontsize=9)
        ax.legend(fontsize=7)
