"""``pdsim serve``: a cluster of instances serving a request trace (`sim.serving`)."""

from __future__ import annotations

import argparse
import json
import sys

#: ``pdsim reproduce spad-cluster`` / ``ascendra`` / ``bestserve`` regenerate
#: ``results/spad-cluster/``, ``results/ascendra/`` and ``results/bestserve/``.
STUDIES = {"spad-cluster": ("results/spad-cluster",
                            "sim.studies.spad_cluster:write_spad_cluster"),
           "ascendra": ("results/ascendra", "sim.studies.ascendra:write_ascendra"),
           "bestserve": ("results/bestserve", "sim.studies.bestserve:write_bestserve")}


def add_commands(sub) -> dict:
    """Add ``pdsim serve`` to the subparsers ``sub``; return its handler."""
    p = sub.add_parser(
        "serve", help="simulate a serving cluster on a request trace",
        description="Serve a request trace on a cluster of instances (continuous batching, "
        "chunked prefill, paged KV cache, disaggregated prefill/decode). Without arguments: "
        "llama2-7b on one collocated h100 over the first 10 minutes of the Azure "
        "conversation trace (docs/serving.md).")
    p.add_argument("action", nargs="?", choices=["plan", "rank"],
                   help="plan: the cheapest counts of the cluster's groups meeting --slo; "
                   "rank: serving strategies (collocated or disaggregated, TP, PP, "
                   "prefill:decode) of --model on --chips x --hardware ranked by goodput")
    p.add_argument("--model", default="llama2-7b", help="rank: model (default llama2-7b)")
    p.add_argument("--hardware", default="h100", help="rank: chip preset (default h100)")
    p.add_argument("--chips", type=int, default=8, metavar="N", help="rank: chips (default 8)")
    p.add_argument("--top", type=int, default=4, metavar="K",
                   help="rank: strategies simulated, the best K by estimate (default 4)")
    p.add_argument("--requests", type=int, default=400, metavar="N",
                   help="rank: requests a simulation (default 400)")
    p.add_argument("--max-count", type=int, default=64, metavar="N",
                   help="plan: at most N instances a group (default 64)")
    p.add_argument("--trace", default=None, metavar="azure-code|azure-conv|sharegpt|FILE.csv",
                   help="requests (default azure-conv; sharegpt: ShareGPT-like lengths, needs "
                        "--rate)")
    p.add_argument("--rate", type=float, default=None, metavar="R",
                   help="Poisson arrivals at R requests/s with the trace's lengths")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="seconds of the trace (default 600 for the default trace)")
    p.add_argument("--cluster", default=None, metavar="CLUSTER.yaml",
                   help="cluster file (default: one collocated h100, llama2-7b)")
    p.add_argument("--slo", default=None, metavar="ttft_p90=S,tbt_p90=S",
                   help="latency targets in seconds")
    p.add_argument("--seed", type=int, default=0, help="seed of --rate arrivals")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("-o", "--out", default=None, metavar="TRACE.h5", help="HDF5 trace")
    p.add_argument("--cdf", default=None, metavar="FILE.png",
                   help="plot TTFT, TBT and end-to-end latency CDFs")
    p.add_argument("--rates", default=None, metavar="R1,R2,...",
                   help="also run Poisson arrivals at each rate and plot SLO attainment and "
                   "goodput against it (--slo-plot)")
    p.add_argument("--slo-plot", default=None, metavar="FILE.png",
                   help="where --rates writes its plot (default slo_vs_rate.png)")
    return {"serve": _serve}


