"""One hour of the Azure code trace on a 16-instance cluster (llama2-7b, 16 collocated h100
with Sarathi chunked prefill), step-time tables included; and the same loop with SimPy
processes instead of the heap, to justify the heap (sim/serving/simulator.py).

    .venv/bin/python benchmarks/bench_serve.py
"""

from __future__ import annotations

import time

from sim.serving.cluster import parse_cluster
from sim.serving.run import serve
from sim.serving.workload import load_trace


def main() -> None:
    reqs = load_trace("azure-code")
    cluster = parse_cluster({"model": "llama2-7b", "router": "least_loaded", "instances": [
        {"hardware": "h100", "role": "collocated", "count": 16}]}, "bench")
    t, cpu = time.perf_counter(), time.process_time()
    _, summary = serve(reqs, cluster, {})
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    print(f"azure-code 1 h ({len(reqs)} requests, {summary['makespan_s']:.0f} s simulated) on "
          f"16 x h100: {wall:.1f} s wall ({cpu:.1f} s CPU) incl. "
          f"{summary['step_tables_simulated']} simulated table nodes")
    disagg = parse_cluster({"model": "llama2-7b", "router": "least_loaded", "instances": [
        {"hardware": "h100", "role": "prefill", "count": 6, "batching": "vllm"},
        {"hardware": "h100", "role": "decode", "count": 10, "batching": "vllm"}]}, "bench")
    t, cpu = time.perf_counter(), time.process_time()
    _, summary = serve(reqs, disagg, {})
    print(f"  disaggregated 6 prefill + 10 decode: {time.perf_counter() - t:.1f} s wall "
          f"({time.process_time() - cpu:.1f} s CPU)")
    try:
        import simpy
    except ImportError:
        print("  simpy not installed: heap vs SimPy comparison skipped")
        return
    print(f"  simpy {simpy.__version__}: {_simpy_loop(reqs):.2f} s vs heap "
          f"{_heap_loop(reqs):.2f} s for an M/D/1-style loop over the same arrivals x 20")


def _heap_loop(reqs) -> float:
    import heapq
    t = time.perf_counter()
    for _ in range(20):
        ev = [(r.arrival_s, r.id) for r in reqs]
        heapq.heapify(ev)
        free = 0.0
        while ev:
            now, i = heapq.heappop(ev)
            if i >= 0:
                free = max(free, now) + 0.01
                heapq.heappush(ev, (free, -1))
    return time.perf_counter() - t


def _simpy_loop(reqs) -> float:
    import simpy
    t = time.perf_counter()
    for _ in range(20):
        env = simpy.Environment()
        server = simpy.Resource(env, capacity=1)

        def request(env, at, server=server):
            yield env.timeout(at)
            with server.request() as req:
                yield req
                yield env.timeout(0.01)
        for r in reqs:
            env.process(request(env, r.arrival_s))
        env.run()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
