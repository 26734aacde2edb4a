"""Serving metrics: latency percentiles, SLO attainment, goodput, throughput, utilisation,
queueing delay, hardware cost, TDP and energy.

Definitions (as DistServe and Splitwise use them): TTFT = first token - arrival; TBT = the
gaps between a request's successive tokens (percentiles over every gap of every request);
e2e = last token - arrival. An SLO ``ttft_p90=X`` holds when the cluster's p90 TTFT is at
most X; a request *meets* the SLOs when its own TTFT is within the TTFT target and its mean
TBT (time per output token) within the TBT target (and its e2e within an e2e target); with
several targets on one metric (``ttft_p90=X,ttft_p99=Y``) each applies, so the tightest counts.
Goodput is the requests per second that meet the SLOs; throughput counts all completed
ones. Energy per chip: static power (`sim.costmodel.static_power_w`) for the whole run plus
the rest of the TDP while the instance runs an iteration, an upper bound on the dynamic part.
"""

from __future__ import annotations

import numpy as np

from sim.errors import ConfigError

_METRICS = ("ttft", "tbt", "e2e")


def parse_slo(text: str | None) -> dict[str, tuple[float, float]]:
    """``ttft_p90=0.5,tbt_p90=0.1,tbt_p99=0.3`` -> {"ttft_p90": (90, 0.5), "tbt_p90":
    (90, 0.1), "tbt_p99": (99, 0.3)} (seconds). An SLO dict's keys name the metric before
    any ``_p``: {"ttft": (90, 0.5)} is the same target as {"ttft_p90": (90, 0.5)}."""
    out: dict[str, tuple[float, float]] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, _, value = item.partition("=")
        metric, _, pct = name.strip().partition("_p")
        try:
            p, v = float(pct), float(value)
        except ValueError:
            p = v = -1.0
        if metric not in _METRICS or not 0 < p < 100 or not v > 0:
            raise ConfigError(f"--slo: {item.strip()!r} must be METRIC_pNN=SECONDS with METRIC "
                              f"one of {', '.join(_METRICS)} and 0 < NN < 100, SECONDS > 0")
        out[f"{metric}_p{p:g}"] = (p, v)
    return out


def slo_metric(name: str) -> str:
    """The metric an SLO key names: ``ttft_p90`` -> ``ttft``, ``ttft`` -> ``ttft``."""
    return name.partition("_p")[0]


def summarise(result, slo: dict[str, tuple[float, float]], *, cost=None) -> dict:
    """The summary of a `sim.serving.simulator.ServeResult` under ``slo`` (`parse_slo`);
    ``cost``: {instance name: (cost_usd, tdp_w, static_w, chips)} when known."""
    seqs = result.sequences
    done = [s for s in seqs if s.done]
    end = max(result.end_s, 1e-12)
    ttft = np.array([s.first_token_s - s.request.arrival_s for s in done])
    e2e = np.array([s.finish_s - s.request.arrival_s for s in done])
    tbt = np.concatenate([np.asarray(s.tbts) for s in done]) if done else np.zeros(0)
    tpot = np.array([s.tbt_sum_s / max(1, len(s.tbts)) for s in done])
    out: dict = {"requests": len(seqs), "completed": len(done), "makespan_s": end}
    for name, arr in (("ttft", ttft), ("tbt", tbt), ("e2e", e2e)):
        for p in (50, 90, 99):
            out[f"{name}_p{p}_s"] = float(np.percentile(arr, p)) if arr.size else float("nan")
    queue = np.array([s.queue_delay_s for s in done])
    out["queue_delay_mean_s"] = float(queue.mean()) if queue.size else float("nan")
    out["queue_delay_p90_s"] = float(np.percentile(queue, 90)) if queue.size else float("nan")
    meets = np.ones(len(done), bool)
    per_request = {"ttft": ttft, "tbt": tpot, "e2e": e2e}
    for name, (p, target) in slo.items():
        metric = slo_metric(name)
        arr = tbt if metric == "tbt" else per_request[metric]
        value = float(np.percentile(arr, p)) if arr.size else float("inf")
        out[f"slo_{metric}_p{p:g}_met"] = value <= target
        meets &= per_request[metric] <= target
    out["slo_attainment"] = float(meets.mean()) if done else 0.0
    out["goodput_rps"] = float(meets.sum()) / end
    out["throughput_rps"] = len(done) / end
    out["throughput_tokens_per_s"] = sum(s.generated for s in done) / end
    out["preemptions"] = sum(s.preemptions for s in seqs)
    out["kv_transfers"] = len(result.transfers)
    out["kv_transfer_bytes"] = sum(t.nbytes for t in result.transfers)
    busy = {i.name: sum(it.end_s - it.start_s for it in i.timeline) for i in result.instances}
    out["utilisation"] = {name: b / end for name, b in busy.items()}
    if cost is not None:
        out["cost_usd"] = sum(c[0] * c[3] for c in cost.values())
        out["tdp_w"] = sum(c[1] * c[3] for c in cost.values())
        out["energy_j"] = sum(c[3] * (c[2] * end + (c[1] - c[2]) * busy[name])
                              for name, c in cost.items())
    return out
