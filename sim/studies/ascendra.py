"""Ascendra reproduced (Ikram et al., arXiv 2504.20828; ../shared/REFERENCE.md): its two-tier
priorities (`sim.serving.policies.ascendra`) against vLLM-style continuous batching and
Sarathi-Serve chunked prefill on the same hardware, in pdsim's serving simulator.

Setup (CHOSEN, not the paper's testbed, which pdsim does not have): llama2-7b on four h100
instances (tp 1), least-loaded routing; Poisson arrivals for `WINDOW_S` seconds with the
prompt and output lengths of each Azure 2023 trace; SLOs per request: TTFT within `TTFT_S`
and mean TBT within `TBT_S` (5x an unbatched h100 decode step), goodput = requests per second
meeting both. Ascendra splits the same four instances 3 low-priority + 1 high-priority.
Sarathi's token budget is `SARATHI_TOKENS` (its paper's strict-SLO setting); vLLM keeps its
default. The maximum rate at the 90% SLO-attainment target is interpolated linearly between
the two grid rates around the crossing.

`ascendra_study` computes and writes nothing; `write_ascendra` regenerates
``results/ascendra/`` (``pdsim reproduce ascendra``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sim.serving.cluster import parse_cluster
from sim.serving.run import requests_for, serve
from sim.studies import write_study

COMMAND = "pdsim reproduce ascendra"
MODEL, HARDWARE, INSTANCES = "llama2-7b", "h100", 4
TRACES = {"azure-conv": (35, 45, 50, 55, 60, 70),
          "azure-code": (30, 40, 50, 60, 70, 80)}
WINDOW_S = 30.0
TTFT_S, TBT_S = 0.25, 0.03
TARGET = 0.9
SARATHI_TOKENS = 512
SEED = 0
#: Ascendra's headline: up to 1.7x the throughput of vLLM and Sarathi-Serve at both SLOs.
ASCENDRA_REPORTED = 1.7


def clusters() -> dict[str, Any]:
    """The three policies' clusters, on the same `INSTANCES` h100s."""
    def cluster(groups):
        return parse_cluster({"model": MODEL, "router": "least_loaded", "instances": groups},
                             "ascendra study")
    lp = INSTANCES - 1
    return {
        "vllm": cluster([{"hardware": HARDWARE, "count": INSTANCES, "batching": "vllm"}]),
        "sarathi": cluster([{"hardware": HARDWARE, "count": INSTANCES, "batching": "sarathi",
                             "max_tokens": SARATHI_TOKENS}]),
        "ascendra": cluster([{"hardware": HARDWARE, "count": lp, "batching": "ascendra"},
                             {"hardware": HARDWARE, "count": INSTANCES - lp,
                              "batching": "ascendra-hp"}]),
    }


def max_rate(rates, attainment, target: float = TARGET) -> float:
    """The highest rate at which attainment is still >= ``target``, interpolated linearly
    between the last grid rate meeting it and the next; 0 if the first misses it, the last
    rate if none misses it."""
    if attainment[0] < target:
        return 0.0
    for k in range(1, len(rates)):
        if attainment[k] < target:
            a0, a1 = attainment[k - 1], attainment[k]
            return rates[k - 1] + (rates[k] - rates[k - 1]) * (a0 - target) / (a0 - a1)
    return float(rates[-1])


def ascendra_study() -> dict[str, Any]:
    slo = {"ttft": (90.0, TTFT_S), "tbt": (90.0, TBT_S)}
    tables: dict = {}
    out: dict[str, Any] = {"model": MODEL, "hardware": HARDWARE, "instances": INSTANCES,
                           "window_s": WINDOW_S, "ttft_s": TTFT_S, "tbt_s": TBT_S,
                           "target": TARGET, "ascendra_reported": ASCENDRA_REPORTED,
                           "traces": {}}
    for trace, rates in TRACES.items():
        runs: dict[str, list[dict[str, float]]] = {}
        for name, cluster in clusters().items():
            runs[name] = []
            for rate in rates:
                reqs = requests_for(trace, rate=rate, duration_s=WINDOW_S, seed=SEED)
                result, s = serve(reqs, cluster, slo, tables=tables)
                runs[name].append({
                    "rate": rate, "slo_attainment": s["slo_attainment"],
                    "goodput_rps": s["goodput_rps"], "throughput_rps": s["throughput_rps"],
                    "ttft_p90_s": s["ttft_p90_s"], "tbt_p90_s": s["tbt_p90_s"],
                    "moved": sum(q.moves for q in result.sequences) / max(1, len(reqs))})
        best = {name: max_rate(list(rates), [r["slo_attainment"] for r in rr])
                for name, rr in runs.items()}
        base = max(best["vllm"], best["sarathi"])
        out["traces"][trace] = {"rates": list(rates), "runs": runs, "max_rate": best,
                                "ascendra_over_best_baseline": best["ascendra"] / base
                                if base else None}
    return out


def write_ascendra(out_dir: Path) -> list[Path]:
    """Regenerate ``out_dir`` (``results/ascendra/``): ascendra.json, ascendra.png, README.md."""
    from sim.studies.ascendra_report import plot, readme
    return write_study(Path(out_dir), "ascendra", ascendra_study(), plot, readme)


def headline(data: dict[str, Any]) -> str:
    """Max rate at 90% SLO attainment per trace and policy, and Ascendra's ratio."""
    from sim.studies import text_table
    rows = []
    for trace, t in data["traces"].items():
        m = t["max_rate"]
        ratio = t["ascendra_over_best_baseline"]
        rows.append([trace, f"{m['vllm']:.1f}", f"{m['sarathi']:.1f}", f"{m['ascendra']:.1f}",
                     f"{ratio:.2f}x" if ratio else "-", f"up to {ASCENDRA_REPORTED}x"])
    return text_table(["trace", "vLLM req/s", "Sarathi req/s", "Ascendra req/s",
                       "pdsim ratio", "paper"], rows)
