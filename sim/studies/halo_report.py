"""README and picture of ``results/halo/`` (`sim.studies.halo`): every sentence with a number
is made from the study's data, so the README regenerates with it."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from sim.studies import text_table
from sim.studies.halo import AUTO, BASE, COLUMNS, HALO_SPEEDUP, MAPPINGS, geomean
from sim.studies.halo_extremes import plot_axes, section

STYLE = {"phase-aware": "HALO", "all-pim": "CENT-style", "attention-on-pim": "AttAcc-style",
         "all-cim": "extreme", AUTO: "search"}


def _ms(s: float) -> str:
    return f"{s * 1e3:,.1f}" if s < 10 else f"{s * 1e3:,.0f}"


def _share(runs: list[dict[str, Any]], m: str) -> float:
    """Geometric mean over ``runs`` of the share of mapping ``m``'s end-to-end time that is
    prefill (TTFT)."""
    return geomean([r[m]["ttft_s"] / r[m]["e2e_s"] for r in runs])


def _fastest(runs: list[dict[str, Any]]) -> int:
    """Points where phase-aware has the lowest end-to-end time of all mappings."""
    return sum(all(r[BASE]["e2e_s"] <= r[m]["e2e_s"] for m in MAPPINGS) for r in runs)


def _by_prompt(runs: list[dict[str, Any]], m: str, key: str) -> str:
    prompts = sorted({r["prompt"] for r in runs})
    return ", ".join(
        f"{p // 1024}k {geomean([r[m][key] / r[BASE][key] for r in runs if r['prompt'] == p]):.2f}x"
        for p in prompts)


def _baselines(a: dict[str, float]) -> str:
    """HALO's two baselines in pdsim's order, against HALO's (CENT-style second)."""
    if a["all-pim"] < a["attention-on-pim"]:
        return (f"pdsim, like HALO, puts the CENT-style mapping second ({a['all-pim']:.2f}x) and "
                f"the AttAcc-style mapping last ({a['attention-on-pim']:.2f}x)")
    return (f"pdsim puts the AttAcc-style mapping second ({a['attention-on-pim']:.2f}x) and the "
            f"CENT-style mapping third ({a['all-pim']:.2f}x): the reverse of HALO's two "
            "baselines")


#: Why ``auto`` moves an op kind away from phase-aware, for the moves it is seen to make.
WHY = {"prefill lm_head: cid": "a causal model's prefill computes the logits of each "
       "sequence's last token only, a GEMV, which the CiD runs in its banks rather than "
       "reprogramming crossbars for one row",
       "prefill kv_write: host": "a tie: the prompt's KV write runs beside attention, off the "
       "critical path, on either unit; the search tries the logic die first and keeps only "
       "strictly better assignments"}


def _auto(data: dict[str, Any]) -> str:
    """What ``auto`` found, from the runs: how often it is not slower than the best named
    mapping, by how much it gains, and where (and why) it moved op kinds from phase-aware."""
    runs, g = data["runs"], data["auto_gain"]
    moved: dict[str, int] = {}
    for r in runs:
        for m in r[AUTO]["moved"]:
            moved[m] = moved.get(m, 0) + 1
    where = "; ".join(f"{m} ({n} of {len(runs)} points{': ' + WHY[m] if m in WHY else ''})"
                      for m, n in sorted(moved.items()))
    text = (f"`auto` (a search per point over which unit takes each op kind in each phase, "
            f"costed by the simulator: `mappers/mapping.py`) is not slower than the best named "
            f"mapping at {data['auto_not_slower']} of {data['points']} points; its gain over "
            f"the best named one is {g['min']:.4f}x to {g['max']:.4f}x (geometric mean "
            f"{g['geomean']:.4f}x). Where it departs from phase-aware: "
            f"{where or 'nowhere (it picks phase-aware)'}.")
    return textwrap.fill(text, 95)


