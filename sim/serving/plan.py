"""Capacity planning: the cheapest counts of a template cluster's instance groups that meet
the SLOs on a workload. Counts are found by bisection (more instances never hurt the SLOs,
so the smallest count that meets them is the boundary) and every run shares one set of
memoised step-time tables."""

from __future__ import annotations

import dataclasses

from sim.errors import ConfigError
from sim.serving.cluster import Cluster
from sim.serving.run import serve


def meets(summary: dict, slo: dict) -> bool:
    """Every request completed and every SLO percentile within its target."""
    return summary["completed"] == summary["requests"] and all(
        summary[f"slo_{m}_p{p:g}_met"] for m, (p, _) in slo.items())


def plan(template: Cluster, requests, slo: dict, *, max_count: int = 64) -> dict:
    """The cheapest cluster of ``template``'s groups (their ``count`` ignored) meeting ``slo``
    on ``requests``. A collocated template has one group; a disaggregated one a prefill and a
    decode group. Cost: SPAD's cost model times chips (chips alone where it does not apply).
    Returns {"counts", "cost_usd", "summary", "runs"}; `ConfigError` if no count up to
    ``max_count`` meets the SLOs."""
    if not slo:
        raise ConfigError("--slo: the planner needs at least one SLO target")
    roles = [g.role for g in template.groups]
    if sorted(roles) not in (["collocated"], ["decode", "prefill"]):
        raise ConfigError("--cluster: the planner takes one collocated group, or one prefill "
                          f"and one decode group, got roles {roles}")
    tables: dict = {}
    cache: dict[tuple[int, ...], dict] = {}

    def run(counts: tuple[int, ...]) -> dict:
        if counts not in cache:
            groups = tuple(dataclasses.replace(g, count=c)
                           for g, c in zip(template.groups, counts))
            cluster = dataclasses.replace(template, groups=groups)
            cache[counts] = serve(requests, cluster, slo, tables=tables)[1]
        return cache[counts]

    def smallest(fixed: tuple[int, ...], axis: int) -> int | None:
        """Smallest count on ``axis`` (others as in ``fixed``) that meets the SLOs."""
        def at(n: int) -> tuple[int, ...]:
            return tuple(n if i == axis else c for i, c in enumerate(fixed))
        if not meets(run(at(max_count)), slo):
            return None
        lo, hi = 0, max_count  # lo fails (or is 0), hi meets
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if meets(run(at(mid)), slo):
                hi = mid
            else:
                lo = mid
        return hi

    price = _prices(template)
    best = None
    if len(template.groups) == 1:
        n = smallest((max_count,), 0)
        if n is not None:
            best = (n * price[0], (n,))
    else:
        for first in range(1, max_count + 1):
            if best is not None and first * price[0] >= best[0]:
                break
            n = smallest((first, max_count), 1)
            if n is not None:
                cost = first * price[0] + n * price[1]
                if best is None or cost < best[0]:
                    best = (cost, (first, n))
    if best is None:
        raise ConfigError(f"--slo: no cluster of up to {max_count} instances a group meets "
                          f"the SLOs")
    return {"counts": {f"{g.role}:{g.hardware}": c for g, c in zip(template.groups, best[1])},
            "cost_usd": best[0], "summary": run(best[1]), "runs": len(cache)}


def _prices(template: Cluster) -> list[float]:
    from sim.api import load_system
    from sim.costmodel import spad_cost_model

    out = []
    for g in template.groups:
        system = load_system(g.hardware, tp=g.tp, pp=g.pp)
        est = spad_cost_model(system.chip)
        chips = g.tp * g.pp
        out.append(chips * (est["cost_usd"] if est is not None else 1.0))
    return out
