"""CPU time of BestServe's ranking (`pdsim serve rank`, `sim.serving.rank`) against simulating
every strategy, on the first scenario of `pdsim reproduce bestserve` (llama2-7b on 8 h100,
Azure code lengths): the study's own code, timed here so that its results folder holds no
measured time (it regenerates byte for byte).

    .venv/bin/python benchmarks/bench_rank.py
"""

from __future__ import annotations

import time

from sim.serving.rank import rank, simulated_goodput
from sim.studies.bestserve import HARDWARE, SCENARIOS, TOP, search


def main() -> None:
    model, chips = SCENARIOS[0]
    s, tables = search(), {}
    t0 = time.process_time()
    ranked = rank(model, HARDWARE, chips, s, top=TOP, tables=tables)
    t1 = time.process_time()
    sims = 0
    for strategy, estimate in zip(ranked["strategies"], ranked["estimates"]):
        sims += simulated_goodput(strategy, model, HARDWARE, s, tables, estimate)[1]
    t2 = time.process_time()
    print(f"{model} on {chips} x {HARDWARE}: ranking {t1 - t0:.1f} s CPU "
          f"({ranked['simulations']} simulations, step tables built here); every strategy "
          f"simulated {t2 - t1:.1f} s CPU ({sims} simulations, tables reused)")


if __name__ == "__main__":
    main()