def readme(data: dict[str, Any]) -> str:
    runs, sp = data["runs"], data["speedup"]
    pkg = data["package"]
    rows = [[r["model"], str(r["batch"]), str(r["prompt"]), str(r["gen"]),
             *(_ms(r[m]["e2e_s"]) for m in COLUMNS),
             *(f"{r[m]['e2e_s'] / r[BASE]['e2e_s']:.2f}" for m in MAPPINGS[1:3])]
            for r in runs]
    table = text_table(["model", "batch", "prompt", "gen",
                        *(f"{m} ms" for m in COLUMNS), "all-pim / HALO", "AttAcc / HALO"],
                       rows)
    phase_rows = [[m, STYLE[m],
                   f"{geomean([r[m]['ttft_s'] for r in runs]) * 1e3:,.1f}",
                   f"{geomean([r[m]['tbt_s'] for r in runs]) * 1e6:,.0f}",
                   f"{geomean([r[m]['energy_j'] for r in runs]):,.2f}",
                   f"{_share(runs, m):.0%}"] for m in COLUMNS]
    phases = text_table(["mapping", "style", "TTFT ms (geomean)", "TBT us (geomean)",
                         "energy J (geomean)", "prefill share of e2e"], phase_rows)
    cols = COLUMNS[1:]
    sp_rows = [[k, *(f"{v[m]:.2f}x" for m in cols)] for k, v in sp.items()]
    sp_rows.append(["TTFT", *(f"{data['ttft_speedup'][m]:.2f}x" for m in cols)])
    sp_rows.append(["TBT", *(f"{data['tbt_speedup'][m]:.2f}x" for m in cols)])
    sp_rows.append(["energy", *(f"{data['energy_ratio'][m]:.2f}x" for m in cols)])
    sp_rows.append(["HALO reports", f"{HALO_SPEEDUP['all-pim']}x",
                    f"{HALO_SPEEDUP['attention-on-pim']}x", "(not given)", "(not given)"])
    speed = text_table(["time over phase-aware's (e2e unless named)", *cols], sp_rows)
    axes = (("crossbar_scale", "crossbars x"), ("host_sms", "logic-die SMs"))
    variants = [(f"{label} {k}", v) for axis, label in axes
                for k, v in data["sensitivity"][axis].items()]
    sens_t = text_table(["variant (batch 1, gen 128)", *MAPPINGS[1:]],
                        [[name, *(f"{v[m]:.2f}x" for m in MAPPINGS[1:])] for name, v in variants])
    span = "; ".join(f"{m} {min(v[m] for _, v in variants):.2f}x to "
                     f"{max(v[m] for _, v in variants):.2f}x" for m in MAPPINGS[1:])
    # which variants bring pdsim's ratio within 25% of HALO's
    near = {m: [name for name, v in variants if abs(v[m] / want - 1) <= 0.25]
            for m, want in HALO_SPEEDUP.items()}
    reach = "; ".join(f"HALO's {want}x ({STYLE[m]}) is within 25% of pdsim's at "
                      f"{', '.join(near[m]) or 'no variant'}" for m, want in HALO_SPEEDUP.items())
    a = sp["all"]
    sms = data["sensitivity"]["host_sms"]
    order = sorted(MAPPINGS[:3], key=lambda m: 1.0 if m == BASE else a[m])
    holds = data["halo_ordering_holds"]
    verdict = ("holds" if holds == data["points"] else
               f"does not hold: it holds at {holds} of {data['points']} points")
    return f"""# HALO reproduced: one package, four mappings and a search

Regenerate with `{data['command']}` (about a minute on 2 cores). Hardware:
`sim/presets/{data['preset']}.yaml`, one 2.5D package of {pkg['cid_stacks']} HBM3 stacks with
per-bank CiD (AttAcc's figures), an analog CiM die of {pkg['crossbars']:,} ISAAC-density
crossbars (a CHOSEN 400 mm^2 budget; the
arithmetic is in `sim/presets/cim/halo-package-cim.yaml`), and a {pkg['host_sms']}-SM logic die
(CHOSEN size) for the vector ops. The mapping is a policy (`pdsim run --hw halo-package
--mapping NAME`, `mappers/mapping.py`); nothing else changes between columns. This one package
replaces the former `halo`, `halo-cid`, `halo-all-cim` and `halo-all-cid` presets (each a copy
of one package with other op lists) and the `results/extremes/` study (its section below).
Precision {data['precision']} (chosen: the crossbars are W8A8). Decode:
{data['decode_sample']} steps simulated per run, the rest interpolated in the context
(`--decode-sample`).

## Does HALO's ordering hold?

HALO (arXiv 2510.02675) reports phase-aware fastest, the CENT-style (all-CiD) mapping second
(phase-aware {HALO_SPEEDUP['all-pim']}x faster, geometric mean) and the AttAcc-style mapping
last ({HALO_SPEEDUP['attention-on-pim']}x). In pdsim the ordering {verdict}. Measured order by
geometric-mean end-to-end time: {' < '.join(order)}. Phase-aware is fastest at
{_fastest(runs)} of {data['points']} named-mapping points; {_baselines(a)}. Each
cell below is a mapping's time over phase-aware's (geometric mean; above 1: phase-aware is
faster).

{speed}

{_auto(data)}

## Why, from the model

- **CENT-style (all-pim) loses in prefill.** Its prefill GEMMs run on the CiD's per-bank MAC
  units, whose throughput is set by the all-bank MAC command rate (tCCD 6, power-limited),
  not by compute density; a prompt of thousands of tokens makes the GEMMs compute-bound, so
  TTFT grows with the prompt: prefill is {_share(runs, 'all-pim'):.0%} of its end-to-end time
  (geometric mean). Its decode is phase-aware's decode exactly (the same units take the same
  ops), so the gap is prefill alone, and it is larger than HALO's 2.5x. HALO's CiD is not
  public; a CiD with more MAC throughput per bank would narrow it.
- **AttAcc-style (attention-on-pim) loses in both phases but less than HALO says.** Its GEMMs
  run on the logic die: prefill on the die's systolic arrays (its TTFT over phase-aware's,
  geometric mean by prompt: {_by_prompt(runs, 'attention-on-pim', 'ttft_s')}; prefill
  attention runs on the logic die under both mappings, so the gap is the GEMMs'), decode
  GEMVs reading the weights over the stacks' external 3.35 TB/s rather than the banks'
  internal bandwidth, so its TBT is
  {data['tbt_speedup']['attention-on-pim']:.1f}x phase-aware's. HALO's 18x needs a host die
  much weaker at GEMMs than this one or a CiD much faster in decode: over the logic-die sweep
  below ({min(map(int, sms))} to {max(map(int, sms))} SMs) the ratio stays between
  {min(v['attention-on-pim'] for v in sms.values()):.2f}x and
  {max(v['attention-on-pim'] for v in sms.values()):.2f}x.
- **all-cim** runs prefill as phase-aware does (same TTFT) but decode GEMVs on crossbars
  that hold {pkg['crossbars'] * 2048 / 6.607e9:.1%} of llama2-7b's GEMM weights, so every
  decode step reprograms them: its TBT is {data['tbt_speedup']['all-cim']:.0f}x phase-aware's.

## Per mapping (geometric means over the {data['points']} points)

{phases}

## Sensitivity (geometric-mean speed-up of phase-aware over each mapping)

Crossbar count scaled from the area budget (write parallelism with it, one per IMA), and the
logic die's SM count (132 = an H100-class die). Nothing was tuned to a ratio: the preset's
sizes were fixed before these runs.

{textwrap.fill(f"Over every variant each ratio stays within: {span}. {reach}.", 95)}

{sens_t}

## Every point (end-to-end ms; ratios over phase-aware)

{table}

{section(data['extremes']).rstrip()}

halo.json holds every number (TTFT, TBT, energy per mapping and point; `extremes`);
halo.png draws the end-to-end times, the sensitivity to the logic die, the unit timelines of
one prefill and one decode step (phase-aware; busy intervals per unit in `timeline` of
halo.json), where the units' overlap shows, and the extremes' prefill and decode latency.
"""


