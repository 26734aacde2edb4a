"""The cheap goodput estimate `sim.serving.rank` prunes with: an adapted roofline (pdsim's
step-time tables) and an M/G/1 queue per instance, as BestServe estimates (arXiv 2506.05871).

Per instance configuration, from a fixed sample of the workload's lengths:

* prefill service ``S(p)``: one prompt of ``p`` tokens alone; its mean, second moment and p90;
* decode: the largest batch ``B`` (at most 256 and what the KV cache holds at the mean
  context) whose step at the mean decode context fits the TBT budget; decode capacity
  ``B / (mean output x t_d(B))`` requests/s.

A pool's rate is limited by TTFT through the M/G/1 mean wait ``W = lam E[S^2] / (2 (1 - rho))``
kept under ``(TTFT - S_p90) / 2.3`` (an exponential tail's p90 is 2.3x its mean), where ``rho``
counts every second of work a request brings to the instance (its prefill; for collocated
instances also its decode share ``mean output x t_d(B) / B``). Disaggregated: the smaller of
the prefill pool's rate, the decode pool's capacity and the KV ports' (one prompt's KV cache
a request, latency + bytes / bandwidth a transfer, each prefill egress and decode ingress port
one transfer at a time, so at most ``min(prefill, decode instances)`` in flight). Collocated
(Sarathi): part of the TBT budget goes to the decode step (a quarter, half or three
quarters: the best of the three) and the rest to prefill chunks riding along, so the decode
batch is sized at that share and the prefill share of time may not stretch the mean TBT
past the target: ``t_d / (1 - lam E[S]) <= TBT``.
"""

from __future__ import annotations

import numpy as np

from sim.serving.metrics import slo_target
from sim.serving.rank import Search, Strategy
from sim.serving.simulator import Link

SAMPLE = 64
#: Shares of the TBT budget a collocated instance's decode step may take (the best is kept).
DECODE_SHARES = (0.25, 0.5, 0.75)
MAX_BATCH = 256
P90_OVER_MEAN = 2.3


class Estimator:
    """Goodput estimates of strategies of ``model`` on ``hardware`` for ``search`` (its
    lengths and SLOs), sharing ``tables`` with the simulations (`build_instances`' format)."""

    def __init__(self, model: str, hardware: str, search: Search, tables: dict) -> None:
        self.model, self.hardware, self.tables = model, hardware, tables
        lengths = search.lengths
        pick = np.linspace(0, len(lengths) - 1, min(SAMPLE, len(lengths))).round().astype(int)
        self.prompts = np.array([lengths[k].prompt_tokens for k in pick])
        self.outputs = np.array([lengths[k].output_tokens for k in pick])
        self.longest = max(r.prompt_tokens + r.output_tokens - 1 for r in lengths)
        self.ttft = slo_target(search.slo, "ttft")
        self.tbt = slo_target(search.slo, "tbt")
        self._per_config: dict = {}
        from sim.api import load_model
        from sim.serving.cluster import kv_bytes_per_token
        self.kv_bytes_per_token = kv_bytes_per_token(load_model(model))

    def _entry(self, tp: int, pp: int):
        from sim.api import load_model, load_system
        from sim.serving.cluster import kv_capacity_tokens
        from sim.serving.steptime import StepTimeTable

        key = (self.model, "roofline", self.hardware, tp, pp)
        if key not in self.tables:
            model = load_model(self.model)
            system = load_system(self.hardware, tp=tp, pp=pp)
            self.tables[key] = (system, kv_capacity_tokens(model, system),
                                StepTimeTable(model, system))
        return self.tables[key]

    def fits(self, tp: int, pp: int) -> bool:
        """Whether an instance holds the longest request's KV cache."""
        return self._entry(tp, pp)[1] >= self.longest

    def _config(self, tp: int, pp: int, tbt: float) -> tuple[float, float, float, float, int]:
        """(E[S], E[S^2], S_p90, t_d(B), B) of one instance, decode sized for ``tbt``."""
        key = (tp, pp, tbt)
        if key not in self._per_config:
            _, tokens, table = self._entry(tp, pp)
            s = np.array([table.time(int(p), 1, 0) for p in self.prompts])
            context = float(np.mean(self.prompts + self.outputs / 2))
            cap = max(1, min(MAX_BATCH, int(tokens // np.mean(self.prompts + self.outputs))))
            lo, hi = 0, cap + 1  # t_d(lo) fits (or lo = 0), t_d(hi) does not
            if table.time(cap, cap, context) <= tbt:
                lo = cap
            else:
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    lo, hi = (mid, hi) if table.time(mid, mid, context) <= tbt else (lo, mid)
            t_d = table.time(max(lo, 1), max(lo, 1), context)
            self._per_config[key] = (float(s.mean()), float((s**2).mean()),
                                     float(np.percentile(s, 90)), t_d, lo)
        return self._per_config[key]

    def _queue_rate(self, mean_s: float, second: float, p90: float, work: float) -> float:
        """The highest rate (req/s) whose M/G/1 mean wait stays under the TTFT slack."""
        slack = (self.ttft - p90) / P90_OVER_MEAN
        if slack <= 0:
            return 0.0
        return 2 * slack / (second + 2 * slack * work)

    def _collocated(self, tp: int, pp: int, share: float, out: float) -> float:
        """Rate (req/s) of one collocated instance whose decode step takes ``share`` of the
        TBT budget."""
        mean_s, second, p90, t_d, b = self._config(tp, pp, self.tbt * share)
        if b == 0:
            return 0.0
        work = mean_s + out * t_d / b
        return max(0.0, min(self._queue_rate(mean_s, second, p90, work),
                            (1 - t_d / self.tbt) / mean_s))

    def goodput(self, s: Strategy) -> float:
        """Estimated goodput (req/s) of strategy ``s`` (module docstring)."""
        out = float(np.mean(self.outputs))
        if s.decode is None:
            tp, pp, n = s.prefill
            return n * max(self._collocated(tp, pp, f, out) for f in DECODE_SHARES)
        (tp, pp, n_p), (dtp, dpp, n_d) = s.prefill, s.decode
        mean_s, second, p90, _, _ = self._config(tp, pp, self.tbt)
        _, _, _, t_d, b = self._config(dtp, dpp, self.tbt)
        if b == 0:
            return 0.0
        link = Link()  # the cluster's default KV ports (`simulate_serving`)
        kv = self.kv_bytes_per_token * float(np.mean(self.prompts))
        per_port = 1 / (link.latency_s + kv / link.bandwidth_bytes_per_s)
        return min(n_p * self._queue_rate(mean_s, second, p90, mean_s), n_d * b / (out * t_d),
                   min(n_p, n_d) * per_port)