def _serve(args: argparse.Namespace, argv: list[str]) -> int:
    from sim.errors import ConfigError
    from sim.files import check_output
    from sim.serving.cluster import read_cluster
    from sim.serving.metrics import parse_slo
    from sim.serving.run import (DEFAULT_DURATION_S, DEFAULT_TRACE, requests_for, serve,
                                 write_serve_trace)

    if args.duration is not None and not args.duration > 0:
        raise ConfigError(f"--duration: must be > 0 seconds, got {args.duration}")
    trace = args.trace or DEFAULT_TRACE
    duration = args.duration
    if args.trace is None and args.duration is None:
        duration = DEFAULT_DURATION_S
    slo = parse_slo(args.slo)
    if args.out is not None:
        check_output(args.out, "-o")
    rates = _rates(args.rates)
    fmts = {}
    for flag, path in (("--cdf", args.cdf), ("--slo-plot", args.slo_plot)):
        if path is not None:
            from sim.cli.plots import plot_format
            check_output(path, flag)
            fmts[flag] = plot_format(path, flag)
    if rates and args.slo_plot is None:
        raise ConfigError("--rates: give --slo-plot FILE.png for the plot")
    if args.action == "rank":
        return _rank(args, trace, slo)
    cluster = read_cluster(args.cluster)
    requests = requests_for(trace, rate=args.rate, duration_s=duration, seed=args.seed)
    if args.action == "plan":
        from sim.serving.plan import plan
        if args.max_count < 1:
            raise ConfigError(f"--max-count: must be >= 1, got {args.max_count}")
        best = plan(cluster, requests, slo, max_count=args.max_count)
        if args.json:
            print(json.dumps(best, indent=1))
        else:
            print(f"cheapest: {best['counts']}, ${best['cost_usd']:,.0f}; "
                  f"{best['runs']} simulations")
        return 0
    result, summary = serve(requests, cluster, slo, progress=_progress())
    if args.out is not None:
        write_serve_trace(args.out, result, summary,
                          {"trace": trace, "cluster": args.cluster or "default",
                           "slo": args.slo or "", "argv": " ".join(argv)})
    if args.cdf is not None:
        from sim.cli.serve_plots import plot_cdfs
        plot_cdfs(result, args.cdf, fmts["--cdf"], title=trace)
    if rates:
        from sim.cli.serve_plots import plot_slo_vs_rate
        span = duration or max(requests[-1].arrival_s, 1.0)
        sweeps = [serve(requests_for(trace, rate=r, duration_s=span, seed=args.seed), cluster,
                        slo)[1] for r in rates]
        plot_slo_vs_rate(rates, sweeps, args.slo_plot, fmts["--slo-plot"], title=trace)
        summary["slo_vs_rate"] = [{"rate": r, "slo_attainment": s["slo_attainment"],
                                   "goodput_rps": s["goodput_rps"]}
                                  for r, s in zip(rates, sweeps)]
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        for key in ("requests", "completed", "ttft_p50_s", "ttft_p90_s", "ttft_p99_s",
                    "tbt_p50_s", "tbt_p90_s", "tbt_p99_s", "goodput_rps", "throughput_rps"):
            print(f"{key:>16}: {summary[key]:.4g}" if isinstance(summary[key], float)
                  else f"{key:>16}: {summary[key]}")
        training = _training_text(summary.get("training"))
        if training:
            print(f"\n{training}")
    return 0


