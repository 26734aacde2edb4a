"""``pdsim sweep SPEC.yaml -o OUT``: a design-space sweep on Dask (`sim.sweep`), and the
``spad-sweep`` study for ``pdsim reproduce``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

#: ``pdsim reproduce spad-sweep`` regenerates ``results/spad-sweep/``.
STUDIES = {"spad-sweep": ("results/spad-sweep", "sim.studies.spad_sweep:write_spad_sweep")}


def add_commands(sub) -> dict:
    """Add ``pdsim sweep`` to the subparsers ``sub``; return its handler."""
    from sim.cli.main import _int_at_least

    p = sub.add_parser(
        "sweep", help="run a design-space sweep (grid or random) on Dask",
        description="Run every point of a sweep spec (a base run and the axes to vary: any "
        "hardware field by dotted path, model, batch, prompt, gen, dtype, detail, tp, pp) "
        "on Dask, locally in processes or on a cluster; write one table row per point and a "
        "Pareto plot. Points are cached by the hash of their inputs, so a sweep that stops "
        "resumes where it stopped (docs/sweep.md).")
    p.add_argument("spec", help="sweep spec (YAML)")
    p.add_argument("-o", "--out", help="table: .parquet or .csv (default "
                   "results/sweeps/<spec name>.parquet); the Pareto plot goes beside it as "
                   "<name>.pareto.png")
    p.add_argument("--workers", type=_int_at_least(1), metavar="N",
                   help="local worker processes (default: every core)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="a Dask distributed scheduler, "
                   "e.g. tcp://10.0.0.5:8786 (default: local processes, no server)")
    p.add_argument("--cache", metavar="DIR", help="point cache (default "
                   "~/.cache/pdsim/sweep)")
    p.add_argument("--no-cache", action="store_true", help="run every point, cache nothing")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    return {"sweep": _sweep}


def _sweep(args: argparse.Namespace, argv: list[str]) -> int:
    from sim.sweep import execute, output
    from sim.sweep import spec as spec_mod
    from sim.trace import to_json

    data = spec_mod.read_spec_file(args.spec)
    out = output.check_table_path(f"results/sweeps/{Path(args.spec).stem}.parquet"
                                  if args.out is None else args.out)
    plot_path = out.with_name(out.stem + ".pareto.png")
    spec = spec_mod.parse_spec(data, args.spec)
    cache = None if args.no_cache else Path(args.cache) if args.cache \
        else execute.default_cache_dir()
    result = execute.run_sweep(spec, workers=args.workers, scheduler=args.scheduler,
                               cache_dir=cache, progress=sys.stderr.isatty())
    rows = result.rows
    output.write_table(rows, out)
    front: list[int] = []
    if spec.pareto is not None:
        output.check_metrics(rows, spec.pareto)
        labels = [", ".join(f"{k}={v}" for k, v in row.items() if k in spec.axis_names)
                  for row in rows]
        output.plot_pareto(rows, *spec.pareto, labels, plot_path, title=Path(args.spec).name)
        front = output.pareto_front(rows, *spec.pareto)
    internal = sum(bool(r.get("internal_error")) for r in rows)
    summary = {"points": len(rows), "computed": result.computed, "cached": result.cached,
               "failed": result.failed, "internal_errors": internal, "table": str(out),
               "pareto_plot": str(plot_path) if spec.pareto else None,
               "pareto_front": [{k: rows[i].get(k) for k in (*spec.axis_names, *spec.pareto)}
                                for i in front] if spec.pareto else None}
    if args.json:
        print(to_json(summary))
    else:
        print(f"{len(rows)} points: {result.computed} run, {result.cached} from the cache, "
              f"{result.failed} failed")
        for row in rows:
            if row.get("error"):
                axes = ", ".join(f"{k}={row.get(k)}" for k in spec.axis_names)
                print(f"  failed: {axes}: {row['error']}")
        if spec.pareto:
            print(f"Pareto front ({spec.pareto[0]} vs {spec.pareto[1]}, both minimised):")
            for i in front:
                axes = ", ".join(f"{k}={rows[i].get(k)}" for k in spec.axis_names)
                print(f"  {axes}: {spec.pareto[0]}={rows[i][spec.pareto[0]]:.4g}, "
                      f"{spec.pareto[1]}={rows[i][spec.pareto[1]]:.4g}")
            print(f"plot: {plot_path}")
        print(f"table: {out}")
    if internal:
        print(f"pdsim sweep: {internal} point(s) hit an internal error (a pdsim bug; see the "
              f"error column)", file=sys.stderr)
        return 1
    return 0
