"""Wall time of one ragged decode step: why equal sequences are grouped.

    python benchmarks/bench_ragged.py [--repeat 5] [--json]

Times (median of ``--repeat``) of `sim.step.compile_step` (lower, place, cost, schedule) for
llama2-7b on h100, one decode step of 256 sequences, at ``roofline`` and ``tile`` detail:
  * all 256 at one context (one shape group: four attention ops per layer);
  * 256 distinct contexts (256 groups: 1024 attention ops per layer), the worst case.
Each call costs a fresh context (the unit models' memos see new shapes), as an engine's
decode loop does. Speed claims quote this script's output, never a pass/fail test.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root
from benchmarks.timing import median_time  # noqa: E402
from mappers.ir import Batch, Phase, Precision  # noqa: E402
from mappers.models import load_model  # noqa: E402
from sim.presets import load_hardware  # noqa: E402
from sim.step import compile_step  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    system = load_hardware("h100").system
    model = load_model("llama2-7b").config
    shift = itertools.count(1)
    shapes = {"256 equal contexts": lambda s: Batch.uniform(256, 1, 2048 + s),
              "256 distinct contexts": lambda s: Batch.of([(1, 2048 + s + i)
                                                           for i in range(256)])}
    rows = {}
    for detail in ("roofline", "tile"):
        for name, make in shapes.items():
            def step(make=make, detail=detail):
                compile_step(model, system, phase=Phase.DECODE, seqs=make(next(shift)),
                             precision=Precision(), detail=detail)
            rows[f"{name}, {detail}"] = median_time(step, args.repeat)

    if args.json:
        print(json.dumps({"machine": platform.processor() or platform.machine(),
                          "cpus": os.cpu_count(), "seconds": rows}, indent=2))
        return
    for name, seconds in rows.items():
        print(f"{name:<40} {seconds * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
