"""pdsim's systolic-array model vs SCALE-Sim: wall time and peak memory on the same GEMMs.

    python benchmarks/bench_gemm.py [--scalesim] [--repeat 20]

pdsim side: warm wall time (median of ``--repeat``; Numba kernels compiled and cached first)
of the one-array model on 256^3 on 32x32 and the decode GEMV 1x4096x4096 on 32x32 in all three
dataflows, the prefill layer 2048x4096x4096 on 128x128, and the chip-level mapping search for
that layer on ``spad-prefill`` (cold: memo cleared; the search itself is what is timed).
With ``--scalesim`` it also runs SCALE-Sim 3.0.0 (in its own venv, tests/scalesim_ref/) on the
array cases under ``/usr/bin/time``-style accounting (wall time and peak RSS of the child) and
checks that both report the same compute cycles. SCALE-Sim needs tens of CPU-seconds and GBs
per GEMV case; the 2048x4096x4096 layer on 128x128 runs it out of memory on a 24 GB machine,
so it is never attempted here.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests/
from benchmarks.timing import median_time  # noqa: E402

from sim.presets import load_hardware
from sim.units.systolic.array import array_gemm
from sim.units.systolic.tile import map_gemm

CASES = [
    ("256^3 on 32x32", 32, 32, "os", 256, 256, 256),
    ("256^3 on 32x32", 32, 32, "ws", 256, 256, 256),
    ("256^3 on 32x32", 32, 32, "is", 256, 256, 256),
    ("GEMV 1x4096x4096 on 32x32", 32, 32, "os", 1, 4096, 4096),
    ("GEMV 1x4096x4096 on 32x32", 32, 32, "ws", 1, 4096, 4096),
    ("GEMV 1x4096x4096 on 32x32", 32, 32, "is", 1, 4096, 4096),
    ("prefill 2048x4096x4096 on 128x128", 128, 128, "os", 2048, 4096, 4096),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--scalesim", action="store_true")
    args = parser.parse_args()

    rows = []
    for label, r, c, df, m, n, k in CASES:
        res = array_gemm(rows=r, cols=c, dataflow=df, m=m, n=n, k=k)
        seconds = median_time(lambda r=r, c=c, df=df, m=m, n=n, k=k:
                          array_gemm(rows=r, cols=c, dataflow=df, m=m, n=n, k=k),
                          args.repeat)
        rows.append((label, df, res.compute_cycles, seconds))
    chip = load_hardware("spad-prefill").system.chip

    def search():
        map_gemm.cache_clear()
        return map_gemm(chip, "fp16", 1, 2048, 4096, 4096)

    search_s = median_time(search, args.repeat)

    from dataclasses import replace

    from mappers.ir import Phase, Precision
    from mappers.models import load_model
    from sim.step import compile_step
    bloom = load_model("bloom-176b").config
    spad = replace(load_hardware("spad-prefill").system, tensor_parallel=8)

    def bloom_step():
        map_gemm.cache_clear()
        return compile_step(bloom, spad, phase=Phase.PREFILL, batch=2, new_tokens=1024,
                            context=0, precision=Precision())

    bloom_s = median_time(bloom_step, max(3, args.repeat // 4))
    print(f"pdsim, warm, median of {args.repeat}:")
    for label, df, cycles, seconds in rows:
        print(f"  {label:<36}{df:>3}  {cycles:>12,} cycles  {seconds * 1e3:9.3f} ms")
    print(f"  mapping search 2048x4096x4096 on spad-prefill (512 arrays): {search_s * 1e3:.3f} ms")
    print(f"  BLOOM-176B prefill step (all 70 layers, tp 8, batch 2 x 1024) on spad-prefill, "
          f"memo cleared: {bloom_s * 1e3:.1f} ms")
    print(f"  peak RSS of this process: "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")

    print(f"  LLMCompass, for scale: tens of seconds per large GEMM's mapping search on its A100 "
          f"config (as reported; not run here) -> pdsim's search is ~{20 / search_s:,.0f}x "
          f"faster than 20 s")

    if args.scalesim:
        print("SCALE-Sim 3.0.0 (one case per process, CALC bandwidth mode, 64 KB SRAMs):")
        ratios = []
        for (label, df, cycles, seconds), (_, r, c, _, m, n, k) in zip(rows, CASES):
            if m * n * k > 2**30:
                print(f"  {label:<36}{df:>3}  not run (reported to run out of memory on a 24 GB "
                      f"machine after ~17 CPU-min)")
                continue
            out, wall, cpu, rss = _scalesim_case({"m": m, "n": n, "k": k, "rows": r,
                                                  "cols": c, "dataflow": df})
            same = "same cycles" if out["compute_cycles"] == cycles else \
                f"DIFFERENT: {out['compute_cycles']}"
            ratios.append((label, df, cpu / seconds))
            print(f"  {label:<36}{df:>3}  {wall:8.1f} s wall, {cpu:8.1f} s CPU, peak RSS "
                  f"{rss / 2**20:,.0f} MiB, {same}; pdsim is {cpu / seconds:,.0f}x faster "
                  f"(SCALE-Sim CPU s / pdsim wall s; both single-threaded)")
        gemv = [x for lbl, _, x in ratios if lbl.startswith("GEMV")]
        if gemv:
            print(f"  GEMV speed-up, smallest of the three dataflows: {min(gemv):,.0f}x")


def _scalesim_case(case: dict) -> tuple[dict, float, float, int]:
    """One case in its own SCALE-Sim process: (result, wall s, CPU s, peak RSS bytes)."""
    import json
    import os
    import subprocess

    from tests.scalesim_ref.env import RUNNER, scalesim_python
    py = scalesim_python()
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(py), str(RUNNER)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    proc.stdin.write(json.dumps([case]))
    proc.stdin.close()
    text = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"SCALE-Sim runner failed on {case} (exit {proc.returncode})")
    (out,) = json.loads(text)
    if "error" in out:
        raise RuntimeError(f"SCALE-Sim failed on {case}: {out['error']}")
    return out, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024

if __name__ == "__main__":
    main()
