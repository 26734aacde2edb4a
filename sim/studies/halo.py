"""HALO reproduced (arXiv 2510.02675; ../shared/REFERENCE.md): one HALO package
(sim/presets/halo-package.yaml: 5 HBM3 CiD stacks, a 400 mm^2 analog CiM die, a 16-SM logic
die) under four mapping policies (`mappers.mapping`): ``phase-aware`` (HALO), ``all-pim``
(CENT-style), ``attention-on-pim`` (AttAcc-style) and the ``all-cim`` extreme, plus ``auto``
(the cost-driven search, `sim.mapping.resolve`, run per point of the grid); and HALO's
analysis of the extremes, all-cim against all-pim phase by phase (`sim.studies.halo_extremes`).

Grid: llama2-7b and qwen3-8b; batch 1 and 4; prompts 2k / 8k / 32k; generation 128 / 512;
W8A8 with an int8 KV cache (CHOSEN: the crossbars are W8A8; HALO's precision is not public).
Every number is `sim.engine.simulate` with ``decode_sample`` (``DECODE_SAMPLE`` decode steps
simulated, the rest interpolated in the context). Sensitivity: the crossbar count (x0.25 to
x16 of the area budget's 103,224) and the logic die's SM count (8 to 132), at batch 1,
generation 128, on both models and all prompts, for the named mappings (``auto`` is left out
of the sweep: its search costs about as much as the rest of the study); nothing is tuned to a
ratio.

`halo_study` computes and touches no result file (the crossbar variants are CiM YAMLs in a
temporary folder, which `sim.units.cim` loads by path); `write_halo` regenerates
``results/halo/`` (``pdsim reproduce halo``).
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from pathlib import Path
from typing import Any

from mappers.ir import Precision
from mappers.mapping import apply_mapping
from mappers.models import load_model
from sim.engine import Workload, simulate
from sim.hardware import System
from sim.mapping import resolve
from sim.presets import load_hardware
from sim.units.cim.crossbar import load_cim

from sim.studies import write_study
from sim.studies.halo_extremes import extremes

COMMAND = "pdsim reproduce halo"
PRESET = "halo-package"
MODELS = ("llama2-7b", "qwen3-8b")
BATCHES = (1, 4)
PROMPTS = (2048, 8192, 32768)
GENS = (128, 512)
MAPPINGS = ("phase-aware", "all-pim", "attention-on-pim", "all-cim")
BASE = "phase-aware"
AUTO = "auto"
#: The study's columns: the named mappings, then the search.
COLUMNS = (*MAPPINGS, AUTO)
DECODE_SAMPLE = 4
PRECISION = Precision(weight="int8", activation="int8", kv="int8")  # chosen: W8A8 crossbars
XBAR_SCALES = (0.25, 1, 4, 16)
HOST_SMS = (8, 16, 33, 66, 132)
TIMELINE = ("llama2-7b", 8192)  # the step pictured
#: HALO's published geometric-mean speed-ups of phase-aware over each mapping ("up to").
HALO_SPEEDUP = {"attention-on-pim": 18.0, "all-pim": 2.5}


def _workload(batch: int, prompt: int, gen: int) -> Workload:
    return Workload(batch=batch, prompt_tokens=prompt, gen_tokens=gen, precision=PRECISION)


def _point(system: System, model: str, batch: int, prompt: int, gen: int) -> dict[str, float]:
    work = _workload(batch, prompt, gen)
    s = simulate(system, load_model(model).config, work, decode_sample=DECODE_SAMPLE).summary
    return {"e2e_s": s["e2e_s"], "ttft_s": s["ttft_s"], "tbt_s": s["tbt_mean_s"],
            "energy_j": s["total_energy_j_per_chip"],
            "prefill_energy_j": s["prefill_energy_j"], "decode_energy_j": s["decode_energy_j"]}


def _lists(system: System) -> dict[tuple[str, str], str]:
    """(phase, op kind) -> the memory-side unit that runs it, for the kinds one does."""
    return {(phase, kind): unit for unit, d in system.chip.units.items()
            for phase, kinds in (("prefill", d.prefill_ops), ("decode", d.decode_ops))
            for kind in kinds}


def _auto_point(system: System, model: str, batch: int, prompt: int, gen: int
                ) -> dict[str, Any]:
    """``auto`` at one point: the search on this workload's shapes, then the same run as the
    named mappings; ``moved`` lists where it differs from phase-aware (``phase kind: unit``,
    ``host`` for the logic die)."""
    found, _ = resolve(system, load_model(model).config, _workload(batch, prompt, gen),
                       name=AUTO)
    got, base = _lists(found), _lists(apply_mapping(system, BASE))
    moved = sorted(f"{phase} {kind}: {got.get((phase, kind), 'host')}"
                   for phase, kind in set(got) | set(base) if got.get((phase, kind))
                   != base.get((phase, kind)))
    return {**_point(found, model, batch, prompt, gen), "moved": moved}


def _timeline(schedule) -> dict[str, list[list[float]]]:
    """Busy intervals (start, length) in ms of each unit over one scheduled step, every repeat
    of a repeated segment placed at its steady-state period, touching intervals merged."""
    spans: dict[str, list[tuple[float, float]]] = {}
    for s in schedule.ops:
        for i in range(s.segment.repeat):
            start = s.start_s + i * s.period_s
            spans.setdefault(s.op.unit, []).append((start, start + s.cost.time_s))
    out = {}
    for unit, items in sorted(spans.items()):
        merged: list[list[float]] = []
        for a, b in sorted(items):
            if merged and a <= merged[-1][1] + 1e-12:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        out[unit] = [[round(a * 1e3, 6), round((b - a) * 1e3, 6)] for a, b in merged]
    return out


def timelines(system: System) -> dict[str, Any]:
    """Unit timelines of the prefill and the first decode step of llama2-7b, batch 1, an 8k
    prompt, under phase-aware (`TIMELINE`)."""
    model, prompt = TIMELINE
    work = Workload(prompt_tokens=prompt, gen_tokens=2, precision=PRECISION)
    steps = simulate(apply_mapping(system, BASE), load_model(model).config, work).steps
    return {"model": model, "prompt": prompt, "mapping": BASE,
            "prefill": _timeline(steps[0].schedule), "decode": _timeline(steps[1].schedule)}


def geomean(values: list[float]) -> float:
    """Geometric mean of positive numbers."""
    return math.exp(sum(math.log(v) for v in values) / len(values))


def _speedups(runs: list[dict[str, Any]], key: str = "e2e_s") -> dict[str, float]:
    """Geometric mean over ``runs`` of each mapping's ``key`` over phase-aware's (every column
    the runs have)."""
    return {m: geomean([r[m][key] / r[BASE][key] for r in runs]) for m in COLUMNS
            if m != BASE and m in runs[0]}


def _grid(systems: dict[str, System], batches=BATCHES, gens=GENS, auto: System | None = None
          ) -> list[dict[str, Any]]:
    """One row per (model, batch, prompt, gen): each mapped system's point, and ``auto``'s
    search on ``auto`` (the unmapped package) when given."""
    out = []
    for model in MODELS:
        for batch in batches:
            for prompt in PROMPTS:
                for gen in gens:
                    row: dict[str, Any] = {"model": model, "batch": batch, "prompt": prompt,
                                           "gen": gen}
                    for m, system in systems.items():
                        row[m] = _point(system, model, batch, prompt, gen)
                    if auto is not None:
                        row[AUTO] = _auto_point(auto, model, batch, prompt, gen)
                    out.append(row)
    return out


def _mapped(system: System) -> dict[str, System]:
    return {m: apply_mapping(system, m) for m in MAPPINGS}


def _with_crossbars(system: System, scale: float, folder: Path) -> System:
    """``system`` with its CiM's crossbar count (and, one per IMA of 8, its write
    parallelism) scaled, through a CiM YAML written to ``folder``."""
    spec = load_cim(system.chip.cim.unit)
    count = int(spec.unit.crossbars * scale) // 8 * 8
    text = spec.text.replace(f"crossbars: {spec.unit.crossbars} ", f"crossbars: {count} ", 1)
    text = text.replace(f"write_parallel_crossbars: {spec.unit.write_parallel_crossbars} ",
                        f"write_parallel_crossbars: {count // 8} ", 1)
    path = folder / f"cim-x{scale}.yaml"
    path.write_text(text)
    assert load_cim(str(path)).unit.crossbars == count  # the replacement took
    slot = dataclasses.replace(system.chip.cim, unit=str(path))
    units = type(system.chip.units)((k, slot if k == "cim" else d)
                                    for k, d in system.chip.units.items())
    return dataclasses.replace(system, chip=dataclasses.replace(system.chip, units=units))


def _with_sms(system: System, sms: int) -> System:
    return dataclasses.replace(system, chip=dataclasses.replace(system.chip, cores=sms))


def halo_study() -> dict[str, Any]:
    """Every number of ``results/halo/`` (module docstring)."""
    system = load_hardware(PRESET).system
    cim = load_cim(system.chip.cim.unit).unit
    runs = _grid(_mapped(system), auto=system)
    sweep_kw = {"batches": (1,), "gens": (128,)}
    with tempfile.TemporaryDirectory() as tmp:
        xbar = {str(s): _speedups(_grid(_mapped(_with_crossbars(system, s, Path(tmp))),
                                        **sweep_kw)) for s in XBAR_SCALES}
    sms = {str(n): _speedups(_grid(_mapped(_with_sms(system, n)), **sweep_kw))
           for n in HOST_SMS}
    order = MAPPINGS[:3]  # HALO's: phase-aware fastest, CENT-style second, AttAcc-style last
    holds = [all(r[a]["e2e_s"] < r[b]["e2e_s"] for a, b in zip(order, order[1:])) for r in runs]
    # auto against the best named mapping at each point (the acceptance test's claim)
    auto_gain = [min(r[m]["e2e_s"] for m in MAPPINGS) / r[AUTO]["e2e_s"] for r in runs]
    return {
        "command": COMMAND, "preset": PRESET, "precision": "int8/int8/int8 (w/act/kv)",
        "decode_sample": DECODE_SAMPLE, "mappings": list(MAPPINGS), "columns": list(COLUMNS),
        "package": {"crossbars": cim.crossbars, "host_sms": system.chip.cores,
                    "cid_stacks": system.chip.cid.stacks},
        "runs": runs,
        "speedup": {"all": _speedups(runs),
                    **{f"batch {b}": _speedups([r for r in runs if r["batch"] == b])
                       for b in BATCHES}},
        "ttft_speedup": _speedups(runs, "ttft_s"), "tbt_speedup": _speedups(runs, "tbt_s"),
        "energy_ratio": _speedups(runs, "energy_j"),
        "halo_ordering_holds": sum(holds), "points": len(runs),
        "auto_not_slower": sum(bool(g >= 1 - 1e-9) for g in auto_gain),
        "auto_gain": {"min": min(auto_gain), "max": max(auto_gain),
                      "geomean": geomean(auto_gain)},
        "sensitivity": {"crossbar_scale": xbar, "host_sms": sms},
        "halo_reported": HALO_SPEEDUP,
        "timeline": timelines(system),
        "extremes": extremes(system, PRECISION, DECODE_SAMPLE),
    }


def write_halo(out_dir: Path) -> list[Path]:
    """Regenerate ``out_dir`` (``results/halo/``): halo.json, halo.png, README.md."""
    from sim.studies.halo_report import plot, readme
    return write_study(Path(out_dir), "halo", halo_study(), plot, readme)


def headline(data: dict[str, Any]) -> str:
    """The figures that matter, for the terminal: one row per mapping."""
    from sim.studies import text_table
    style = {"all-pim": "CENT-style", "attention-on-pim": "AttAcc-style", "all-cim": "extreme",
             AUTO: "search"}
    rows = [[m, style[m], f"{v:.2f}x", f"{HALO_SPEEDUP[m]}x" if m in HALO_SPEEDUP else "-"]
            for m, v in data["speedup"]["all"].items()]
    rows.append(["ordering", "HALO's", f"holds at {data['halo_ordering_holds']} of "
                 f"{data['points']} points", "holds"])
    rows.append(["auto vs best named", "search", f"not slower at {data['auto_not_slower']} of "
                 f"{data['points']} points", "-"])
    return text_table(["phase-aware over", "style", "pdsim (geomean e2e)", "HALO"], rows)
