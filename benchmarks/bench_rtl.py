"""Speed of the RTL co-simulation: simulated cycles per wall second, batched vs one launch per
case, for the prefill datapath (Icarus and Verilator) and the near-bank decode unit (Icarus).

    python benchmarks/bench_rtl.py [--cases 6] [--json]

Prefill: builds an 8x8 int8 datapath once (compile time reported apart), then times ``cases``
GEMMs of 32x32x32 (load A, load B, compute, drain C) as ONE simulator launch
(`testbenches.runner.run_gemms` with a list) and as one launch per GEMM, subprocess start
included; cycles are the RTL's busy cycles. Decode: ``cases`` int8 GEMVs on the AiM unit
(`testbenches.nearbank_runner`), every unit replayed, in one launch and one launch per GEMV;
cycles are those simulated (reset and drain included). Speed claims about co-simulation quote
this script (output of a run: benchmarks/results/bench_rtl.txt), never a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from sim.errors import PdsimError
from sim.units.cid.dram import load_dram
from sim.units.systolic.datapath import DatapathConfig
from testbenches import nearbank_runner
from testbenches.runner import build, run_gemms


def _systolic(cases: int, cache: Path) -> list[dict]:
    cfg = DatapathConfig(rows=8, cols=8, mode="int8", max_m=32, max_n=32, max_k=32)
    gemms = [{"name": f"g{i}", "m": 32, "n": 32, "k": 32, "seed": i} for i in range(cases)]
    rows = []
    for sim in ("icarus", "verilator"):
        try:
            t0 = time.perf_counter()
            b = build(cfg, sim=sim, cache=cache)
            t1 = time.perf_counter()
        except (PdsimError, RuntimeError) as exc:   # a missing simulator is reported
            rows.append({"block": "systolic", "simulator": sim,
                         "error": str(exc).splitlines()[0]})
            continue
        report = run_gemms(b, gemms)
        t2 = time.perf_counter()
        for g in gemms:
            run_gemms(b, [g])
        t3 = time.perf_counter()
        cycles = sum(sum(g["cycles"].values()) for g in report["gemms"])
        rows.append({"block": "systolic", "simulator": sim, "compile_s": round(t1 - t0, 2),
                     "cases": cases, "cycles": cycles,
                     "batched_s": round(t2 - t1, 2), "per_case_s": round(t3 - t2, 2),
                     "batched_cycles_per_s": round(cycles / (t2 - t1)),
                     "per_case_cycles_per_s": round(cycles / (t3 - t2))})
    return rows


def _nearbank(cases: int, cache: Path) -> list[dict]:
    device = load_dram("gddr6-aim")
    gemvs = [{"name": f"v{i}", "rows": 19 + i, "cols": 45 + 7 * i, "wdtype": "int8",
              "seed": i} for i in range(cases)]
    prep = nearbank_runner.prepare(device, "aim", "int8", gemvs)
    t0 = time.perf_counter()
    nearbank_runner.build(prep.config, cache=cache)
    t1 = time.perf_counter()
    report = nearbank_runner.run(prep, cache=cache)
    t2 = time.perf_counter()
    for g in gemvs:
        nearbank_runner.run(nearbank_runner.prepare(device, "aim", "int8", [g]), cache=cache)
    t3 = time.perf_counter()
    cycles = report["rtl_cycles"]
    return [{"block": "nearbank", "simulator": report["simulator"],
             "compile_s": round(t1 - t0, 2), "cases": cases, "cycles": cycles,
             "batched_s": round(t2 - t1, 2), "per_case_s": round(t3 - t2, 2),
             "batched_cycles_per_s": round(cycles / (t2 - t1)),
             "per_case_cycles_per_s": round(cycles / (t3 - t2))}]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=6)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        rows = _systolic(args.cases, Path(cache)) + _nearbank(args.cases, Path(cache))
    out = {"machine": platform.processor() or platform.machine(),
           "cpus": os.cpu_count(), "results": rows}
    if args.json:
        print(json.dumps(out, indent=1))
        return
    for r in rows:
        if "error" in r:
            print(f"{r['block']:<9}{r['simulator']:<10}not run: {r['error']}")
            continue
        print(f"{r['block']:<9}{r['simulator']:<10}compile {r['compile_s']:>6.2f} s; "
              f"{r['cases']} cases, {r['cycles']} cycles: one launch {r['batched_s']:>6.2f} s "
              f"= {r['batched_cycles_per_s']} cycles/s; a launch per case "
              f"{r['per_case_s']:>6.2f} s = {r['per_case_cycles_per_s']} cycles/s")


if __name__ == "__main__":
    main()
