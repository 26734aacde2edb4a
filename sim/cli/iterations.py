"""``pdsim show`` of an iteration trace (``pdsim run --draft/--dllm -o``, `sim.trace_iter`)."""

from __future__ import annotations

import argparse

from sim.errors import PdsimError
from sim.text import table, text_table, to_json
from sim.trace_iter import phase_rows, read_iteration_trace


def show_iterations(args: argparse.Namespace) -> int:
    """`pdsim show` of an iteration trace (`sim.trace_iter`): its summary and, per phase,
    steps, time, tokens produced, intensity and unit."""
    for flag, given in (("--ops", args.ops is not None), ("--plot", args.plot),
                        ("--perfetto", args.perfetto)):
        if given:
            raise PdsimError(f"{flag}: {args.trace} is a --draft/--dllm iteration trace, which "
                             f"has no op table (only --json)")
    trace = read_iteration_trace(args.trace)
    if args.json:
        steps = {name: [v.decode() if isinstance(v, bytes) else v.item()
                        for v in trace.steps[name]] for name in trace.steps.dtype.names}
        print(to_json({"mode": trace.mode, "meta": trace.meta, "summary": trace.summary,
                       "steps": steps}))
        return 0
    print(table([(k, f"{v:.6g}" if isinstance(v, float) else str(v))
                 for k, v in trace.summary.items()],
                f"{args.trace}: {trace.meta.get('command_line', '')} "
                f"(pdsim {trace.meta.get('pdsim_version', '?')}, {trace.mode} trace)"))
    print(text_table(["phase", "steps", "time", "tokens produced", "FLOP/B DRAM", "unit"],
                     [[p, str(n), f"{t * 1e3:.3f} ms", str(tok), f"{i:.2f}", u]
                      for p, n, t, tok, i, u in phase_rows(trace)]))
    return 0
