"""Speed of ``pdsim sweep`` on local Dask workers: a 24-point sweep (two hardware fields, two
models) with 1 worker and with 2, no cache, each timed as a whole sweep (process pool start,
workers importing pdsim, every point). Target (issue "Design-space sweeps"): 2 workers at least
1.6x faster than 1 on a 2-core machine.

    python benchmarks/bench_sweep.py            # prints the table; output committed in
                                                # benchmarks/results/bench_sweep.txt
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.timing import median_time  # noqa: E402
from sim.sweep.execute import run_sweep  # noqa: E402
from sim.sweep.spec import parse_spec  # noqa: E402

SPEC = {"base": {"hw": "h100", "batch": 1, "prompt": 2048, "gen": 1024, "detail": "tile"},
        "grid": {"chip.cores": [66, 88, 110, 132],
                 "chip.memory.pin_rate_bps": [3.125e9, 4.1875e9, 5.2375e9],
                 "model": ["llama2-7b", "llama3-8b"]}}


def main() -> None:
    load = os.getloadavg()[0]
    spec = parse_spec(SPEC, "bench")
    assert len(spec.points) == 24
    times = {}
    for workers in (1, 2):
        # A fresh pool each time: the timed sweep includes starting its workers.
        def sweep(n: int = workers) -> object:
            return run_sweep(spec, workers=n, cache_dir=None, in_process=False)
        times[workers] = median_time(sweep, repeat=3, warmup=workers == 1)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, load average before "
          f"{load:.1f}")
    print("24-point sweep (cores x HBM pin rate x model; llama 7-8B, prompt 2048, 1024 "
          "generated, tile detail, every step simulated), local Dask worker processes "
          "(spawned per sweep, included), median of 3")
    print(f"{'workers':>8} {'wall s':>8} {'s/point':>8} {'speed-up':>9}")
    for workers, t in times.items():
        print(f"{workers:>8} {t:>8.2f} {t / 24:>8.3f} {times[1] / t:>8.2f}x")


if __name__ == "__main__":
    main()