def plot(data: dict[str, Any], path: Path) -> None:
    """Top: end-to-end time per point and mapping (batch 1, log scale); the geometric-mean
    speed-ups over the logic die's size. Middle: unit timelines of one prefill and one decode
    step. Bottom: the extremes' prefill and decode latency against the prompt."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ((ax, bx), (cx, dx), (ex, fx)) = plt.subplots(3, 2, figsize=(13, 12))
    runs = [r for r in data["runs"] if r["batch"] == 1]
    labels = [f"{r['model'][:5]} {r['prompt'] // 1024}k/{r['gen']}" for r in runs]
    width = 0.16
    for i, m in enumerate(COLUMNS):
        ax.bar([x + i * width for x in range(len(runs))], [r[m]["e2e_s"] for r in runs],
               width, label=f"{m} ({STYLE[m]})")
    ax.set_yscale("log")
    ax.set_xticks([x + 2 * width for x in range(len(runs))], labels, rotation=60,
                  fontsize=7)
    ax.set_ylabel("end-to-end s (batch 1)")
    ax.legend(fontsize=7)
    sms = data["sensitivity"]["host_sms"]
    for m in MAPPINGS[1:]:
        bx.plot([int(k) for k in sms], [v[m] for v in sms.values()], marker="o", label=m)
    bx.set_xscale("log")
    bx.set_yscale("log")
    bx.set_xlabel("logic-die SMs")
    bx.set_ylabel("phase-aware speed-up (geomean)")
    bx.legend(fontsize=7)
    t = data["timeline"]
    for axis, phase in ((cx, "prefill"), (dx, "decode")):
        units = list(t[phase])
        for y, unit in enumerate(units):
            axis.broken_barh(t[phase][unit], (y - 0.4, 0.8))
        axis.set_yticks(range(len(units)), units)
        axis.set_xlabel("ms")
        axis.set_title(f"one {phase} step, {t['model']} {t['prompt'] // 1024}k, "
                       f"{t['mapping']}: busy intervals per unit", fontsize=9)
    plot_axes(data["extremes"], (ex, fx))
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
