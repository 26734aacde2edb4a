"""BestServe-style strategy ranking (Hu et al., "BestServe: Serving Strategies with Optimal
Goodput in Collocation and Disaggregation Architectures", arXiv 2506.05871, 2025): enumerate
the ways to serve a model on a chip budget, estimate each one's goodput cheaply, simulate the
most promising ones, and rank them.

* **Strategies** (`enumerate_strategies`): collocated (``N / (tp pp)`` identical instances,
  Sarathi chunked prefill) or disaggregated (``n_p`` prefill instances of one ``(tp, pp)`` and
  ``n_d`` decode instances of another, vLLM batching in each pool, every chip used:
  ``n_p tp_p pp_p + n_d tp_d pp_d = N``); ``tp`` in {1, 2, 4, 8}, ``tp pp <= 8``, ``pp`` in
  {1, 2} for collocated instances and 1 in disaggregated pools (CHOSEN to keep the exhaustive
  reference of the study affordable: 65 strategies on 16 chips instead of 150);
  configurations whose KV cache cannot hold the longest request are dropped.
* **Goodput** (`simulated_goodput`): the highest Poisson arrival rate (req/s) at which at least
  ``target`` of the requests meet both per-request SLOs (TTFT, mean TBT) in the serving
  simulator, found by bracketing and geometric bisection to ``tol``.
* **Estimate** (`sim.serving.rank_estimate`): an adapted roofline with an M/G/1 queue, from the
  same step-time tables, a few table lookups a strategy (BestServe's approach; its error
  against simulation is part of the study).
* **Pruning** (`rank`): only the ``top`` strategies by estimate are simulated; the rest are
  ranked by estimate below them. Every simulation shares one set of memoised tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim.serving.cluster import Cluster, Group
from sim.serving.metrics import slo_target
from sim.serving.workload import synthetic

TPS, PPS, DISAGG_PPS, MAX_CHIPS_PER_INSTANCE = (1, 2, 4, 8), (1, 2), (1,), 8


@dataclass(frozen=True, slots=True, kw_only=True)
class Strategy:
    """A serving strategy: ``prefill`` (collocated instances when ``decode`` is None) and
    ``decode`` pools, each ``(tp, pp, count)``."""

    prefill: tuple[int, int, int]
    decode: tuple[int, int, int] | None = None

    @property
    def kind(self) -> str:
        return "collocated" if self.decode is None else "disaggregated"

    @property
    def chips(self) -> int:
        return sum(tp * pp * n for tp, pp, n in filter(None, (self.prefill, self.decode)))

    @property
    def label(self) -> str:
        def pool(p):
            return f"{p[2]}x(tp{p[0]},pp{p[1]})"
        if self.decode is None:
            return f"colloc {pool(self.prefill)}"
        return f"disagg P {pool(self.prefill)} : D {pool(self.decode)}"

    def cluster(self, model: str, hardware: str) -> Cluster:
        if self.decode is None:
            tp, pp, n = self.prefill
            groups = (Group(hardware=hardware, tp=tp, pp=pp, count=n, batching="sarathi"),)
        else:
            groups = tuple(Group(hardware=hardware, tp=tp, pp=pp, count=n, role=role,
                                 batching="vllm")
                           for role, (tp, pp, n) in (("prefill", self.prefill),
                                                     ("decode", self.decode)))
        return Cluster(model=model, groups=groups, router="least_loaded")


def configs(fits, pps=PPS) -> list[tuple[int, int]]:
    """Instance configurations ``(tp, pp)`` of the space for which ``fits(tp, pp)``."""
    return [(tp, pp) for tp in TPS for pp in pps
            if tp * pp <= MAX_CHIPS_PER_INSTANCE and fits(tp, pp)]


def enumerate_strategies(chips: int, fits) -> list[Strategy]:
    """Every strategy on exactly ``chips`` chips (module docstring), in a fixed order."""
    out = [Strategy(prefill=(tp, pp, chips // (tp * pp))) for tp, pp in configs(fits)
           if chips % (tp * pp) == 0]
    cfgs = configs(fits, DISAGG_PPS)
    for tp, pp in cfgs:
        for dtp, dpp in cfgs:
            for n_p in range(1, chips // (tp * pp) + 1):
                rest = chips - n_p * tp * pp
                if rest > 0 and rest % (dtp * dpp) == 0:
                    out.append(Strategy(prefill=(tp, pp, n_p), decode=(dtp, dpp,
                                                                     rest // (dtp * dpp))))
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Search:
    """How goodput is simulated: Poisson arrivals with lengths drawn from ``lengths`` (seed
    ``seed``) for ``requests / rate`` seconds but at least ``span_ttfts`` TTFT targets (so that
    an overloaded queue has time to push TTFT past its target: a short burst would meet the
    SLOs at any rate), SLO attainment ``target``, bisection to a relative ``tol``."""

    lengths: tuple
    slo: dict
    requests: int = 400
    span_ttfts: float = 10.0
    target: float = 0.9
    tol: float = 0.05
    seed: int = 0


def attainment(strategy: Strategy, model: str, hardware: str, rate: float, search: Search,
               tables: dict) -> float:
    """SLO attainment of ``strategy`` at ``rate`` req/s (`Search`)."""
    import numpy as np

    from sim.serving.run import serve

    span = max(search.requests / rate, search.span_ttfts * slo_target(search.slo, "ttft"))
    reqs = synthetic(list(search.lengths), rate=rate, duration_s=span,
                     rng=np.random.default_rng(search.seed))
    _, s = serve(reqs, strategy.cluster(model, hardware), search.slo, tables=tables)
    return s["slo_attainment"] if s["completed"] == s["requests"] else 0.0


def simulated_goodput(strategy: Strategy, model: str, hardware: str, search: Search,
                      tables: dict, guess: float) -> tuple[float, int]:
    """(goodput req/s, simulations run): the highest rate meeting ``search.target``,
    bracketed from ``guess`` by doubling or halving, then bisected geometrically."""
    runs = 0

    def ok(rate: float) -> bool:
        nonlocal runs
        runs += 1
        return attainment(strategy, model, hardware, rate, search, tables) >= search.target

    guess = max(guess, 0.05)
    if ok(guess):
        lo, hi = guess, guess * 2
        while ok(hi):
            lo, hi = hi, hi * 2
            if hi > 1e5:
                return lo, runs
    else:
        lo, hi = guess / 2, guess
        while not ok(lo):
            lo, hi = lo / 2, lo
            if lo < 1e-3:
                return 0.0, runs
    while hi / lo > 1 + search.tol:
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo, runs


def rank(model: str, hardware: str, chips: int, search: Search, *, top: int = 4,
         tables: dict | None = None) -> dict:
    """Rank every strategy (module docstring). Returns {"rows": [{"strategy", "kind",
    "estimate_rps", "goodput_rps" (None if pruned)}, ...] best first, "simulations",
    "strategies"}; ties are broken by the enumeration order, so the ranking is
    deterministic."""
    from sim.serving.rank_estimate import Estimator

    tables = {} if tables is None else tables
    est = Estimator(model, hardware, search, tables)
    strategies = enumerate_strategies(chips, est.fits)
    if not strategies:
        from sim.errors import ConfigError
        raise ConfigError(f"--chips: {model} fits no strategy on {chips} x {hardware}")
    estimates = [est.goodput(s) for s in strategies]
    order = sorted(range(len(strategies)), key=lambda k: (-estimates[k], k))
    kept, sims = order[:top], 0
    simulated = {}
    for k in kept:
        simulated[k], n = simulated_goodput(strategies[k], model, hardware, search, tables,
                                            estimates[k])
        sims += n
    kept.sort(key=lambda k: (-simulated[k], k))
    rows = [{"strategy": strategies[k].label, "kind": strategies[k].kind,
             "estimate_rps": estimates[k], "goodput_rps": simulated.get(k)}
            for k in kept + order[top:]]
    return {"rows": rows, "simulations": sims, "strategies": strategies,
            "estimates": estimates}