def _training_text(training: dict | None) -> str | None:
    """The text summary of a ``training:`` block's run (docs/serving.md, "Training on the
    serving cluster"), or None without one. Reads what the summary holds and skips the rest:
    `sim.serving.training.training_summary` may grow or lose fields."""
    if not isinstance(training, dict):
        return None
    from sim.text import seconds, table

    rows = []
    for key, label in (("steps", "steps"), ("tokens_per_s", "training tokens/s")):
        if isinstance(training.get(key), (int, float)):
            rows.append((label, _count(training[key])))
    reuse = training.get("reuse")
    if isinstance(reuse, dict):
        for key, label in (("recorded_sequences", "recorded sequences"),
                           ("reused_steps", "reused steps"),
                           ("reused_tokens", "reused tokens"),
                           ("hedged_recomputes", "hedged recomputes"),
                           ("dropped_samples", "dropped samples"),
                           ("cut_samples", "cut samples")):
            if isinstance(reuse.get(key), (int, float)):
                rows.append((label, _count(reuse[key])))
        if isinstance(reuse.get("added_prefill_s"), (int, float)):
            rows.append(("added to prefill", seconds(reuse["added_prefill_s"])))
        if isinstance(reuse.get("readback_added_s"), (int, float)):
            rows.append(("added by PCIe read-back", seconds(reuse["readback_added_s"])))
        peak, cap = reuse.get("peak_sample_bytes"), reuse.get("sample_capacity_bytes")
        if isinstance(peak, (int, float)) and isinstance(cap, (int, float)) and cap > 0:
            rows.append(("sample store peak", f"{peak / 1e9:.3g} GB of {cap / 1e9:.3g} GB"))
    return table(rows, title="training") if rows else None


def _count(value: int | float) -> str:
    """An integer in full with thousands separators; a rate to 4 significant digits."""
    return f"{value:,}" if isinstance(value, int) else f"{value:.4g}"


def _rank(args: argparse.Namespace, trace: str, slo: dict) -> int:
    """``pdsim serve rank``: every check before any simulation."""
    from sim.api import load_model, load_system
    from sim.errors import ConfigError
    from sim.serving.rank import Search, rank
    from sim.serving.workload import load_trace

    for flag, value, low in (("--chips", args.chips, 1), ("--top", args.top, 1),
                             ("--requests", args.requests, 50)):
        if value < low:
            raise ConfigError(f"{flag}: must be an integer >= {low}, got {value}")
    if args.rate is not None or args.cluster is not None:
        raise ConfigError("rank: takes no --rate or --cluster (it searches the rate and "
                          "enumerates the clusters)")
    from sim.serving.metrics import slo_metric
    if {slo_metric(k) for k in slo} != {"ttft", "tbt"}:
        raise ConfigError("--slo: rank needs ttft_pNN=S,tbt_pNN=S (a request meets them when "
                          "its TTFT and mean TBT are within the targets)")
    load_model(args.model)
    load_system(args.hardware)
    search = Search(lengths=tuple(load_trace(trace, duration_s=args.duration)), slo=slo,
                    requests=args.requests, seed=args.seed)
    out = rank(args.model, args.hardware, args.chips, search, top=args.top)
    rows = [{k: v for k, v in r.items()} for r in out["rows"]]
    if args.json:
        print(json.dumps({"model": args.model, "hardware": args.hardware, "chips": args.chips,
                          "trace": trace, "strategies": len(rows), "simulated": args.top,
                          "simulations": out["simulations"], "ranking": rows}, indent=1))
        return 0
    from sim.text import text_table
    print(text_table(["rank", "strategy", "estimate req/s", "simulated req/s"],
                     [[str(k + 1), r["strategy"], f"{r['estimate_rps']:.2f}",
                       "pruned" if r["goodput_rps"] is None else f"{r['goodput_rps']:.2f}"]
                      for k, r in enumerate(rows)]))
    print(f"{len(rows)} strategies estimated; the best {min(args.top, len(rows))} by estimate "
          f"simulated ({out['simulations']} runs of {args.requests} requests); goodput: the "
          f"highest Poisson rate with >= 90% of requests within the SLOs")
    return 0


def _rates(text: str | None) -> list[float]:
    from sim.errors import ConfigError

    if text is None:
        return []
    try:
        rates = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        rates = []
    if not rates or not all(r > 0 for r in rates):
        raise ConfigError(f"--rates: a comma-separated list of rates > 0, got {text!r}")
    return rates


def _progress():
    if not sys.stderr.isatty():
        return None

    def report(done: int, total: int) -> None:
        if done % 200 == 0 or done == total:
            print(f"\rrequests {done}/{total}", end="\n" if done == total else "",
                  file=sys.stderr, flush=True)
    return report
