"""Capacity planning: the cheapest counts of a template cluster's instance groups that meet
the SLOs on a workload. Counts are found by bisection (more instances never hurt the SLOs,
so the smallest count that meets them is the boundary) and every run shares one set of
memoised step-time tables."""

from __future__ import annotations

import dataclasses
from typing import Callable

from sim.errors import ConfigError
from sim.serving.cluster import Cluster
from sim.serving.metrics import slo_metric
from sim.serving.run import serve


def meets(summary: dict, slo: dict) -> bool:
    """Every request completed and every SLO percentile within its target."""
    return summary["completed"] == summary["requests"] and all(
        summary[f"slo_{slo_metric(m)}_p{p:g}_met"] for m, (p, _) in slo.items())


def plan(template: Cluster, requests, slo: dict, *, max_count: int = 64,
         tables: dict | None = None, accept: Callable | None = None) -> dict:
    """The cheapest cluster of ``template``'s groups (their ``count`` ignored) meeting ``slo``
    on ``requests``. A collocated template has one group; a disaggregated one a prefill and a
    decode group. Cost: SPAD's cost model times chips (chips alone where it does not apply).
    ``tables``: step-time tables to share with other plans (`build_instances`). ``accept``:
    ``(ServeResult, summary) -> bool`` in place of `meets` (say, SLOs on each request's
    slowdown); it may add its figures to the summary.
    Returns {"counts", "cost_usd", "summary", "runs"}; `ConfigError` if no count up to
    ``max_count`` meets the SLOs.

    Search (more instances of a group never make the SLOs worse): the smallest ``K`` of 1, 2,
    4, ... (capped at ``max_count``) at which ``K`` instances of every group meet the SLOs;
    for one group, bisection below ``K``. For two, the fewest prefill instances ``p0`` with
    ``K`` decode ones and the fewest decode ones ``d0`` with ``K`` prefill ones bound each
    count from below; then for ``p`` from ``p0`` up, the fewest decode instances (bisection
    between ``d0`` and the last ``p``'s, which more prefill cannot raise), until ``p``
    prefill and ``d0`` decode instances cost more than the best so far. Ample clusters are
    the slow ones to simulate (many small iterations), so the search never runs one larger
    than ``K`` a group."""
    if not slo and accept is None:
        raise ConfigError("--slo: the planner needs at least one SLO target")
    roles = [g.role for g in template.groups]
    if sorted(roles) not in (["collocated"], ["decode", "prefill"]):
        raise ConfigError("--cluster: the planner takes one collocated group, or one prefill "
                          f"and one decode group, got roles {roles}")
    tables = {} if tables is None else tables
    cache: dict[tuple[int, ...], dict] = {}

    def run(counts: tuple[int, ...]) -> dict:
        if counts not in cache:
            groups = tuple(dataclasses.replace(g, count=c)
                           for g, c in zip(template.groups, counts))
            cluster = dataclasses.replace(template, groups=groups)
            result, summary = serve(requests, cluster, slo, tables=tables)
            summary["meets_slo"] = (meets(summary, slo) if accept is None
                                    else bool(accept(result, summary)))
            cache[counts] = summary
        return cache[counts]

    def ok(counts: tuple[int, ...]) -> bool:
        return run(counts)["meets_slo"]

    def smallest(fixed: tuple[int, ...], axis: int, lo: int, hi: int) -> int:
        """Smallest count on ``axis`` (others as in ``fixed``) in (lo, hi] that meets the
        SLOs, given that ``hi`` meets them and ``lo`` does not (or is 0)."""
        def at(n: int) -> tuple[int, ...]:
            return tuple(n if i == axis else c for i, c in enumerate(fixed))
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if ok(at(mid)):
                hi = mid
            else:
                lo = mid
        return hi

    groups = len(template.groups)
    k, below = 1, 0
    while not ok((k,) * groups):
        if k >= max_count:
            raise ConfigError(f"--slo: no cluster of up to {max_count} instances a group "
                              f"meets the SLOs")
        k, below = min(2 * k, max_count), k
    price = _prices(template)
    if groups == 1:
        n = smallest((k,), 0, below, k)
        best = (n * price[0], (n,))
    else:
        pi = roles.index("prefill")
        di = 1 - pi

        def counts(p: int, d: int) -> tuple[int, int]:
            return (p, d) if pi == 0 else (d, p)
        p0 = smallest(counts(k, k), pi, 0, k)  # (below, k) may meet: no bound from below
        d0 = smallest(counts(k, k), di, 0, k)
        best, hi = None, k
        for p in range(p0, k + 1):
            if best is not None and p * price[pi] + d0 * price[di] >= best[0]:
                break
            d = smallest(counts(p, k), di, d0 - 1, hi) if hi > d0 else d0
            if not ok(counts(p, d)):  # d0 fails beside p: more prefill may be what it needs
                continue
            hi = d
            cost = p * price[pi] + d * price[di]
            if best is None or cost < best[0]:
                best = (cost, counts(p, d))
        if best is None:
            raise ConfigError(f"--slo: no cluster of up to {k} instances a group meets the "
                              f"SLOs")
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
