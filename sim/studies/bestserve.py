"""BestServe reproduced (Hu et al., arXiv 2506.05871; ../shared/REFERENCE.md): `pdsim serve
rank` (`sim.serving.rank`) ranks serving strategies by goodput for llama2-7b and llama2-70b on
8 and 16 h100s, and every strategy is also simulated (the exhaustive reference): the ranking's
error is how far its top choice falls short of the best strategy found exhaustively.

Setup (CHOSEN): the Azure 2023 code trace's prompt and output lengths with Poisson arrivals
(its outputs are short, so a simulated second is cheap: the conversation trace works the same
through the CLI but costs about 8x more here); per-request SLOs TTFT within `TTFT_S` and mean
TBT within `TBT_S`; goodput = the highest rate with >= 90% of requests within both
(`sim.serving.rank.Search`). The four scenarios run in two worker processes.

`bestserve_study` computes and writes nothing; `write_bestserve` regenerates
``results/bestserve/`` (``pdsim reproduce bestserve``).
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from sim.serving.rank import Search, rank, simulated_goodput
from sim.serving.workload import load_trace
from sim.studies import write_study

COMMAND = "pdsim reproduce bestserve"
HARDWARE, TRACE = "h100", "azure-code"
SCENARIOS = (("llama2-7b", 8), ("llama2-7b", 16), ("llama2-70b", 8), ("llama2-70b", 16))
TTFT_S, TBT_S = 0.5, 0.05
TOP = 4
REQUESTS = 400
#: BestServe's claim: its estimates are within 20% of measured goodput.
BESTSERVE_REPORTED_ERROR = 0.20


def search() -> Search:
    return Search(lengths=tuple(load_trace(TRACE)), slo={"ttft": (90.0, TTFT_S),
                                                         "tbt": (90.0, TBT_S)},
                  requests=REQUESTS)


def scenario(model: str, chips: int) -> dict[str, Any]:
    """The ranking (top `TOP` simulated) and the exhaustive simulation of one scenario."""
    s, tables = search(), {}
    ranked = rank(model, HARDWARE, chips, s, top=TOP, tables=tables)
    exhaustive, sims = [], 0
    for strategy, estimate in zip(ranked["strategies"], ranked["estimates"]):
        goodput, n = simulated_goodput(strategy, model, HARDWARE, s, tables, estimate)
        exhaustive.append(goodput)
        sims += n
    labels = [st.label for st in ranked["strategies"]]
    best = max(range(len(labels)), key=lambda k: (exhaustive[k], -k))
    top = labels.index(ranked["rows"][0]["strategy"])
    rho = spearman(ranked["estimates"], exhaustive)
    return {
        "model": model, "chips": chips, "strategies": len(labels),
        "ranking": ranked["rows"], "rank_simulations": ranked["simulations"],
        "exhaustive_simulations": sims,
        "exhaustive": [{"strategy": lab, "estimate_rps": e, "goodput_rps": g}
                       for lab, e, g in zip(labels, ranked["estimates"], exhaustive)],
        "top_choice": labels[top], "top_choice_goodput_rps": exhaustive[top],
        "best": labels[best], "best_goodput_rps": exhaustive[best],
        "ranking_error": 1 - exhaustive[top] / exhaustive[best] if exhaustive[best] else 0.0,
        "estimate_spearman": float(rho),
        "estimate_error_median": _median_error(ranked["estimates"], exhaustive),
    }


def spearman(a, b) -> float:
    """Spearman's rank correlation of ``a`` and ``b`` (ties get their mean rank)."""
    import numpy as np

    def ranks(x):
        x = np.asarray(x, float)
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x))
        for v in np.unique(x):
            r[x == v] = r[x == v].mean()
        return r
    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def _median_error(estimates, goodputs) -> float:
    import numpy as np
    err = [abs(e - g) / g for e, g in zip(estimates, goodputs) if g > 0]
    return float(np.median(err)) if err else 0.0


def bestserve_study() -> dict[str, Any]:
    with ProcessPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(scenario, *zip(*SCENARIOS)))
    return {"hardware": HARDWARE, "trace": TRACE, "ttft_s": TTFT_S, "tbt_s": TBT_S,
            "top": TOP, "requests": REQUESTS,
            "bestserve_reported_error": BESTSERVE_REPORTED_ERROR, "scenarios": results}


def write_bestserve(out_dir: Path) -> list[Path]:
    """Regenerate ``out_dir`` (``results/bestserve/``): bestserve.json, bestserve.png,
    README.md."""
    from sim.studies.bestserve_report import plot, readme
    return write_study(Path(out_dir), "bestserve", bestserve_study(), plot, readme)


def headline(data: dict[str, Any]) -> str:
    """Per scenario: the ranking's top choice, the exhaustive best and the ranking error."""
    from sim.studies import text_table
    rows = [[f"{s['model']} x{s['chips']}", s["top_choice"], f"{s['top_choice_goodput_rps']:.1f}",
             s["best"], f"{s['best_goodput_rps']:.1f}", f"{s['ranking_error']:.1%}"]
            for s in data["scenarios"]]
    return text_table(["scenario", "rank's top choice", "req/s", "exhaustive best", "req/s",
                       "ranking error"], rows)
