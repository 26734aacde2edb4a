"""Wall time of the concurrent scheduler (`mappers.schedule`) on whole llama2-7b steps.

    python benchmarks/bench_schedule.py [--repeat 20] [--json]

Times (median of ``--repeat``) of `schedule` alone, with the op costs precomputed (a memo), so
the figure is the list scheduling and the steady-state periods, not the unit models:
  * llama2-7b prefill of 2048 tokens on h100 (one repeated layer segment: 32 layers);
  * the same on halo-package (CiM GEMMs with their transfer ops, the CiD cache write);
  * a decode step at context 2048 on h100;
  * llama2-7b with pipeline_parallel 4 on h100 (four layer segments and three sends).
Speed claims in notes and READMEs quote this script's output, never a pass/fail test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root
from benchmarks.timing import median_time  # noqa: E402
from mappers.ir import Phase, Precision  # noqa: E402
from mappers.models import load_model  # noqa: E402
from mappers.pipeline import compile_graph  # noqa: E402
from mappers.schedule import schedule  # noqa: E402
from sim.presets import load_hardware  # noqa: E402
from sim.step import step_cost  # noqa: E402


def _case(system, phase: Phase, tokens: int, context: int):
    model = load_model("llama2-7b").config
    graph = compile_graph(model, system, phase=phase, batch=1, new_tokens=tokens,
                          context=context, precision=Precision())
    cost = step_cost(system, "tile", graph)
    memo = {op: cost(op) for seg in graph.segments for op in seg.ops}
    return lambda: schedule(graph, memo.__getitem__)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    h100 = load_hardware("h100").system
    cases = {
        "llama2-7b prefill 2048, h100": _case(h100, Phase.PREFILL, 2048, 0),
        "llama2-7b prefill 2048, halo-package": _case(load_hardware("halo-package").system,
                                                      Phase.PREFILL, 2048, 0),
        "llama2-7b decode at 2048, h100": _case(h100, Phase.DECODE, 1, 2048),
        "llama2-7b prefill 2048, h100 pp 4": _case(
            replace(h100, pipeline_parallel=4), Phase.PREFILL, 2048, 0),
    }
    rows = {name: median_time(fn, args.repeat) for name, fn in cases.items()}
    if args.json:
        print(json.dumps({"machine": platform.processor() or platform.machine(),
                          "cpus": os.cpu_count(), "seconds": rows}, indent=2))
        return
    print(f"median of {args.repeat} runs on {os.cpu_count()} CPUs (schedule only)")
    for name, seconds in rows.items():
        print(f"  {name:<40} {seconds * 1e3:9.3f} ms")


if __name__ == "__main__":
    main()
